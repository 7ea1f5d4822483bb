//! Mutations that manage workspaces and sessions: create, change, close,
//! delete.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};

use super::mutation::{no_nul, MAX_NAME};
use super::types::{parse_id, state, viewer, Session, Workspace};
use crate::{
    db::{
        self,
        removal::{Removal, Target},
    },
    error::{AppError, AppResult, Gql},
};

/// A directory to register as a workspace.
#[derive(InputObject)]
pub struct CreateWorkspaceInput {
    /// A name for people.
    pub name: String,
    /// An existing directory on the server (under a WORKSPACE_ROOTS entry
    /// when those are set). Stored canonicalised.
    pub path: String,
    /// Runs here ask before using a tool, unless startExecution says
    /// otherwise (default false).
    pub require_approval: Option<bool>,
    /// What runs here may cost per day (UTC, US dollars; see
    /// `Workspace.dailyBudgetUsd`). No cap when not given.
    pub daily_budget_usd: Option<f64>,
}

/// Changes to a workspace; what is not given stays as it is.
#[derive(InputObject)]
pub struct UpdateWorkspaceInput {
    pub name: Option<String>,
    /// Applies to executions started from now on.
    pub require_approval: Option<bool>,
    /// A new daily cap (US dollars); null removes it.
    pub daily_budget_usd: async_graphql::MaybeUndefined<f64>,
    /// The MCP servers its runs get, replacing those it had (an empty list
    /// removes them). Each must be allowed by the operator (see
    /// `McpServerInput`).
    pub mcp_servers: Option<Vec<super::mcp::McpServerInput>>,
    /// New sessions get a git worktree of their own unless a start says
    /// otherwise (the workspace must be at the top of a git repository).
    pub use_worktrees: Option<bool>,
}

/// What a deletion removed.
#[derive(SimpleObject)]
pub struct DeletePayload {
    /// The id of what was deleted.
    pub deleted_id: ID,
}

#[derive(Default)]
pub struct ManagementMutation;

#[Object]
impl ManagementMutation {
    /// Registers a directory as a workspace.
    async fn create_workspace(
        &self,
        ctx: &Context<'_>,
        input: CreateWorkspaceInput,
    ) -> async_graphql::Result<Workspace> {
        let state = state(ctx)?;
        let owner = &viewer(ctx)?.sub;
        let name = checked_name("name", &input.name).gql()?;
        no_nul("path", &input.path).gql()?;
        if let Some(usd) = input.daily_budget_usd {
            checked_budget(usd).gql()?;
        }
        let path = state.executor.roots().resolve_new(&input.path, owner).gql()?;
        let new = db::workspaces::NewWorkspace {
            owner,
            name,
            path: &path,
            require_approval: input.require_approval.unwrap_or(false),
            daily_budget_usd: input.daily_budget_usd,
        };
        let max = state.config.max_workspaces_per_user;
        let registered = {
            let _one_at_a_time = state.registrations.lock().await;
            db::workspaces::register(&state.db, new, max).await.gql()?
        };
        let workspace = registered
            .map_err(|refusal| match refusal {
                db::workspaces::Refusal::Duplicate => {
                    AppError::bad_input("path", "you already have a workspace on this directory")
                }
                db::workspaces::Refusal::Taken => AppError::bad_input("path", "this directory is not available"),
                db::workspaces::Refusal::TooMany => {
                    AppError::RateLimited { message: format!("at most {max} workspaces per user"), retry_after_ms: 0 }
                }
            })
            .gql()?;
        Ok(Workspace(workspace))
    }

    /// Renames a workspace, changes whether its runs ask before using a
    /// tool, sets its daily budget, or its MCP servers.
    async fn update_workspace(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateWorkspaceInput,
    ) -> async_graphql::Result<Workspace> {
        let id = parse_id(&id, "id").gql()?;
        let name = input.name.as_deref().map(|n| checked_name("name", n)).transpose().gql()?;
        let state = state(ctx)?;
        let owner = &viewer(ctx)?.sub;
        db::workspaces::get(&state.db, owner, id).await.gql()?.ok_or(AppError::NotFound("workspace")).gql()?;
        let budget = match input.daily_budget_usd {
            async_graphql::MaybeUndefined::Undefined => None,
            async_graphql::MaybeUndefined::Null => Some(None),
            async_graphql::MaybeUndefined::Value(usd) => Some(Some(checked_budget(usd).gql()?)),
        };
        let mcp_servers = match input.mcp_servers {
            Some(servers) => {
                let servers: Vec<crate::claude::mcp::McpServer> = servers.into_iter().map(Into::into).collect();
                super::mutation::check_mcp(state.executor.policy(), &servers).gql()?;
                let json = serde_json::to_value(&servers).map_err(|e| AppError::Internal(e.to_string())).gql()?;
                Some((!servers.is_empty()).then_some(json))
            }
            None => None,
        };
        db::workspaces::update(&state.db, id, name, input.require_approval, budget).await.gql()?;
        if let Some(servers) = mcp_servers {
            db::workspaces::set_mcp_servers(&state.db, id, servers).await.gql()?;
        }
        if let Some(on) = input.use_worktrees {
            db::workspaces::set_use_worktrees(&state.db, id, on).await.gql()?;
        }
        let workspace = db::workspaces::get(&state.db, owner, id).await.gql()?;
        Ok(Workspace(workspace.ok_or(AppError::NotFound("workspace")).gql()?))
    }

    /// Merges a session's worktree back: what its runs left uncommitted is
    /// committed on its branch (with `message`), the branch is merged into
    /// what the repository's main checkout has checked out, and the
    /// worktree and branch are removed. The session is then closed. A
    /// merge that conflicts is undone (CONFLICT, naming the files) and the
    /// worktree stays; refused (SESSION_BUSY) while a run is active.
    async fn merge_session_worktree(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(desc = "The commit message (default: the session's title)")] message: Option<String>,
    ) -> async_graphql::Result<Session> {
        let session = session_with_worktree(ctx, &id).await.gql()?;
        let message =
            message.unwrap_or_else(|| session.title.clone().unwrap_or_else(|| "claude-graphql session".into()));
        if message.trim().is_empty() || message.contains('\0') || message.len() > 10_000 {
            return Err(AppError::bad_input("message", "a commit message is 1 to 10000 bytes, without NUL")).gql();
        }
        with_worktree(ctx, &session, db::sessions::WORKTREE_MERGED, |w| async move {
            w.merge(&message).await.map_err(AppError::Conflict)
        })
        .await
        .gql()
    }

    /// Throws a session's worktree and branch away (what its runs did
    /// there is lost), and closes the session. Refused (SESSION_BUSY) while
    /// a run is active.
    async fn discard_session_worktree(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Session> {
        let session = session_with_worktree(ctx, &id).await.gql()?;
        with_worktree(ctx, &session, db::sessions::WORKTREE_DISCARDED, |w| async move {
            w.remove(true).await.map_err(AppError::Internal)
        })
        .await
        .gql()
    }

    /// Deletes a workspace with all its sessions, executions and messages
    /// (the directory itself is left alone). Refused with SESSION_BUSY while
    /// one of its executions is pending or running: cancel it first.
    async fn delete_workspace(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<DeletePayload> {
        let uuid = parse_id(&id, "id").gql()?;
        remove(ctx, Target::Workspace(uuid)).await.gql()?;
        Ok(DeletePayload { deleted_id: id })
    }

    /// Gives a session a title of your own.
    async fn rename_session(&self, ctx: &Context<'_>, id: ID, title: String) -> async_graphql::Result<Session> {
        let id = parse_id(&id, "id").gql()?;
        let title = checked_name("title", &title).gql()?;
        let state = state(ctx)?;
        let owner = &viewer(ctx)?.sub;
        db::sessions::get(&state.db, owner, id).await.gql()?.ok_or(AppError::NotFound("session")).gql()?;
        db::sessions::rename(&state.db, id, title).await.gql()?;
        let session = db::sessions::get(&state.db, owner, id).await.gql()?;
        Ok(Session(session.ok_or(AppError::NotFound("session")).gql()?))
    }

    /// Closes a session: what runs in it is cancelled, and new executions
    /// are refused with SESSION_CLOSED.
    async fn close_session(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Session> {
        let id = parse_id(&id, "id").gql()?;
        let session = state(ctx)?.executor.close_session(&viewer(ctx)?.sub, id).await.gql()?;
        Ok(Session(session))
    }

    /// Deletes a session with its executions and messages. Refused with
    /// SESSION_BUSY while one of its executions is pending or running:
    /// cancel it (or `closeSession`) first.
    async fn delete_session(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<DeletePayload> {
        let uuid = parse_id(&id, "id").gql()?;
        remove(ctx, Target::Session(uuid)).await.gql()?;
        Ok(DeletePayload { deleted_id: id })
    }
}

async fn remove(ctx: &Context<'_>, target: Target) -> AppResult<()> {
    let state = state(ctx).map_err(|e| AppError::Internal(e.message))?;
    let owner = &viewer(ctx).map_err(|e| AppError::Unauthenticated(e.message))?.sub;
    // Their worktrees go with them (once the rows are gone, nothing names
    // the directories any more).
    let with_worktrees = match target {
        Target::Session(id) => db::sessions::get(&state.db, owner, id).await?.into_iter().collect(),
        Target::Workspace(id) => db::sessions::with_worktrees(&state.db, id).await?,
    };
    match db::removal::remove(&state.db, owner, target).await? {
        Removal::Deleted => {
            for worktree in with_worktrees.iter().filter_map(db::sessions::worktree) {
                if let Err(why) = worktree.remove(true).await {
                    tracing::warn!(path = %worktree.path.display(), %why, "could not remove a deleted session's worktree");
                }
            }
            Ok(())
        }
        Removal::Missing => Err(AppError::NotFound(match target {
            Target::Session(_) => "session",
            Target::Workspace(_) => "workspace",
        })),
        Removal::Busy => Err(AppError::SessionBusy(match target {
            Target::Session(id) => id.to_string(),
            Target::Workspace(id) => format!("in workspace {id}"),
        })),
    }
}

/// A name or title: trimmed, 1 to MAX_NAME bytes, no NUL.
pub(super) fn checked_name<'a>(field: &str, value: &'a str) -> AppResult<&'a str> {
    no_nul(field, value)?;
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.len() > MAX_NAME {
        return Err(AppError::bad_input(field, format!("`{field}` must be 1 to {MAX_NAME} characters")));
    }
    Ok(trimmed)
}

/// The owner's workspace `id` names, if one is named (NOT_FOUND if it is
/// not the owner's).
pub(super) async fn owned_workspace_id(
    db: &sea_orm::DatabaseConnection,
    owner: &str,
    id: Option<&ID>,
) -> AppResult<Option<uuid::Uuid>> {
    let Some(id) = id else { return Ok(None) };
    let id = parse_id(id, "workspaceId")?;
    db::workspaces::get(db, owner, id).await?.ok_or(AppError::NotFound("workspace"))?;
    Ok(Some(id))
}

/// A budget is a positive amount of US dollars.
fn checked_budget(usd: f64) -> AppResult<f64> {
    if usd > 0.0 && usd.is_finite() {
        Ok(usd)
    } else {
        Err(AppError::bad_input("dailyBudgetUsd", "`dailyBudgetUsd` must be a positive amount"))
    }
}

/// The viewer's session `id`, which must have a worktree in use.
async fn session_with_worktree(ctx: &Context<'_>, id: &ID) -> AppResult<entity::session::Model> {
    let id = parse_id(id, "id")?;
    let state = state(ctx).map_err(|e| AppError::Internal(e.message))?;
    let owner = &viewer(ctx).map_err(|e| AppError::Internal(e.message))?.sub;
    let session = db::sessions::get(&state.db, owner, id).await?.ok_or(AppError::NotFound("session"))?;
    if db::sessions::worktree(&session).is_none() {
        return Err(AppError::bad_input("id", "the session has no worktree in use"));
    }
    Ok(session)
}

/// Does `what` to a session's worktree while no run can start in the
/// session, then records it as `done` (the session closed); on an error
/// the worktree and the session are as they were.
async fn with_worktree<F, Fut>(
    ctx: &Context<'_>,
    session: &entity::session::Model,
    done: &str,
    what: F,
) -> AppResult<Session>
where
    F: FnOnce(crate::worktrees::Worktree) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = AppResult<()>> + Send + 'static,
{
    let state = state(ctx).map_err(|e| AppError::Internal(e.message))?;
    let worktree = db::sessions::worktree(session).ok_or(AppError::NotFound("session"))?;
    // On a task of its own: a client that goes away mid-merge must not
    // leave git half done, or the session taken for good.
    let (db, id, done, status) = (state.db.clone(), session.id, done.to_owned(), session.status.clone());
    let task = tokio::spawn(async move {
        if !db::sessions::take_worktree(&db, id).await? {
            return Err(AppError::SessionBusy(id.to_string()));
        }
        let outcome = what(worktree).await;
        let (state_now, status) = match &outcome {
            Ok(()) => (done.as_str(), db::sessions::CLOSED),
            Err(_) => (db::sessions::WORKTREE_ACTIVE, status.as_str()),
        };
        db::sessions::release_worktree(&db, id, state_now, status).await?;
        outcome
    });
    task.await.map_err(|e| AppError::Internal(format!("a worktree task: {e}")))??;
    let now = db::sessions::find(&state.db, session.id).await?.ok_or(AppError::NotFound("session"))?;
    Ok(Session(now))
}
