//! Copies SQLite's write-ahead log back into the database file, on a task
//! of its own.
//!
//! SQLite otherwise does it inside whichever commit takes the log past
//! 1000 pages, and that commit is the store writer's, with the lines of
//! every run waiting behind it for the copy and its fsync: one run's
//! delivery stalled for milliseconds every few hundred commits. A PASSIVE
//! checkpoint here runs beside the writer instead (SQLite lets a writer
//! append to the log while another connection checkpoints it).

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How often the log is checkpointed.
pub const EVERY: Duration = Duration::from_millis(250);

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
        if let Err(e) = db.execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)").await {
            warn!(error = %e, "could not checkpoint the database's log");
        }
    }
}
