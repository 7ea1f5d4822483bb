//! Which of an owner's executions changed since a cursor: a counter per
//! owner, and the counter's value at each execution's latest change (its
//! status, a stall, or one of its permission requests).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OwnerClock {
    Table,
    Owner,
    Seq,
}

#[derive(DeriveIden)]
enum Execution {
    Table,
    WorkspaceId,
    ChangeSeq,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OwnerClock::Table)
                    .col(ColumnDef::new(OwnerClock::Owner).string().not_null().primary_key())
                    .col(ColumnDef::new(OwnerClock::Seq).big_integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Execution::Table)
                    .add_column(ColumnDef::new(Execution::ChangeSeq).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_execution_workspace_change")
                    .table(Execution::Table)
                    .col(Execution::WorkspaceId)
                    .col(Execution::ChangeSeq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_execution_workspace_change").table(Execution::Table).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(Execution::Table).drop_column(Execution::ChangeSeq).to_owned())
            .await?;
        manager.drop_table(Table::drop().table(OwnerClock::Table).to_owned()).await
    }
}
