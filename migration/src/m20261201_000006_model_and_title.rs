//! The model a run used (from its `init` line) and a session's own title.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Execution {
    Table,
    Model,
}

#[derive(DeriveIden)]
enum Session {
    Table,
    Title,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Execution::Table)
                    .add_column(ColumnDef::new(Execution::Model).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Session::Table)
                    .add_column(ColumnDef::new(Session::Title).text().null())
                    .to_owned(),
            )
            .await?;
        // Sessions so far are titled by their first prompt, as new ones are
        // (its first 80 characters; `substr` is the same in both databases).
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE session SET title = (SELECT substr(e.prompt, 1, 80) FROM execution e \
                 WHERE e.session_id = session.id ORDER BY e.id LIMIT 1) WHERE title IS NULL",
            )
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Session::Table).drop_column(Session::Title).to_owned()).await?;
        manager.alter_table(Table::alter().table(Execution::Table).drop_column(Execution::Model).to_owned()).await
    }
}
