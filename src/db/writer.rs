//! One writer for the lines of every execution: it takes the batches that
//! are waiting and commits them together, in one transaction.
//!
//! Runs write at the same time; with a transaction each they would queue
//! for SQLite's one write lock (sleeping in its busy handler) and pay a
//! commit each. Together they pay one. Durability is unchanged: a batch's
//! caller hears back only once its commit is done, and publishes after.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    messages::{Batch, NewMessage},
    DbError, DbResult,
};

/// Batches queued for the writer before callers wait for room.
const QUEUE: usize = 1024;
/// Lines per group commit, at most (a batch is never split).
const MAX_ROWS: usize = 4000;

struct Job {
    batch: Batch,
    done: oneshot::Sender<DbResult<()>>,
}

/// A handle on the writer; cheap to clone. The writer's task ends when the
/// last handle is gone.
#[derive(Clone)]
pub struct StoreWriter(mpsc::Sender<Job>);

impl StoreWriter {
    pub fn new(db: sea_orm::DatabaseConnection) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, rx));
        StoreWriter(tx)
    }

    /// Stores one execution's lines; returns once they are committed.
    pub async fn store(
        &self,
        execution_id: Uuid,
        session_id: Uuid,
        messages: impl Into<Arc<[NewMessage]>>,
    ) -> DbResult<()> {
        let (done, answer) = oneshot::channel();
        let job = Job { batch: Batch { execution_id, session_id, messages: messages.into() }, done };
        self.0.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn gone() -> DbError {
    DbError::Db(sea_orm::DbErr::Custom("the store writer has stopped".into()))
}

async fn run(db: sea_orm::DatabaseConnection, mut rx: mpsc::Receiver<Job>) {
    let mut waiting: Vec<Job> = Vec::new();
    loop {
        // Wait for work, then take everything else that is queued too.
        if waiting.is_empty() && rx.recv_many(&mut waiting, QUEUE).await == 0 {
            return;
        }
        while let Ok(job) = rx.try_recv() {
            waiting.push(job);
        }
        let group = take_up_to(&mut waiting, MAX_ROWS);
        commit(&db, group).await;
    }
}

fn take_up_to(jobs: &mut Vec<Job>, max: usize) -> Vec<Job> {
    let mut total = 0;
    let mut count = 0;
    for job in jobs.iter() {
        if count > 0 && total + job.batch.messages.len() > max {
            break;
        }
        total += job.batch.messages.len();
        count += 1;
    }
    jobs.drain(..count).collect()
}

/// Commits the jobs together; if that fails and there were several, each
/// alone, so one bad batch does not fail the others.
async fn commit(db: &sea_orm::DatabaseConnection, jobs: Vec<Job>) {
    let batches: Vec<&Batch> = jobs.iter().map(|j| &j.batch).collect();
    match super::messages::store_batches(db, &batches).await {
        Ok(()) => {
            for job in jobs {
                let _ = job.done.send(Ok(()));
            }
        }
        Err(e) if jobs.len() == 1 => {
            let _ = jobs.into_iter().next().map(|job| job.done.send(Err(e)));
        }
        Err(_) => {
            for job in jobs {
                let result = super::messages::store_batches(db, &[&job.batch]).await;
                let _ = job.done.send(result);
            }
        }
    }
}
