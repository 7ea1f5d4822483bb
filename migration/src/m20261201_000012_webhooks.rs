//! Webhooks: endpoints per user (or workspace), and an outbox of their
//! deliveries, written in the transaction of the change they announce.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Webhook {
    Table,
    Id,
    Owner,
    WorkspaceId,
    Url,
    Secret,
    Events,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookDelivery {
    Table,
    Id,
    WebhookId,
    Event,
    Body,
    Status,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    LastStatusCode,
    LastError,
    CreatedAt,
    FinishedAt,
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
                    .table(Webhook::Table)
                    .col(ColumnDef::new(Webhook::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Webhook::Owner).string().not_null())
                    .col(ColumnDef::new(Webhook::WorkspaceId).uuid().null())
                    .col(ColumnDef::new(Webhook::Url).text().not_null())
                    .col(ColumnDef::new(Webhook::Secret).string().not_null())
                    .col(ColumnDef::new(Webhook::Events).json().not_null())
                    .col(ColumnDef::new(Webhook::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Webhook::Table, Webhook::WorkspaceId)
                            .to(Workspace::Table, Workspace::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_webhook_owner").table(Webhook::Table).col(Webhook::Owner).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDelivery::Table)
                    .col(ColumnDef::new(WebhookDelivery::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(WebhookDelivery::WebhookId).uuid().not_null())
                    .col(ColumnDef::new(WebhookDelivery::Event).string().not_null())
                    .col(ColumnDef::new(WebhookDelivery::Body).text().not_null())
                    .col(ColumnDef::new(WebhookDelivery::Status).string().not_null())
                    .col(ColumnDef::new(WebhookDelivery::Attempts).integer().not_null().default(0))
                    .col(ColumnDef::new(WebhookDelivery::NextAttemptAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(WebhookDelivery::LockedUntil).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(WebhookDelivery::LastStatusCode).integer().null())
                    .col(ColumnDef::new(WebhookDelivery::LastError).text().null())
                    .col(ColumnDef::new(WebhookDelivery::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(WebhookDelivery::FinishedAt).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookDelivery::Table, WebhookDelivery::WebhookId)
                            .to(Webhook::Table, Webhook::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE INDEX idx_webhook_delivery_due ON webhook_delivery (next_attempt_at) WHERE status = 'PENDING'",
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_delivery_webhook")
                    .table(WebhookDelivery::Table)
                    .col(WebhookDelivery::WebhookId)
                    .col(WebhookDelivery::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(WebhookDelivery::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Webhook::Table).to_owned()).await
    }
}
