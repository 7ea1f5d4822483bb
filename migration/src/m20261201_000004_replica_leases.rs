//! Replica leases: each server renews its own while it runs, so the others
//! can tell when it is gone and finish the runs it left.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Replica {
    Table,
    Id,
    StartedAt,
    RenewedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Replica::Table)
                    .col(ColumnDef::new(Replica::Id).string().not_null().primary_key())
                    .col(ColumnDef::new(Replica::StartedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Replica::RenewedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Replica::ExpiresAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Replica::Table).to_owned()).await
    }
}
