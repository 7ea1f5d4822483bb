//! The store: connecting, migrating, and repository functions over a
//! `DatabaseConnection`. Entities are plain data (`entity` crate); every
//! query the server makes lives here.

pub mod attachments;
pub mod batch;
pub mod checkpointer;
pub mod clock;
pub mod executions;
pub mod holds;
pub mod idempotency;
pub mod messages;
pub mod permissions;
pub mod profiles;
pub mod queue;
pub mod removal;
pub mod replicas;
pub mod schedules;
pub mod sessions;
pub mod signals;
pub mod webhooks;
pub mod workspaces;
pub mod writer;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use thiserror::Error;

/// A failure of the store. Its text is for logs, never for clients.
#[derive(Debug, Error)]
pub enum DbError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error("the database file {path}: {source}")]
    File { path: String, source: std::io::Error },
}

pub type DbResult<T> = Result<T, DbError>;

/// The `n`th (from 1) bound parameter of a hand-written statement, as the
/// backend spells it; written straight into the statement's text (the
/// message insert writes nine a line).
pub fn placeholder(backend: sea_orm::DatabaseBackend, n: usize) -> impl std::fmt::Display {
    struct Placeholder(sea_orm::DatabaseBackend, usize);
    impl std::fmt::Display for Placeholder {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self.0 {
                sea_orm::DatabaseBackend::Postgres => write!(f, "${}", self.1),
                _ => f.write_str("?"),
            }
        }
    }
    Placeholder(backend, n)
}

/// Serialises the transactions that take the same `key` (a check and the
/// insert it guards), so that racing ones cannot both pass the check. On
/// PostgreSQL an advisory lock held until `txn` ends (across replicas). On
/// SQLite the database's one write lock, taken now, before the first read:
/// a transaction that read first and wrote later could find its snapshot
/// stale and fail ("database is locked") instead of waiting its turn.
pub async fn lock_for(txn: &impl sea_orm::ConnectionTrait, key: &str) -> DbResult<()> {
    let backend = txn.get_database_backend();
    let statement = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            sea_orm::Statement::from_sql_and_values(backend, "SELECT pg_advisory_xact_lock(hashtext($1))", [key.into()])
        }
        // A write that changes nothing still takes the write lock.
        _ => sea_orm::Statement::from_string(backend, "UPDATE workspace SET owner = owner WHERE 0"),
    };
    txn.execute(statement).await?;
    Ok(())
}

/// Connections in the pool.
const SQLITE_POOL: u32 = 8;
const POSTGRES_POOL: u32 = 16;

/// How many connections `db`'s pool holds.
pub fn pool_size(db: &DatabaseConnection) -> usize {
    match sea_orm::ConnectionTrait::get_database_backend(db) {
        sea_orm::DatabaseBackend::Postgres => POSTGRES_POOL as usize,
        _ => SQLITE_POOL as usize,
    }
}

/// Opens the database (SQLite in WAL mode, or PostgreSQL) and applies the
/// migrations.
pub async fn connect(url: &str) -> DbResult<DatabaseConnection> {
    let db = if url.starts_with("sqlite:") {
        private_sqlite_file(url)?;
        connect_sqlite(url).await?
    } else {
        let mut options = ConnectOptions::new(url.to_owned());
        options.sqlx_logging(false).acquire_timeout(Duration::from_secs(10)).max_connections(POSTGRES_POOL);
        Database::connect(options).await?
    };
    Migrator::up(&db, None).await?;
    Ok(db)
}

/// The SQLite pool. WAL lets readers (replays, queries) run beside the
/// writer; NORMAL sync is durable against a process crash, which is what
/// "stored before delivered" promises. The log is checkpointed by
/// [`checkpointer::run`], not by the commits.
///
/// A connection whose transaction could not be ended (a COMMIT or ROLLBACK
/// that failed, e.g. on a full disk) is closed instead of going back to
/// the pool: reused, its next "transaction" would only be a savepoint
/// inside one that never commits, so writes would look stored without
/// being durable, and it would hold the write lock for good.
async fn connect_sqlite(url: &str) -> DbResult<DatabaseConnection> {
    use std::str::FromStr;

    use sea_orm::sqlx::{
        sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
        ConnectOptions as _, TransactionManager,
    };
    let sqlx_error = |e: sea_orm::sqlx::Error| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e));
    let options = SqliteConnectOptions::from_str(url)
        .map_err(sqlx_error)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        // The server's checkpointer does it, off the writer's path.
        .pragma("wal_autocheckpoint", "0")
        .disable_statement_logging();
    let pool = SqlitePoolOptions::new()
        .max_connections(SQLITE_POOL)
        .acquire_timeout(Duration::from_secs(10))
        .after_release(|conn, _| {
            Box::pin(async move {
                use sea_orm::sqlx::Executor as _;
                let depth = |conn: &sea_orm::sqlx::SqliteConnection| {
                    <sea_orm::sqlx::Sqlite as sea_orm::sqlx::Database>::TransactionManager::get_transaction_depth(conn)
                };
                if depth(conn) != 0 {
                    // A dropped transaction's ROLLBACK is still queued on the
                    // connection: let it run, then look again.
                    let _ = conn.execute("SELECT 1").await;
                }
                let depth = depth(conn);
                if depth != 0 {
                    tracing::warn!(depth, "closing a database connection left inside a transaction");
                }
                Ok(depth == 0)
            })
        })
        .connect_with(options)
        .await
        .map_err(sqlx_error)?;
    Ok(DatabaseConnection::from(pool))
}

/// Creates the SQLite file readable by this user alone (SQLite gives its
/// `-wal` and `-shm` files the same mode), and takes group and other
/// access away from one that exists: it holds every prompt and answer.
fn private_sqlite_file(url: &str) -> DbResult<()> {
    use std::{
        fs::OpenOptions,
        os::unix::fs::{OpenOptionsExt, PermissionsExt},
        str::FromStr,
    };
    let Ok(options) = sea_orm::sqlx::sqlite::SqliteConnectOptions::from_str(url) else { return Ok(()) };
    let path = options.get_filename();
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || url.contains("mode=memory") {
        return Ok(());
    }
    let fail = |source| DbError::File { path: path.display().to_string(), source };
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            for file in [path.to_path_buf(), wal_sibling(path, "-wal"), wal_sibling(path, "-shm")] {
                if let Ok(meta) = std::fs::metadata(&file) {
                    let mode = meta.permissions().mode();
                    if mode & 0o077 != 0 {
                        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o700)).map_err(fail)?;
                    }
                }
            }
            Ok(())
        }
        // A read-only URL or a directory we cannot write: SQLite says why.
        Err(_) => Ok(()),
    }
}

/// `file.db` -> `file.db-wal`.
fn wal_sibling(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}
