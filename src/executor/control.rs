//! What clients do to runs: cancel, interrupt, follow-up messages and
//! permission answers, sent to this server or forwarded by another.

use super::lifecycle::outcome_finish;
use super::*;
use crate::claude::command::PermissionDecision;

impl Executor {
    /// Cancels a pending or running execution; a finished one is returned
    /// as it is.
    pub async fn cancel(&self, owner: &str, id: Uuid) -> AppResult<execution::Model> {
        let db = &self.inner.db;
        let execution = db::executions::get(db, owner, id).await?.ok_or(AppError::NotFound("execution"))?;
        if execution.status.is_terminal() {
            return Ok(execution);
        }
        if db::queue::is_queued(&execution) && db::queue::cancel(db, id).await? {
            // Its subscribers wait for it to be taken: wake them.
            self.inner.broker.wakeups().wake(id);
            return Ok(db::executions::find(db, id).await?.unwrap_or(execution));
        }
        // Taken from the queue meanwhile, if it was queued.
        let execution = db::executions::find(db, id).await?.unwrap_or(execution);
        if execution.status == db::executions::Status::Scheduled {
            // Parked: no process to stop, wherever it was parked (unless a
            // server resumes it meanwhile: then it is stopped as a run).
            let mut finish = outcome_finish(&Outcome::Cancelled, None, None, 0);
            finish.from = Some(db::executions::Status::Scheduled);
            let me = Some(self.inner.replica_id.as_str());
            if let Some(finished) = db::executions::finish(db, id, execution.session_id, finish, me).await? {
                self.inner.broker.wakeups().wake(id);
                if let Some(next) = finished.next {
                    self.launch(next);
                }
                return Ok(db::executions::find(db, id).await?.unwrap_or(execution));
            }
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
                        if now.as_ref().is_some_and(|e| e.status.is_terminal()) {
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
                let me = Some(self.inner.replica_id.as_str());
                if let Some(next) =
                    db::executions::finish(db, id, execution.session_id, finish, me).await?.and_then(|f| f.next)
                {
                    self.launch(next);
                }
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
        for queued in db::queue::cancel_all(db, id).await? {
            self.inner.broker.wakeups().wake(queued);
        }
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
        if execution.status != db::executions::Status::Running {
            return Err(AppError::bad_input(
                "id",
                format!("the execution is {}, not RUNNING", execution.status.as_str()),
            ));
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
    pub async fn send_message(&self, owner: &str, id: Uuid, prompt: Prompt, now: bool) -> AppResult<Uuid> {
        let db = &self.inner.db;
        let execution = db::executions::get(db, owner, id).await?.ok_or(AppError::NotFound("execution"))?;
        let not_running = || AppError::bad_input("executionId", "the execution is not running");
        if execution.status != db::executions::Status::Running {
            return Err(not_running());
        }
        crate::attachments::check(db, owner, &prompt).await?;
        let uuid = Uuid::new_v4();
        let handle = self.lock_runs().get(&id).cloned();
        let Some(handle) = handle else {
            // Another replica runs it: the message travels with the signal
            // (its answer does not come back, so this is best effort), its
            // attachments by id.
            let message = db::signals::ForwardedMessage { execution_id: id, message_id: uuid, text: prompt, now };
            if db::signals::forward_message(db, &message).await.map_err(db::DbError::from)?.is_none() {
                return Err(AppError::bad_input(
                    "text",
                    "too long to forward to the server running the execution; send it there",
                ));
            }
            return Ok(uuid);
        };
        let content = crate::attachments::resolve(db, Some(owner), &prompt).await?;
        let (reply, written) = tokio::sync::oneshot::channel();
        let command = RunCommand::Message { content, uuid, now, reply: Some(reply) };
        handle.commands.send(command).await.map_err(|_| not_running())?;
        written.await.map_err(|_| not_running())?.map_err(|why| AppError::bad_input("executionId", why))
    }

    /// Writes a message that came from another replica, if this server
    /// runs the execution.
    pub async fn deliver_message(&self, execution_id: Uuid, uuid: Uuid, prompt: Prompt, now: bool) {
        let handle = self.lock_runs().get(&execution_id).cloned();
        let Some(handle) = handle else { return };
        // The sending server checked that its attachments are the owner's.
        match crate::attachments::resolve(&self.inner.db, None, &prompt).await {
            Ok(content) => {
                let _ = handle.commands.send(RunCommand::Message { content, uuid, now, reply: None }).await;
            }
            Err(e) => warn!(%execution_id, error = %e, "could not read the attachments of a forwarded message"),
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
        let decision = if answer.allow {
            let input = answer.updated_input.unwrap_or_else(|| request.input.clone());
            let mut permissions = Vec::new();
            if let Some(index) = answer.apply_suggestion {
                let suggestion = request.suggestions.as_ref().and_then(|s| s.get(index)).cloned();
                let suggestion =
                    suggestion.ok_or_else(|| AppError::bad_input("applySuggestion", "no suggestion has that index"))?;
                let workspace = self.workspace_of(owner, request.execution_id).await?;
                let suggestion =
                    policy.check_suggestion(&suggestion, Path::new(&workspace.path)).map_err(AppError::Forbidden)?;
                permissions.push(suggestion);
            }
            PermissionDecision::Allow { input, permissions }
        } else {
            PermissionDecision::deny(answer.message.as_deref().unwrap_or("The user denied this."))
        };
        let response = decision.to_json();
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
}
