//! Webhooks and their outbox. A delivery is written in the transaction of
//! the change it announces (a run's end, a park, a permission request), so
//! none is lost and none announces what did not happen; servers then send
//! the due ones (see `crate::webhooks`).

use chrono::{DateTime, Utc};
use entity::{execution, permission_request, webhook, webhook_delivery, workspace};
use sea_orm::{prelude::*, sea_query::Query, ActiveValue::Set, Condition, QueryOrder, QuerySelect};
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::DbResult;

pub const EXECUTION_COMPLETED: &str = "execution.completed";
pub const EXECUTION_FAILED: &str = "execution.failed";
pub const EXECUTION_CANCELLED: &str = "execution.cancelled";
pub const EXECUTION_SCHEDULED: &str = "execution.scheduled";
pub const PERMISSION_REQUESTED: &str = "permission.requested";

pub const PENDING: &str = "PENDING";
pub const DELIVERED: &str = "DELIVERED";
pub const FAILED: &str = "FAILED";

/// What a new webhook is.
pub struct NewWebhook<'a> {
    pub owner: &'a str,
    pub workspace_id: Option<Uuid>,
    pub url: &'a str,
    pub secret: &'a str,
    pub events: Vec<&'static str>,
}

pub async fn create(db: &impl ConnectionTrait, new: NewWebhook<'_>) -> DbResult<webhook::Model> {
    let model = webhook::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner: Set(new.owner.to_owned()),
        workspace_id: Set(new.workspace_id),
        url: Set(new.url.to_owned()),
        secret: Set(new.secret.to_owned()),
        events: Set(json!(new.events)),
        created_at: Set(Utc::now()),
    };
    Ok(model.insert(db).await?)
}

/// How many webhooks the owner has.
pub async fn count(db: &impl ConnectionTrait, owner: &str) -> DbResult<u64> {
    use sea_orm::PaginatorTrait;
    Ok(webhook::Entity::find().filter(webhook::Column::Owner.eq(owner)).count(db).await?)
}

/// The owner's webhooks, oldest first.
pub async fn list(db: &impl ConnectionTrait, owner: &str) -> DbResult<Vec<webhook::Model>> {
    Ok(webhook::Entity::find()
        .filter(webhook::Column::Owner.eq(owner))
        .order_by_asc(webhook::Column::Id)
        .all(db)
        .await?)
}

/// Deletes the owner's webhook (and its delivery log); false if the owner
/// has no such webhook.
pub async fn delete(db: &impl ConnectionTrait, owner: &str, id: Uuid) -> DbResult<bool> {
    let deleted = webhook::Entity::delete_many()
        .filter(webhook::Column::Id.eq(id))
        .filter(webhook::Column::Owner.eq(owner))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected == 1)
}

/// A webhook's latest deliveries, newest first.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    webhook_id: Uuid,
    limit: u64,
) -> DbResult<Vec<webhook_delivery::Model>> {
    Ok(webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::WebhookId.eq(webhook_id))
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Announces an execution's new state (`event`) to the webhooks of its
/// owner that want it, in the caller's transaction.
pub async fn execution_event(db: &impl ConnectionTrait, execution_id: Uuid, event: &'static str) -> DbResult<()> {
    let Some(e) = super::executions::find(db, execution_id).await? else { return Ok(()) };
    let data = json!({ "execution": execution_data(&e) });
    enqueue(db, e.workspace_id, event, data).await
}

/// Announces a permission request to the webhooks that want it.
pub async fn permission_event(db: &impl ConnectionTrait, request: &permission_request::Model) -> DbResult<()> {
    let Some(e) = super::executions::find(db, request.execution_id).await? else { return Ok(()) };
    let data = json!({
        "permissionRequest": {
            "id": request.id,
            "executionId": request.execution_id,
            "toolName": request.tool_name,
            "input": request.input,
            "description": request.description,
            "expiresAt": request.expires_at,
        },
        "execution": { "id": e.id, "sessionId": e.session_id, "workspaceId": e.workspace_id },
    });
    enqueue(db, e.workspace_id, PERMISSION_REQUESTED, data).await
}

/// The event for an execution that ended with `status`.
pub fn ended(status: super::executions::Status) -> &'static str {
    use super::executions::Status;
    match status {
        Status::Completed => EXECUTION_COMPLETED,
        Status::Cancelled => EXECUTION_CANCELLED,
        _ => EXECUTION_FAILED,
    }
}

fn execution_data(e: &execution::Model) -> Json {
    json!({
        "id": e.id,
        "sessionId": e.session_id,
        "workspaceId": e.workspace_id,
        "status": e.status.as_str(),
        "error": e.error_code.as_ref().map(|code| json!({ "code": code, "message": e.error_message })),
        "costUsd": e.cost_usd,
        "numTurns": e.num_turns,
        "messageCount": e.message_count,
        "createdAt": e.created_at,
        "startedAt": e.started_at,
        "finishedAt": e.finished_at,
        "resumeAt": e.resume_at,
        "metadata": e.metadata,
    })
}

/// One delivery per webhook of the workspace's owner that wants `event`.
async fn enqueue(db: &impl ConnectionTrait, workspace_id: Uuid, event: &'static str, data: Json) -> DbResult<()> {
    let owner = Query::select()
        .column(workspace::Column::Owner)
        .from(workspace::Entity)
        .and_where(workspace::Column::Id.eq(workspace_id))
        .to_owned();
    let hooks = webhook::Entity::find()
        .filter(webhook::Column::Owner.in_subquery(owner))
        .filter(
            Condition::any()
                .add(webhook::Column::WorkspaceId.is_null())
                .add(webhook::Column::WorkspaceId.eq(workspace_id)),
        )
        .all(db)
        .await?;
    let now = Utc::now();
    let body = json!({ "type": event, "timestamp": now, "data": data }).to_string();
    for hook in hooks.iter().filter(|h| h.events.as_array().is_some_and(|e| e.iter().any(|e| e == event))) {
        let delivery = webhook_delivery::ActiveModel {
            id: Set(Uuid::now_v7()),
            webhook_id: Set(hook.id),
            event: Set(event.to_owned()),
            body: Set(body.clone()),
            status: Set(PENDING.to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            locked_until: Set(None),
            last_status_code: Set(None),
            last_error: Set(None),
            created_at: Set(now),
            finished_at: Set(None),
        };
        delivery.insert(db).await?;
    }
    Ok(())
}

/// Takes up to `limit` deliveries that are due for this server to send
/// (until `lease` from now, when another may take them), with their
/// webhooks. A conditional update per delivery: no two servers send the
/// same attempt.
pub async fn claim_due(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    lease: chrono::TimeDelta,
    limit: u64,
) -> DbResult<Vec<(webhook_delivery::Model, webhook::Model)>> {
    let free = Condition::any()
        .add(webhook_delivery::Column::LockedUntil.is_null())
        .add(webhook_delivery::Column::LockedUntil.lt(now));
    let due = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq(PENDING))
        .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
        .filter(free.clone())
        .order_by_asc(webhook_delivery::Column::NextAttemptAt)
        .limit(limit)
        .find_also_related(webhook::Entity)
        .all(db)
        .await?;
    let mut claimed = Vec::with_capacity(due.len());
    for (delivery, hook) in due {
        let Some(hook) = hook else { continue };
        let taken = webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::LockedUntil, Expr::value(now + lease))
            .filter(webhook_delivery::Column::Id.eq(delivery.id))
            .filter(webhook_delivery::Column::Status.eq(PENDING))
            .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
            .filter(free.clone())
            .exec(db)
            .await?;
        if taken.rows_affected == 1 {
            claimed.push((delivery, hook));
        }
    }
    Ok(claimed)
}

/// How one attempt went.
pub enum Attempt {
    Delivered {
        status_code: u16,
    },
    /// Tried again at `retry_at`; FAILED for good when None.
    Failed {
        status_code: Option<u16>,
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
}

/// Records an attempt of a delivery this server claimed.
pub async fn record(db: &DatabaseConnection, id: Uuid, attempt: Attempt) -> DbResult<()> {
    let now = Utc::now();
    let none = Option::<DateTime<Utc>>::None;
    let update = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Attempts, Expr::col(webhook_delivery::Column::Attempts).add(1))
        .col_expr(webhook_delivery::Column::LockedUntil, Expr::value(none))
        .filter(webhook_delivery::Column::Id.eq(id));
    let update = match attempt {
        Attempt::Delivered { status_code } => update
            .col_expr(webhook_delivery::Column::Status, Expr::value(DELIVERED))
            .col_expr(webhook_delivery::Column::LastStatusCode, Expr::value(status_code as i32))
            .col_expr(webhook_delivery::Column::LastError, Expr::value(Option::<String>::None))
            .col_expr(webhook_delivery::Column::FinishedAt, Expr::value(now)),
        Attempt::Failed { status_code, error, retry_at } => {
            let update = update
                .col_expr(webhook_delivery::Column::LastStatusCode, Expr::value(status_code.map(i32::from)))
                .col_expr(webhook_delivery::Column::LastError, Expr::value(error));
            match retry_at {
                Some(at) => update.col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(at)),
                None => update
                    .col_expr(webhook_delivery::Column::Status, Expr::value(FAILED))
                    .col_expr(webhook_delivery::Column::FinishedAt, Expr::value(now)),
            }
        }
    };
    update.exec(db).await?;
    Ok(())
}
