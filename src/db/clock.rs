//! Each owner's change counter, for `dashboardEvents`: every change a
//! dashboard shows (an execution's status, a stall, a permission request
//! made or settled) takes the owner's next number and stamps it on the
//! execution, in the transaction that makes the change.
//!
//! "What changed after N" is then exact: the counter's row stays locked
//! until the transaction commits, so numbers commit in order and a reader
//! can never see N+1 and later find N. [`touch`] must be a transaction's
//! last statement: holding that row lock, it waits for nothing else.

use entity::execution;
use sea_orm::{prelude::*, QueryOrder, QuerySelect, Statement};
use uuid::Uuid;

use super::{executions::Status, DbResult};

/// Stamps a change of `execution_id` with its owner's next number (and
/// signals it to other replicas).
pub async fn touch(txn: &impl ConnectionTrait, execution_id: Uuid) -> DbResult<()> {
    let backend = txn.get_database_backend();
    let placeholder = super::placeholder(backend, 1);
    let sql = format!(
        "INSERT INTO owner_clock (owner, seq) \
         SELECT w.owner, 1 FROM execution e JOIN workspace w ON w.id = e.workspace_id WHERE e.id = {placeholder} \
         ON CONFLICT (owner) DO UPDATE SET seq = owner_clock.seq + 1 RETURNING seq"
    );
    let row = txn.query_one(Statement::from_sql_and_values(backend, sql, [execution_id.into()])).await?;
    let Some(seq) = row.map(|r| r.try_get::<i64>("", "seq")).transpose()? else { return Ok(()) };
    execution::Entity::update_many()
        .col_expr(execution::Column::ChangeSeq, Expr::value(seq))
        .filter(execution::Column::Id.eq(execution_id))
        .exec(txn)
        .await?;
    super::signals::notify(txn, super::signals::EVENTS_CHANNEL, execution_id).await?;
    Ok(())
}

/// The owner's counter now.
pub async fn now(db: &impl ConnectionTrait, owner: &str) -> DbResult<i64> {
    let backend = db.get_database_backend();
    let placeholder = super::placeholder(backend, 1);
    let sql = format!("SELECT seq FROM owner_clock WHERE owner = {placeholder}");
    let row = db.query_one(Statement::from_sql_and_values(backend, sql, [owner.into()])).await?;
    Ok(row.map(|r| r.try_get::<i64>("", "seq")).transpose()?.unwrap_or(0))
}

/// The owner's executions (in one workspace, if given) that changed after
/// `after`, in the order of their changes; at most `limit`.
pub async fn changed_after(
    db: &impl ConnectionTrait,
    owner: &str,
    workspace: Option<Uuid>,
    after: i64,
    limit: u64,
) -> DbResult<Vec<execution::Model>> {
    let mut query = execution::Entity::find()
        .filter(execution::Column::WorkspaceId.in_subquery(super::workspaces::owned_by(owner)))
        .filter(execution::Column::ChangeSeq.gt(after));
    if let Some(workspace) = workspace {
        query = query.filter(execution::Column::WorkspaceId.eq(workspace));
    }
    Ok(query.order_by_asc(execution::Column::ChangeSeq).limit(limit).all(db).await?)
}

/// The owner's executions (in one workspace, if given) that are pending or
/// running, in the order of their latest changes.
pub async fn active(
    db: &impl ConnectionTrait,
    owner: &str,
    workspace: Option<Uuid>,
) -> DbResult<Vec<execution::Model>> {
    let mut query = execution::Entity::find()
        .filter(execution::Column::WorkspaceId.in_subquery(super::workspaces::owned_by(owner)))
        .filter(execution::Column::Status.is_in(Status::UNFINISHED.map(Status::as_str)));
    if let Some(workspace) = workspace {
        query = query.filter(execution::Column::WorkspaceId.eq(workspace));
    }
    Ok(query.order_by_asc(execution::Column::ChangeSeq).order_by_asc(execution::Column::Id).all(db).await?)
}
