//! Stored messages: the lines `claude` wrote, in order.

use chrono::Utc;
use entity::{execution, message, session};
use sea_orm::{prelude::*, ActiveValue::Set, QueryOrder, QuerySelect, TransactionTrait};
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
    pub payload: String,
}

/// Rows per INSERT: stays under SQLite's bound-parameter limit.
const ROWS_PER_INSERT: usize = 500;

/// Stores a batch of one execution's messages and bumps the execution's and
/// session's counters, in one transaction: either all of it is durable or
/// none is.
pub async fn store_batch(
    db: &DatabaseConnection,
    execution_id: Uuid,
    session_id: Uuid,
    batch: &[NewMessage],
) -> DbResult<()> {
    let Some(last) = batch.last() else { return Ok(()) };
    let now = Utc::now();
    let txn = db.begin().await?;
    for chunk in batch.chunks(ROWS_PER_INSERT) {
        let rows = chunk.iter().map(|m| message::ActiveModel {
            id: Default::default(),
            execution_id: Set(execution_id),
            session_id: Set(session_id),
            seq: Set(m.seq),
            session_seq: Set(m.session_seq),
            r#type: Set(m.type_name.clone()),
            subtype: Set(m.subtype.clone()),
            uuid: Set(m.uuid.clone()),
            payload: Set(m.payload.clone()),
            created_at: Set(now),
        });
        message::Entity::insert_many(rows).exec_without_returning(&txn).await?;
    }
    execution::Entity::update_many()
        .col_expr(execution::Column::MessageCount, Expr::value(last.seq))
        .filter(execution::Column::Id.eq(execution_id))
        .exec(&txn)
        .await?;
    session::Entity::update_many()
        .col_expr(session::Column::MessageCount, Expr::value(last.session_seq))
        .col_expr(session::Column::LastActivityAt, Expr::value(now))
        .filter(session::Column::Id.eq(session_id))
        .exec(&txn)
        .await?;
    super::signals::notify(&txn, super::signals::EVENTS_CHANNEL, execution_id).await?;
    txn.commit().await?;
    Ok(())
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
