//! The idempotency keys of starts: a retried `startExecution` with the same
//! key returns the execution the first one made. The primary key is what
//! makes racing starts with one key end up with one execution.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKey {
    Table,
    Owner,
    Key,
    RequestHash,
    ExecutionId,
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
                    .table(IdempotencyKey::Table)
                    .col(ColumnDef::new(IdempotencyKey::Owner).string().not_null())
                    .col(ColumnDef::new(IdempotencyKey::Key).string().not_null())
                    .col(ColumnDef::new(IdempotencyKey::RequestHash).string().not_null())
                    .col(ColumnDef::new(IdempotencyKey::ExecutionId).uuid().not_null())
                    .col(ColumnDef::new(IdempotencyKey::CreatedAt).timestamp_with_time_zone().not_null())
                    .primary_key(Index::create().col(IdempotencyKey::Owner).col(IdempotencyKey::Key))
                    .foreign_key(
                        ForeignKey::create()
                            .from(IdempotencyKey::Table, IdempotencyKey::ExecutionId)
                            .to(Execution::Table, Execution::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Deleting an execution looks its keys up by execution.
        manager
            .create_index(
                Index::create()
                    .name("idx_idempotency_key_execution")
                    .table(IdempotencyKey::Table)
                    .col(IdempotencyKey::ExecutionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(IdempotencyKey::Table).to_owned()).await
    }
}
