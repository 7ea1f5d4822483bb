//! Leases, and the runs a stopped or gone server left unfinished.

use super::lifecycle::failure;
use super::*;

impl Executor {
    /// Marks runs this replica left unfinished (it stopped or crashed) as
    /// FAILED / INTERRUPTED, freeing their sessions.
    pub async fn recover(&self) -> AppResult<usize> {
        let stale = db::executions::unfinished(&self.inner.db, &self.inner.replica_id).await?;
        for e in &stale {
            self.finish_abandoned(e).await?;
        }
        if !stale.is_empty() {
            info!(count = stale.len(), "finished or queued again the runs a previous server left");
        }
        self.take_waiting().await?;
        // Parked runs resume at their time, on whichever server is first.
        for (id, at) in db::executions::parked(&self.inner.db).await? {
            self.resume_at(id, at.unwrap_or_else(chrono::Utc::now));
        }
        Ok(stale.len())
    }

    /// Resumes the parked executions that are due (their server stopped,
    /// or parked them on another replica).
    pub async fn resume_overdue(&self) -> AppResult<usize> {
        if self.inner.shutdown.is_cancelled() {
            return Ok(0);
        }
        let now = chrono::Utc::now();
        let mut resumed = 0;
        for (id, at) in db::executions::parked(&self.inner.db).await? {
            if at.is_none_or(|at| at <= now) && self.resume_due(id).await? {
                resumed += 1;
            }
        }
        Ok(resumed)
    }

    /// Launches the next queued execution of every free session (a server
    /// stopped before it could, or a queued start raced a run's end).
    pub async fn take_waiting(&self) -> AppResult<usize> {
        // A stopping server leaves them to the next one.
        if self.inner.shutdown.is_cancelled() {
            return Ok(0);
        }
        let sessions = db::queue::waiting_sessions(&self.inner.db).await?;
        let mut launched = 0;
        for session_id in sessions {
            // Another server may take it first: then there is nothing here.
            if let Some(next) = db::queue::promote(&self.inner.db, session_id, &self.inner.replica_id).await? {
                info!(execution_id = %next.id, "took a queued execution of a free session");
                self.launch(next);
                launched += 1;
            }
        }
        Ok(launched)
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
                if let Err(e) = self.take_waiting().await {
                    warn!(error = %e, "could not take the queued executions of free sessions");
                }
                if let Err(e) = self.resume_overdue().await {
                    warn!(error = %e, "could not resume the parked executions that are due");
                }
                if let Err(e) = db::attachments::forget_expired(&self.inner.db, chrono::Utc::now()).await {
                    warn!(error = %e, "could not delete the attachments past their time");
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
    /// job, the whole tree if the server was killed); one that never
    /// started goes back to its session's queue instead. Either way this
    /// server takes the session's next execution.
    async fn finish_abandoned(&self, e: &execution::Model) -> AppResult<()> {
        let db = &self.inner.db;
        let me = Some(self.inner.replica_id.as_str());
        if e.started_at.is_none() {
            if let (true, next) = db::queue::requeue(db, e, me).await? {
                if let Some(next) = next {
                    self.launch(next);
                }
                return Ok(());
            }
        }
        crate::claude::sandbox::kill_leftovers(&e.id.to_string()).await;
        let finish = failure(&ClaudeError::Interrupted, None);
        if let Some(next) = db::executions::finish(db, e.id, e.session_id, finish, me).await?.and_then(|f| f.next) {
            self.launch(next);
        }
        Ok(())
    }
}
