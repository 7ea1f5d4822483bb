//! The store: connecting, migrating, and repository functions over a
//! `DatabaseConnection`. Entities are plain data (`entity` crate); every
//! query the server makes lives here.

pub mod executions;
pub mod messages;
pub mod permissions;
pub mod sessions;
pub mod signals;
pub mod workspaces;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use thiserror::Error;

/// A failure of the store. Its text is for logs, never for clients.
#[derive(Debug, Error)]
pub enum DbError {
    #[error(transparent)]
    Db(#[from] DbErr),
}

pub type DbResult<T> = Result<T, DbError>;

/// Opens the database (SQLite in WAL mode, or PostgreSQL) and applies the
/// migrations.
pub async fn connect(url: &str) -> DbResult<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false).acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        // WAL lets readers (replays, queries) run beside the writer; NORMAL
        // sync is durable against a process crash, which is what "stored
        // before delivered" promises.
        options.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
        options.max_connections(8);
    } else {
        options.max_connections(16);
    }
    let db = Database::connect(options).await?;
    Migrator::up(&db, None).await?;
    Ok(db)
}
