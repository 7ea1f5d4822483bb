//! The event pipeline: the recorder numbers and stores what `claude` writes
//! and then publishes it; the broker fans it out per execution; a
//! subscription replays from the store and then follows live.

pub mod broker;
pub mod dashboard;
pub mod reads;
pub mod recorder;
pub mod replicas;
pub mod subscription;

use std::sync::Arc;

use uuid::Uuid;

pub use broker::{Broker, Publisher};

/// Whether the store takes what runs write: set when a batch of messages
/// could not be stored, cleared when one is (or when a readiness probe
/// finds it writable again a while later). `/readyz` reports it.
#[derive(Clone, Default)]
pub struct StoreHealth(Arc<std::sync::Mutex<Option<std::time::Instant>>>);

impl StoreHealth {
    pub fn failed(&self) {
        self.lock().get_or_insert_with(std::time::Instant::now);
    }

    pub fn succeeded(&self) {
        *self.lock() = None;
    }

    /// How long the store has been failing, if it is.
    pub fn failing_for(&self) -> Option<std::time::Duration> {
        self.lock().map(|since| since.elapsed())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<std::time::Instant>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A run's error, as `Execution.error` and `StatusEvent.error` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunError {
    pub code: String,
    pub message: String,
}

/// The texts an event was already rendered to, by rendering key (a hash of
/// the subscription document; see `http::ws`). Many subscribers of one
/// execution share the same `Arc<Event>`, so the first one to render it for
/// a document does the work and the rest reuse the text.
#[derive(Default)]
pub struct Renders(std::sync::Mutex<Vec<(u64, Arc<str>)>>);

impl Renders {
    pub fn get(&self, key: u64) -> Option<Arc<str>> {
        let renders = self.0.lock().unwrap_or_else(|e| e.into_inner());
        renders.iter().find(|(k, _)| *k == key).map(|(_, text)| text.clone())
    }

    pub fn put(&self, key: u64, text: Arc<str>) {
        let mut renders = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !renders.iter().any(|(k, _)| *k == key) {
            renders.push((key, text));
        }
    }
}

impl Clone for Renders {
    /// A copy starts with nothing rendered.
    fn clone(&self) -> Self {
        Renders::default()
    }
}

impl std::fmt::Debug for Renders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Renders")
    }
}

/// One message `claude` wrote. Stored ones have a `seq`; partial-token
/// events (live only) do not.
#[derive(Debug, Clone)]
pub struct MessageEvent {
    pub execution_id: Uuid,
    pub seq: Option<i64>,
    pub type_name: crate::claude::stream::Name,
    pub subtype: Option<crate::claude::stream::Name>,
    /// The line exactly as written (JSON text).
    pub payload: Arc<str>,
    pub renders: Renders,
}

/// Counters of a running execution.
#[derive(Debug, Clone)]
pub struct ProgressEvent {
    pub execution_id: Uuid,
    /// A rough 0..1 estimate; see `Execution.progress`.
    pub progress: f64,
    pub message_count: i64,
    pub num_turns: i32,
    pub cost_usd: Option<f64>,
    pub elapsed_ms: i64,
    /// Since when the run has written nothing, if it is stalled.
    pub stalled_since: Option<chrono::DateTime<chrono::Utc>>,
    pub renders: Renders,
}

/// A status change; a terminal one is the last event of an execution.
#[derive(Debug, Clone)]
pub struct StatusEvent {
    pub execution_id: Uuid,
    pub status: crate::db::executions::Status,
    pub error: Option<RunError>,
    /// How many messages the run had stored when its status changed: a
    /// subscriber that has more already is past this event.
    pub after_seq: i64,
    pub renders: Renders,
}

impl StatusEvent {
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }
}

/// A tool-permission request was made or settled.
#[derive(Debug, Clone)]
pub struct PermissionEvent {
    pub execution_id: Uuid,
    pub request: Box<entity::permission_request::Model>,
    pub renders: Renders,
}

/// What subscribers receive.
#[derive(Debug, Clone)]
pub enum Event {
    Message(MessageEvent),
    Progress(ProgressEvent),
    Status(StatusEvent),
    Permission(PermissionEvent),
}

impl Event {
    /// Where this event's rendered texts are kept.
    pub fn renders(&self) -> &Renders {
        match self {
            Event::Message(m) => &m.renders,
            Event::Progress(p) => &p.renders,
            Event::Status(s) => &s.renders,
            Event::Permission(p) => &p.renders,
        }
    }
}

impl MessageEvent {
    pub fn from_stored(m: &crate::db::messages::StoredMessage) -> Self {
        MessageEvent {
            execution_id: m.execution_id,
            seq: Some(m.seq),
            type_name: m.type_name.clone(),
            subtype: m.subtype.clone(),
            payload: m.payload.clone(),
            renders: Renders::default(),
        }
    }
}

/// A rough 0..1 estimate of how far a run is: 0 while pending, 1 once
/// finished; in between, turns over `maxTurns` when that is set, otherwise
/// a figure that grows with each turn and never reaches 1.
pub fn progress(status: crate::db::executions::Status, num_turns: i32, max_turns: Option<i32>) -> f64 {
    use crate::db::executions::Status;
    match status {
        Status::Pending => 0.0,
        Status::Running => {
            let turns = f64::from(num_turns.max(0));
            match max_turns {
                Some(max) if max > 0 => (turns / f64::from(max)).min(0.99),
                _ => turns / (turns + 3.0),
            }
        }
        _ => 1.0,
    }
}
