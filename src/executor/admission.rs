//! A start: checked, admitted (one user at a time), stored, spawned.

use super::*;
use crate::{
    attachments,
    claude::mcp::{self, McpServer},
};

impl Executor {
    /// Creates the execution (and a session if none is given), queues it,
    /// and returns at once.
    ///
    /// With an idempotency key the owner used before (within its time to
    /// live), the execution that start made is returned instead, and
    /// nothing is started; with other input, the key is refused. A start
    /// that fails records no key, so its retry is a new attempt.
    pub async fn start(&self, owner: &str, req: StartRequest) -> AppResult<Started> {
        let db = &self.inner.db;
        let fingerprint = req.fingerprint();
        // A retry is answered before the rate limits: it starts nothing.
        if let Some(key) = &req.idempotency_key {
            if let Some(earlier) = self.replay(db, owner, key, &fingerprint).await? {
                return Ok(earlier);
            }
        }
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
        self.check_mcp(&workspace, &req.options)?;
        attachments::check(db, owner, &req.prompt).await?;
        // Read before the transaction: between its commit and the spawn
        // nothing may wait.
        let content = attachments::resolve(db, Some(owner), &req.prompt).await?;
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
        // A fork: the session it copies, and the Claude session to resume.
        let fork_of = match req.fork_session_id {
            Some(id) => Some(self.fork_source(owner, id, &workspace).await?),
            None => None,
        };

        let new_session_id = Uuid::now_v7();
        let worktree = self.worktree_for(&req, &workspace, new_session_id).await?;
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
        if let Some(key) = &req.idempotency_key {
            db::idempotency::forget_expired(&txn, owner, self.idempotency_cutoff()).await?;
            // A start with this key may have been admitted since the look
            // above (on this server or another: the lock is shared).
            if let Some(earlier) = self.replay(&txn, owner, key, &fingerprint).await? {
                return Ok(earlier);
            }
        }
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
        // Set when the session is busy and the start waits in its queue.
        let mut queued_behind = None;
        let budget_left = self.budget_left(&txn, owner, &workspace).await?;
        if budget_left.is_some_and(|left| left <= 0.0) {
            return Err(AppError::BudgetExceeded(BUDGET_SPENT.into()));
        }
        let session = match existing {
            Some(session) => {
                // Runs ending in the session take this lock too: either this
                // claim sees the session free, or the end sees this queued.
                db::queue::lock(&txn, session.id).await?;
                if !db::sessions::claim(&txn, session.id, execution_id).await? {
                    let now = db::sessions::find(&txn, session.id).await?;
                    match now {
                        Some(s) if s.status == db::sessions::CLOSED => {
                            return Err(AppError::SessionClosed(s.id.to_string()))
                        }
                        Some(s) if req.if_busy != IfBusy::Reject => queued_behind = s.active_execution_id,
                        Some(_) => return Err(AppError::SessionBusy(session.id.to_string())),
                        None => return Err(AppError::NotFound("session")),
                    }
                }
                // Read after the claim: the previous run may have recorded
                // Claude's session id (to resume) in the meantime.
                db::sessions::find(&txn, session.id).await?.unwrap_or(session)
            }
            None => {
                let forked_from = fork_of.as_ref().map(|(source, _)| *source);
                let (id, title) = (new_session_id, req.prompt.text());
                db::sessions::create(&txn, id, workspace.id, execution_id, &title, forked_from, worktree.as_ref())
                    .await?
            }
        };
        let queued = queued_behind.is_some();
        let execution = db::executions::create(
            &txn,
            db::executions::NewExecution {
                id: execution_id,
                session_id: session.id,
                workspace_id: workspace.id,
                prompt: req.prompt.text(),
                content: req.prompt.stored_blocks(),
                options,
                metadata: req.metadata,
                // A queued execution resumes what the runs before it leave,
                // and is taken by a server when its turn comes.
                resumed_from: match (&fork_of, queued) {
                    (Some((_, claude_session)), _) => Some(claude_session.clone()),
                    (None, true) => None,
                    (None, false) => session.claude_session_id.clone(),
                },
                replica_id: (!queued).then(|| self.inner.replica_id.clone()),
            },
        )
        .await?;
        db::attachments::link(&txn, execution.id, &req.prompt.attachment_ids()).await?;
        if let Some(key) = &req.idempotency_key {
            // The primary key settles what the lock did not: the start that
            // recorded the key first is the one that happened.
            if !db::idempotency::record(&txn, owner, key, &fingerprint, execution.id).await? {
                drop(txn);
                let earlier = self.replay(db, owner, key, &fingerprint).await?;
                return earlier.ok_or_else(|| AppError::Internal(format!("idempotency key of {owner} vanished")));
            }
        }
        txn.commit().await.map_err(db::DbError::from)?;
        drop(_admission);
        if let Some(running) = queued_behind {
            // Its channel opens when it is taken from the queue.
            drop(publisher);
            if req.if_busy == IfBusy::Interrupt {
                if let Err(e) = self.interrupt(owner, running).await {
                    info!(error = %e, "the run a start asked to interrupt was not running");
                }
            }
            return Ok(Started { execution, session, replayed: false });
        }
        // No await between the commit and the spawn: if the client goes away
        // and this future is dropped, the run still has its task.
        let mut command = self.command_for(&execution, &workspace, &session, req.options, budget_left);
        command.fork = fork_of.is_some();
        self.spawn_run(execution.clone(), command, content, publisher);
        let session = db::sessions::find(db, session.id).await?.unwrap_or(session);
        Ok(Started { execution, session, replayed: false })
    }

    /// How `claude` is started for an execution in `workspace`, with at
    /// most `budget_left` to spend.
    pub(super) fn command_for(
        &self,
        execution: &execution::Model,
        workspace: &entity::workspace::Model,
        session: &session::Model,
        mut options: RunOptions,
        budget_left: Option<f64>,
    ) -> ClaudeCommand {
        options.require_approval = Some(options.require_approval.unwrap_or(workspace.require_approval));
        let servers = mcp_servers(workspace, &options);
        options.mcp_servers = (!servers.is_empty()).then_some(servers);
        options.max_budget_usd = match (options.max_budget_usd, budget_left) {
            (Some(asked), Some(left)) => Some(asked.min(left)),
            (asked, left) => asked.or(left),
        };
        ClaudeCommand {
            run_id: execution.id,
            bin: self.inner.claude_bin.clone(),
            // A session with a worktree runs there.
            cwd: db::sessions::worktree(session).map_or_else(|| PathBuf::from(&workspace.path), |w| w.path),
            resume: execution.resumed_from.clone(),
            fork: false,
            options,
        }
    }

    /// The worktree a start's new session gets, if it gets one: asked for,
    /// or the workspace's default (not for a fork, which must continue in
    /// its session's directory, where Claude keeps the conversation).
    async fn worktree_for(
        &self,
        req: &StartRequest,
        workspace: &entity::workspace::Model,
        session_id: Uuid,
    ) -> AppResult<Option<crate::worktrees::Worktree>> {
        const FIELD: &str = "worktree";
        let asked = req.worktree == Some(true);
        if req.session_id.is_some() || req.fork_session_id.is_some() {
            if asked {
                let why = "only a new session gets a worktree (a fork continues where its session ran)";
                return Err(AppError::bad_input(FIELD, why));
            }
            return Ok(None);
        }
        if !req.worktree.unwrap_or(workspace.use_worktrees) {
            return Ok(None);
        }
        let repo = std::path::Path::new(&workspace.path);
        let planned = crate::worktrees::Worktree::plan(repo, session_id, req.base_ref.as_deref()).await;
        planned.map(Some).map_err(|(field, why)| AppError::bad_input(field, why))
    }

    /// The session a fork copies, and the Claude session it resumes: the
    /// owner's, in the same workspace (Claude keeps sessions per
    /// directory), with a first run that has reported its id.
    async fn fork_source(
        &self,
        owner: &str,
        id: Uuid,
        workspace: &entity::workspace::Model,
    ) -> AppResult<(Uuid, String)> {
        const FIELD: &str = "forkSessionId";
        let source = db::sessions::get(&self.inner.db, owner, id).await?.ok_or(AppError::NotFound("session"))?;
        if source.workspace_id != workspace.id {
            return Err(AppError::bad_input(FIELD, "the session belongs to another workspace"));
        }
        // Claude keeps the conversation in the worktree's directory, where
        // the fork (in the workspace's) would not find it.
        if source.worktree_path.is_some() {
            return Err(AppError::bad_input(FIELD, "a session with a worktree cannot be forked"));
        }
        match source.claude_session_id {
            Some(claude_session) => Ok((source.id, claude_session)),
            None => {
                Err(AppError::bad_input(FIELD, "the session has nothing to fork yet: its first run has not started"))
            }
        }
    }

    /// What runs of `owner` in `workspace` may still cost today (UTC): the
    /// least of what the workspace's and the user's daily caps leave after
    /// the runs started today; None when neither is capped.
    pub(super) async fn budget_left(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        owner: &str,
        workspace: &entity::workspace::Model,
    ) -> AppResult<Option<f64>> {
        use db::executions::{start_of_today, totals, Filter};
        let today = Filter { since: Some(start_of_today()), ..Default::default() };
        let mut left: Option<f64> = None;
        if let Some(cap) = workspace.daily_budget_usd {
            let here = Filter { workspace_id: Some(workspace.id), ..today.clone() };
            left = Some(cap - totals(db, owner, &here).await?.cost_usd);
        }
        if let Some(cap) = self.inner.user_daily_budget_usd {
            let user_left = cap - totals(db, owner, &today).await?.cost_usd;
            left = Some(left.map_or(user_left, |l| l.min(user_left)));
        }
        Ok(left)
    }

    /// The start the owner's `key` made, if it has not expired; refused
    /// when it was made with other input.
    async fn replay(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        owner: &str,
        key: &str,
        fingerprint: &str,
    ) -> AppResult<Option<Started>> {
        let Some(recorded) = db::idempotency::find(db, owner, key, self.idempotency_cutoff()).await? else {
            return Ok(None);
        };
        if recorded.request_hash != fingerprint {
            return Err(AppError::bad_input(
                "idempotencyKey",
                "this idempotency key was used for a start with other input; use a new key for a new start",
            ));
        }
        // The key goes with its execution (a foreign key's cascade).
        let missing = || AppError::Internal(format!("execution {} of an idempotency key", recorded.execution_id));
        let execution = db::executions::find(db, recorded.execution_id).await?.ok_or_else(missing)?;
        let session = db::sessions::find(db, execution.session_id).await?.ok_or_else(missing)?;
        Ok(Some(Started { execution, session, replayed: true }))
    }

    /// Keys recorded at or before this have expired.
    fn idempotency_cutoff(&self) -> chrono::DateTime<chrono::Utc> {
        let ttl = chrono::TimeDelta::from_std(self.inner.idempotency_ttl).unwrap_or(chrono::TimeDelta::MAX);
        chrono::Utc::now().checked_sub_signed(ttl).unwrap_or(chrono::DateTime::UNIX_EPOCH)
    }
}

/// The MCP servers a run in `workspace` gets: the workspace's, with those
/// of its options added (replacing the workspace's of the same name).
pub(super) fn mcp_servers(workspace: &entity::workspace::Model, options: &RunOptions) -> Vec<McpServer> {
    let configured: Vec<McpServer> =
        workspace.mcp_servers.as_ref().and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    mcp::merge(configured, options.mcp_servers.as_deref().unwrap_or_default())
}

impl Executor {
    /// Checks the MCP servers a run would get against what the operator
    /// allows now (the list may have shrunk since they were configured).
    pub(super) fn check_mcp(&self, workspace: &entity::workspace::Model, options: &RunOptions) -> AppResult<()> {
        self.inner.policy.mcp.check(&mcp_servers(workspace, options)).map_err(|(field, why)| {
            AppError::bad_input(&field, format!("{why} (of the workspace's MCP servers and the start's)"))
        })
    }
}

/// Why a start, or a queued or parked run, does not run.
pub(super) const BUDGET_SPENT: &str =
    "today's budget (of the workspace, or yours) is spent; it starts again at midnight UTC";

impl StartRequest {
    /// What makes two starts the same: a SHA-256 of everything they ask for
    /// (serde_json sorts object keys, so the order of metadata's keys does
    /// not matter).
    fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::json!({
            "workspaceId": self.workspace_id,
            "sessionId": self.session_id,
            "prompt": self.prompt,
            "options": self.options,
            "metadata": self.metadata,
            "ifBusy": format!("{:?}", self.if_busy),
            "forkSessionId": self.fork_session_id,
            "worktree": self.worktree,
            "baseRef": self.base_ref,
        });
        format!("{:x}", Sha256::digest(canonical.to_string()))
    }
}
