//! `executionEvents`: replay from the store, then follow live.
//!
//! Exactly once and in order, wherever the subscriber comes in: it joins the
//! live channel first, then replays the store, and drops live messages it
//! already has by `seq`. A gap (it lagged behind the channel) is filled from
//! the store. The terminal status is the last event.

use std::{sync::Arc, time::Duration};

use async_stream::stream;
use futures_util::Stream;
use sea_orm::DatabaseConnection;
use tokio::sync::broadcast::error::RecvError;
use tracing::warn;
use uuid::Uuid;

use super::{
    reads::StoreReader, replicas::Wakeups, Broker, Event, MessageEvent, PermissionEvent, ProgressEvent, RunError,
    StatusEvent,
};
use crate::{
    db,
    telemetry::metrics::{self as m, GaugeGuard},
};

/// Rows read from the store per replay query.
const REPLAY_PAGE: u64 = 1000;
/// How often an execution that is not live here is looked at in the store
/// when no signal comes (signals need PostgreSQL).
const POLL_EVERY: Duration = Duration::from_millis(500);

/// The event stream of one execution, starting after `after_seq`. Ends
/// after the terminal StatusEvent. The caller has checked access.
pub fn execution_events(
    db: DatabaseConnection,
    broker: Broker,
    reader: StoreReader,
    execution_id: Uuid,
    after_seq: i64,
) -> impl Stream<Item = Arc<Event>> + Send + 'static {
    stream! {
        let _live = GaugeGuard::new(m::SUBSCRIPTIONS_LIVE);
        // Join before reading the store, so nothing falls in between.
        let mut live = broker.subscribe(execution_id);
        let mut wakeups = broker.wakeups().listen();
        let mut last = after_seq;
        // Set once the run is known to be over: catch up, send it, end.
        let mut finished: Option<Arc<Event>> = None;
        let mut told_pending = false;
        // The status event given on joining a channel (not to repeat it).
        let mut told: Option<Arc<Event>> = None;
        // The run's final progress, once given (not to repeat it).
        let mut told_progress: Option<Arc<Event>> = None;
        loop {
            // Catch up: from the recent history while the run is live here
            // (what is not there yet is not published yet: it comes live),
            // else from the store.
            let mut from_memory = false;
            while let Some(recent) = broker.recent(execution_id, last, REPLAY_PAGE as usize) {
                from_memory = true;
                let more = recent.len() == REPLAY_PAGE as usize;
                for (seq, event) in recent {
                    last = seq;
                    yield event;
                }
                if !more {
                    break;
                }
            }
            if !from_memory {
                loop {
                    let page = stored_after(&reader, &db, execution_id, last).await;
                    let more = page.len() as u64 == REPLAY_PAGE;
                    for (seq, event) in page {
                        last = seq;
                        yield event;
                    }
                    if !more {
                        break;
                    }
                }
            }
            if let Some(status) = finished.take() {
                yield status;
                return;
            }
            if !told_pending {
                // Permission requests are announced live; one made before
                // this subscriber came is still waiting for an answer.
                told_pending = true;
                let pending = {
                    let db = db.clone();
                    reader.run(move || async move { db::permissions::of_execution(&db, execution_id, true).await }).await
                };
                for request in pending.and_then(Result::ok).unwrap_or_default() {
                    yield Arc::new(Event::Permission(PermissionEvent { execution_id, request: Box::new(request), renders: Default::default() }));
                }
            }
            // Messages are stored before the status turns terminal, so one
            // more catch-up after seeing it finds everything. (A run live
            // here sends its terminal status on the channel.)
            let live_here = from_memory && live.is_some();
            let ended = if live_here { None } else { final_events(&reader, &db, execution_id).await };
            if let Some((progress, status)) = ended {
                // Live-only progress was missed: the final figures, then
                // (unless the channel gave these before it closed).
                let given = told_progress
                    .as_ref()
                    .is_some_and(|t| matches!(&**t, Event::Progress(p) if p.message_count == progress.message_count));
                if !given {
                    yield Arc::new(Event::Progress(progress));
                }
                finished = Some(Arc::new(Event::Status(status)));
                continue;
            }
            if live.is_some() {
                // Joined between the run's final progress and its terminal
                // status (being stored): the progress went out before. It
                // is given once the messages it counts are; if some are
                // not, they and it came after joining, and are on the
                // channel in order.
                if let Some(progress) = broker.final_progress(execution_id) {
                    let given = told_progress.as_ref().is_some_and(|t| Arc::ptr_eq(t, &progress));
                    if !given && matches!(&*progress, Event::Progress(p) if p.message_count <= last) {
                        told_progress = Some(progress.clone());
                        yield progress;
                    }
                }
            }
            let Some(rx) = live.as_mut() else {
                // Not live on this server: read the store again when the
                // replica running it signals, or after a while.
                Wakeups::wait(&mut wakeups, execution_id, POLL_EVERY).await;
                live = broker.subscribe(execution_id);
                // It went live here (taken from its queue, or resumed after
                // it was parked): its status, which may have been sent
                // before this subscriber joined.
                if live.is_some() {
                    if let Some(status) = broker.current_status(execution_id) {
                        if matches!(&*status, Event::Status(s) if !s.is_terminal() && s.after_seq >= last) {
                            told = Some(status.clone());
                            yield status;
                        }
                    }
                }
                continue;
            };
            // Follow live until the run ends, or this subscriber lags (the
            // store then has what it missed: events are published only
            // after they are stored).
            loop {
                match rx.recv().await {
                    Ok(event) => match &*event {
                        Event::Message(m) => match m.seq {
                            Some(seq) if seq <= last => {}
                            Some(seq) if seq == last + 1 => {
                                last = seq;
                                yield event;
                            }
                            Some(_) => break,
                            None => yield event,
                        },
                        // The same Arc as every other subscriber's, so its
                        // rendered text is shared too.
                        Event::Status(s) if s.is_terminal() => {
                            finished = Some(event.clone());
                            break;
                        }
                        // Older than what the store already gave this
                        // subscriber: a RUNNING that preceded the messages
                        // it has, or counters that would go backwards.
                        Event::Status(s) if s.after_seq < last => {}
                        // Already told on joining.
                        Event::Status(_) if told.as_ref().is_some_and(|t| Arc::ptr_eq(t, &event)) => {}
                        Event::Progress(p) if p.message_count < last => {}
                        Event::Progress(_) if told_progress.as_ref().is_some_and(|t| Arc::ptr_eq(t, &event)) => {}
                        Event::Progress(p) if p.progress >= 1.0 => {
                            told_progress = Some(event.clone());
                            yield event;
                        }
                        _ => yield event,
                    },
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => {
                        live = None;
                        break;
                    }
                }
            }
        }
    }
}

/// One page of what is stored after `last`, with each event's seq. A
/// failed read is retried (with backoff) rather than taken for "nothing
/// more": a subscriber must never be told a run ended before it has every
/// message.
async fn stored_after(
    reader: &StoreReader,
    db: &DatabaseConnection,
    execution_id: Uuid,
    last: i64,
) -> Vec<(i64, Arc<Event>)> {
    let mut delay = Duration::from_millis(50);
    loop {
        let db = db.clone();
        let read =
            reader.run(move || async move { db::messages::after(&db, execution_id, last, REPLAY_PAGE).await }).await;
        match read {
            Some(Ok(page)) => {
                return page.iter().map(|m| (m.seq, Arc::new(Event::Message(MessageEvent::from_stored(m))))).collect()
            }
            failed => {
                let error = failed.map_or_else(|| "the read panicked".to_owned(), |r| format!("{:?}", r.err()));
                warn!(%error, %execution_id, "replay from the store failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The final progress and status, if the execution has finished.
async fn final_events(
    reader: &StoreReader,
    db: &DatabaseConnection,
    execution_id: Uuid,
) -> Option<(ProgressEvent, StatusEvent)> {
    let db = db.clone();
    let execution =
        reader.run(move || async move { db::executions::find(&db, execution_id).await }).await?.ok().flatten()?;
    let status = terminal_status_of(&execution)?;
    let elapsed = match (execution.started_at, execution.finished_at) {
        (Some(start), Some(end)) => (end - start).num_milliseconds(),
        _ => 0,
    };
    let progress = ProgressEvent {
        stalled_since: None,
        execution_id,
        progress: 1.0,
        message_count: execution.message_count,
        num_turns: execution.num_turns.unwrap_or(0),
        cost_usd: execution.cost_usd,
        elapsed_ms: elapsed,
        renders: Default::default(),
    };
    Some((progress, status))
}

/// The final status, if the execution has finished.
pub async fn terminal_status(db: &DatabaseConnection, execution_id: Uuid) -> Option<StatusEvent> {
    terminal_status_of(&db::executions::find(db, execution_id).await.ok().flatten()?)
}

fn terminal_status_of(execution: &entity::execution::Model) -> Option<StatusEvent> {
    execution.status.is_terminal().then(|| StatusEvent {
        execution_id: execution.id,
        error: execution
            .error_code
            .clone()
            .map(|code| RunError { code, message: execution.error_message.clone().unwrap_or_default() }),
        status: execution.status,
        after_seq: execution.message_count,
        renders: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::db::executions::Status;

    fn message(execution_id: Uuid, seq: i64) -> Event {
        Event::Message(MessageEvent {
            execution_id,
            seq: Some(seq),
            type_name: "assistant".into(),
            subtype: None,
            payload: r#"{"type":"assistant"}"#.into(),
            renders: Default::default(),
        })
    }

    fn final_progress(execution_id: Uuid, message_count: i64) -> Event {
        Event::Progress(ProgressEvent {
            execution_id,
            progress: 1.0,
            message_count,
            num_turns: 1,
            cost_usd: None,
            elapsed_ms: 5,
            stalled_since: None,
            renders: Default::default(),
        })
    }

    fn completed(execution_id: Uuid, after_seq: i64) -> Event {
        Event::Status(StatusEvent {
            execution_id,
            status: Status::Completed,
            error: None,
            after_seq,
            renders: Default::default(),
        })
    }

    /// What a subscriber of execution `ID` from the start gets, in order, as `seq`s and
    /// "progress"/"status", when `before` is published before it joins
    /// and `after` after its first event (the stream ends after the
    /// terminal status).
    async fn seen(before: &[Event], after: &[Event]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let db = db::connect(&format!("sqlite://{}/events.db?mode=rwc", dir.path().display())).await.unwrap();
        let broker = Broker::new(4, 2);
        let publisher = broker.open(ID);
        for event in before {
            publisher.publish(event.clone());
        }
        let events = execution_events(db, broker.clone(), broker.reader("someone"), ID, 0);
        tokio::pin!(events);
        let mut seen = Vec::new();
        while let Some(event) = tokio::time::timeout(Duration::from_secs(5), events.next()).await.expect("an event") {
            seen.push(match &*event {
                Event::Message(m) => m.seq.unwrap().to_string(),
                Event::Progress(_) => "progress".into(),
                Event::Status(_) => "status".into(),
                Event::Permission(_) => "permission".into(),
            });
            if seen.len() == 1 {
                for event in after {
                    publisher.publish(event.clone());
                }
            }
        }
        seen
    }

    const ID: Uuid = Uuid::nil();

    #[tokio::test]
    async fn a_subscriber_that_joins_as_the_run_ends_gets_its_final_progress() {
        // The terminal status is still being stored when this one joins.
        let seen = seen(&[message(ID, 1), final_progress(ID, 1)], &[completed(ID, 1)]).await;
        assert_eq!(seen, ["1", "progress", "status"]);
    }

    #[tokio::test]
    async fn the_final_progress_comes_after_the_messages_it_counts() {
        let seen = seen(&[message(ID, 1)], &[message(ID, 2), final_progress(ID, 2), completed(ID, 2)]).await;
        assert_eq!(seen, ["1", "2", "progress", "status"]);
    }
}
