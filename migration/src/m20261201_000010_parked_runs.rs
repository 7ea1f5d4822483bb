//! Runs parked until a usage or rate limit resets: when they resume, how
//! often they were parked, and until when the Claude account is held.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Execution {
    Table,
    ResumeAt,
    ParkCount,
}

#[derive(DeriveIden)]
enum AccountHold {
    Table,
    Account,
    Until,
    Reason,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Execution::Table)
                    .add_column(ColumnDef::new(Execution::ResumeAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Execution::Table)
                    .add_column(ColumnDef::new(Execution::ParkCount).integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        // The sweep for parked runs that are due.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_execution_resume_at ON execution (resume_at) WHERE status = 'SCHEDULED'",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AccountHold::Table)
                    .col(ColumnDef::new(AccountHold::Account).string().not_null().primary_key())
                    .col(ColumnDef::new(AccountHold::Until).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(AccountHold::Reason).text().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AccountHold::Table).to_owned()).await?;
        manager.get_connection().execute_unprepared("DROP INDEX idx_execution_resume_at").await?;
        manager
            .alter_table(Table::alter().table(Execution::Table).drop_column(Execution::ParkCount).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(Execution::Table).drop_column(Execution::ResumeAt).to_owned()).await
    }
}
