//! Workspaces, sessions, executions and their messages, with an index for
//! every query the API makes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Workspace {
    Table,
    Id,
    Owner,
    Name,
    Path,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Session {
    Table,
    Id,
    WorkspaceId,
    Status,
    ClaudeSessionId,
    ActiveExecutionId,
    MessageCount,
    TotalCostUsd,
    CreatedAt,
    LastActivityAt,
}

#[derive(DeriveIden)]
enum Execution {
    Table,
    Id,
    SessionId,
    WorkspaceId,
    Status,
    Prompt,
    Options,
    Metadata,
    ClaudeSessionId,
    ResumedFrom,
    MessageCount,
    NumTurns,
    CostUsd,
    Usage,
    Result,
    ExitCode,
    ErrorCode,
    ErrorMessage,
    ReplicaId,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Message {
    Table,
    Id,
    ExecutionId,
    SessionId,
    Seq,
    SessionSeq,
    Type,
    Subtype,
    Uuid,
    Payload,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Workspace::Table)
                    .col(ColumnDef::new(Workspace::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Workspace::Owner).string().not_null())
                    .col(ColumnDef::new(Workspace::Name).string().not_null())
                    .col(ColumnDef::new(Workspace::Path).string().not_null())
                    .col(ColumnDef::new(Workspace::CreatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        // Listing: the owner's workspaces, newest (largest UUIDv7) first.
        manager
            .create_index(
                Index::create()
                    .name("idx_workspace_owner_id")
                    .table(Workspace::Table)
                    .col(Workspace::Owner)
                    .col(Workspace::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Session::Table)
                    .col(ColumnDef::new(Session::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Session::WorkspaceId).uuid().not_null())
                    .col(ColumnDef::new(Session::Status).string().not_null())
                    .col(ColumnDef::new(Session::ClaudeSessionId).string())
                    .col(ColumnDef::new(Session::ActiveExecutionId).uuid())
                    .col(ColumnDef::new(Session::MessageCount).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Session::TotalCostUsd).double().not_null().default(0.0))
                    .col(ColumnDef::new(Session::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Session::LastActivityAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Session::Table, Session::WorkspaceId)
                            .to(Workspace::Table, Workspace::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Listing a workspace's sessions newest first, optionally by status.
        manager
            .create_index(
                Index::create()
                    .name("idx_session_workspace_id")
                    .table(Session::Table)
                    .col(Session::WorkspaceId)
                    .col(Session::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_session_workspace_status_id")
                    .table(Session::Table)
                    .col(Session::WorkspaceId)
                    .col(Session::Status)
                    .col(Session::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_session_workspace_activity")
                    .table(Session::Table)
                    .col(Session::WorkspaceId)
                    .col(Session::LastActivityAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Execution::Table)
                    .col(ColumnDef::new(Execution::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Execution::SessionId).uuid().not_null())
                    .col(ColumnDef::new(Execution::WorkspaceId).uuid().not_null())
                    .col(ColumnDef::new(Execution::Status).string().not_null())
                    .col(ColumnDef::new(Execution::Prompt).text().not_null())
                    .col(ColumnDef::new(Execution::Options).json_binary().not_null())
                    .col(ColumnDef::new(Execution::Metadata).json_binary())
                    .col(ColumnDef::new(Execution::ClaudeSessionId).string())
                    .col(ColumnDef::new(Execution::ResumedFrom).string())
                    .col(ColumnDef::new(Execution::MessageCount).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Execution::NumTurns).integer())
                    .col(ColumnDef::new(Execution::CostUsd).double())
                    .col(ColumnDef::new(Execution::Usage).json_binary())
                    .col(ColumnDef::new(Execution::Result).json_binary())
                    .col(ColumnDef::new(Execution::ExitCode).integer())
                    .col(ColumnDef::new(Execution::ErrorCode).string())
                    .col(ColumnDef::new(Execution::ErrorMessage).text())
                    .col(ColumnDef::new(Execution::ReplicaId).string())
                    .col(ColumnDef::new(Execution::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Execution::StartedAt).timestamp_with_time_zone())
                    .col(ColumnDef::new(Execution::FinishedAt).timestamp_with_time_zone())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Execution::Table, Execution::SessionId)
                            .to(Session::Table, Session::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A session's executions, newest first.
        manager
            .create_index(
                Index::create()
                    .name("idx_execution_session_id")
                    .table(Execution::Table)
                    .col(Execution::SessionId)
                    .col(Execution::Id)
                    .to_owned(),
            )
            .await?;
        // Startup recovery: this replica's unfinished runs.
        manager
            .create_index(
                Index::create()
                    .name("idx_execution_status_replica")
                    .table(Execution::Table)
                    .col(Execution::Status)
                    .col(Execution::ReplicaId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Message::Table)
                    .col(ColumnDef::new(Message::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Message::ExecutionId).uuid().not_null())
                    .col(ColumnDef::new(Message::SessionId).uuid().not_null())
                    .col(ColumnDef::new(Message::Seq).big_integer().not_null())
                    .col(ColumnDef::new(Message::SessionSeq).big_integer().not_null())
                    .col(ColumnDef::new(Message::Type).string().not_null())
                    .col(ColumnDef::new(Message::Subtype).string())
                    .col(ColumnDef::new(Message::Uuid).string())
                    .col(ColumnDef::new(Message::Payload).text().not_null())
                    .col(ColumnDef::new(Message::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Message::Table, Message::ExecutionId)
                            .to(Execution::Table, Execution::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Replay of an execution's stream (and no seq twice).
        manager
            .create_index(
                Index::create()
                    .name("idx_message_execution_seq")
                    .table(Message::Table)
                    .col(Message::ExecutionId)
                    .col(Message::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // sessionLogs: keyset pagination over the session's sequence.
        manager
            .create_index(
                Index::create()
                    .name("idx_message_session_seq")
                    .table(Message::Table)
                    .col(Message::SessionId)
                    .col(Message::SessionSeq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Message::Table.into_iden(),
            Execution::Table.into_iden(),
            Session::Table.into_iden(),
            Workspace::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
