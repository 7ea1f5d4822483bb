//! Tool-permission prompts and how they were answered, kept as an audit
//! trail; and a per-workspace default for asking.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PermissionRequest {
    Table,
    Id,
    ExecutionId,
    RequestId,
    ToolName,
    ToolUseId,
    Input,
    Description,
    BlockedPath,
    Suggestions,
    Status,
    Decision,
    AnsweredBy,
    CreatedAt,
    ExpiresAt,
    AnsweredAt,
}

#[derive(DeriveIden)]
enum Execution {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Workspace {
    Table,
    RequireApproval,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PermissionRequest::Table)
                    .col(ColumnDef::new(PermissionRequest::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(PermissionRequest::ExecutionId).uuid().not_null())
                    .col(ColumnDef::new(PermissionRequest::RequestId).string().not_null())
                    .col(ColumnDef::new(PermissionRequest::ToolName).string().not_null())
                    .col(ColumnDef::new(PermissionRequest::ToolUseId).string())
                    .col(ColumnDef::new(PermissionRequest::Input).json_binary().not_null())
                    .col(ColumnDef::new(PermissionRequest::Description).text())
                    .col(ColumnDef::new(PermissionRequest::BlockedPath).text())
                    .col(ColumnDef::new(PermissionRequest::Suggestions).json_binary())
                    .col(ColumnDef::new(PermissionRequest::Status).string().not_null())
                    .col(ColumnDef::new(PermissionRequest::Decision).json_binary())
                    .col(ColumnDef::new(PermissionRequest::AnsweredBy).string())
                    .col(ColumnDef::new(PermissionRequest::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(PermissionRequest::ExpiresAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(PermissionRequest::AnsweredAt).timestamp_with_time_zone())
                    .foreign_key(
                        ForeignKey::create()
                            .from(PermissionRequest::Table, PermissionRequest::ExecutionId)
                            .to(Execution::Table, Execution::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // An execution's requests (pending ones, or all for the audit trail).
        manager
            .create_index(
                Index::create()
                    .name("idx_permission_request_execution")
                    .table(PermissionRequest::Table)
                    .col(PermissionRequest::ExecutionId)
                    .col(PermissionRequest::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Workspace::Table)
                    .add_column(ColumnDef::new(Workspace::RequireApproval).boolean().not_null().default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Workspace::Table).drop_column(Workspace::RequireApproval).to_owned())
            .await?;
        manager.drop_table(Table::drop().table(PermissionRequest::Table).to_owned()).await
    }
}
