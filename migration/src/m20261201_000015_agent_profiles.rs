//! Agent profiles: named start options per user, or per workspace.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AgentProfile {
    Table,
    Id,
    Owner,
    WorkspaceId,
    Name,
    Options,
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
                    .table(AgentProfile::Table)
                    .col(ColumnDef::new(AgentProfile::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(AgentProfile::Owner).string().not_null())
                    .col(ColumnDef::new(AgentProfile::WorkspaceId).uuid().null())
                    .col(ColumnDef::new(AgentProfile::Name).string().not_null())
                    .col(ColumnDef::new(AgentProfile::Options).json().not_null())
                    .col(ColumnDef::new(AgentProfile::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(AgentProfile::Table, AgentProfile::WorkspaceId)
                            .to(Workspace::Table, Workspace::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One name per user, and per workspace (NULL workspaces compare
        // unequal in a unique index, so the user-level names get their own).
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE UNIQUE INDEX idx_agent_profile_workspace_name ON agent_profile (owner, workspace_id, name) \
             WHERE workspace_id IS NOT NULL",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX idx_agent_profile_user_name ON agent_profile (owner, name) WHERE workspace_id IS NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AgentProfile::Table).to_owned()).await
    }
}
