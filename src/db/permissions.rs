//! Permission requests: created when the CLI asks, answered exactly once.

use chrono::{DateTime, Utc};
use entity::{execution, permission_request, workspace};
use sea_orm::{prelude::*, sea_query::Query, ActiveValue::Set, QueryOrder, TransactionTrait};
use serde_json::Value as Json;
use uuid::Uuid;

use super::DbResult;
use crate::claude::stream::PermissionPrompt;

pub const PENDING: &str = "PENDING";
pub const ALLOWED: &str = "ALLOWED";
pub const DENIED: &str = "DENIED";
pub const EXPIRED: &str = "EXPIRED";
pub const CANCELLED: &str = "CANCELLED";

/// Stores a `can_use_tool` prompt of the CLI, pending until `expires_at`.
pub async fn create(
    db: &DatabaseConnection,
    execution_id: Uuid,
    prompt: PermissionPrompt,
    expires_at: DateTime<Utc>,
) -> DbResult<permission_request::Model> {
    let model = permission_request::ActiveModel {
        id: Set(Uuid::now_v7()),
        execution_id: Set(execution_id),
        request_id: Set(prompt.request_id),
        tool_name: Set(prompt.tool_name),
        tool_use_id: Set(prompt.tool_use_id),
        input: Set(prompt.input),
        description: Set(prompt.description),
        blocked_path: Set(prompt.blocked_path),
        suggestions: Set(prompt.suggestions),
        status: Set(PENDING.into()),
        decision: Set(None),
        answered_by: Set(None),
        created_at: Set(Utc::now()),
        expires_at: Set(expires_at),
        answered_at: Set(None),
    };
    let txn = db.begin().await?;
    let created = model.insert(&txn).await?;
    super::clock::touch(&txn, created.execution_id).await?;
    super::webhooks::permission_event(&txn, &created).await?;
    txn.commit().await?;
    Ok(created)
}

/// The request, if its execution's workspace belongs to `owner`.
pub async fn get(db: &DatabaseConnection, owner: &str, id: Uuid) -> DbResult<Option<permission_request::Model>> {
    Ok(get_many(db, owner, &[id]).await?.pop())
}

/// The owner's requests among these ids (in no particular order), in one
/// query.
pub async fn get_many(db: &DatabaseConnection, owner: &str, ids: &[Uuid]) -> DbResult<Vec<permission_request::Model>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let owned_executions = Query::select()
        .column((execution::Entity, execution::Column::Id))
        .from(execution::Entity)
        .inner_join(
            workspace::Entity,
            Expr::col((workspace::Entity, workspace::Column::Id))
                .equals((execution::Entity, execution::Column::WorkspaceId)),
        )
        .and_where(Expr::col((workspace::Entity, workspace::Column::Owner)).eq(owner))
        .to_owned();
    Ok(permission_request::Entity::find()
        .filter(permission_request::Column::Id.is_in(ids.iter().copied()))
        .filter(permission_request::Column::ExecutionId.in_subquery(owned_executions))
        .all(db)
        .await?)
}

pub async fn find(db: &DatabaseConnection, id: Uuid) -> DbResult<Option<permission_request::Model>> {
    Ok(permission_request::Entity::find_by_id(id).one(db).await?)
}

/// The requests of these executions that wait for an answer, oldest first,
/// in one query.
pub async fn pending_of(db: &DatabaseConnection, execution_ids: &[Uuid]) -> DbResult<Vec<permission_request::Model>> {
    if execution_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(permission_request::Entity::find()
        .filter(permission_request::Column::ExecutionId.is_in(execution_ids.iter().copied()))
        .filter(permission_request::Column::Status.eq(PENDING))
        .order_by_asc(permission_request::Column::Id)
        .all(db)
        .await?)
}

/// An execution's requests, oldest first; only pending ones if asked.
pub async fn of_execution(
    db: &DatabaseConnection,
    execution_id: Uuid,
    pending_only: bool,
) -> DbResult<Vec<permission_request::Model>> {
    let mut query = permission_request::Entity::find().filter(permission_request::Column::ExecutionId.eq(execution_id));
    if pending_only {
        query = query.filter(permission_request::Column::Status.eq(PENDING));
    }
    Ok(query.order_by_asc(permission_request::Column::Id).all(db).await?)
}

/// PENDING -> `status`, recording the decision. False when it was no
/// longer pending: every request is answered exactly once.
pub async fn settle(
    db: &DatabaseConnection,
    id: Uuid,
    status: &str,
    decision: Option<Json>,
    answered_by: Option<&str>,
) -> DbResult<bool> {
    // Written before anything is read: on SQLite that takes the write lock
    // first (see `db::lock_for`).
    let txn = db.begin().await?;
    let updated = permission_request::Entity::update_many()
        .col_expr(permission_request::Column::Status, Expr::value(status))
        .col_expr(permission_request::Column::Decision, Expr::value(decision))
        .col_expr(permission_request::Column::AnsweredBy, Expr::value(answered_by.map(str::to_owned)))
        .col_expr(permission_request::Column::AnsweredAt, Expr::value(Utc::now()))
        .filter(permission_request::Column::Id.eq(id))
        .filter(permission_request::Column::Status.eq(PENDING))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 1 {
        if let Some(request) = permission_request::Entity::find_by_id(id).one(&txn).await? {
            super::clock::touch(&txn, request.execution_id).await?;
        }
    }
    txn.commit().await?;
    Ok(updated.rows_affected == 1)
}

/// Cancels the requests of `execution_id` that still wait for an answer;
/// returns them as they now are.
pub async fn cancel_open(db: &impl ConnectionTrait, execution_id: Uuid) -> DbResult<Vec<permission_request::Model>> {
    let open = permission_request::Entity::find()
        .filter(permission_request::Column::ExecutionId.eq(execution_id))
        .filter(permission_request::Column::Status.eq(PENDING))
        .all(db)
        .await?;
    if open.is_empty() {
        return Ok(open);
    }
    let now = Utc::now();
    permission_request::Entity::update_many()
        .col_expr(permission_request::Column::Status, Expr::value(CANCELLED))
        .col_expr(permission_request::Column::AnsweredAt, Expr::value(now))
        .filter(permission_request::Column::ExecutionId.eq(execution_id))
        .filter(permission_request::Column::Status.eq(PENDING))
        .exec(db)
        .await?;
    Ok(open
        .into_iter()
        .map(|mut request| {
            request.status = CANCELLED.to_owned();
            request.answered_at = Some(now);
            request
        })
        .collect())
}

/// The pending request of an execution with the CLI's `request_id`.
pub async fn by_request_id(
    db: &DatabaseConnection,
    execution_id: Uuid,
    request_id: &str,
) -> DbResult<Option<permission_request::Model>> {
    Ok(permission_request::Entity::find()
        .filter(permission_request::Column::ExecutionId.eq(execution_id))
        .filter(permission_request::Column::RequestId.eq(request_id))
        .one(db)
        .await?)
}
