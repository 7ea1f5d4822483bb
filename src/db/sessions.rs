//! Sessions: a workspace's conversations with Claude.

use chrono::Utc;
use entity::session;
use sea_orm::{prelude::*, ActiveValue::Set, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::DbResult;

pub const ACTIVE: &str = "ACTIVE";
pub const CLOSED: &str = "CLOSED";

/// A session's worktree: in use, merged back, or thrown away.
pub const WORKTREE_ACTIVE: &str = "ACTIVE";
pub const WORKTREE_MERGED: &str = "MERGED";
pub const WORKTREE_DISCARDED: &str = "DISCARDED";
/// Being merged or discarded.
const WORKTREE_BUSY: &str = "BUSY";

/// The longest title a session gets from its first prompt.
pub const TITLE_CHARS: usize = 80;

/// A new ACTIVE session, already claimed by `execution_id`, titled by the
/// first line of its first prompt.
pub async fn create(
    db: &impl ConnectionTrait,
    id: Uuid,
    workspace_id: Uuid,
    execution_id: Uuid,
    prompt: &str,
    forked_from: Option<Uuid>,
    worktree: Option<&crate::worktrees::Worktree>,
) -> DbResult<session::Model> {
    let now = Utc::now();
    let model = session::ActiveModel {
        id: Set(id),
        workspace_id: Set(workspace_id),
        status: Set(ACTIVE.into()),
        claude_session_id: Set(None),
        active_execution_id: Set(Some(execution_id)),
        message_count: Set(0),
        total_cost_usd: Set(0.0),
        created_at: Set(now),
        last_activity_at: Set(now),
        title: Set(Some(title_of(prompt))),
        forked_from_id: Set(forked_from),
        worktree_path: Set(worktree.map(|w| w.path.display().to_string())),
        worktree_branch: Set(worktree.map(|w| w.branch.clone())),
        worktree_base: Set(worktree.map(|w| w.base.clone())),
        worktree_state: Set(worktree.map(|_| WORKTREE_ACTIVE.to_owned())),
    };
    Ok(model.insert(db).await?)
}

/// A session's worktree, if it has one that is still there to use.
pub fn worktree(session: &session::Model) -> Option<crate::worktrees::Worktree> {
    if session.worktree_state.as_deref() != Some(WORKTREE_ACTIVE) {
        return None;
    }
    Some(crate::worktrees::Worktree {
        path: session.worktree_path.clone()?.into(),
        branch: session.worktree_branch.clone()?,
        base: session.worktree_base.clone()?,
    })
}

/// A workspace's sessions whose worktree is in use.
pub async fn with_worktrees(db: &impl ConnectionTrait, workspace_id: Uuid) -> DbResult<Vec<session::Model>> {
    Ok(session::Entity::find()
        .filter(session::Column::WorkspaceId.eq(workspace_id))
        .filter(session::Column::WorktreeState.eq(WORKTREE_ACTIVE))
        .all(db)
        .await?)
}

/// Takes an idle session with a worktree in use out of use, to merge or
/// discard the worktree: it is closed (no run can start in it) and its
/// worktree marked as being worked on. False when a run is active or its
/// worktree is not in use (or another merge has it).
pub async fn take_worktree(db: &impl ConnectionTrait, id: Uuid) -> DbResult<bool> {
    let taken = session::Entity::update_many()
        .col_expr(session::Column::WorktreeState, Expr::value(WORKTREE_BUSY))
        .col_expr(session::Column::Status, Expr::value(CLOSED))
        .filter(session::Column::Id.eq(id))
        .filter(session::Column::WorktreeState.eq(WORKTREE_ACTIVE))
        .filter(session::Column::ActiveExecutionId.is_null())
        .exec(db)
        .await?;
    Ok(taken.rows_affected == 1)
}

/// Ends what `take_worktree` began: the worktree `state` (MERGED,
/// DISCARDED, or ACTIVE again with the session's `status` as it was).
pub async fn release_worktree(db: &impl ConnectionTrait, id: Uuid, state: &str, status: &str) -> DbResult<()> {
    session::Entity::update_many()
        .col_expr(session::Column::WorktreeState, Expr::value(state))
        .col_expr(session::Column::Status, Expr::value(status))
        .filter(session::Column::Id.eq(id))
        .filter(session::Column::WorktreeState.eq(WORKTREE_BUSY))
        .exec(db)
        .await?;
    Ok(())
}

/// A title from a prompt: its first non-blank line, shortened to
/// [`TITLE_CHARS`] characters.
pub fn title_of(prompt: &str) -> String {
    let line = prompt.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    match line.char_indices().nth(TITLE_CHARS) {
        Some((cut, _)) => format!("{}…", line[..cut].trim_end()),
        None => line.to_owned(),
    }
}

/// Renames a session.
pub async fn rename(db: &impl ConnectionTrait, id: Uuid, title: &str) -> DbResult<()> {
    session::Entity::update_many()
        .col_expr(session::Column::Title, Expr::value(title))
        .filter(session::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// The session, if its workspace belongs to `owner`.
pub async fn get(db: &impl ConnectionTrait, owner: &str, id: Uuid) -> DbResult<Option<session::Model>> {
    Ok(session::Entity::find_by_id(id)
        .filter(session::Column::WorkspaceId.in_subquery(super::workspaces::owned_by(owner)))
        .one(db)
        .await?)
}

/// One page of a workspace's sessions whose title contains `search`
/// (ignoring case), newest first (`limit + 1` rows).
pub async fn search(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    status: Option<&str>,
    search: &str,
    limit: u64,
    before: Option<Uuid>,
) -> DbResult<Vec<session::Model>> {
    use sea_orm::sea_query::{Func, LikeExpr};
    let escaped = search.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let pattern = LikeExpr::new(format!("%{escaped}%")).escape('\\');
    let mut query = session::Entity::find()
        .filter(session::Column::WorkspaceId.eq(workspace_id))
        .filter(Expr::expr(Func::lower(Expr::col(session::Column::Title))).like(pattern));
    if let Some(status) = status {
        query = query.filter(session::Column::Status.eq(status));
    }
    if let Some(before) = before {
        query = query.filter(session::Column::Id.lt(before));
    }
    Ok(query.order_by_desc(session::Column::Id).limit(limit + 1).all(db).await?)
}

/// Makes `execution_id` the session's one active execution. Atomic, so two
/// concurrent starts (on any replica) cannot both win. Returns false when
/// the session is closed or already busy.
pub async fn claim(db: &impl ConnectionTrait, session_id: Uuid, execution_id: Uuid) -> DbResult<bool> {
    let updated = session::Entity::update_many()
        .col_expr(session::Column::ActiveExecutionId, Expr::value(execution_id))
        .col_expr(session::Column::LastActivityAt, Expr::value(Utc::now()))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::Status.eq(ACTIVE))
        .filter(session::Column::ActiveExecutionId.is_null())
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Marks the session CLOSED; returns it.
pub async fn close(db: &DatabaseConnection, id: Uuid) -> DbResult<()> {
    session::Entity::update_many()
        .col_expr(session::Column::Status, Expr::value(CLOSED))
        .col_expr(session::Column::LastActivityAt, Expr::value(Utc::now()))
        .filter(session::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Records Claude's own session id (from the first run's `init`).
pub async fn set_claude_session_id(db: &impl ConnectionTrait, id: Uuid, claude_session_id: &str) -> DbResult<()> {
    session::Entity::update_many()
        .col_expr(session::Column::ClaudeSessionId, Expr::value(claude_session_id))
        .filter(session::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Session by id, without an owner check: for the server's own use.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> DbResult<Option<session::Model>> {
    Ok(session::Entity::find_by_id(id).one(db).await?)
}
