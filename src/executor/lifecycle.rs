//! A run from its spawn to its stored end.

use super::*;

impl Executor {
    pub(super) fn spawn_run(
        &self,
        execution: execution::Model,
        command: ClaudeCommand,
        prompt: String,
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
        let _permit = tokio::select! {
            permit = inner.slots.clone().acquire_owned() => permit.ok(),
            _ = stop.token().cancelled() => None,
        };
        drop(pending);
        if _permit.is_none() {
            if stop.reason() == Some(StopReason::Shutdown) {
                // It never started: it waits in its session's queue for
                // the next server (this one, restarted, or another).
                match db::queue::requeue(&inner.db, execution.id, execution.session_id, None).await {
                    Ok((true, _)) => return None,
                    Ok((false, _)) => {}
                    Err(e) => warn!(error = %e, "could not put the execution back in its queue"),
                }
            }
            let outcome = stop_outcome(stop.reason());
            return self.finish(execution, publisher, outcome_finish(&outcome, None, None, 0)).await;
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
        info!(status = finish.status.as_str(), code = ?finish.error_code, exit_code = ?end.exit_code, messages = recorded.message_count, "claude finished");
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

    /// Runs an execution taken from its session's queue by this server.
    pub(super) fn launch(&self, execution: execution::Model) {
        let this = self.clone();
        // Not awaited by the caller: a run's end launches the next run,
        // whose end may launch another.
        self.inner.tracker.spawn(async move {
            let publisher = this.inner.broker.open(execution.id);
            // Subscribers that waited for it to be taken.
            this.inner.broker.wakeups().wake(execution.id);
            match this.queued_command(&execution).await {
                Ok(command) => {
                    let prompt = execution.prompt.clone();
                    this.spawn_run(execution, command, prompt, publisher);
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

    /// The command of a queued execution, from what its start stored.
    async fn queued_command(&self, execution: &execution::Model) -> AppResult<ClaudeCommand> {
        let workspace = db::workspaces::find(&self.inner.db, execution.workspace_id)
            .await?
            .ok_or(AppError::NotFound("workspace"))?;
        self.inner.roots.check_registered(&workspace.path, &workspace.owner)?;
        let options = serde_json::from_value(execution.options.clone())
            .map_err(|e| AppError::Internal(format!("the stored options: {e}")))?;
        Ok(self.command_for(execution, &workspace, options))
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
