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
//! between two commits, which a busy writer seldom allows, so a log past
//! [`RESTART_FRAMES`] gets a few more passes at once (each has less left
//! to copy) until one catches up. Only when none does is it RESTARTed,
//! which holds the writer back until the copy is done: a log that never
//! started over would grow for as long as the load lasts (and with it the
//! cost of every read that looks pages up in it). The RESTART runs on the
//! checkpointer's own connection, outside the pool, which waits 50 ms for
//! readers and tries again at the next tick rather than the pool's 10 s.

use std::time::Duration;

use sea_orm::{
    sqlx::{self, sqlite::SqliteConnection, ConnectOptions as _, Connection as _, Row as _},
    ConnectionTrait, DatabaseBackend, DatabaseConnection,
};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How often the log is checkpointed.
pub const EVERY: Duration = Duration::from_millis(250);
/// A log this long (in pages, 16 MiB of 4 KiB pages) must start over.
pub const RESTART_FRAMES: i64 = 4096;
/// PASSIVE checkpoints a long log gets before it is RESTARTed.
const CATCH_UP_PASSES: usize = 4;
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
            true => checkpoint(conn, "TRUNCATE").await.map(|_| ()),
            false => keep_short(conn).await,
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

/// Checkpoints; a long log gets more passes, and a RESTART if none of
/// them catches up with it.
async fn keep_short(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let (mut log, mut copied) = checkpoint(conn, "PASSIVE").await?;
    for _ in 1..CATCH_UP_PASSES {
        if log < RESTART_FRAMES || copied >= log {
            return Ok(());
        }
        (log, copied) = checkpoint(conn, "PASSIVE").await?;
    }
    if log >= RESTART_FRAMES && copied < log {
        checkpoint(conn, "RESTART").await?;
    }
    Ok(())
}

/// Runs one checkpoint; returns the pages in the log and how many of them
/// are in the database file. A checkpoint that could not finish for
/// readers or the writer is not an error: the next tick tries again.
async fn checkpoint(conn: &mut SqliteConnection, mode: &str) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query(&format!("PRAGMA wal_checkpoint({mode})")).fetch_one(&mut *conn).await?;
    Ok((row.try_get::<i64, _>(1)?, row.try_get::<i64, _>(2)?))
}
