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
    let rows = batches.iter().flat_map(|b| b.messages.iter().map(move |m| (b, m)));
    let rows: Vec<_> = rows.collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let models = chunk.iter().map(|(b, m)| message::ActiveModel {
            id: Default::default(),
            execution_id: Set(b.execution_id),
            session_id: Set(b.session_id),
            seq: Set(m.seq),
            session_seq: Set(m.session_seq),
            r#type: Set(m.type_name.clone()),
            subtype: Set(m.subtype.clone()),
            uuid: Set(m.uuid.clone()),
            payload: Set(m.payload.clone()),
            created_at: Set(now),
        });
        message::Entity::insert_many(models).exec_without_returning(&txn).await?;
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
