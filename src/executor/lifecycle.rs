//! A run from its spawn to its stored end.

use super::*;

impl Executor {
    pub(super) fn spawn_run(
        &self,
        execution: execution::Model,
        command: ClaudeCommand,
        prompt: UserContent,
        publisher: Publisher,
    ) {
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
                let label = status.map_or("UNCHANGED", db::executions::Status::as_str);
                metrics::counter!(m::EXECUTIONS_FINISHED, "status" => label).increment(1);
                this.lock_runs().remove(&execution.id);
                handle.done.cancel();
            }
            .instrument(span),
        );
    }

    /// One execution from queue to final record.
    async fn run(
        &self,
        execution: &execution::Model,
        launch: Launch,
        stop: &StopHandle,
    ) -> Option<db::executions::Status> {
        let Launch { command, prompt, publisher, pending, commands, commands_tx } = launch;
        let inner = &self.inner;
        // Wait for a slot (or a stop while waiting).
        // A stopped run does not start, even with a slot free.
        let _permit = tokio::select! {
            biased;
            _ = stop.token().cancelled() => None,
            permit = inner.slots.clone().acquire_owned() => permit.ok(),
        };
        drop(pending);
        if _permit.is_none() {
            if stop.reason() == Some(StopReason::Shutdown) {
                // It never started: it waits in its session's queue for
                // the next server (this one, restarted, or another).
                match db::queue::requeue(&inner.db, execution, None).await {
                    Ok((true, _)) => return None,
                    Ok((false, _)) => {}
                    Err(e) => warn!(error = %e, "could not put the execution back in its queue"),
                }
            }
            let outcome = stop_outcome(stop.reason());
            return self.finish(execution, publisher, outcome_finish(&outcome, None, None, 0)).await;
        }
        if let Some(until) = self.account_held().await {
            // The account is at its limit: starting now would hit it again.
            info!(%until, "the account is held; parking the run until then");
            return self.park(execution, publisher, until, execution.message_count, None).await;
        }
        match db::executions::mark_running(&inner.db, execution.id).await {
            Ok(true) => {}
            // Finished by someone else meanwhile.
            Ok(false) => return None,
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
            status: db::executions::Status::Running,
            error: None,
            after_seq: execution.message_count,
            renders: Default::default(),
        }));
        info!(bin = %command.bin.display(), resume = ?command.resume, "starting claude");
        let started = std::time::Instant::now();

        // Where this run's messages start in the session's sequence.
        let session_base = match db::sessions::find(&inner.db, execution.session_id).await {
            Ok(Some(session)) => {
                // A worktree is made by its session's first run, here.
                if let Some(worktree) = db::sessions::worktree(&session) {
                    if let Err(reason) = worktree.ensure().await {
                        let bin = command.bin.display().to_string();
                        return self
                            .finish(execution, publisher, failure(&ClaudeError::SpawnFailed { bin, reason }, None))
                            .await;
                    }
                }
                session.message_count
            }
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
            seq_base: execution.message_count,
            max_turns: command.options.max_turns,
            commands: commands_tx,
            broker: inner.broker.clone(),
            permission_timeout: inner.permission_timeout,
            stall_after: inner.stall_after,
        };
        let store_stop = stop.clone();
        let recording = tokio::spawn(recorder.run(rx, move || store_stop.stop(StopReason::Shutdown)));
        // The workspace as the run found it (a resumed parked run compares
        // with what it found when it resumed).
        let before = match inner.track_changes {
            true => crate::changes::snapshot(&command.cwd).await,
            false => None,
        };
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
        if inner.track_changes {
            self.record_changes(execution.id, &command.cwd, before, &recorded.file_edits).await;
        }
        let finish = if recorded.store_failed {
            failure(&ClaudeError::StorageFailed("messages could not be stored; the run was stopped".into()), Some(&end))
        } else {
            outcome_finish(&end.outcome, Some(&end), end.result.as_ref(), recorded.num_turns)
        };
        let parked_until = if recorded.store_failed { None } else { self.park_until(execution, &end) };
        info!(status = finish.status.as_str(), code = ?finish.error_code, exit_code = ?end.exit_code, messages = recorded.message_count, ?parked_until, "claude finished");
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
        if let Some(until) = parked_until {
            let reason = finish.error_message.as_deref().unwrap_or("rate limited");
            if let Err(e) = db::holds::hold(&inner.db, until, reason).await {
                warn!(error = %e, "could not hold the account's other runs");
            }
            let cost = end.result.as_ref().and_then(|r| r.total_cost_usd);
            return self.park(execution, publisher, until, recorded.message_count, cost).await;
        }
        self.finish(execution, publisher, finish).await
    }

    /// Stores what a run changed: against the snapshot `before` (taken in a
    /// repository), else as its Write and Edit results say.
    async fn record_changes(&self, id: Uuid, cwd: &Path, before: Option<String>, edits: &[serde_json::Value]) {
        let changes = match before {
            Some(base) => match crate::changes::snapshot(cwd).await {
                Some(head) => crate::changes::between(cwd, &base, &head).await,
                None => None,
            },
            None => crate::changes::from_tool_results(cwd, edits),
        };
        let Some(changes) = changes else { return };
        let json = serde_json::to_value(&changes).unwrap_or_default();
        if let Err(e) = db::executions::set_changes(&self.inner.db, id, json).await {
            warn!(error = %e, "could not store what the run changed");
        }
    }

    /// Until when a run that ended as `end` is parked, if it is: it hit a
    /// usage or rate limit, and was not parked too often already.
    fn park_until(&self, execution: &execution::Model, end: &RunEnd) -> Option<chrono::DateTime<chrono::Utc>> {
        let parking = &self.inner.parking;
        let Outcome::Failed(ClaudeError::RateLimited(message)) = &end.outcome else { return None };
        if !parking.enabled || execution.park_count >= MAX_PARKS {
            return None;
        }
        let now = chrono::Utc::now();
        let resets = end.limit_resets_at.or_else(|| crate::claude::limits::from_text(message, now, parking.zone));
        let fallback =
            now + chrono::TimeDelta::from_std(parking.fallback_wait).unwrap_or(chrono::TimeDelta::minutes(5));
        Some(resets.filter(|at| *at > now).unwrap_or(fallback))
    }

    /// Until when the account's runs wait, if parking is on and it is held.
    async fn account_held(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        if !self.inner.parking.enabled {
            return None;
        }
        match db::holds::held_until(&self.inner.db, chrono::Utc::now()).await {
            Ok(until) => until,
            Err(e) => {
                warn!(error = %e, "could not read the account's hold");
                None
            }
        }
    }

    /// Parks the execution (SCHEDULED) until `until`, and sets the timer
    /// that resumes it; subscribers see the status, and wait on.
    async fn park(
        &self,
        execution: &execution::Model,
        publisher: Publisher,
        until: chrono::DateTime<chrono::Utc>,
        stored: i64,
        cost: Option<f64>,
    ) -> Option<db::executions::Status> {
        match db::executions::park(&self.inner.db, execution.id, execution.session_id, until, cost).await {
            Ok(true) => {}
            // Finished (cancelled) meanwhile.
            Ok(false) => return None,
            Err(e) => {
                warn!(error = %e, "could not park the execution");
                let finish = failure(&ClaudeError::StorageFailed("the store is unavailable".into()), None);
                return self.finish(execution, publisher, finish).await;
            }
        }
        publisher.publish(Event::Status(StatusEvent {
            execution_id: execution.id,
            status: db::executions::Status::Scheduled,
            error: None,
            after_seq: stored,
            renders: Default::default(),
        }));
        self.resume_at(execution.id, until);
        Some(db::executions::Status::Scheduled)
    }

    /// Resumes a parked execution at `at`, unless the server stops first
    /// (then whichever server finds it due resumes it).
    pub(super) fn resume_at(&self, id: Uuid, at: chrono::DateTime<chrono::Utc>) {
        let this = self.clone();
        let wait = (at - chrono::Utc::now()).to_std().unwrap_or_default();
        self.inner.tracker.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = this.inner.shutdown.cancelled() => return,
            }
            if let Err(e) = this.resume_due(id).await {
                warn!(execution_id = %id, error = %e, "could not resume a parked execution");
            }
        });
    }

    /// Takes a parked execution that is due, and runs it on this server.
    pub(super) async fn resume_due(&self, id: Uuid) -> AppResult<bool> {
        if self.inner.shutdown.is_cancelled() {
            return Ok(false);
        }
        let now = chrono::Utc::now();
        let Some(execution) = db::executions::take_due(&self.inner.db, id, &self.inner.replica_id, now).await? else {
            return Ok(false);
        };
        info!(execution_id = %id, resume = ?execution.resumed_from, "resuming a parked execution");
        self.launch(execution);
        Ok(true)
    }

    /// Runs an execution this server took from its session's queue, or
    /// that it resumes after it was parked.
    pub(super) fn launch(&self, execution: execution::Model) {
        let this = self.clone();
        // Not awaited by the caller: a run's end launches the next run,
        // whose end may launch another.
        self.inner.tracker.spawn(async move {
            let publisher = this.inner.broker.open_after(execution.id, execution.message_count);
            // Subscribers that waited for it to be taken.
            this.inner.broker.wakeups().wake(execution.id);
            match this.queued_command(&execution).await {
                Ok(command) => {
                    // A parked run that had started goes on where it
                    // stopped; one that never did starts with its prompt.
                    let prompt = match execution.started_at {
                        Some(_) => Ok(UserContent::Text(this.inner.parking.resume_prompt.clone())),
                        None => this.first_prompt(&execution).await,
                    };
                    match prompt {
                        Ok(prompt) => this.spawn_run(execution, command, prompt, publisher),
                        Err(e) => {
                            let bin = this.inner.claude_bin.display().to_string();
                            let finish = failure(&ClaudeError::SpawnFailed { bin, reason: e.to_string() }, None);
                            this.finish(&execution, publisher, finish).await;
                        }
                    }
                }
                Err(AppError::BudgetExceeded(why)) => {
                    this.finish(&execution, publisher, failure(&ClaudeError::BudgetExceeded(why), None)).await;
                }
                Err(e) => {
                    warn!(execution_id = %execution.id, error = %e, "could not launch a queued execution");
                    let bin = this.inner.claude_bin.display().to_string();
                    let finish = failure(&ClaudeError::SpawnFailed { bin, reason: e.to_string() }, None);
                    this.finish(&execution, publisher, finish).await;
                }
            }
        });
    }

    /// What a queued execution's first message says, from what its start
    /// stored (its attachments read now).
    async fn first_prompt(&self, execution: &execution::Model) -> AppResult<UserContent> {
        let prompt = Prompt::of_execution(&execution.prompt, execution.content.as_ref())?;
        crate::attachments::resolve(&self.inner.db, None, &prompt).await
    }

    /// The command of a queued execution, from what its start stored.
    async fn queued_command(&self, execution: &execution::Model) -> AppResult<ClaudeCommand> {
        let workspace = db::workspaces::find(&self.inner.db, execution.workspace_id)
            .await?
            .ok_or(AppError::NotFound("workspace"))?;
        self.inner.roots.check_registered(&workspace.path, &workspace.owner)?;
        let session =
            db::sessions::find(&self.inner.db, execution.session_id).await?.ok_or(AppError::NotFound("session"))?;
        let options = serde_json::from_value(execution.options.clone())
            .map_err(|e| AppError::Internal(format!("the stored options: {e}")))?;
        self.check_mcp(&workspace, &options)?;
        let budget_left = self.budget_left(&self.inner.db, &workspace.owner, &workspace).await?;
        if budget_left.is_some_and(|left| left <= 0.0) {
            return Err(AppError::BudgetExceeded(super::admission::BUDGET_SPENT.into()));
        }
        Ok(self.command_for(execution, &workspace, &session, options, budget_left))
    }

    /// Stores the final state, then sends the terminal event (in that order:
    /// a subscriber that sees the event finds the row final).
    async fn finish(
        &self,
        execution: &execution::Model,
        publisher: Publisher,
        finish: Finish,
    ) -> Option<db::executions::Status> {
        let final_status = finish.status;
        let status = StatusEvent {
            execution_id: execution.id,
            // A final status is delivered whatever a subscriber has.
            after_seq: 0,
            status: finish.status,
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
            // A stopping server leaves the session's queue to the next one.
            let take_next = (!self.inner.shutdown.is_cancelled()).then_some(self.inner.replica_id.as_str());
            let stored =
                db::executions::finish(&self.inner.db, execution.id, execution.session_id, finish.clone(), take_next);
            match stored.await {
                Ok(Some(finished)) => {
                    for request in finished.cancelled {
                        publisher.publish(Event::Permission(crate::events::PermissionEvent {
                            execution_id: execution.id,
                            request: Box::new(request),
                            renders: Default::default(),
                        }));
                    }
                    publisher.publish(Event::Status(status));
                    if let Some(next) = finished.next {
                        self.launch(next);
                    }
                    return Some(final_status);
                }
                Ok(None) => {
                    // Someone else finished it (a cancel of a run whose
                    // server seemed gone): say what the store says.
                    if let Some(stored) = terminal_status(&self.inner.db, execution.id).await {
                        publisher.publish(Event::Status(stored));
                    }
                    return None;
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
        Some(final_status)
    }
}

fn stop_outcome(reason: Option<StopReason>) -> Outcome {
    match reason {
        Some(StopReason::Cancel) => Outcome::Cancelled,
        _ => Outcome::Failed(ClaudeError::Interrupted),
    }
}

pub(super) fn failure(error: &ClaudeError, end: Option<&RunEnd>) -> Finish {
    Finish {
        status: db::executions::Status::Failed,
        error_code: Some(error.code().into()),
        error_message: Some(error.to_string()),
        exit_code: end.and_then(|e| e.exit_code),
        ..Default::default()
    }
}

/// The stored form of a run's end.
pub(super) fn outcome_finish(
    outcome: &Outcome,
    end: Option<&RunEnd>,
    result: Option<&crate::claude::ResultLine>,
    turns_seen: i32,
) -> Finish {
    let mut finish = match outcome {
        Outcome::Completed => Finish { status: db::executions::Status::Completed, ..Default::default() },
        Outcome::Cancelled => Finish {
            status: db::executions::Status::Cancelled,
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
