//! Numbers, stores and then publishes one execution's lines.
//!
//! The recorder is the only writer of an execution's messages and the only
//! publisher of its events, so `seq` is gap-free and events leave in the
//! order `claude` wrote them. It takes whatever lines have piled up since
//! the last write and stores them in one transaction: a quiet run costs one
//! small transaction per line, a chatty one a few large ones per second.

use std::{sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;
use tokio::{sync::mpsc, task::JoinSet, time::Instant};
use tracing::{error, warn};
use uuid::Uuid;

use super::{Broker, Event, MessageEvent, PermissionEvent, ProgressEvent, Publisher};
use crate::{
    claude::{command::PermissionDecision, stream::ControlLine, Line, LineKind, RunCommand},
    db::{self, messages::NewMessage},
    telemetry::metrics as m,
};

/// Most lines stored in one transaction.
const MAX_BATCH: usize = 2048;
/// ProgressEvents are sent at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How often a failed write is tried before the run is given up.
const STORE_ATTEMPTS: u32 = 8;

/// The recorder's view of an execution.
pub struct Recorder {
    pub db: DatabaseConnection,
    /// Stores the lines (together with other runs' lines).
    pub writer: db::writer::StoreWriter,
    pub publisher: Publisher,
    pub execution_id: Uuid,
    pub session_id: Uuid,
    /// The session's message count when this execution started.
    pub session_base: i64,
    /// The execution's messages stored before this run of it (a parked
    /// run's, when it resumes): `seq` goes on after them.
    pub seq_base: i64,
    /// `maxTurns` of the run, for the progress estimate.
    pub max_turns: Option<i32>,
    /// For permission requests: answers to the runner (a request that
    /// expires is denied), events to subscribers from the expiry timers.
    pub commands: mpsc::Sender<RunCommand>,
    pub broker: Broker,
    pub permission_timeout: Duration,
    /// Quiet for this long, the run is stalled.
    pub stall_after: Duration,
}

/// What the recorder saw, for the execution's final record.
#[derive(Debug, Default)]
pub struct Recorded {
    pub message_count: i64,
    pub num_turns: i32,
    pub claude_session_id: Option<String>,
    /// Set when the store failed for good; the run must be stopped.
    pub store_failed: bool,
    /// The `tool_use_result`s of its Write and Edit calls (what it changed,
    /// where git cannot tell).
    pub file_edits: Vec<serde_json::Value>,
}

impl Recorder {
    /// Consumes lines until the runner closes the channel. `on_store_failure`
    /// is called once if the store gives up, so the caller can stop the run.
    pub async fn run(self, mut lines: mpsc::Receiver<Line>, on_store_failure: impl Fn()) -> (Publisher, Recorded) {
        let started = Instant::now();
        let mut recorded = Recorded { message_count: self.seq_base, ..Recorded::default() };
        let mut last_api_message: Option<String> = None;
        let mut last_progress = Instant::now() - PROGRESS_EVERY;
        let mut incoming = Vec::with_capacity(64);
        // Expiry timers of permission requests; dropped (aborted) with the run.
        let mut expiries = JoinSet::new();
        // Quiet for `stall_after`: stalled, until the next line.
        let mut stalled = false;
        // Messages went out since the last progress event: one is owed, also
        // when no further message comes (the end of a burst).
        let mut progress_owed = false;
        loop {
            let quiet = tokio::time::sleep(self.stall_after);
            let received = tokio::select! {
                n = lines.recv_many(&mut incoming, MAX_BATCH) => n,
                _ = tokio::time::sleep_until(last_progress + PROGRESS_EVERY), if progress_owed => {
                    last_progress = Instant::now();
                    progress_owed = false;
                    self.publish_progress(&recorded, started);
                    continue;
                }
                _ = quiet, if !stalled => {
                    stalled = self.mark_stalled(true, &recorded, started).await;
                    continue;
                }
            };
            if received == 0 {
                break;
            }
            if stalled {
                stalled = !self.mark_stalled(false, &recorded, started).await;
            }
            let mut control = Vec::new();
            let mut to_store = Vec::with_capacity(incoming.len());
            let mut to_publish = Vec::with_capacity(incoming.len());
            for line in incoming.drain(..) {
                let seq = if line.is_live_only() {
                    None
                } else {
                    recorded.message_count += 1;
                    Some(recorded.message_count)
                };
                self.observe(&line, &mut recorded, &mut last_api_message).await;
                if line.kind == LineKind::ControlRequest || line.type_name == "control_cancel_request" {
                    control.push(line.payload.clone());
                }
                let event = MessageEvent {
                    execution_id: self.execution_id,
                    seq,
                    type_name: line.type_name.clone(),
                    subtype: line.subtype.clone(),
                    payload: line.payload.clone(),
                    renders: Default::default(),
                };
                if let Some(seq) = seq {
                    to_store.push(NewMessage {
                        seq,
                        session_seq: self.session_base + seq - self.seq_base,
                        type_name: line.type_name,
                        subtype: line.subtype,
                        uuid: line.uuid,
                        payload: event.payload.clone(),
                    });
                }
                to_publish.push(event);
            }
            if !recorded.store_failed && !self.store(&to_store.into()).await {
                recorded.store_failed = true;
                on_store_failure();
            }
            if recorded.store_failed {
                // Never deliver what is not stored; keep draining so the
                // runner can wind the process down.
                continue;
            }
            for event in to_publish {
                self.publisher.publish(Event::Message(event));
            }
            for payload in control {
                self.on_control(&payload, &mut expiries).await;
            }
            progress_owed = true;
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                progress_owed = false;
                self.publish_progress(&recorded, started);
            }
        }
        (self.publisher, recorded)
    }

    fn publish_progress(&self, recorded: &Recorded, started: Instant) {
        self.publish_progress_stalled(recorded, started, None);
    }

    fn publish_progress_stalled(
        &self,
        recorded: &Recorded,
        started: Instant,
        stalled_since: Option<chrono::DateTime<chrono::Utc>>,
    ) {
        self.publisher.publish(Event::Progress(ProgressEvent {
            stalled_since,
            execution_id: self.execution_id,
            progress: super::progress(db::executions::Status::Running, recorded.num_turns, self.max_turns),
            message_count: recorded.message_count,
            num_turns: recorded.num_turns,
            cost_usd: None,
            elapsed_ms: started.elapsed().as_millis() as i64,
            renders: Default::default(),
        }));
    }

    /// Records that the run stalled (or resumed) and tells subscribers;
    /// true if it did. A run waiting for a permission answer is waiting
    /// for a person, not stalled.
    async fn mark_stalled(&self, stalled: bool, recorded: &Recorded, started: Instant) -> bool {
        if stalled {
            let waiting = db::permissions::of_execution(&self.db, self.execution_id, true).await;
            if waiting.map_or(true, |w| !w.is_empty()) {
                return false;
            }
        }
        let since =
            stalled.then(|| chrono::Utc::now() - chrono::Duration::from_std(self.stall_after).unwrap_or_default());
        if let Err(e) = db::executions::set_stalled(&self.db, self.execution_id, since).await {
            warn!(error = %e, "could not record a stall");
        }
        self.publish_progress_stalled(recorded, started, since);
        true
    }

    /// Picks up what the server tracks from a line.
    async fn observe(&self, line: &Line, recorded: &mut Recorded, last_api_message: &mut Option<String>) {
        match line.kind {
            LineKind::Init if recorded.claude_session_id.is_none() => {
                if let Some(id) = &line.session_id {
                    recorded.claude_session_id = Some(id.clone());
                    let model = line.model.as_deref();
                    // Read once a run: the servers' status, for `Execution`.
                    let init: Option<serde_json::Value> = serde_json::from_str(&line.payload).ok();
                    let mcp = init.and_then(|mut v| v.get_mut("mcp_servers").map(serde_json::Value::take));
                    let mcp = mcp.filter(|servers| servers.as_array().is_some_and(|s| !s.is_empty()));
                    let saved =
                        db::executions::record_init(&self.db, self.execution_id, self.session_id, id, model, mcp);
                    if let Err(e) = saved.await {
                        warn!(error = %e, "could not record claude's session id");
                    }
                }
            }
            LineKind::Other if line.type_name == "user" && crate::changes::may_be_file_edit(&line.payload) => {
                recorded.file_edits.extend(crate::changes::file_edit(&line.payload));
            }
            // One API reply comes as several assistant lines sharing an id.
            LineKind::Other if line.type_name == "assistant" => {
                let id = &line.api_message_id;
                if id.is_some() && id != last_api_message {
                    recorded.num_turns += 1;
                    last_api_message.clone_from(id);
                }
            }
            _ => {}
        }
    }

    /// A permission prompt from the CLI becomes a stored request (with an
    /// expiry that denies it); the CLI's cancel of one settles it.
    async fn on_control(&self, payload: &str, expiries: &mut JoinSet<()>) {
        let prompt = match ControlLine::parse(payload) {
            Some(ControlLine::PermissionPrompt(prompt)) => prompt,
            Some(ControlLine::Cancel { request_id }) => {
                if let Ok(Some(request)) =
                    db::permissions::by_request_id(&self.db, self.execution_id, &request_id).await
                {
                    settle_and_tell(&self.db, &self.broker, request.id, db::permissions::CANCELLED, None).await;
                }
                return;
            }
            None => return,
        };
        let request_id = prompt.request_id.clone();
        let expires_at = chrono::Utc::now() + self.permission_timeout;
        let created = match db::permissions::create(&self.db, self.execution_id, prompt, expires_at).await {
            Ok(created) => created,
            Err(e) => {
                // Fail closed: the CLI would wait forever.
                warn!(error = %e, "could not store a permission request; denying it");
                let response = PermissionDecision::deny("the server could not record this request").to_json();
                let _ = self.commands.send(RunCommand::Answer { request_id, response }).await;
                return;
            }
        };
        self.publisher.publish(Event::Permission(PermissionEvent {
            execution_id: self.execution_id,
            request: Box::new(created.clone()),
            renders: Default::default(),
        }));
        // The CLI waits with no time limit: deny when the time is up.
        let (db, broker, commands, timeout) =
            (self.db.clone(), self.broker.clone(), self.commands.clone(), self.permission_timeout);
        expiries.spawn(async move {
            tokio::time::sleep(timeout).await;
            let response = PermissionDecision::deny("no answer came in time").to_json();
            if settle_and_tell(&db, &broker, created.id, db::permissions::EXPIRED, Some(response.clone())).await {
                let _ = commands.send(RunCommand::Answer { request_id: created.request_id, response }).await;
            }
        });
    }

    /// Stores a batch, retrying with backoff; false if it could not.
    async fn store(&self, batch: &Arc<[NewMessage]>) -> bool {
        if batch.is_empty() {
            return true;
        }
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=STORE_ATTEMPTS {
            let started = Instant::now();
            match self.writer.store(self.execution_id, self.session_id, batch.clone()).await {
                Ok(()) => {
                    self.broker.store_health().succeeded();
                    metrics::histogram!(m::STORE_BATCH_SECONDS).record(started.elapsed().as_secs_f64());
                    metrics::counter!(m::MESSAGES_STORED).increment(batch.len() as u64);
                    return true;
                }
                Err(e) if attempt < STORE_ATTEMPTS => {
                    self.broker.store_health().failed();
                    warn!(error = %e, attempt, "storing messages failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => error!(error = %e, "storing messages failed; giving up on the run"),
            }
        }
        false
    }
}

/// Settles a pending request and tells the execution's subscribers; false
/// if it was no longer pending.
pub async fn settle_and_tell(
    db: &sea_orm::DatabaseConnection,
    broker: &Broker,
    id: Uuid,
    status: &str,
    decision: Option<serde_json::Value>,
) -> bool {
    match db::permissions::settle(db, id, status, decision, None).await {
        Ok(true) => {
            if let Ok(Some(request)) = db::permissions::find(db, id).await {
                let execution_id = request.execution_id;
                broker.publish_to(
                    execution_id,
                    Event::Permission(PermissionEvent {
                        execution_id,
                        request: Box::new(request),
                        renders: Default::default(),
                    }),
                );
            }
            true
        }
        Ok(false) => false,
        Err(e) => {
            warn!(error = %e, "could not settle a permission request");
            false
        }
    }
}
