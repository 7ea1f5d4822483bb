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
//! it the cost of every read that looks pages up in it).

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How often the log is checkpointed.
pub const EVERY: Duration = Duration::from_millis(250);
/// A log this long (in pages, 16 MiB of 4 KiB pages) is restarted.
pub const RESTART_FRAMES: i64 = 4096;

/// Checkpoints every `every` until `stop`; returns at once on PostgreSQL.
pub async fn run(db: DatabaseConnection, every: Duration, stop: CancellationToken) {
    if db.get_database_backend() != DatabaseBackend::Sqlite {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match checkpoint(&db, "PASSIVE").await {
            Ok(frames) if frames >= RESTART_FRAMES => {
                if let Err(e) = checkpoint(&db, "RESTART").await {
                    warn!(error = %e, "could not restart the database's log");
                }
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "could not checkpoint the database's log"),
        }
    }
}

/// Runs one checkpoint; returns how many pages the log holds.
async fn checkpoint(db: &DatabaseConnection, mode: &str) -> Result<i64, sea_orm::DbErr> {
    let sql = format!("PRAGMA wal_checkpoint({mode})");
    let row = db.query_one(Statement::from_string(DatabaseBackend::Sqlite, sql)).await?;
    Ok(row.and_then(|row| row.try_get_by_index::<i64>(1).ok()).unwrap_or(0))
}
