//! `Session`.

use async_graphql::{connection::Connection, Context, Enum, Object, ID};
use chrono::{DateTime, Utc};
use entity::session;

use super::{page, page_cost, Execution, PageArgs, Workspace};
use crate::{
    db,
    error::Gql,
    graphql::loaders::{load_error, loaders},
};

/// Whether a session takes new executions.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SessionStatus {
    /// Accepts new executions.
    Active,
    /// Closed: new executions are refused with SESSION_CLOSED.
    Closed,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Active => db::sessions::ACTIVE,
            SessionStatus::Closed => db::sessions::CLOSED,
        }
    }
}

pub struct Session(pub session::Model);

/// Where a session's worktree is.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WorktreeState {
    /// Its runs work there.
    Active,
    /// Merged back (`mergeSessionWorktree`) and removed.
    Merged,
    /// Thrown away (`discardSessionWorktree`).
    Discarded,
}

/// A session's own git worktree and branch.
#[derive(async_graphql::SimpleObject)]
pub struct SessionWorktree {
    /// The directory its runs work in (made by its first run).
    pub path: String,
    /// `claude/…`.
    pub branch: String,
    /// The commit it started from.
    pub base_commit: String,
    pub state: WorktreeState,
}

/// A conversation with Claude: executions that continue one another
/// (`--resume`), one at a time.
#[Object]
impl Session {
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn workspace(&self, ctx: &Context<'_>) -> async_graphql::Result<Workspace> {
        let found = loaders(ctx)?.workspaces.load_one(self.0.workspace_id).await.map_err(load_error).gql()?;
        found.map(Workspace).ok_or(crate::error::AppError::NotFound("workspace")).gql()
    }

    /// Its first prompt's first line, until renamed (`renameSession`).
    async fn title(&self) -> &str {
        self.0.title.as_deref().unwrap_or_default()
    }

    async fn status(&self) -> SessionStatus {
        if self.0.status == db::sessions::CLOSED {
            SessionStatus::Closed
        } else {
            SessionStatus::Active
        }
    }

    /// Claude's own session id, reported by the first run; later runs
    /// continue it with `--resume`.
    async fn claude_session_id(&self) -> Option<&str> {
        self.0.claude_session_id.as_deref()
    }

    /// The session this one was forked from (`startExecution` with
    /// `forkSessionId`), while it exists.
    async fn forked_from(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Session>> {
        let Some(id) = self.0.forked_from_id else { return Ok(None) };
        Ok(loaders(ctx)?.sessions.load_one(id).await.map_err(load_error).gql()?.map(Session))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn last_activity_at(&self) -> DateTime<Utc> {
        self.0.last_activity_at
    }

    /// Messages stored across all the session's executions.
    async fn message_count(&self) -> i64 {
        self.0.message_count
    }

    async fn total_cost_usd(&self) -> f64 {
        self.0.total_cost_usd
    }

    /// The execution that is pending or running in this session, if any.
    async fn active_execution(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Execution>> {
        let Some(id) = self.0.active_execution_id else { return Ok(None) };
        Ok(loaders(ctx)?.executions.load_one(id).await.map_err(load_error).gql()?.map(Execution))
    }

    /// Its git worktree, if it was started with one.
    async fn worktree(&self) -> Option<SessionWorktree> {
        let s = &self.0;
        Some(SessionWorktree {
            path: s.worktree_path.clone()?,
            branch: s.worktree_branch.clone()?,
            base_commit: s.worktree_base.clone()?,
            state: match s.worktree_state.as_deref() {
                Some(db::sessions::WORKTREE_MERGED) => WorktreeState::Merged,
                Some(db::sessions::WORKTREE_DISCARDED) => WorktreeState::Discarded,
                _ => WorktreeState::Active,
            },
        })
    }

    /// What its runs changed in the workspace, together: in a repository,
    /// from the snapshot before its first run to the one after its last;
    /// else their Write and Edit results one after another. Null when none
    /// changed anything. (It runs git: it costs 100 in query complexity.)
    #[graphql(complexity = "100 + child_complexity")]
    async fn changes(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<super::changes::Changes>> {
        let state = super::state(ctx)?;
        let runs = db::executions::changes_of_session(&state.db, self.0.id).await.gql()?;
        let runs: Vec<crate::changes::Changes> = runs.iter().filter_map(|c| super::changes::stored(Some(c))).collect();
        let (Some(first), Some(last)) = (runs.first(), runs.last()) else { return Ok(None) };
        if let (Some(base), Some(head)) = (&first.base, &last.head) {
            if runs.iter().all(|r| r.source == "git") {
                let workspace = db::workspaces::find(&state.db, self.0.workspace_id).await.gql()?;
                let path = workspace.map(|w| std::path::PathBuf::from(w.path));
                if let Some(path) = path {
                    if let Some(changes) = crate::changes::between(&path, base, head).await {
                        return Ok(Some(changes.into()));
                    }
                }
            }
        }
        Ok(crate::changes::concatenated(runs).map(Into::into))
    }

    /// The session's executions, newest first.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn executions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Execution>> {
        let args = PageArgs::parse(first, after.as_deref()).gql()?;
        let rows = loaders(ctx)?.execution_pages.load_one((self.0.id, args.page(None))).await;
        let rows = rows.map_err(load_error).gql()?.unwrap_or_default();
        Ok(page(rows, args, |e| e.id, Execution))
    }
}
