//! The executor: starts, queues, runs, cancels and finishes executions.
//!
//! Every run is a task on the executor's `TaskTracker`, with a `StopHandle`
//! that is a child of the server's shutdown token: cancelling one run, or
//! all of them on shutdown, goes through the same path. A semaphore caps
//! how many run at once; tokio's semaphore is fair, so queued (PENDING)
//! runs start in the order they were created.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use entity::{execution, session};
use governor::{
    clock::{Clock, DefaultClock},
    DefaultKeyedRateLimiter, Quota, RateLimiter,
};
use sea_orm::{DatabaseConnection, TransactionTrait};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, info_span, warn, Instrument};
use uuid::Uuid;

use crate::{
    claude::{
        policy::ToolPolicy, runner::StopHandle, ClaudeCommand, ClaudeError, Outcome, RunCommand, RunEnd, RunOptions,
        Runner, StopReason,
    },
    db::{self, executions::Finish},
    error::{AppError, AppResult},
    events::{
        recorder::Recorder, subscription::terminal_status, Broker, Event, ProgressEvent, Publisher, RunError,
        StatusEvent,
    },
    paths::WorkspaceRoots,
    telemetry::metrics::{self as m, GaugeGuard},
};

/// Lines buffered between the runner and the recorder; when full, reading
/// claude's stdout pauses (the store is the one thing allowed to slow it).
const LINE_BUFFER: usize = 4096;

/// Above this many users with a start-rate bucket, idle ones are dropped.
const RATE_LIMITED_USERS: usize = 10_000;

/// Commands queued for one runner.
const COMMAND_BUFFER: usize = 64;

/// A request to run a prompt, already validated.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub workspace_id: Uuid,
    pub session_id: Option<Uuid>,
    pub prompt: String,
    pub options: RunOptions,
    pub metadata: Option<serde_json::Value>,
}

/// What a queued run is started with.
struct Launch {
    command: ClaudeCommand,
    prompt: String,
    publisher: Publisher,
    /// Counts the run as pending until it gets a slot.
    pending: GaugeGuard,
    commands: mpsc::Receiver<RunCommand>,
    /// For the recorder's answers (expired permission requests).
    commands_tx: mpsc::Sender<RunCommand>,
}

/// A client's answer to a permission request.
#[derive(Debug, Clone, Default)]
pub struct PermissionAnswer {
    pub allow: bool,
    /// The tool input to run with (allow); the original one when None.
    pub updated_input: Option<serde_json::Value>,
    /// The reason given to the model (deny).
    pub message: Option<String>,
    /// Index of a `permission_suggestions` entry to apply (allow).
    pub apply_suggestion: Option<usize>,
}

/// One live run's handles.
#[derive(Clone)]
struct RunHandle {
    stop: StopHandle,
    /// Interrupts, follow-up messages and permission answers for the runner.
    commands: mpsc::Sender<RunCommand>,
    /// Cancelled once the run's final state is stored.
    done: CancellationToken,
}

/// Runs executions; cheap to clone.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    /// Group-commits the lines of all runs.
    writer: db::writer::StoreWriter,
    broker: Broker,
    runner: Runner,
    claude_bin: PathBuf,
    replica_id: String,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    runs: Mutex<HashMap<Uuid, RunHandle>>,
    /// startExecution calls per user and minute.
    starts: DefaultKeyedRateLimiter<String>,
    max_active_per_user: u64,
    permission_timeout: Duration,
    policy: ToolPolicy,
    roots: WorkspaceRoots,
    /// Serialises admissions on this server (see `start`).
    admission: tokio::sync::Mutex<()>,
    stall_after: Duration,
}

/// How the executor is set up.
pub struct ExecutorConfig {
    pub claude_bin: PathBuf,
    pub replica_id: String,
    pub max_concurrent: usize,
    pub runner: Runner,
    pub starts_per_minute: NonZeroU32,
    pub max_active_per_user: u64,
    pub permission_timeout: Duration,
    /// What clients may grant.
    pub policy: ToolPolicy,
    /// Where workspaces may be (checked again at every start).
    pub roots: WorkspaceRoots,
    /// A run quiet for this long is stalled.
    pub stall_after: Duration,
}

impl Executor {
    pub fn new(db: DatabaseConnection, broker: Broker, config: ExecutorConfig, shutdown: CancellationToken) -> Self {
        Self {
            inner: Arc::new(Inner {
                writer: db::writer::StoreWriter::new(db.clone()),
                db,
                broker,
                runner: config.runner,
                claude_bin: config.claude_bin,
                replica_id: config.replica_id,
                slots: Arc::new(Semaphore::new(config.max_concurrent)),
                tracker: TaskTracker::new(),
                shutdown,
                runs: Mutex::default(),
                starts: RateLimiter::keyed(Quota::per_minute(config.starts_per_minute)),
                max_active_per_user: config.max_active_per_user,
                permission_timeout: config.permission_timeout,
                policy: config.policy,
                roots: config.roots,
                admission: tokio::sync::Mutex::new(()),
                stall_after: config.stall_after,
            }),
        }
    }

    /// Marks runs this replica left unfinished (it stopped or crashed) as
    /// FAILED / INTERRUPTED, freeing their sessions.
    pub async fn recover(&self) -> AppResult<usize> {
        let stale = db::executions::unfinished(&self.inner.db, &self.inner.replica_id).await?;
        for e in &stale {
            self.finish_abandoned(e).await?;
        }
        if !stale.is_empty() {
            info!(count = stale.len(), "marked interrupted runs of a previous server as FAILED");
        }
        Ok(stale.len())
    }

    /// What clients may grant on this server.
    pub fn policy(&self) -> &ToolPolicy {
        &self.inner.policy
    }

    /// Where workspaces may be registered.
    pub fn roots(&self) -> &WorkspaceRoots {
        &self.inner.roots
    }

    /// Takes (or renews) this server's lease, valid for `lease`.
    pub async fn renew_lease(&self, lease: Duration) -> AppResult<()> {
        let expires = chrono::Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30));
        db::replicas::renew(&self.inner.db, &self.inner.replica_id, expires).await?;
        Ok(())
    }

    /// Keeps this server's lease alive until shutdown, and finishes the runs
    /// of servers whose lease expired (killed, or restarted under another
    /// id): FAILED / INTERRUPTED, with their subscribers told. Gives the
    /// lease up at a clean stop.
    /// Runs until `stop` (which the server cancels once its runs have
    /// stopped: the lease must outlive them).
    pub async fn keep_lease(&self, lease: Duration, stop: CancellationToken) {
        let every = lease / 3;
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            match self.renew_lease(lease).await {
                Ok(()) => renewed = tokio::time::Instant::now(),
                Err(e) => {
                    warn!(error = %e, "could not renew this server's lease");
                }
            }
            // Unable to renew for most of a lease: others will soon take this
            // server for gone and finish its runs, so it stops them first
            // rather than write on after they were finished.
            if renewed.elapsed() > lease * 2 / 3 && self.live_runs() > 0 {
                warn!("the lease could not be renewed; stopping this server's runs");
                for handle in self.lock_runs().values() {
                    handle.stop.stop(StopReason::Shutdown);
                }
            }
            // Only a server that could renew its own lease judges others'.
            if renewed.elapsed() < every {
                if let Err(e) = self.finish_orphans().await {
                    warn!(error = %e, "could not finish the runs of a gone server");
                }
            }
        }
    }

    /// Gives this server's lease up (its runs are finished).
    pub async fn release_lease(&self) {
        if let Err(e) = db::replicas::release(&self.inner.db, &self.inner.replica_id).await {
            warn!(error = %e, "could not give the lease up");
        }
    }

    /// Finishes the runs of servers whose lease has expired.
    pub async fn finish_orphans(&self) -> AppResult<usize> {
        let orphans = db::replicas::orphaned_runs(&self.inner.db, &self.inner.replica_id).await?;
        for e in &orphans {
            self.finish_abandoned(e).await?;
            info!(execution_id = %e.id, replica = ?e.replica_id, "finished a run whose server is gone");
        }
        Ok(orphans.len())
    }

    /// Finishes a run whose server is gone (FAILED / INTERRUPTED), after
    /// killing whatever of it outlived that server (a tool's background
    /// job, the whole tree if the server was killed).
    async fn finish_abandoned(&self, e: &execution::Model) -> AppResult<()> {
        crate::claude::sandbox::kill_leftovers(&e.id.to_string()).await;
        let finish = failure(&ClaudeError::Interrupted, None);
        db::executions::finish(&self.inner.db, e.id, e.session_id, finish).await?;
        Ok(())
    }

    /// Creates the execution (and a session if none is given), queues it,
    /// and returns at once.
    pub async fn start(&self, owner: &str, req: StartRequest) -> AppResult<(execution::Model, session::Model)> {
        let db = &self.inner.db;
        // Users who stopped starting runs need no bucket any more.
        if self.inner.starts.len() > RATE_LIMITED_USERS {
            self.inner.starts.retain_recent();
        }
        if let Err(not_until) = self.inner.starts.check_key(&owner.to_owned()) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(AppError::RateLimited {
                message: "too many executions started; try again later".into(),
                retry_after_ms: wait.as_millis().max(1) as u64,
            });
        }
        let workspace =
            db::workspaces::get(db, owner, req.workspace_id).await?.ok_or(AppError::NotFound("workspace"))?;
        // The directory may have been swapped for a link since it was
        // registered (the runner refuses links again when it starts).
        self.inner.roots.check_registered(&workspace.path, owner)?;
        let existing = match req.session_id {
            Some(id) => {
                let session = db::sessions::get(db, owner, id).await?.ok_or(AppError::NotFound("session"))?;
                if session.workspace_id != workspace.id {
                    return Err(AppError::bad_input("sessionId", "the session belongs to another workspace"));
                }
                if session.status == db::sessions::CLOSED {
                    return Err(AppError::SessionClosed(id.to_string()));
                }
                Some(session)
            }
            None => None,
        };

        let execution_id = Uuid::now_v7();
        // The channel exists before the execution does, so a subscriber can
        // never find a live execution without one.
        let publisher = self.inner.broker.open(execution_id);
        let options = serde_json::to_value(&req.options).map_err(|e| AppError::Internal(e.to_string()))?;
        // The active-run check and the insert are one transaction, and
        // admissions of one user never overlap (in this server, and across
        // replicas by an advisory lock): racing starts cannot all pass.
        let _admission = self.inner.admission.lock().await;
        let txn = db.begin().await.map_err(db::DbError::from)?;
        db::lock_for(&txn, &format!("admission:{owner}")).await?;
        // Deletions take the same lock: the workspace (and the session,
        // checked by its claim below) are still there.
        db::workspaces::get(&txn, owner, workspace.id).await?.ok_or(AppError::NotFound("workspace"))?;
        if db::executions::count_active(&txn, owner).await? >= self.inner.max_active_per_user {
            return Err(AppError::RateLimited {
                message: format!(
                    "at most {} executions may be pending or running at once",
                    self.inner.max_active_per_user
                ),
                retry_after_ms: 1000,
            });
        }
        let session = match existing {
            Some(session) => {
                if !db::sessions::claim(&txn, session.id, execution_id).await? {
                    let now = db::sessions::find(&txn, session.id).await?;
                    return Err(match now {
                        Some(s) if s.status == db::sessions::CLOSED => AppError::SessionClosed(s.id.to_string()),
                        Some(_) => AppError::SessionBusy(session.id.to_string()),
                        None => AppError::NotFound("session"),
                    });
                }
                // Read after the claim: the previous run may have recorded
                // Claude's session id (to resume) in the meantime.
                db::sessions::find(&txn, session.id).await?.unwrap_or(session)
            }
            None => db::sessions::create(&txn, workspace.id, execution_id, &req.prompt).await?,
        };
        let execution = db::executions::create(
            &txn,
            db::executions::NewExecution {
                id: execution_id,
                session_id: session.id,
                workspace_id: workspace.id,
                prompt: req.prompt.clone(),
                options,
                metadata: req.metadata,
                resumed_from: session.claude_session_id.clone(),
                replica_id: self.inner.replica_id.clone(),
            },
        )
        .await?;
        txn.commit().await.map_err(db::DbError::from)?;
        drop(_admission);
        // No await between the commit and the spawn: if the client goes away
        // and this future is dropped, the run still has its task.
        let mut options = req.options;
        options.require_approval = Some(options.require_approval.unwrap_or(workspace.require_approval));
        let command = ClaudeCommand {
            run_id: execution.id,
            bin: self.inner.claude_bin.clone(),
            cwd: PathBuf::from(&workspace.path),
            resume: execution.resumed_from.clone(),
            options,
        };
        self.spawn_run(execution.clone(), command, req.prompt, publisher);
        let session = db::sessions::find(db, session.id).await?.unwrap_or(session);
        Ok((execution, session))
    }

    fn spawn_run(&self, execution: execution::Model, command: ClaudeCommand, prompt: String, publisher: Publisher) {
        let (commands, command_rx) = mpsc::channel(COMMAND_BUFFER);
        let commands_tx = commands.clone();
        let handle =
            RunHandle { stop: StopHandle::child_of(&self.inner.shutdown), commands, done: CancellationToken::new() };
        let pending = GaugeGuard::new(m::EXECUTIONS_PENDING);
        self.lock_runs().insert(execution.id, handle.clone());
        let this = self.clone();
        let span = info_span!("execution", execution_id = %execution.id);
        self.inner.tracker.spawn(
            async move {
                let launch = Launch { command, prompt, publisher, pending, commands: command_rx, commands_tx };
                let status = this.run(&execution, launch, &handle.stop).await;
                metrics::counter!(m::EXECUTIONS_FINISHED, "status" => status).increment(1);
                this.lock_runs().remove(&execution.id);
                handle.done.cancel();
            }
            .instrument(span),
        );
    }

    /// One execution from queue to final record.
    async fn run(&self, execution: &execution::Model, launch: Launch, stop: &StopHandle) -> &'static str {
        let Launch { command, prompt, publisher, pending, commands, commands_tx } = launch;
        let inner = &self.inner;
        // Wait for a slot (or a stop while waiting).
        let _permit = tokio::select! {
            permit = inner.slots.clone().acquire_owned() => permit.ok(),
            _ = stop.token().cancelled() => None,
        };
        drop(pending);
        if _permit.is_none() {
            let outcome = stop_outcome(stop.reason());
            return self.finish(execution, publisher, outcome_finish(&outcome, None, None, 0)).await;
        }
        match db::executions::mark_running(&inner.db, execution.id).await {
            Ok(true) => {}
            // Finished by someone else meanwhile.
            Ok(false) => return "UNCHANGED",
            Err(e) => {
                warn!(error = %e, "could not mark the execution running");
                let finish = failure(&ClaudeError::StorageFailed("the store is unavailable".into()), None);
                return self.finish(execution, publisher, finish).await;
            }
        }
        let _running = GaugeGuard::new(m::EXECUTIONS_RUNNING);
        metrics::counter!(m::EXECUTIONS_STARTED).increment(1);
        publisher.publish(Event::Status(StatusEvent {
            execution_id: execution.id,
            status: db::executions::RUNNING.into(),
            error: None,
            renders: Default::default(),
        }));
        info!(bin = %command.bin.display(), resume = ?command.resume, "starting claude");
        let started = std::time::Instant::now();

        // Where this run's messages start in the session's sequence.
        let session_base = match db::sessions::find(&inner.db, execution.session_id).await {
            Ok(Some(session)) => session.message_count,
            other => {
                warn!(?other, "could not read the session");
                let finish = failure(&ClaudeError::StorageFailed("the store is unavailable".into()), None);
                return self.finish(execution, publisher, finish).await;
            }
        };
        let (tx, rx) = mpsc::channel(LINE_BUFFER);
        let recorder = Recorder {
            db: inner.db.clone(),
            writer: inner.writer.clone(),
            publisher,
            execution_id: execution.id,
            session_id: execution.session_id,
            session_base,
            max_turns: command.options.max_turns,
            commands: commands_tx,
            broker: inner.broker.clone(),
            permission_timeout: inner.permission_timeout,
            stall_after: inner.stall_after,
        };
        let store_stop = stop.clone();
        let recording = tokio::spawn(recorder.run(rx, move || store_stop.stop(StopReason::Shutdown)));
        let end = inner.runner.run(&command, &prompt, tx, commands, stop.clone()).await;
        let (publisher, recorded) = match recording.await {
            Ok(done) => done,
            Err(e) => {
                // The recorder panicked; its publisher is gone with it.
                warn!(error = %e, "the recorder failed");
                let publisher = inner.broker.open(execution.id);
                (publisher, Default::default())
            }
        };
        let finish = if recorded.store_failed {
            failure(&ClaudeError::StorageFailed("messages could not be stored; the run was stopped".into()), Some(&end))
        } else {
            outcome_finish(&end.outcome, Some(&end), end.result.as_ref(), recorded.num_turns)
        };
        info!(status = finish.status, code = ?finish.error_code, exit_code = ?end.exit_code, messages = recorded.message_count, "claude finished");
        publisher.publish(Event::Progress(ProgressEvent {
            stalled_since: None,
            execution_id: execution.id,
            progress: 1.0,
            message_count: recorded.message_count,
            num_turns: finish.num_turns.unwrap_or(recorded.num_turns),
            cost_usd: finish.cost_usd,
            elapsed_ms: started.elapsed().as_millis() as i64,
            renders: Default::default(),
        }));
        self.finish(execution, publisher, finish).await
    }

    /// Stores the final state, then sends the terminal event (in that order:
    /// a subscriber that sees the event finds the row final).
    async fn finish(&self, execution: &execution::Model, publisher: Publisher, finish: Finish) -> &'static str {
        let final_status = finish.status;
        let status = StatusEvent {
            execution_id: execution.id,
            status: finish.status.into(),
            error: finish
                .error_code
                .clone()
                .map(|code| RunError { code, message: finish.error_message.clone().unwrap_or_default() }),
            renders: Default::default(),
        };
        // The final state must be stored, or the run (and its session)
        // stays RUNNING: retry, with backoff, for as long as the server runs
        // (a full disk may get space again), and about half a minute more
        // once it is stopping.
        let mut delay = Duration::from_millis(100);
        let mut attempts_while_stopping = 0;
        for attempt in 1.. {
            if self.inner.shutdown.is_cancelled() {
                attempts_while_stopping += 1;
                if attempts_while_stopping > 10 {
                    break;
                }
            }
            match db::executions::finish(&self.inner.db, execution.id, execution.session_id, finish.clone()).await {
                Ok(Some(cancelled)) => {
                    for request in cancelled {
                        publisher.publish(Event::Permission(crate::events::PermissionEvent {
                            execution_id: execution.id,
                            request: Box::new(request),
                            renders: Default::default(),
                        }));
                    }
                    publisher.publish(Event::Status(status));
                    return final_status;
                }
                Ok(None) => {
                    // Someone else finished it (a cancel of a run whose
                    // server seemed gone): say what the store says.
                    if let Some(stored) = terminal_status(&self.inner.db, execution.id).await {
                        publisher.publish(Event::Status(stored));
                    }
                    return "UNCHANGED";
                }
                Err(e) => {
                    warn!(error = %e, attempt, "could not store the execution's final state");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        // Subscribers see the channel close and keep watching the store;
        // the next start of this replica marks the run interrupted.
        final_status
    }

    /// Cancels a pending or running execution; a finished one is returned
    /// as it is.
    pub async fn cancel(&self, owner: &str, id: Uuid) -> AppResult<execution::Model> {
        let db = &self.inner.db;
        let execution = db::executions::get(db, owner, id).await?.ok_or(AppError::NotFound("execution"))?;
        if crate::events::is_terminal(&execution.status) {
            return Ok(execution);
        }
        // The escalation takes at most two grace periods.
        let patience = self.inner.runner.grace * 2 + Duration::from_secs(2);
        let handle = self.lock_runs().get(&id).cloned();
        match handle {
            Some(handle) => {
                handle.stop.stop(StopReason::Cancel);
                let _ = tokio::time::timeout(patience, handle.done.cancelled()).await;
            }
            None => {
                // Another replica runs it: ask it to stop, and give it the
                // time a local stop would take.
                let owner_replica = execution.replica_id.clone().unwrap_or_default();
                if owner_replica != self.inner.replica_id {
                    db::signals::notify(db, db::signals::CANCEL_CHANNEL, id).await.map_err(db::DbError::from)?;
                    let deadline = tokio::time::Instant::now() + patience;
                    while tokio::time::Instant::now() < deadline {
                        let now = db::executions::find(db, id).await?;
                        if now.as_ref().is_some_and(|e| crate::events::is_terminal(&e.status)) {
                            return Ok(now.unwrap_or(execution));
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    // Its server holds a live lease: it alone finishes its
                    // runs (it may still be writing this one's messages).
                    if db::replicas::is_alive(db, &owner_replica).await? {
                        return Ok(db::executions::find(db, id).await?.unwrap_or(execution));
                    }
                }
                // Nobody runs it any more (its server is gone): record it.
                let finish = outcome_finish(&Outcome::Cancelled, None, None, 0);
                db::executions::finish(db, id, execution.session_id, finish).await?;
            }
        }
        Ok(db::executions::find(db, id).await?.unwrap_or(execution))
    }

    /// Closes a session, cancelling what runs in it.
    pub async fn close_session(&self, owner: &str, id: Uuid) -> AppResult<session::Model> {
        let db = &self.inner.db;
        let session = db::sessions::get(db, owner, id).await?.ok_or(AppError::NotFound("session"))?;
        db::sessions::close(db, id).await?;
        // Read after closing: a start that claimed the session just before
        // is cancelled too, and none can claim it any more.
        let closed = db::sessions::find(db, id).await?.unwrap_or(session.clone());
        if let Some(active) = closed.active_execution_id {
            self.cancel(owner, active).await?;
        }
        Ok(db::sessions::find(db, id).await?.unwrap_or(session))
    }

    /// Ends the running turn of an execution cleanly (the `interrupt`
    /// control request): its output so far is stored, the session stays
    /// resumable, and the execution ends CANCELLED unless a follow-up
    /// message keeps it going. Unlike a cancel, no signal is sent.
    pub async fn interrupt(&self, owner: &str, id: Uuid) -> AppResult<execution::Model> {
        let db = &self.inner.db;
        let execution = db::executions::get(db, owner, id).await?.ok_or(AppError::NotFound("execution"))?;
        if execution.status != db::executions::RUNNING {
            return Err(AppError::bad_input("id", format!("the execution is {}, not RUNNING", execution.status)));
        }
        if !self.interrupt_local(id) {
            // Another replica runs it.
            db::signals::notify(db, db::signals::INTERRUPT_CHANNEL, id).await.map_err(db::DbError::from)?;
        }
        Ok(execution)
    }

    /// Interrupts a run of this server; false if it has no such run.
    pub fn interrupt_local(&self, id: Uuid) -> bool {
        let handle = self.lock_runs().get(&id).cloned();
        handle.is_some_and(|h| h.commands.try_send(RunCommand::Interrupt).is_ok())
    }

    /// Sends a follow-up message to a running execution; returns the
    /// message's uuid (the `command_uuid` of its `command_lifecycle` lines).
    pub async fn send_message(&self, owner: &str, id: Uuid, text: String, now: bool) -> AppResult<Uuid> {
        let db = &self.inner.db;
        let execution = db::executions::get(db, owner, id).await?.ok_or(AppError::NotFound("execution"))?;
        let not_running = || AppError::bad_input("executionId", "the execution is not running");
        if execution.status != db::executions::RUNNING {
            return Err(not_running());
        }
        let uuid = Uuid::new_v4();
        let handle = self.lock_runs().get(&id).cloned();
        let Some(handle) = handle else {
            // Another replica runs it: the message travels with the signal
            // (its answer does not come back, so this is best effort).
            let payload =
                serde_json::json!({ "execution_id": id, "message_id": uuid, "text": text, "now": now }).to_string();
            if payload.len() > db::signals::MAX_PAYLOAD {
                return Err(AppError::bad_input(
                    "text",
                    "too long to forward to the server running the execution; send it there",
                ));
            }
            db::signals::notify_text(db, db::signals::MESSAGE_CHANNEL, &payload).await.map_err(db::DbError::from)?;
            return Ok(uuid);
        };
        let (reply, written) = tokio::sync::oneshot::channel();
        let command = RunCommand::Message { text, uuid, now, reply: Some(reply) };
        handle.commands.send(command).await.map_err(|_| not_running())?;
        written.await.map_err(|_| not_running())?.map_err(|why| AppError::bad_input("executionId", why))
    }

    /// Runs a short task for another replica's request on the executor's
    /// tracker, so shutdown waits for it too.
    pub fn spawn_owned(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.inner.tracker.spawn(task);
    }

    /// Writes a message that came from another replica, if this server
    /// runs the execution.
    pub async fn deliver_message(&self, execution_id: Uuid, uuid: Uuid, text: String, now: bool) {
        let handle = self.lock_runs().get(&execution_id).cloned();
        if let Some(handle) = handle {
            let _ = handle.commands.send(RunCommand::Message { text, uuid, now, reply: None }).await;
        }
    }

    /// Answers a pending permission request, exactly once: ALLOW (with the
    /// tool input to use, and optionally one of the CLI's suggestions by
    /// index) or DENY (with a message for the model). Any client of the
    /// owner may answer; the answer reaches the run on whichever replica
    /// has it.
    pub async fn answer_permission(
        &self,
        owner: &str,
        id: Uuid,
        answer: PermissionAnswer,
    ) -> AppResult<entity::permission_request::Model> {
        let db = &self.inner.db;
        let request = db::permissions::get(db, owner, id).await?.ok_or(AppError::NotFound("permission request"))?;
        let settled = || AppError::bad_input("id", format!("the request is already {}", request.status));
        if request.status != db::permissions::PENDING {
            return Err(settled());
        }
        let policy = &self.inner.policy;
        if answer.allow && !policy.may_grant(&request.tool_name) {
            return Err(AppError::Forbidden(format!(
                "`{}` may not be granted on this server; deny the request instead",
                request.tool_name
            )));
        }
        if answer.updated_input.as_ref().is_some_and(|input| !input.is_object()) {
            return Err(AppError::bad_input("updatedInput", "`updatedInput` must be an object of the tool's input"));
        }
        let response = if answer.allow {
            let mut response = serde_json::json!({
                "behavior": "allow",
                "updatedInput": answer.updated_input.unwrap_or_else(|| request.input.clone()),
            });
            if let Some(index) = answer.apply_suggestion {
                let suggestion = request.suggestions.as_ref().and_then(|s| s.get(index)).cloned();
                let suggestion =
                    suggestion.ok_or_else(|| AppError::bad_input("applySuggestion", "no suggestion has that index"))?;
                let workspace = self.workspace_of(owner, request.execution_id).await?;
                let suggestion =
                    policy.check_suggestion(&suggestion, Path::new(&workspace.path)).map_err(AppError::Forbidden)?;
                response["updatedPermissions"] = serde_json::json!([suggestion]);
            }
            response
        } else {
            crate::events::recorder::deny(answer.message.as_deref().unwrap_or("The user denied this."))
        };
        let status = if answer.allow { db::permissions::ALLOWED } else { db::permissions::DENIED };
        if !db::permissions::settle(db, id, status, Some(response), Some(owner)).await? {
            return Err(AppError::bad_input("id", "the request was answered meanwhile"));
        }
        if !self.deliver_answer(id).await {
            db::signals::notify(db, db::signals::PERMISSION_CHANNEL, id).await.map_err(db::DbError::from)?;
        }
        let answered = db::permissions::find(db, id).await?.ok_or(AppError::NotFound("permission request"))?;
        let execution_id = answered.execution_id;
        self.inner.broker.publish_to(
            execution_id,
            Event::Permission(crate::events::PermissionEvent {
                execution_id,
                request: Box::new(answered.clone()),
                renders: Default::default(),
            }),
        );
        Ok(answered)
    }

    /// The workspace an execution of `owner` runs in.
    async fn workspace_of(&self, owner: &str, execution_id: Uuid) -> AppResult<entity::workspace::Model> {
        let db = &self.inner.db;
        let execution = db::executions::get(db, owner, execution_id).await?.ok_or(AppError::NotFound("execution"))?;
        db::workspaces::get(db, owner, execution.workspace_id).await?.ok_or(AppError::NotFound("workspace"))
    }

    /// Sends a settled request's decision to its run, if this server has
    /// the run; false otherwise.
    pub async fn deliver_answer(&self, id: Uuid) -> bool {
        let Ok(Some(request)) = db::permissions::find(&self.inner.db, id).await else { return false };
        let Some(response) = request.decision else { return false };
        let handle = self.lock_runs().get(&request.execution_id).cloned();
        match handle {
            Some(handle) => {
                handle.commands.send(RunCommand::Answer { request_id: request.request_id, response }).await.is_ok()
            }
            None => false,
        }
    }

    /// Stops a run of this server, if it has it (a cancel that came to
    /// another replica).
    pub fn stop_local(&self, id: Uuid) {
        if let Some(handle) = self.lock_runs().get(&id) {
            handle.stop.stop(StopReason::Cancel);
        }
    }

    /// How many executions are running or queued on this server.
    pub fn live_runs(&self) -> usize {
        self.lock_runs().len()
    }

    /// Waits for every run to end after the shutdown token was cancelled.
    pub async fn wait_stopped(&self, patience: Duration) {
        self.inner.tracker.close();
        if tokio::time::timeout(patience, self.inner.tracker.wait()).await.is_err() {
            warn!("some runs did not stop in time");
        }
    }

    fn lock_runs(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, RunHandle>> {
        self.inner.runs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn stop_outcome(reason: Option<StopReason>) -> Outcome {
    match reason {
        Some(StopReason::Cancel) => Outcome::Cancelled,
        _ => Outcome::Failed(ClaudeError::Interrupted),
    }
}

fn failure(error: &ClaudeError, end: Option<&RunEnd>) -> Finish {
    Finish {
        status: db::executions::FAILED,
        error_code: Some(error.code().into()),
        error_message: Some(error.to_string()),
        exit_code: end.and_then(|e| e.exit_code),
        ..Default::default()
    }
}

/// The stored form of a run's end.
fn outcome_finish(
    outcome: &Outcome,
    end: Option<&RunEnd>,
    result: Option<&crate::claude::ResultLine>,
    turns_seen: i32,
) -> Finish {
    let mut finish = match outcome {
        Outcome::Completed => Finish { status: db::executions::COMPLETED, ..Default::default() },
        Outcome::Cancelled => Finish {
            status: db::executions::CANCELLED,
            error_code: Some(ClaudeError::Cancelled.code().into()),
            error_message: Some(ClaudeError::Cancelled.to_string()),
            ..Default::default()
        },
        Outcome::Failed(error) => failure(error, None),
    };
    finish.exit_code = end.and_then(|e| e.exit_code);
    finish.num_turns = result.and_then(|r| r.num_turns).map(|n| n as i32).or((turns_seen > 0).then_some(turns_seen));
    if let Some(r) = result {
        finish.cost_usd = r.total_cost_usd;
        finish.usage = r.usage.clone();
        finish.result = r.raw.clone();
    }
    finish
}
