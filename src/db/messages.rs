//! Stored messages: the lines `claude` wrote, in order.

use std::fmt::Write as _;

use chrono::Utc;
use entity::{execution, message, session};
use sea_orm::{prelude::*, QueryOrder, QuerySelect, Statement, TransactionTrait};
use uuid::Uuid;

use super::DbResult;

/// One line, numbered, ready to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub seq: i64,
    pub session_seq: i64,
    pub type_name: String,
    pub subtype: Option<String>,
    pub uuid: Option<String>,
    /// The line, shared with the event that publishes it.
    pub payload: std::sync::Arc<str>,
}

/// Rows per INSERT: stays under SQLite's bound-parameter limit.
const ROWS_PER_INSERT: usize = 500;

/// One execution's batch of lines, for [`store_batches`].
#[derive(Debug, Clone)]
pub struct Batch {
    pub execution_id: Uuid,
    pub session_id: Uuid,
    pub messages: Vec<NewMessage>,
}

/// Stores batches (of one or several executions) and bumps each
/// execution's and session's counters, in one transaction: either all of it
/// is durable or none is.
pub async fn store_batches(db: &DatabaseConnection, batches: &[&Batch]) -> DbResult<()> {
    let now = Utc::now();
    let txn = db.begin().await?;
    let rows: Vec<_> = batches.iter().flat_map(|b| b.messages.iter().map(move |m| (*b, m))).collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        txn.execute(insert_statement(txn.get_database_backend(), chunk, now)).await?;
    }
    for batch in batches.iter() {
        let Some(last) = batch.messages.last() else { continue };
        execution::Entity::update_many()
            .col_expr(execution::Column::MessageCount, Expr::value(last.seq))
            .filter(execution::Column::Id.eq(batch.execution_id))
            .exec(&txn)
            .await?;
        session::Entity::update_many()
            .col_expr(session::Column::MessageCount, Expr::value(last.session_seq))
            .col_expr(session::Column::LastActivityAt, Expr::value(now))
            .filter(session::Column::Id.eq(batch.session_id))
            .exec(&txn)
            .await?;
        super::signals::notify(&txn, super::signals::EVENTS_CHANNEL, batch.execution_id).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// One multi-row INSERT of `rows`, written directly: the lines are the
/// hot path, and the values go through the same binder as every other
/// statement's (so they are stored exactly as the entity reads them).
fn insert_statement(
    backend: sea_orm::DatabaseBackend,
    rows: &[(&Batch, &NewMessage)],
    now: chrono::DateTime<Utc>,
) -> Statement {
    const COLUMNS: &str =
        "\"execution_id\", \"session_id\", \"seq\", \"session_seq\", \"type\", \"subtype\", \"uuid\", \"payload\", \"created_at\"";
    let mut sql = String::with_capacity(64 + rows.len() * 48);
    sql.push_str("INSERT INTO \"message\" (");
    sql.push_str(COLUMNS);
    sql.push_str(") VALUES ");
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(rows.len() * 9);
    for (i, (batch, m)) in rows.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for column in 0..9 {
            if column > 0 {
                sql.push(',');
            }
            let _ = write!(sql, "{}", super::placeholder(backend, values.len() + column + 1));
        }
        sql.push(')');
        values.extend([
            batch.execution_id.into(),
            batch.session_id.into(),
            m.seq.into(),
            m.session_seq.into(),
            m.type_name.clone().into(),
            m.subtype.clone().into(),
            m.uuid.clone().into(),
            m.payload.to_string().into(),
            now.into(),
        ]);
    }
    Statement::from_sql_and_values(backend, sql, values)
}

/// An execution's messages with `seq > after_seq`, in order, at most `limit`.
pub async fn after(
    db: &DatabaseConnection,
    execution_id: Uuid,
    after_seq: i64,
    limit: u64,
) -> DbResult<Vec<message::Model>> {
    Ok(message::Entity::find()
        .filter(message::Column::ExecutionId.eq(execution_id))
        .filter(message::Column::Seq.gt(after_seq))
        .order_by_asc(message::Column::Seq)
        .limit(limit)
        .all(db)
        .await?)
}

/// A session's messages with `session_seq > after`, in order (keyset
/// pagination on the unique (session_id, session_seq) index).
pub async fn session_logs(
    db: &DatabaseConnection,
    session_id: Uuid,
    after: i64,
    limit: u64,
) -> DbResult<Vec<message::Model>> {
    Ok(message::Entity::find()
        .filter(message::Column::SessionId.eq(session_id))
        .filter(message::Column::SessionSeq.gt(after))
        .order_by_asc(message::Column::SessionSeq)
        .limit(limit)
        .all(db)
        .await?)
}
