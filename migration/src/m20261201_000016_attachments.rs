//! Attachments: files (images, documents) a user uploads for prompts, and
//! the content blocks of a start that refer to them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Attachment {
    Table,
    Id,
    Owner,
    Name,
    MediaType,
    Size,
    Sha256,
    Data,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum ExecutionAttachment {
    Table,
    ExecutionId,
    AttachmentId,
}

#[derive(DeriveIden)]
enum Execution {
    Table,
    Id,
    Content,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Attachment::Table)
                    .col(ColumnDef::new(Attachment::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Attachment::Owner).string().not_null())
                    .col(ColumnDef::new(Attachment::Name).string().not_null())
                    .col(ColumnDef::new(Attachment::MediaType).string().not_null())
                    .col(ColumnDef::new(Attachment::Size).big_integer().not_null())
                    .col(ColumnDef::new(Attachment::Sha256).string().not_null())
                    .col(ColumnDef::new(Attachment::Data).blob().not_null())
                    .col(ColumnDef::new(Attachment::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Attachment::ExpiresAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        // The same bytes uploaded again by their owner are one attachment.
        manager
            .create_index(
                Index::create()
                    .name("idx_attachment_owner_sha256")
                    .table(Attachment::Table)
                    .col(Attachment::Owner)
                    .col(Attachment::Sha256)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_attachment_expires_at")
                    .table(Attachment::Table)
                    .col(Attachment::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        // Which attachments an execution's prompt uses: kept while it has
        // not run yet, whatever their time to live says.
        manager
            .create_table(
                Table::create()
                    .table(ExecutionAttachment::Table)
                    .col(ColumnDef::new(ExecutionAttachment::ExecutionId).uuid().not_null())
                    .col(ColumnDef::new(ExecutionAttachment::AttachmentId).uuid().not_null())
                    .primary_key(
                        Index::create().col(ExecutionAttachment::ExecutionId).col(ExecutionAttachment::AttachmentId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ExecutionAttachment::Table, ExecutionAttachment::ExecutionId)
                            .to(Execution::Table, Execution::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ExecutionAttachment::Table, ExecutionAttachment::AttachmentId)
                            .to(Attachment::Table, Attachment::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_execution_attachment_attachment")
                    .table(ExecutionAttachment::Table)
                    .col(ExecutionAttachment::AttachmentId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Execution::Table)
                    .add_column(ColumnDef::new(Execution::Content).json().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Execution::Table).drop_column(Execution::Content).to_owned()).await?;
        manager.drop_table(Table::drop().table(ExecutionAttachment::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Attachment::Table).to_owned()).await
    }
}
