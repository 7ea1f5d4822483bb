//! `Workspace`.

use async_graphql::{connection::Connection, Context, Object, ID};
use chrono::{DateTime, Utc};
use entity::workspace;

use super::{page, page_cost, PageArgs, Session, SessionStatus};
use crate::{
    error::Gql,
    graphql::loaders::{load_error, loaders},
};

pub struct Workspace(pub workspace::Model);

/// A named directory in which Claude runs.
#[Object]
impl Workspace {
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The canonical absolute path `claude` runs in.
    async fn path(&self) -> &str {
        &self.0.path
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Runs here ask before using a tool unless startExecution says otherwise.
    async fn require_approval(&self) -> bool {
        self.0.require_approval
    }

    /// What runs here may cost per day (UTC, US dollars), if capped: a
    /// start is refused with BUDGET_EXCEEDED once the runs started today
    /// cost this much, and a run is started with at most what is left
    /// (`--max-budget-usd`), so it stops (BUDGET_EXCEEDED) when that is
    /// spent. Costs are the CLI's estimates, counted when a run ends.
    async fn daily_budget_usd(&self) -> Option<f64> {
        self.0.daily_budget_usd
    }

    /// Whether new sessions get a git worktree of their own by default.
    async fn use_worktrees(&self) -> bool {
        self.0.use_worktrees
    }

    /// The MCP servers its runs get (a start can add more, or replace one
    /// by name). Environment and header values are not shown.
    async fn mcp_servers(&self) -> Vec<crate::graphql::mcp::McpServerConfig> {
        crate::graphql::mcp::shown(self.0.mcp_servers.as_ref())
    }

    /// What the runs started here today (UTC) cost, by the CLI's estimates
    /// (a run counts once it has ended).
    #[graphql(complexity = 10)]
    async fn spent_today_usd(&self, ctx: &Context<'_>) -> async_graphql::Result<f64> {
        let filter = crate::db::executions::Filter {
            workspace_id: Some(self.0.id),
            since: Some(crate::db::executions::start_of_today()),
            ..Default::default()
        };
        let state = super::state(ctx)?;
        Ok(crate::db::executions::totals(&state.db, &self.0.owner, &filter).await.gql()?.cost_usd)
    }

    /// What the workspace's executions added up to.
    #[graphql(complexity = 10)]
    async fn usage(&self, ctx: &Context<'_>) -> async_graphql::Result<super::Usage> {
        let filter = crate::db::executions::Filter { workspace_id: Some(self.0.id), ..Default::default() };
        let state = super::state(ctx)?;
        Ok(crate::db::executions::totals(&state.db, &self.0.owner, &filter).await.gql()?.into())
    }

    /// The workspace's sessions, newest first; with `search`, only those
    /// whose title contains it (ignoring case).
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    pub async fn sessions(
        &self,
        ctx: &Context<'_>,
        status: Option<SessionStatus>,
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Session>> {
        let args = PageArgs::parse(first, after.as_deref()).gql()?;
        if let Some(search) = search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            if search.len() > 200 || search.contains('\0') {
                return Err(crate::error::AppError::bad_input("search", "`search` is at most 200 characters")).gql();
            }
            let status = status.map(SessionStatus::as_str);
            let rows =
                crate::db::sessions::search(&super::state(ctx)?.db, self.0.id, status, search, args.limit, args.before);
            return Ok(page(rows.await.gql()?, args, |s| s.id, Session));
        }
        let key = (self.0.id, args.page(status.map(SessionStatus::as_str)));
        let rows = loaders(ctx)?.session_pages.load_one(key).await.map_err(load_error).gql()?.unwrap_or_default();
        Ok(page(rows, args, |s| s.id, Session))
    }
}
