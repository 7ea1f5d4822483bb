//! Lines are stored in blocks: the consecutive lines of one execution that
//! were committed together share one row, instead of a row (and two index
//! entries) each. Writing a line was mostly the cost of its row: B-tree
//! inserts, the row's own columns, and the driver's handling of nine bound
//! values; a block pays that once for all its lines.
//!
//! A block holds its lines joined by newlines, and beside them a JSON array
//! with each line's `[type, subtype, uuid, length in bytes]`. Existing
//! lines become blocks of one line. (Going down gives back an empty
//! `message` table: the lines are not split again.)

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MessageBlock {
    Table,
    Id,
    ExecutionId,
    SessionId,
    FirstSeq,
    LastSeq,
    FirstSessionSeq,
    LastSessionSeq,
    Headers,
    Payload,
    CreatedAt,
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

#[derive(DeriveIden)]
enum Execution {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MessageBlock::Table)
                    .col(ColumnDef::new(MessageBlock::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(MessageBlock::ExecutionId).uuid().not_null())
                    .col(ColumnDef::new(MessageBlock::SessionId).uuid().not_null())
                    .col(ColumnDef::new(MessageBlock::FirstSeq).big_integer().not_null())
                    .col(ColumnDef::new(MessageBlock::LastSeq).big_integer().not_null())
                    .col(ColumnDef::new(MessageBlock::FirstSessionSeq).big_integer().not_null())
                    .col(ColumnDef::new(MessageBlock::LastSessionSeq).big_integer().not_null())
                    .col(ColumnDef::new(MessageBlock::Headers).text().not_null())
                    .col(ColumnDef::new(MessageBlock::Payload).text().not_null())
                    .col(ColumnDef::new(MessageBlock::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(MessageBlock::Table, MessageBlock::ExecutionId)
                            .to(Execution::Table, Execution::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Replay of an execution's stream, and sessionLogs: keyset
        // pagination on the last line a block holds (blocks do not
        // overlap, so no number is stored twice).
        for (name, scope, last) in [
            ("idx_message_block_execution_seq", MessageBlock::ExecutionId, MessageBlock::LastSeq),
            ("idx_message_block_session_seq", MessageBlock::SessionId, MessageBlock::LastSessionSeq),
        ] {
            manager
                .create_index(
                    Index::create().name(name).table(MessageBlock::Table).col(scope).col(last).unique().to_owned(),
                )
                .await?;
        }
        let header = match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                "json_build_array(json_build_array(\"type\", \"subtype\", \"uuid\", octet_length(\"payload\")))::text"
            }
            _ => "json_array(json_array(\"type\", \"subtype\", \"uuid\", length(CAST(\"payload\" AS BLOB))))",
        };
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "INSERT INTO \"message_block\" (\"execution_id\", \"session_id\", \"first_seq\", \"last_seq\", \
                 \"first_session_seq\", \"last_session_seq\", \"headers\", \"payload\", \"created_at\") \
                 SELECT \"execution_id\", \"session_id\", \"seq\", \"seq\", \"session_seq\", \"session_seq\", {header}, \
                 \"payload\", \"created_at\" FROM \"message\" ORDER BY \"id\""
            ))
            .await?;
        manager.drop_table(Table::drop().table(Message::Table).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(MessageBlock::Table).to_owned()).await?;
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
        for (name, scope, seq) in [
            ("idx_message_execution_seq", Message::ExecutionId, Message::Seq),
            ("idx_message_session_seq", Message::SessionId, Message::SessionSeq),
        ] {
            manager
                .create_index(Index::create().name(name).table(Message::Table).col(scope).col(seq).unique().to_owned())
                .await?;
        }
        Ok(())
    }
}
