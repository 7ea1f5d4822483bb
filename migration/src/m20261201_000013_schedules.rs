//! Schedules: a prompt started by a cron pattern, per workspace.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Schedule {
    Table,
    Id,
    Owner,
    WorkspaceId,
    Name,
    Cron,
    Timezone,
    Prompt,
    Options,
    SameSession,
    SessionId,
    Enabled,
    NextRunAt,
    LastRunAt,
    LastExecutionId,
    LastError,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Workspace {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Schedule::Table)
                    .col(ColumnDef::new(Schedule::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Schedule::Owner).string().not_null())
                    .col(ColumnDef::new(Schedule::WorkspaceId).uuid().not_null())
                    .col(ColumnDef::new(Schedule::Name).string().not_null())
                    .col(ColumnDef::new(Schedule::Cron).string().not_null())
                    .col(ColumnDef::new(Schedule::Timezone).string().not_null())
                    .col(ColumnDef::new(Schedule::Prompt).text().not_null())
                    .col(ColumnDef::new(Schedule::Options).json().not_null())
                    .col(ColumnDef::new(Schedule::SameSession).boolean().not_null())
                    .col(ColumnDef::new(Schedule::SessionId).uuid().null())
                    .col(ColumnDef::new(Schedule::Enabled).boolean().not_null())
                    .col(ColumnDef::new(Schedule::NextRunAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Schedule::LastRunAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Schedule::LastExecutionId).uuid().null())
                    .col(ColumnDef::new(Schedule::LastError).text().null())
                    .col(ColumnDef::new(Schedule::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Schedule::Table, Schedule::WorkspaceId)
                            .to(Workspace::Table, Workspace::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("CREATE INDEX idx_schedule_due ON schedule (next_run_at) WHERE enabled")
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_schedule_workspace")
                    .table(Schedule::Table)
                    .col(Schedule::WorkspaceId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Schedule::Table).to_owned()).await
    }
}
