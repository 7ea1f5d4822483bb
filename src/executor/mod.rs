//! The executor: starts, queues, runs, cancels and finishes executions.
//!
//! Every run is a task on the executor's `TaskTracker`, with a `StopHandle`
//! that is a child of the server's shutdown token: cancelling one run, or
//! all of them on shutdown, goes through the same path. A semaphore caps
//! how many run at once; tokio's semaphore is fair, so queued (PENDING)
//! runs start in the order they were created.
//!
//! The parts: `admission` (a start checked and admitted), `lifecycle` (a
//! run from spawn to its stored end), `control` (cancel, interrupt,
//! follow-up messages, permission answers, from this server or another),
//! `recovery` (leases, and runs a gone server left behind).

mod admission;
mod control;
mod lifecycle;
mod recovery;

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
    attachments::Prompt,
    claude::{
        policy::ToolPolicy, runner::StopHandle, ClaudeCommand, ClaudeError, Outcome, RunCommand, RunEnd, RunOptions,
        Runner, StopReason, UserContent,
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

/// A run parked this often for usage or rate limits fails the next time.
const MAX_PARKS: i32 = 10;

/// What happens to a run that hits a usage or rate limit.
#[derive(Debug, Clone)]
pub struct Parking {
    /// Park it (SCHEDULED) and resume it when the limit resets; else it
    /// fails (RATE_LIMITED).
    pub enabled: bool,
    /// How long it waits when the CLI did not say when the limit resets.
    pub fallback_wait: Duration,
    /// What it resumes with.
    pub resume_prompt: String,
    /// The zone of a reset named without one.
    pub zone: chrono_tz::Tz,
}

/// A request to run a prompt, already validated.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub workspace_id: Uuid,
    pub session_id: Option<Uuid>,
    /// Text, or content blocks whose attachments the owner has.
    pub prompt: Prompt,
    pub options: RunOptions,
    pub metadata: Option<serde_json::Value>,
    /// A retry with the same key returns the execution the first start made.
    pub idempotency_key: Option<String>,
    /// What to do when the session runs another execution.
    pub if_busy: IfBusy,
    /// Start a new session that continues a copy of this one's
    /// conversation (`--resume … --fork-session`).
    pub fork_session_id: Option<Uuid>,
    /// Give a new session a git worktree of its own (the workspace's
    /// default when None), from this ref (HEAD when None).
    pub worktree: Option<bool>,
    pub base_ref: Option<String>,
}

/// What a start on a busy session does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IfBusy {
    /// Wait in the session's queue, and run when the runs before it ended.
    #[default]
    Queue,
    /// Refuse it (SESSION_BUSY).
    Reject,
    /// Interrupt the running turn, and queue.
    Interrupt,
}

/// What a start returns.
pub struct Started {
    pub execution: execution::Model,
    pub session: session::Model,
    /// The start's idempotency key had made this execution before: nothing
    /// new was started.
    pub replayed: bool,
}

/// What a queued run is started with.
struct Launch {
    command: ClaudeCommand,
    prompt: UserContent,
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
    /// How long a start's idempotency key is remembered.
    idempotency_ttl: Duration,
    parking: Parking,
    /// What one user's runs may cost per day (UTC).
    user_daily_budget_usd: Option<f64>,
    track_changes: bool,
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
    /// How long a start's idempotency key is remembered.
    pub idempotency_ttl: Duration,
    pub parking: Parking,
    /// What one user's runs may cost per day (UTC).
    pub user_daily_budget_usd: Option<f64>,
    /// Record what each run changed in its workspace (`changes`).
    pub track_changes: bool,
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
                idempotency_ttl: config.idempotency_ttl,
                parking: config.parking,
                user_daily_budget_usd: config.user_daily_budget_usd,
                track_changes: config.track_changes,
            }),
        }
    }
    /// What clients may grant on this server.
    pub fn policy(&self) -> &ToolPolicy {
        &self.inner.policy
    }

    /// Where workspaces may be registered.
    pub fn roots(&self) -> &WorkspaceRoots {
        &self.inner.roots
    }
    /// Runs a short task for another replica's request on the executor's
    /// tracker, so shutdown waits for it too.
    pub fn spawn_owned(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.inner.tracker.spawn(task);
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
