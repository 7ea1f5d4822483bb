//! `Schedule`.

use async_graphql::{Context, Object, ID};
use chrono::{DateTime, Utc};
use entity::schedule;

use super::{state, Execution, Json, Session, Workspace};
use crate::{db, error::Gql};

pub struct Schedule(pub schedule::Model);

/// A prompt started by a cron pattern. Each occurrence is an execution
/// whose `metadata` is `{"scheduleId", "occurrence"}`; with several
/// servers, exactly one starts it.
#[Object]
impl Schedule {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Five fields (minute, hour, day of month, month, weekday), or six with
    /// seconds first.
    async fn cron(&self) -> &str {
        &self.0.cron
    }

    /// The IANA zone the pattern is read in.
    async fn timezone(&self) -> &str {
        &self.0.timezone
    }

    async fn prompt(&self) -> &str {
        &self.0.prompt
    }

    /// The start options (model, maxTurns, ...), as `startExecution` stores
    /// them.
    async fn options(&self) -> Json {
        Json(crate::claude::mcp::redacted_options(&self.0.options))
    }

    /// Every occurrence continues one session (queued behind the previous
    /// occurrence if that still runs); else each starts a new session.
    async fn same_session(&self) -> bool {
        self.0.same_session
    }

    async fn enabled(&self) -> bool {
        self.0.enabled
    }

    /// The next occurrence; null while disabled.
    async fn next_run_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_run_at
    }

    async fn last_run_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_run_at
    }

    /// Why the last occurrence started nothing (e.g. BUDGET_EXCEEDED).
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }

    /// The execution the latest successful occurrence started.
    async fn last_execution(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Execution>> {
        let Some(id) = self.0.last_execution_id else { return Ok(None) };
        Ok(db::executions::get(&state(ctx)?.db, &self.0.owner, id).await.gql()?.map(Execution))
    }

    /// The session a same-session schedule continues.
    async fn session(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Session>> {
        let Some(id) = self.0.session_id else { return Ok(None) };
        Ok(db::sessions::get(&state(ctx)?.db, &self.0.owner, id).await.gql()?.map(Session))
    }

    async fn workspace(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Workspace>> {
        Ok(db::workspaces::get(&state(ctx)?.db, &self.0.owner, self.0.workspace_id).await.gql()?.map(Workspace))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
