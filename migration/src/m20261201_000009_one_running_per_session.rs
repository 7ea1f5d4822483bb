//! At most one RUNNING execution per session, kept by the database itself
//! (the session's claim keeps it too; this index is what holds if a bug or
//! a hand-made change does not), and a session's queue read in order.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Partial indexes: the same statement on SQLite and PostgreSQL.
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE UNIQUE INDEX idx_execution_one_running ON execution (session_id) WHERE status = 'RUNNING'",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX idx_execution_session_queue ON execution (session_id, id) WHERE status = 'PENDING'",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX idx_execution_session_queue").await?;
        db.execute_unprepared("DROP INDEX idx_execution_one_running").await?;
        Ok(())
    }
}
