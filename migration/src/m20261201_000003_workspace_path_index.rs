//! An index on workspace paths: registering a workspace looks up the
//! registered paths that contain it, equal it, or lie inside it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Workspace {
    Table,
    Path,
}

const INDEX: &str = "idx_workspace_path";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(Index::create().name(INDEX).table(Workspace::Table).col(Workspace::Path).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(INDEX).table(Workspace::Table).to_owned()).await
    }
}
