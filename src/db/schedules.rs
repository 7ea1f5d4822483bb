//! Schedules (see `crate::schedules` for how they fire).

use chrono::{DateTime, Utc};
use entity::schedule;
use sea_orm::{prelude::*, ActiveValue::Set, QueryOrder};
use serde_json::Value as Json;
use uuid::Uuid;

use super::DbResult;

/// What a new schedule is.
pub struct NewSchedule {
    pub owner: String,
    pub workspace_id: Uuid,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub prompt: String,
    pub options: Json,
    pub same_session: bool,
    pub next_run_at: DateTime<Utc>,
}

pub async fn create(db: &impl ConnectionTrait, new: NewSchedule) -> DbResult<schedule::Model> {
    let model = schedule::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner: Set(new.owner),
        workspace_id: Set(new.workspace_id),
        name: Set(new.name),
        cron: Set(new.cron),
        timezone: Set(new.timezone),
        prompt: Set(new.prompt),
        options: Set(new.options),
        same_session: Set(new.same_session),
        session_id: Set(None),
        enabled: Set(true),
        next_run_at: Set(Some(new.next_run_at)),
        last_run_at: Set(None),
        last_execution_id: Set(None),
        last_error: Set(None),
        created_at: Set(Utc::now()),
    };
    Ok(model.insert(db).await?)
}

/// The owner's schedules (in one workspace, if given), oldest first.
pub async fn list(
    db: &impl ConnectionTrait,
    owner: &str,
    workspace_id: Option<Uuid>,
) -> DbResult<Vec<schedule::Model>> {
    let mut query = schedule::Entity::find().filter(schedule::Column::Owner.eq(owner));
    if let Some(id) = workspace_id {
        query = query.filter(schedule::Column::WorkspaceId.eq(id));
    }
    Ok(query.order_by_asc(schedule::Column::Id).all(db).await?)
}

/// How many schedules the owner has.
pub async fn count(db: &impl ConnectionTrait, owner: &str) -> DbResult<u64> {
    use sea_orm::PaginatorTrait;
    Ok(schedule::Entity::find().filter(schedule::Column::Owner.eq(owner)).count(db).await?)
}

pub async fn get(db: &impl ConnectionTrait, owner: &str, id: Uuid) -> DbResult<Option<schedule::Model>> {
    Ok(schedule::Entity::find_by_id(id).filter(schedule::Column::Owner.eq(owner)).one(db).await?)
}

/// Deletes the owner's schedule; false if there is none.
pub async fn delete(db: &impl ConnectionTrait, owner: &str, id: Uuid) -> DbResult<bool> {
    let deleted = schedule::Entity::delete_many()
        .filter(schedule::Column::Id.eq(id))
        .filter(schedule::Column::Owner.eq(owner))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected == 1)
}

/// Turns a schedule on (from `next_run_at`) or off (None).
pub async fn set_next(db: &impl ConnectionTrait, id: Uuid, next_run_at: Option<DateTime<Utc>>) -> DbResult<()> {
    schedule::Entity::update_many()
        .col_expr(schedule::Column::Enabled, Expr::value(next_run_at.is_some()))
        .col_expr(schedule::Column::NextRunAt, Expr::value(next_run_at))
        .filter(schedule::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Enabled schedules whose next occurrence has come.
pub async fn due(db: &impl ConnectionTrait, now: DateTime<Utc>) -> DbResult<Vec<schedule::Model>> {
    Ok(schedule::Entity::find()
        .filter(schedule::Column::Enabled.eq(true))
        .filter(schedule::Column::NextRunAt.lte(now))
        .order_by_asc(schedule::Column::NextRunAt)
        .all(db)
        .await?)
}

/// What an occurrence did.
pub struct Fired {
    pub occurrence: DateTime<Utc>,
    pub next: Option<DateTime<Utc>>,
    /// The execution it started, or why it started none.
    pub started: Result<Uuid, String>,
    /// The session later occurrences continue (same-session schedules).
    pub session_id: Option<Uuid>,
}

/// Moves a schedule past `fired.occurrence`, unless another server did.
pub async fn advance(db: &impl ConnectionTrait, id: Uuid, fired: Fired) -> DbResult<bool> {
    let (execution, error) = match fired.started {
        Ok(id) => (Some(id), None),
        Err(why) => (None, Some(why)),
    };
    let mut update = schedule::Entity::update_many()
        .col_expr(schedule::Column::NextRunAt, Expr::value(fired.next))
        .col_expr(schedule::Column::Enabled, Expr::value(fired.next.is_some()))
        .col_expr(schedule::Column::LastRunAt, Expr::value(fired.occurrence))
        .col_expr(schedule::Column::LastError, Expr::value(error))
        .filter(schedule::Column::Id.eq(id))
        .filter(schedule::Column::NextRunAt.eq(fired.occurrence));
    if execution.is_some() {
        update = update.col_expr(schedule::Column::LastExecutionId, Expr::value(execution));
    }
    if fired.session_id.is_some() {
        update = update.col_expr(schedule::Column::SessionId, Expr::value(fired.session_id));
    }
    Ok(update.exec(db).await?.rows_affected == 1)
}
