//! A git worktree per session: where it is, its branch and base, and
//! whether it was merged or discarded; and the workspace's default.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Session {
    Table,
    WorktreePath,
    WorktreeBranch,
    WorktreeBase,
    WorktreeState,
}

#[derive(DeriveIden)]
enum Workspace {
    Table,
    UseWorktrees,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Session::WorktreePath, Session::WorktreeBranch, Session::WorktreeBase, Session::WorktreeState] {
            manager
                .alter_table(
                    Table::alter().table(Session::Table).add_column(ColumnDef::new(column).string().null()).to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Workspace::Table)
                    .add_column(ColumnDef::new(Workspace::UseWorktrees).boolean().not_null().default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Workspace::Table).drop_column(Workspace::UseWorktrees).to_owned())
            .await?;
        for column in [Session::WorktreePath, Session::WorktreeBranch, Session::WorktreeBase, Session::WorktreeState] {
            manager.alter_table(Table::alter().table(Session::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
