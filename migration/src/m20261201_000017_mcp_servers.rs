//! MCP servers: a workspace's configured ones, and the status of those a
//! run had (from its `init` line).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Workspace {
    Table,
    McpServers,
}

#[derive(DeriveIden)]
enum Execution {
    Table,
    McpServers,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Workspace::Table)
                    .add_column(ColumnDef::new(Workspace::McpServers).json().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Execution::Table)
                    .add_column(ColumnDef::new(Execution::McpServers).json().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Execution::Table).drop_column(Execution::McpServers).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(Workspace::Table).drop_column(Workspace::McpServers).to_owned()).await
    }
}
