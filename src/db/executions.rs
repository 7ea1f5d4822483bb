//! Executions: one run of `claude` each.

use chrono::Utc;
use entity::{execution, session};
use sea_orm::{prelude::*, ActiveValue::Set, PaginatorTrait, QueryOrder, QuerySelect, TransactionTrait};
use serde_json::Value as Json;
use uuid::Uuid;

use super::DbResult;

pub use entity::execution::ExecutionStatus as Status;

/// What a new execution is made of.
pub struct NewExecution {
    pub id: Uuid,
    pub session_id: Uuid,
    pub workspace_id: Uuid,
    pub prompt: String,
    /// The prompt's content blocks, when it has more than text.
    pub content: Option<Json>,
    pub options: Json,
    pub metadata: Option<Json>,
    pub resumed_from: Option<String>,
    /// None for an execution queued behind its session's run (see `queue`).
    pub replica_id: Option<String>,
}

pub async fn create(db: &impl ConnectionTrait, new: NewExecution) -> DbResult<execution::Model> {
    let model = execution::ActiveModel {
        id: Set(new.id),
        session_id: Set(new.session_id),
        workspace_id: Set(new.workspace_id),
        status: Set(Status::Pending),
        prompt: Set(new.prompt),
        content: Set(new.content),
        options: Set(new.options),
        metadata: Set(new.metadata),
        claude_session_id: Set(None),
        resumed_from: Set(new.resumed_from),
        message_count: Set(0),
        num_turns: Set(None),
        cost_usd: Set(None),
        usage: Set(None),
        result: Set(None),
        exit_code: Set(None),
        error_code: Set(None),
        error_message: Set(None),
        replica_id: Set(new.replica_id),
        created_at: Set(Utc::now()),
        started_at: Set(None),
        finished_at: Set(None),
        stalled_since: Set(None),
        model: Set(None),
        change_seq: Set(None),
        resume_at: Set(None),
        park_count: Set(0),
        mcp_servers: Set(None),
        changes: Set(None),
    };
    let created = model.insert(db).await?;
    super::clock::touch(db, created.id).await?;
    Ok(created)
}

/// The execution, if its workspace belongs to `owner`.
pub async fn get(db: &impl ConnectionTrait, owner: &str, id: Uuid) -> DbResult<Option<execution::Model>> {
    let owned = super::workspaces::owned_by(owner);
    Ok(execution::Entity::find_by_id(id).filter(execution::Column::WorkspaceId.in_subquery(owned)).one(db).await?)
}

/// By id, without an owner check: for the server's own use.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> DbResult<Option<execution::Model>> {
    Ok(execution::Entity::find_by_id(id).one(db).await?)
}

/// One page of a session's executions, newest first (`limit + 1` rows).
pub async fn list(
    db: &DatabaseConnection,
    session_id: Uuid,
    limit: u64,
    before: Option<Uuid>,
) -> DbResult<Vec<execution::Model>> {
    let mut query = execution::Entity::find().filter(execution::Column::SessionId.eq(session_id));
    if let Some(before) = before {
        query = query.filter(execution::Column::Id.lt(before));
    }
    Ok(query.order_by_desc(execution::Column::Id).limit(limit + 1).all(db).await?)
}

/// Records whether (since when) the execution has stalled.
pub async fn set_stalled(db: &DatabaseConnection, id: Uuid, since: Option<chrono::DateTime<Utc>>) -> DbResult<()> {
    let txn = db.begin().await?;
    execution::Entity::update_many()
        .col_expr(execution::Column::StalledSince, Expr::value(since))
        .filter(execution::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    super::clock::touch(&txn, id).await?;
    Ok(txn.commit().await?)
}

/// PENDING -> RUNNING. False when it is no longer PENDING (cancelled while
/// it waited).
pub async fn mark_running(db: &DatabaseConnection, id: Uuid) -> DbResult<bool> {
    let txn = db.begin().await?;
    let updated = execution::Entity::update_many()
        .col_expr(execution::Column::Status, Expr::value(Status::Running.as_str()))
        // A resumed run keeps the time it first started.
        .col_expr(
            execution::Column::StartedAt,
            sea_orm::sea_query::Func::coalesce([
                Expr::col(execution::Column::StartedAt).into(),
                Expr::value(Utc::now()),
            ])
            .into(),
        )
        .filter(execution::Column::Id.eq(id))
        .filter(execution::Column::Status.eq(Status::Pending.as_str()))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 1 {
        super::clock::touch(&txn, id).await?;
    }
    txn.commit().await?;
    Ok(updated.rows_affected == 1)
}

/// Records what a run's first `init` line says: Claude's session id (on
/// the execution and on its session: the id later runs of the session
/// resume) and the model.
pub async fn record_init(
    db: &DatabaseConnection,
    id: Uuid,
    session_id: Uuid,
    claude_session_id: &str,
    model: Option<&str>,
    mcp_servers: Option<Json>,
) -> DbResult<()> {
    execution::Entity::update_many()
        .col_expr(execution::Column::ClaudeSessionId, Expr::value(claude_session_id))
        .col_expr(execution::Column::Model, Expr::value(model))
        .col_expr(execution::Column::McpServers, Expr::value(mcp_servers))
        .filter(execution::Column::Id.eq(id))
        .exec(db)
        .await?;
    super::sessions::set_claude_session_id(db, session_id, claude_session_id).await
}

/// What the runs of a session changed, oldest first (those that did).
pub async fn changes_of_session(db: &DatabaseConnection, session_id: Uuid) -> DbResult<Vec<Json>> {
    let rows: Vec<Option<Json>> = execution::Entity::find()
        .filter(execution::Column::SessionId.eq(session_id))
        .filter(execution::Column::Changes.is_not_null())
        .select_only()
        .column(execution::Column::Changes)
        .order_by_asc(execution::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().flatten().collect())
}

/// Stores what a run changed in its workspace (see `changes`).
pub async fn set_changes(db: &DatabaseConnection, id: Uuid, changes: Json) -> DbResult<()> {
    execution::Entity::update_many()
        .col_expr(execution::Column::Changes, Expr::value(changes))
        .filter(execution::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// How a run ended, as stored.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    pub status: Status,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub exit_code: Option<i32>,
    pub num_turns: Option<i32>,
    pub cost_usd: Option<f64>,
    pub usage: Option<Json>,
    pub result: Option<Json>,
    /// Only from this status (a parked run's cancel must not end it once
    /// a server has resumed it); from any unfinished one when None.
    pub from: Option<Status>,
}

/// What finishing an execution did.
pub struct Finished {
    /// Its permission requests that were still waiting.
    pub cancelled: Vec<entity::permission_request::Model>,
    /// The session's next queued execution, now taken by the replica that
    /// finished this one, to be launched by it.
    pub next: Option<execution::Model>,
}

/// Marks the execution finished, frees its session and cancels its
/// permission requests still waiting for an answer (nobody can act on them
/// any more), in one transaction; with `take_next_for`, that replica takes
/// the session's next queued execution in it too. Only a PENDING or
/// RUNNING execution is finished; returns None if it already was.
pub async fn finish(
    db: &DatabaseConnection,
    id: Uuid,
    session_id: Uuid,
    f: Finish,
    take_next_for: Option<&str>,
) -> DbResult<Option<Finished>> {
    let txn = db.begin().await?;
    super::queue::lock(&txn, session_id).await?;
    let now = Utc::now();
    let updated = execution::Entity::update_many()
        .col_expr(execution::Column::Status, Expr::value(f.status.as_str()))
        .col_expr(execution::Column::ErrorCode, Expr::value(f.error_code))
        .col_expr(execution::Column::ErrorMessage, Expr::value(f.error_message))
        .col_expr(execution::Column::ExitCode, Expr::value(f.exit_code))
        .col_expr(execution::Column::NumTurns, Expr::value(f.num_turns))
        // What this process cost, on top of what earlier ones (before a
        // park) did.
        .col_expr(execution::Column::CostUsd, cost_so_far(f.cost_usd))
        .col_expr(execution::Column::Usage, Expr::value(f.usage))
        .col_expr(execution::Column::Result, Expr::value(f.result))
        .col_expr(execution::Column::FinishedAt, Expr::value(now))
        .col_expr(execution::Column::ResumeAt, Expr::value(Option::<chrono::DateTime<Utc>>::None))
        .filter(execution::Column::Id.eq(id))
        .filter(match f.from {
            Some(from) => execution::Column::Status.eq(from.as_str()),
            None => execution::Column::Status.is_in(Status::UNFINISHED.map(Status::as_str)),
        })
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        txn.rollback().await?;
        return Ok(None);
    }
    let freed = session::Entity::update_many()
        .col_expr(session::Column::ActiveExecutionId, Expr::value(Option::<Uuid>::None))
        .col_expr(
            session::Column::TotalCostUsd,
            Expr::col(session::Column::TotalCostUsd).add(f.cost_usd.unwrap_or(0.0)),
        )
        .col_expr(session::Column::LastActivityAt, Expr::value(now))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::ActiveExecutionId.eq(id))
        .exec(&txn)
        .await?;
    let cancelled = super::permissions::cancel_open(&txn, id).await?;
    // Also signals the other replicas.
    super::clock::touch(&txn, id).await?;
    super::webhooks::execution_event(&txn, id, super::webhooks::ended(f.status)).await?;
    let next = match take_next_for {
        Some(replica_id) if freed.rows_affected == 1 => super::queue::take_next(&txn, session_id, replica_id).await?,
        _ => None,
    };
    txn.commit().await?;
    Ok(Some(Finished { cancelled, next }))
}

/// An execution's cost with `cost` added (unchanged when None).
fn cost_so_far(cost: Option<f64>) -> sea_orm::sea_query::SimpleExpr {
    match cost {
        Some(cost) => Expr::expr(sea_orm::sea_query::Func::coalesce([
            Expr::col(execution::Column::CostUsd).into(),
            Expr::value(0.0),
        ]))
        .add(cost),
        None => Expr::col(execution::Column::CostUsd).into(),
    }
}

/// Parks a pending or running execution until `resume_at` (SCHEDULED): its
/// session stays its own, and what the run cost so far (`cost`) is
/// counted. False when it was not pending or running.
pub async fn park(
    db: &DatabaseConnection,
    id: Uuid,
    session_id: Uuid,
    resume_at: chrono::DateTime<Utc>,
    cost: Option<f64>,
) -> DbResult<bool> {
    let txn = db.begin().await?;
    let updated = execution::Entity::update_many()
        .col_expr(execution::Column::CostUsd, cost_so_far(cost))
        .col_expr(execution::Column::Status, Expr::value(Status::Scheduled.as_str()))
        .col_expr(execution::Column::ResumeAt, Expr::value(resume_at))
        .col_expr(execution::Column::ParkCount, Expr::col(execution::Column::ParkCount).add(1))
        .col_expr(execution::Column::StalledSince, Expr::value(Option::<chrono::DateTime<Utc>>::None))
        .filter(execution::Column::Id.eq(id))
        .filter(execution::Column::Status.is_in(Status::ACTIVE.map(Status::as_str)))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 1 {
        session::Entity::update_many()
            .col_expr(session::Column::TotalCostUsd, Expr::col(session::Column::TotalCostUsd).add(cost.unwrap_or(0.0)))
            .filter(session::Column::Id.eq(session_id))
            .exec(&txn)
            .await?;
        super::clock::touch(&txn, id).await?;
        super::webhooks::execution_event(&txn, id, super::webhooks::EXECUTION_SCHEDULED).await?;
    }
    txn.commit().await?;
    Ok(updated.rows_affected == 1)
}

/// Every parked execution, and when it resumes.
pub async fn parked(db: &DatabaseConnection) -> DbResult<Vec<(Uuid, Option<chrono::DateTime<Utc>>)>> {
    Ok(execution::Entity::find()
        .select_only()
        .column(execution::Column::Id)
        .column(execution::Column::ResumeAt)
        .filter(execution::Column::Status.eq(Status::Scheduled.as_str()))
        .order_by_asc(execution::Column::ResumeAt)
        .into_tuple()
        .all(db)
        .await?)
}

/// Takes a parked execution that is due (SCHEDULED -> PENDING) for
/// `replica_id`, to resume what its session left; None when it is not due,
/// or another server took it first.
pub async fn take_due(
    db: &DatabaseConnection,
    id: Uuid,
    replica_id: &str,
    now: chrono::DateTime<Utc>,
) -> DbResult<Option<execution::Model>> {
    let txn = db.begin().await?;
    super::lock_for(&txn, &format!("resume:{id}")).await?;
    let Some(parked) = find(&txn, id).await? else { return Ok(None) };
    let resume = super::sessions::find(&txn, parked.session_id).await?.and_then(|s| s.claude_session_id);
    let updated = execution::Entity::update_many()
        .col_expr(execution::Column::Status, Expr::value(Status::Pending.as_str()))
        .col_expr(execution::Column::ResumeAt, Expr::value(Option::<chrono::DateTime<Utc>>::None))
        .col_expr(execution::Column::ReplicaId, Expr::value(replica_id))
        .col_expr(execution::Column::ResumedFrom, Expr::value(resume))
        .filter(execution::Column::Id.eq(id))
        .filter(execution::Column::Status.eq(Status::Scheduled.as_str()))
        .filter(execution::Column::ResumeAt.lte(now))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(None);
    }
    super::clock::touch(&txn, id).await?;
    let taken = find(&txn, id).await?;
    txn.commit().await?;
    Ok(taken)
}

/// How many executions `owner` has that have not ended (PENDING, RUNNING
/// or SCHEDULED).
pub async fn count_active(db: &impl ConnectionTrait, owner: &str) -> DbResult<u64> {
    let owned = super::workspaces::owned_by(owner);
    Ok(execution::Entity::find()
        .filter(execution::Column::Status.is_in(Status::UNFINISHED.map(Status::as_str)))
        .filter(execution::Column::WorkspaceId.in_subquery(owned))
        .count(db)
        .await?)
}

/// Runs of `replica_id` left PENDING or RUNNING by a server that stopped
/// without finishing them.
pub async fn unfinished(db: &DatabaseConnection, replica_id: &str) -> DbResult<Vec<execution::Model>> {
    Ok(execution::Entity::find()
        .filter(execution::Column::Status.is_in(Status::ACTIVE.map(Status::as_str)))
        .filter(execution::Column::ReplicaId.eq(replica_id))
        .all(db)
        .await?)
}

/// Which of an owner's executions a listing or a total covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub statuses: Vec<Status>,
    pub workspace_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    /// Created at or after.
    pub since: Option<chrono::DateTime<Utc>>,
    /// Created before.
    pub until: Option<chrono::DateTime<Utc>>,
}

impl Filter {
    /// The filter as a condition. Ids are UUIDv7, ordered by creation time,
    /// so the time bounds become id bounds and use the primary key.
    fn condition(&self, owner: &str) -> sea_orm::Condition {
        let mut condition = sea_orm::Condition::all()
            .add(execution::Column::WorkspaceId.in_subquery(super::workspaces::owned_by(owner)));
        if !self.statuses.is_empty() {
            condition = condition.add(execution::Column::Status.is_in(self.statuses.iter().map(|s| s.as_str())));
        }
        if let Some(id) = self.workspace_id {
            condition = condition.add(execution::Column::WorkspaceId.eq(id));
        }
        if let Some(id) = self.session_id {
            condition = condition.add(execution::Column::SessionId.eq(id));
        }
        if let Some(since) = self.since {
            condition = condition.add(execution::Column::Id.gte(first_id_at(since)));
        }
        if let Some(until) = self.until {
            condition = condition.add(execution::Column::Id.lt(first_id_at(until)));
        }
        condition
    }
}

/// Midnight (UTC) today: where a day's spending starts.
pub fn start_of_today() -> chrono::DateTime<Utc> {
    Utc::now().date_naive().and_time(chrono::NaiveTime::MIN).and_utc()
}

/// The smallest UUIDv7 of a moment: every id made at or after it is
/// greater or equal.
fn first_id_at(at: chrono::DateTime<Utc>) -> Uuid {
    let millis = at.timestamp_millis().max(0) as u64;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = 0x70; // version 7
    bytes[8] = 0x80; // RFC 4122 variant
    Uuid::from_bytes(bytes)
}

/// One page of an owner's executions across workspaces, newest first
/// (`limit + 1` rows).
pub async fn search(
    db: &impl ConnectionTrait,
    owner: &str,
    filter: &Filter,
    limit: u64,
    before: Option<Uuid>,
) -> DbResult<Vec<execution::Model>> {
    let mut query = execution::Entity::find().filter(filter.condition(owner));
    if let Some(before) = before {
        query = query.filter(execution::Column::Id.lt(before));
    }
    Ok(query.order_by_desc(execution::Column::Id).limit(limit + 1).all(db).await?)
}

/// Totals over the executions a filter covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub executions: i64,
    pub cost_usd: f64,
    pub turns: i64,
    pub messages: i64,
}

pub async fn totals(db: &impl ConnectionTrait, owner: &str, filter: &Filter) -> DbResult<Totals> {
    use sea_orm::sea_query::Expr;
    type Row = (i64, Option<f64>, Option<i64>, Option<i64>);
    let row: Option<Row> = execution::Entity::find()
        .select_only()
        .column_as(Expr::col(execution::Column::Id).count(), "executions")
        .column_as(Expr::col(execution::Column::CostUsd).sum(), "cost")
        .column_as(Expr::col(execution::Column::NumTurns).sum().cast_as("BIGINT"), "turns")
        .column_as(Expr::col(execution::Column::MessageCount).sum().cast_as("BIGINT"), "messages")
        .filter(filter.condition(owner))
        .into_tuple()
        .one(db)
        .await?;
    let (executions, cost, turns, messages) = row.unwrap_or_default();
    Ok(Totals { executions, cost_usd: cost.unwrap_or(0.0), turns: turns.unwrap_or(0), messages: messages.unwrap_or(0) })
}
