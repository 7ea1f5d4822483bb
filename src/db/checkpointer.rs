//! Copies SQLite's write-ahead log back into the database file, on a task
//! of its own.
//!
//! SQLite otherwise does it inside whichever commit takes the log past
//! 1000 pages, and that commit is the store writer's, with the lines of
//! every run waiting behind it for the copy and its fsync: one run's
//! delivery stalled for milliseconds every few hundred commits. A PASSIVE
//! checkpoint here runs beside the writer instead (SQLite lets a writer
//! append to the log while another connection checkpoints it).
//!
//! The log starts over only once a checkpoint has caught up with it
//! between two commits, which a writer that never pauses does not allow:
//! past [`RESTART_FRAMES`] the checkpoint waits for the commit in progress
//! and restarts the log, which would otherwise grow without end (and with
//! it the cost of every read that looks pages up in it). A RESTART holds
//! the writer back while it waits for readers still on the log, so its
//! connection (its own, outside the pool) waits briefly and tries again
//! later rather than the pool's 10 s.

use std::time::Duration;

use sea_orm::{
    sqlx::{self, sqlite::SqliteConnection, ConnectOptions as _, Connection as _, Row as _},
    ConnectionTrait, DatabaseBackend, DatabaseConnection,
};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How often the log is checkpointed.
pub const EVERY: Duration = Duration::from_millis(250);
/// A log this long (in pages, 16 MiB of 4 KiB pages) is restarted.
pub const RESTART_FRAMES: i64 = 4096;
/// How long a RESTART waits for readers and the writer before it gives up
/// until the next tick.
const RESTART_PATIENCE: Duration = Duration::from_millis(50);

/// The running checkpointer of a SQLite database; stopped when dropped.
pub struct Checkpointer {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Checkpointer {
    /// Starts checkpointing `db` every `every`; None on PostgreSQL.
    pub fn start(db: &DatabaseConnection, every: Duration) -> Option<Checkpointer> {
        if db.get_database_backend() != DatabaseBackend::Sqlite {
            return None;
        }
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(db.clone(), every, stop.clone()));
        Some(Checkpointer { stop, task })
    }

    /// Stops, after a last checkpoint that empties the log (call it once
    /// nothing writes any more).
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run(db: DatabaseConnection, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connection: Option<SqliteConnection> = None;
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tick.tick() => false,
        };
        if connection.is_none() {
            let options = db.get_sqlite_connection_pool().connect_options().as_ref().clone();
            match options.busy_timeout(RESTART_PATIENCE).connect().await {
                Ok(opened) => connection = Some(opened),
                Err(e) => warn!(error = %e, "could not open a connection to checkpoint the database's log"),
            }
        }
        let Some(conn) = connection.as_mut() else {
            if stopping {
                return;
            }
            continue;
        };
        let result = match stopping {
            true => checkpoint(conn, "TRUNCATE").await,
            false => match checkpoint(conn, "PASSIVE").await {
                Ok(frames) if frames >= RESTART_FRAMES => checkpoint(conn, "RESTART").await,
                other => other,
            },
        };
        if let Err(e) = result {
            warn!(error = %e, "could not checkpoint the database's log");
            // Opened again at the next tick.
            connection = None;
        }
        if stopping {
            if let Some(conn) = connection.take() {
                let _ = conn.close().await;
            }
            return;
        }
    }
}

/// Runs one checkpoint; returns how many pages the log holds. A checkpoint
/// that could not finish for readers or the writer is not an error: the
/// next tick tries again.
async fn checkpoint(conn: &mut SqliteConnection, mode: &str) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(&format!("PRAGMA wal_checkpoint({mode})")).fetch_one(&mut *conn).await?;
    row.try_get::<i64, _>(1)
}
