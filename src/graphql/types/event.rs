//! What `executionEvents` delivers, and `LogEntry` for `sessionLogs`.

use std::sync::Arc;

use async_graphql::{Object, Union, ID};
use chrono::{DateTime, Utc};

use super::message::{claude_message, ClaudeMessage};
use super::{ExecutionStatus, PermissionRequest, RawJson, RunErrorInfo};
use crate::events::{self, Event};

/// One event of an execution's stream.
#[derive(Union)]
pub enum ExecutionEvent {
    Message(MessageEvent),
    Progress(ProgressEvent),
    Status(StatusEvent),
    PermissionRequest(PermissionRequestEvent),
}

impl From<Arc<Event>> for ExecutionEvent {
    fn from(event: Arc<Event>) -> Self {
        match &*event {
            Event::Message(_) => ExecutionEvent::Message(MessageEvent(event)),
            Event::Progress(_) => ExecutionEvent::Progress(ProgressEvent(event)),
            Event::Status(_) => ExecutionEvent::Status(StatusEvent(event)),
            Event::Permission(_) => ExecutionEvent::PermissionRequest(PermissionRequestEvent(event)),
        }
    }
}

pub struct MessageEvent(Arc<Event>);

impl MessageEvent {
    fn inner(&self) -> &events::MessageEvent {
        match &*self.0 {
            Event::Message(m) => m,
            _ => unreachable!("built from a message event"),
        }
    }
}

/// A line `claude` wrote. Stored lines have `seq` 1, 2, 3, ... with no
/// gaps; partial-token events (`includePartialMessages`) are live only and
/// have no `seq`.
#[Object]
impl MessageEvent {
    async fn seq(&self) -> Option<i64> {
        self.inner().seq
    }

    async fn execution_id(&self) -> ID {
        ID(self.inner().execution_id.to_string())
    }

    /// The line's `type`: system, assistant, user, result, stream_event,
    /// control_response, ... (or `stderr` for a line of the child's stderr,
    /// `invalid_json` for a stdout line that is not JSON).
    #[graphql(name = "type")]
    async fn type_name(&self) -> &str {
        &self.inner().type_name
    }

    async fn subtype(&self) -> Option<&str> {
        self.inner().subtype.as_deref()
    }

    /// The line exactly as `claude` wrote it.
    async fn message(&self) -> RawJson {
        RawJson(self.inner().payload.clone())
    }

    /// The line, typed: what a client renders. (It costs what reading the
    /// line costs: typing it reads nothing more.)
    #[graphql(complexity = 2)]
    async fn claude_message(&self) -> ClaudeMessage {
        let inner = self.inner();
        claude_message(&inner.type_name, &inner.payload)
    }
}

pub struct ProgressEvent(pub(crate) Arc<Event>);

impl ProgressEvent {
    fn inner(&self) -> &events::ProgressEvent {
        match &*self.0 {
            Event::Progress(p) => p,
            _ => unreachable!("built from a progress event"),
        }
    }
}

/// Counters of a running execution, sent a few times a second while it
/// produces output, and once more at the end.
#[Object]
impl ProgressEvent {
    async fn execution_id(&self) -> ID {
        ID(self.inner().execution_id.to_string())
    }

    /// A rough 0..1 estimate; see `Execution.progress`.
    async fn progress(&self) -> f64 {
        self.inner().progress
    }

    async fn message_count(&self) -> i64 {
        self.inner().message_count
    }

    async fn num_turns(&self) -> i32 {
        self.inner().num_turns
    }

    /// Known once a `result` line has come.
    async fn cost_usd(&self) -> Option<f64> {
        self.inner().cost_usd
    }

    async fn elapsed_ms(&self) -> i64 {
        self.inner().elapsed_ms
    }

    /// Since when the run has written nothing, when it has been quiet for
    /// longer than the server's stall threshold (`--stall-after`: a stopped
    /// process, a hung tool); null while it writes. A progress event comes
    /// when it stalls and when it resumes.
    async fn stalled_since(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.inner().stalled_since
    }
}

pub struct StatusEvent(Arc<Event>);

impl StatusEvent {
    fn inner(&self) -> &events::StatusEvent {
        match &*self.0 {
            Event::Status(s) => s,
            _ => unreachable!("built from a status event"),
        }
    }
}

/// A status change. A terminal one (COMPLETED, FAILED, CANCELLED) is the
/// last event; the subscription completes after it.
#[Object]
impl StatusEvent {
    async fn execution_id(&self) -> ID {
        ID(self.inner().execution_id.to_string())
    }

    async fn status(&self) -> ExecutionStatus {
        self.inner().status.into()
    }

    async fn error(&self) -> Option<RunErrorInfo> {
        self.inner().error.clone().map(Into::into)
    }
}

pub struct PermissionRequestEvent(Arc<Event>);

/// A permission request was made, answered, expired or cancelled (live;
/// one still waiting is announced again to a new subscriber).
#[Object]
impl PermissionRequestEvent {
    async fn execution_id(&self) -> ID {
        match &*self.0 {
            Event::Permission(p) => ID(p.execution_id.to_string()),
            _ => unreachable!("built from a permission event"),
        }
    }

    async fn request(&self) -> PermissionRequest {
        match &*self.0 {
            Event::Permission(p) => PermissionRequest((*p.request).clone()),
            _ => unreachable!("built from a permission event"),
        }
    }
}

pub struct LogEntry(pub crate::db::messages::StoredMessage);

/// A stored line of a session, as `sessionLogs` reads it.
#[Object]
impl LogEntry {
    /// Position in the session: 1, 2, 3, ... across its executions, with no
    /// gaps; pass the last one seen as `afterSeq` for the next page.
    async fn seq(&self) -> i64 {
        self.0.session_seq
    }

    /// Position within its execution (the `seq` of its MessageEvent).
    async fn execution_seq(&self) -> i64 {
        self.0.seq
    }

    async fn execution_id(&self) -> ID {
        ID(self.0.execution_id.to_string())
    }

    #[graphql(name = "type")]
    async fn type_name(&self) -> &str {
        &self.0.type_name
    }

    async fn subtype(&self) -> Option<&str> {
        self.0.subtype.as_deref()
    }

    /// The line's own `uuid`, when it has one.
    async fn uuid(&self) -> Option<&str> {
        self.0.uuid.as_deref()
    }

    /// The line exactly as `claude` wrote it.
    async fn payload(&self) -> RawJson {
        RawJson(self.0.payload.clone())
    }

    /// The line, typed (the same as `MessageEvent.claudeMessage`).
    #[graphql(complexity = 2)]
    async fn claude_message(&self) -> ClaudeMessage {
        claude_message(&self.0.type_name, &self.0.payload)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
