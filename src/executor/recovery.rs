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
            info!(count = stale.len(), "marked interrupted runs of a previous server as FAILED");
        }
        Ok(stale.len())
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
}
