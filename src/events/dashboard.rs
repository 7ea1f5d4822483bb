//! `dashboardEvents`: the state changes of all of an owner's executions,
//! from a cursor, with nothing missed across reconnects; and their progress,
//! live.
//!
//! Every change a dashboard shows is stamped with the owner's next change
//! number (`db::clock`), so "what changed after N" is exact: the stream
//! reads the store after the cursor, then waits for a sign of a change (a
//! status or permission event here, a signal from another replica) or for
//! its poll, and reads again. An update carries the execution as it is now,
//! so a client only keeps the latest per execution. Progress events are
//! live only, from runs on this server.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use async_stream::stream;
use futures_util::Stream;
use sea_orm::DatabaseConnection;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::{reads::StoreReader, Broker, Event};
use crate::db;

/// Executions read per store query.
const PAGE: u64 = 200;
/// How often the store is read when no sign of a change comes.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// The least time between two reads: signs of change come in bursts.
const READ_AT_MOST_EVERY: Duration = Duration::from_millis(50);

/// What a dashboard receives.
pub enum DashboardItem {
    /// An execution was created or changed; `cursor` resumes after it.
    Update { cursor: i64, execution: Box<entity::execution::Model>, waiting: Vec<entity::permission_request::Model> },
    /// A live progress event of one of the executions shown.
    Progress(Arc<Event>),
}

/// Where a dashboard starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// With every pending or running execution, then changes.
    Now,
    /// With every change after this cursor.
    After(i64),
}

/// The dashboard stream of `owner`'s executions (in one workspace, if
/// given). The caller has checked access to the workspace.
pub fn dashboard_events(
    db: DatabaseConnection,
    broker: Broker,
    reader: StoreReader,
    owner: String,
    workspace: Option<Uuid>,
    start: Start,
) -> impl Stream<Item = DashboardItem> + Send + 'static {
    stream! {
        // Join before reading, so no sign of a change falls in between.
        let mut activity = broker.activity();
        let mut wakeups = broker.wakeups().listen();
        let mut shown: HashSet<Uuid> = HashSet::new();
        let mut cursor = match start {
            Start::After(cursor) => cursor,
            Start::Now => {
                let read = {
                    let (db, owner) = (db.clone(), owner.clone());
                    reader.run(move || async move {
                        let clock = db::clock::now(&db, &owner).await?;
                        let active = db::clock::active(&db, &owner, workspace).await?;
                        Ok::<_, db::DbError>((clock, with_waiting(&db, active).await?))
                    }).await
                };
                let Some(Ok((clock, active))) = read else { return };
                for (execution, waiting) in active {
                    shown.insert(execution.id);
                    let cursor = execution.change_seq.unwrap_or(0).min(clock);
                    yield DashboardItem::Update { cursor, execution: Box::new(execution), waiting };
                }
                clock
            }
        };
        loop {
            // Everything after the cursor, in order.
            loop {
                let read = {
                    let (db, owner) = (db.clone(), owner.clone());
                    reader.run(move || async move {
                        let changed = db::clock::changed_after(&db, &owner, workspace, cursor, PAGE).await?;
                        with_waiting(&db, changed).await
                    }).await
                };
                // A failed read is tried again at the next poll.
                let changed = match read { Some(Ok(changed)) => changed, _ => Vec::new() };
                let more = changed.len() as u64 == PAGE;
                for (execution, waiting) in changed {
                    cursor = execution.change_seq.unwrap_or(cursor);
                    if execution.status.is_terminal() {
                        shown.remove(&execution.id);
                    } else {
                        shown.insert(execution.id);
                    }
                    yield DashboardItem::Update { cursor, execution: Box::new(execution), waiting };
                }
                if !more {
                    break;
                }
            }
            tokio::time::sleep(READ_AT_MOST_EVERY).await;
            // Pass on progress until a change is signalled or the poll is due.
            let poll = tokio::time::sleep(POLL_EVERY);
            tokio::pin!(poll);
            loop {
                let woke = tokio::select! {
                    _ = &mut poll => Wake::Read,
                    event = activity.recv() => match event {
                        Ok(event) => match &*event {
                            Event::Progress(p) if shown.contains(&p.execution_id) => Wake::Progress(event.clone()),
                            Event::Status(_) | Event::Permission(_) => Wake::Read,
                            _ => Wake::Nothing,
                        },
                        Err(RecvError::Lagged(_)) => Wake::Read,
                        Err(RecvError::Closed) => Wake::Nothing,
                    },
                    signal = wakeups.recv() => match signal {
                        Err(RecvError::Closed) => Wake::Nothing,
                        _ => Wake::Read,
                    },
                };
                match woke {
                    Wake::Read => break,
                    Wake::Progress(event) => yield DashboardItem::Progress(event),
                    Wake::Nothing => {}
                }
            }
        }
    }
}

enum Wake {
    Read,
    Progress(Arc<Event>),
    Nothing,
}

/// Each execution with its permission requests that wait for an answer
/// (one query for all of them).
async fn with_waiting(
    db: &DatabaseConnection,
    executions: Vec<entity::execution::Model>,
) -> Result<Vec<(entity::execution::Model, Vec<entity::permission_request::Model>)>, db::DbError> {
    let active: Vec<Uuid> = executions.iter().filter(|e| !e.status.is_terminal()).map(|e| e.id).collect();
    let mut waiting: HashMap<Uuid, Vec<_>> = HashMap::new();
    for request in db::permissions::pending_of(db, &active).await? {
        waiting.entry(request.execution_id).or_default().push(request);
    }
    Ok(executions
        .into_iter()
        .map(|execution| {
            let mine = waiting.remove(&execution.id).unwrap_or_default();
            (execution, mine)
        })
        .collect())
}
