//! A session's queue: executions started while the session was busy. They
//! wait PENDING, taken by no server (`replica_id` NULL), in the order they
//! were created (their UUIDv7 ids), until the session's run ends; the
//! server that ends it (or any server, see `waiting_sessions`) takes the
//! next one in the same transaction that frees the session.
//!
//! Everything that frees a session or queues behind it takes the session's
//! lock first (see `lock`), so a prompt queued just as the run ends is not
//! left waiting in a free session.

use entity::{execution, session};
use sea_orm::{prelude::*, PaginatorTrait, QueryOrder, QuerySelect, TransactionTrait};
use uuid::Uuid;

use super::{executions::Status, DbResult};

/// Serialises the transactions that free `session_id` or queue behind it.
pub async fn lock(txn: &impl ConnectionTrait, session_id: Uuid) -> DbResult<()> {
    super::lock_for(txn, &format!("session:{session_id}")).await
}

/// Whether the execution waits in its session's queue.
pub fn is_queued(execution: &execution::Model) -> bool {
    execution.status == Status::Pending && execution.replica_id.is_none()
}

/// Makes the session's next queued execution its active one, taken by
/// `replica_id` and resuming what the session's runs so far left (the
/// caller holds the session's lock and has freed the session). None when
/// nothing waits, or the session is closed.
pub async fn take_next(
    txn: &impl ConnectionTrait,
    session_id: Uuid,
    replica_id: &str,
) -> DbResult<Option<execution::Model>> {
    let next = execution::Entity::find()
        .filter(execution::Column::SessionId.eq(session_id))
        .filter(execution::Column::Status.eq(Status::Pending.as_str()))
        .filter(execution::Column::ReplicaId.is_null())
        .order_by_asc(execution::Column::Id)
        .one(txn)
        .await?;
    let Some(next) = next else { return Ok(None) };
    let resume = super::sessions::find(txn, session_id).await?.and_then(|s| s.claude_session_id);
    // Still queued (not cancelled since it was read), or nothing.
    let taken = execution::Entity::update_many()
        .col_expr(execution::Column::ReplicaId, Expr::value(replica_id))
        .col_expr(execution::Column::ResumedFrom, Expr::value(resume))
        .filter(execution::Column::Id.eq(next.id))
        .filter(execution::Column::Status.eq(Status::Pending.as_str()))
        .filter(execution::Column::ReplicaId.is_null())
        .exec(txn)
        .await?;
    if taken.rows_affected == 0 {
        return Ok(None);
    }
    if !super::sessions::claim(txn, session_id, next.id).await? {
        // Closed (or busy after all): it stays queued.
        execution::Entity::update_many()
            .col_expr(execution::Column::ReplicaId, Expr::value(Option::<String>::None))
            .filter(execution::Column::Id.eq(next.id))
            .exec(txn)
            .await?;
        return Ok(None);
    }
    super::clock::touch(txn, next.id).await?;
    super::executions::find(txn, next.id).await
}

/// Takes the next queued execution of a free session, in a transaction of
/// its own.
pub async fn promote(
    db: &DatabaseConnection,
    session_id: Uuid,
    replica_id: &str,
) -> DbResult<Option<execution::Model>> {
    let txn = db.begin().await?;
    lock(&txn, session_id).await?;
    let next = take_next(&txn, session_id, replica_id).await?;
    txn.commit().await?;
    Ok(next)
}

/// Puts an execution that never started (its server, named by the
/// model's `replica_id`, stopped while it waited for a slot) back in its
/// session's queue, and frees the session
/// for it; then takes the session's next execution (the same one, unless
/// an older one waits) for `replica_id`. False when it had started after
/// all, or was finished.
pub async fn requeue(
    db: &DatabaseConnection,
    execution: &execution::Model,
    replica_id: Option<&str>,
) -> DbResult<(bool, Option<execution::Model>)> {
    let (id, session_id) = (execution.id, execution.session_id);
    let txn = db.begin().await?;
    lock(&txn, session_id).await?;
    // Only from the server that had it: two servers finishing the runs of
    // a gone one must not both take it.
    let owner = match &execution.replica_id {
        Some(owner) => execution::Column::ReplicaId.eq(owner.as_str()),
        None => execution::Column::ReplicaId.is_null(),
    };
    let updated = execution::Entity::update_many()
        .col_expr(execution::Column::ReplicaId, Expr::value(Option::<String>::None))
        .filter(execution::Column::Id.eq(id))
        .filter(owner)
        .filter(execution::Column::Status.eq(Status::Pending.as_str()))
        .filter(execution::Column::StartedAt.is_null())
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        return Ok((false, None));
    }
    session::Entity::update_many()
        .col_expr(session::Column::ActiveExecutionId, Expr::value(Option::<Uuid>::None))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::ActiveExecutionId.eq(id))
        .exec(&txn)
        .await?;
    super::clock::touch(&txn, id).await?;
    let next = match replica_id {
        Some(replica_id) => take_next(&txn, session_id, replica_id).await?,
        None => None,
    };
    txn.commit().await?;
    Ok((true, next))
}

/// Open sessions that are free while executions wait in their queue (a
/// server stopped before it took the next one).
pub async fn waiting_sessions(db: &DatabaseConnection) -> DbResult<Vec<Uuid>> {
    let free = sea_orm::sea_query::Query::select()
        .column(session::Column::Id)
        .from(session::Entity)
        .and_where(session::Column::ActiveExecutionId.is_null())
        .and_where(session::Column::Status.eq(super::sessions::ACTIVE))
        .to_owned();
    let mut sessions: Vec<Uuid> = execution::Entity::find()
        .select_only()
        .column(execution::Column::SessionId)
        .filter(execution::Column::Status.eq(Status::Pending.as_str()))
        .filter(execution::Column::ReplicaId.is_null())
        .filter(execution::Column::SessionId.in_subquery(free))
        .into_tuple()
        .all(db)
        .await?;
    sessions.sort_unstable();
    sessions.dedup();
    Ok(sessions)
}

/// Where a queued execution waits: 1 when it is next.
pub async fn position(db: &impl ConnectionTrait, execution: &execution::Model) -> DbResult<Option<u64>> {
    if !is_queued(execution) {
        return Ok(None);
    }
    let ahead = execution::Entity::find()
        .filter(execution::Column::SessionId.eq(execution.session_id))
        .filter(execution::Column::Status.eq(Status::Pending.as_str()))
        .filter(execution::Column::ReplicaId.is_null())
        .filter(execution::Column::Id.lt(execution.id))
        .count(db)
        .await?;
    Ok(Some(ahead + 1))
}

/// Cancels a queued execution (it never started). False when it is not
/// queued (any more).
pub async fn cancel(db: &DatabaseConnection, id: Uuid) -> DbResult<bool> {
    let Some(queued) = super::executions::find(db, id).await? else { return Ok(false) };
    let txn = db.begin().await?;
    // Not while the session's run ends and takes the next one.
    lock(&txn, queued.session_id).await?;
    let updated = cancel_where(&txn, execution::Column::Id.eq(id)).await?;
    if updated == 1 {
        super::clock::touch(&txn, id).await?;
        super::webhooks::execution_event(&txn, id, super::webhooks::EXECUTION_CANCELLED).await?;
    }
    txn.commit().await?;
    Ok(updated == 1)
}

/// Cancels everything queued in a session (it was closed); returns their ids.
pub async fn cancel_all(db: &DatabaseConnection, session_id: Uuid) -> DbResult<Vec<Uuid>> {
    let txn = db.begin().await?;
    lock(&txn, session_id).await?;
    let ids: Vec<Uuid> = execution::Entity::find()
        .select_only()
        .column(execution::Column::Id)
        .filter(execution::Column::SessionId.eq(session_id))
        .filter(execution::Column::Status.eq(Status::Pending.as_str()))
        .filter(execution::Column::ReplicaId.is_null())
        .into_tuple()
        .all(&txn)
        .await?;
    let mut cancelled = Vec::with_capacity(ids.len());
    for id in ids {
        // Only those this cancel ended (not one a single cancel ended).
        if cancel_where(&txn, execution::Column::Id.eq(id)).await? == 1 {
            super::clock::touch(&txn, id).await?;
            super::webhooks::execution_event(&txn, id, super::webhooks::EXECUTION_CANCELLED).await?;
            cancelled.push(id);
        }
    }
    txn.commit().await?;
    Ok(cancelled)
}

/// CANCELLED, for the queued executions `which` selects.
async fn cancel_where(txn: &impl ConnectionTrait, which: sea_orm::sea_query::SimpleExpr) -> DbResult<u64> {
    let updated = execution::Entity::update_many()
        .col_expr(execution::Column::Status, Expr::value(Status::Cancelled.as_str()))
        .col_expr(execution::Column::ErrorCode, Expr::value("CANCELLED"))
        .col_expr(execution::Column::ErrorMessage, Expr::value("cancelled while it was queued"))
        .col_expr(execution::Column::FinishedAt, Expr::value(chrono::Utc::now()))
        .filter(which)
        .filter(execution::Column::Status.eq(Status::Pending.as_str()))
        .filter(execution::Column::ReplicaId.is_null())
        .exec(txn)
        .await?;
    Ok(updated.rows_affected)
}
