//! Workspaces, always scoped to their owner.

use chrono::Utc;
use entity::workspace;
use sea_orm::{prelude::*, ActiveValue::Set, QueryOrder, QuerySelect, TransactionTrait};
use uuid::Uuid;

use super::DbResult;

pub async fn create(
    db: &impl ConnectionTrait,
    owner: &str,
    name: &str,
    path: &str,
    require_approval: bool,
) -> DbResult<workspace::Model> {
    let model = workspace::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner: Set(owner.to_owned()),
        name: Set(name.to_owned()),
        path: Set(path.to_owned()),
        created_at: Set(Utc::now()),
        require_approval: Set(require_approval),
        daily_budget_usd: Set(None),
        mcp_servers: Set(None),
        use_worktrees: Set(false),
    };
    Ok(model.insert(db).await?)
}

/// The ids of `owner`'s workspaces, as a subquery: every owner-scoped
/// lookup of what lies under a workspace filters on it.
pub fn owned_by(owner: &str) -> sea_orm::sea_query::SelectStatement {
    sea_orm::sea_query::Query::select()
        .column(workspace::Column::Id)
        .from(workspace::Entity)
        .and_where(workspace::Column::Owner.eq(owner))
        .to_owned()
}

/// The workspace, if it exists and belongs to `owner`.
pub async fn get(db: &impl ConnectionTrait, owner: &str, id: Uuid) -> DbResult<Option<workspace::Model>> {
    Ok(workspace::Entity::find_by_id(id).filter(workspace::Column::Owner.eq(owner)).one(db).await?)
}

/// By id, without an owner check: for the server's own use.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> DbResult<Option<workspace::Model>> {
    Ok(workspace::Entity::find_by_id(id).one(db).await?)
}

/// One page of the owner's workspaces, newest first; `limit + 1` rows are
/// read so the caller can tell whether there is a next page.
pub async fn list(
    db: &DatabaseConnection,
    owner: &str,
    limit: u64,
    before: Option<Uuid>,
) -> DbResult<Vec<workspace::Model>> {
    let mut query = workspace::Entity::find().filter(workspace::Column::Owner.eq(owner));
    if let Some(before) = before {
        query = query.filter(workspace::Column::Id.lt(before));
    }
    Ok(query.order_by_desc(workspace::Column::Id).limit(limit + 1).all(db).await?)
}

/// Why a path cannot be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The owner already has a workspace on this directory.
    Duplicate,
    /// Another owner's workspace is this directory, lies inside it or
    /// contains it: a directory is never shared between users.
    Taken,
    /// The owner has as many workspaces as allowed.
    TooMany,
}

/// A workspace to register.
pub struct NewWorkspace<'a> {
    pub owner: &'a str,
    pub name: &'a str,
    pub path: &'a str,
    pub require_approval: bool,
    pub daily_budget_usd: Option<f64>,
}

/// Registers a workspace unless the path is taken or the owner has `max`
/// already: the checks and the insert are one transaction, serialised
/// against every other registration (by `lock_for`, and by the caller
/// on SQLite), so two racing registrations cannot both pass.
pub async fn register(
    db: &DatabaseConnection,
    new: NewWorkspace<'_>,
    max: u64,
) -> DbResult<Result<workspace::Model, Refusal>> {
    let txn = db.begin().await?;
    super::lock_for(&txn, "workspace-paths").await?;
    if let Some(refusal) = conflict(&txn, new.owner, new.path).await? {
        return Ok(Err(refusal));
    }
    let count = workspace::Entity::find().filter(workspace::Column::Owner.eq(new.owner)).count(&txn).await?;
    if count >= max {
        return Ok(Err(Refusal::TooMany));
    }
    let mut created = create(&txn, new.owner, new.name, new.path, new.require_approval).await?;
    if new.daily_budget_usd.is_some() {
        update(&txn, created.id, None, None, Some(new.daily_budget_usd)).await?;
        created.daily_budget_usd = new.daily_budget_usd;
    }
    txn.commit().await?;
    Ok(Ok(created))
}

/// The registered workspaces that `path` would collide with: the same
/// path, one of its ancestors, or anything inside it. Looked up by index
/// (the ancestors by equality, the descendants by prefix), not by reading
/// every workspace.
async fn conflict(db: &impl ConnectionTrait, owner: &str, path: &str) -> DbResult<Option<Refusal>> {
    use sea_orm::{sea_query::LikeExpr, Condition};
    let mut ancestors = vec!["/".to_owned()];
    let mut prefix = String::new();
    for part in path.trim_end_matches('/').split('/').filter(|p| !p.is_empty()) {
        prefix.push('/');
        prefix.push_str(part);
        ancestors.push(prefix.clone());
    }
    let escaped: String = path
        .trim_end_matches('/')
        .chars()
        .flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] })
        .collect();
    let inside = LikeExpr::new(format!("{escaped}/%")).escape('\\');
    let found = workspace::Entity::find()
        .filter(
            Condition::any()
                .add(workspace::Column::Path.is_in(ancestors.clone()))
                .add(workspace::Column::Path.like(inside)),
        )
        .all(db)
        .await?;
    // LIKE may ignore case (SQLite): keep only real overlaps.
    let prefix = format!("{}/", path.trim_end_matches('/'));
    let found: Vec<_> = found
        .into_iter()
        .filter(|w| w.path == path || ancestors.contains(&w.path) || w.path.starts_with(&prefix))
        .collect();
    Ok(if found.iter().any(|w| w.owner != owner) {
        Some(Refusal::Taken)
    } else if found.iter().any(|w| w.path == path) {
        Some(Refusal::Duplicate)
    } else {
        None
    })
}

/// Sets whether a workspace's new sessions get worktrees by default.
pub async fn set_use_worktrees(db: &impl ConnectionTrait, id: Uuid, on: bool) -> DbResult<()> {
    workspace::Entity::update_many()
        .filter(workspace::Column::Id.eq(id))
        .col_expr(workspace::Column::UseWorktrees, sea_orm::sea_query::Expr::value(on))
        .exec(db)
        .await?;
    Ok(())
}

/// Sets the MCP servers a workspace's runs get (None: none).
pub async fn set_mcp_servers(db: &impl ConnectionTrait, id: Uuid, servers: Option<serde_json::Value>) -> DbResult<()> {
    workspace::Entity::update_many()
        .filter(workspace::Column::Id.eq(id))
        .col_expr(workspace::Column::McpServers, sea_orm::sea_query::Expr::value(servers))
        .exec(db)
        .await?;
    Ok(())
}

/// Changes a workspace's name, whether its runs ask first, and its daily
/// budget (`Some(None)` removes it).
pub async fn update(
    db: &impl ConnectionTrait,
    id: Uuid,
    name: Option<&str>,
    require_approval: Option<bool>,
    daily_budget_usd: Option<Option<f64>>,
) -> DbResult<()> {
    let mut update = workspace::Entity::update_many().filter(workspace::Column::Id.eq(id));
    if let Some(name) = name {
        update = update.col_expr(workspace::Column::Name, sea_orm::sea_query::Expr::value(name));
    }
    if let Some(require_approval) = require_approval {
        update = update.col_expr(workspace::Column::RequireApproval, sea_orm::sea_query::Expr::value(require_approval));
    }
    if let Some(budget) = daily_budget_usd {
        update = update.col_expr(workspace::Column::DailyBudgetUsd, sea_orm::sea_query::Expr::value(budget));
    }
    if name.is_some() || require_approval.is_some() || daily_budget_usd.is_some() {
        update.exec(db).await?;
    }
    Ok(())
}
