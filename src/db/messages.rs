//! Stored messages: the lines `claude` wrote, in order.

use std::{fmt::Write as _, sync::Arc};

use chrono::Utc;
use entity::message;
use sea_orm::{prelude::*, sqlx, DatabaseBackend, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::{DbError, DbResult};

/// One line, numbered, ready to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub seq: i64,
    pub session_seq: i64,
    pub type_name: String,
    pub subtype: Option<String>,
    pub uuid: Option<String>,
    /// The line, shared with the event that publishes it.
    pub payload: Arc<str>,
}

/// Rows per INSERT: at 9 parameters a row, under SQLite's limit (32766).
const ROWS_PER_INSERT: usize = 500;

/// One execution's batch of lines, for [`store_batches`].
#[derive(Debug, Clone)]
pub struct Batch {
    pub execution_id: Uuid,
    pub session_id: Uuid,
    /// Shared with the caller, which may try it again.
    pub messages: Arc<[NewMessage]>,
}

/// Stores batches (of one or several executions) and bumps each
/// execution's and session's counters, in one transaction: either all of it
/// is durable or none is.
///
/// This is the hot path of every run, so it speaks to the driver directly:
/// a few statements a transaction whatever the number of runs, the lines
/// bound by reference (not copied into query values and cloned again; the
/// SQLite driver still copies each once, to send it to its own thread). The
/// values are encoded as SeaORM's binder encodes them, so the entities read
/// them back the same.
pub async fn store_batches(db: &DatabaseConnection, batches: &[&Batch]) -> DbResult<()> {
    let now = Utc::now();
    let stored = match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            store_in(db.get_postgres_connection_pool(), DatabaseBackend::Postgres, batches, now).await
        }
        // The text the driver makes of a time, made once, not once a line.
        backend => {
            let now = now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
            store_in(db.get_sqlite_connection_pool(), backend, batches, now).await
        }
    };
    stored.map_err(|e| DbError::Db(DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))))
}

async fn store_in<DB, Time>(
    pool: &sqlx::Pool<DB>,
    backend: DatabaseBackend,
    batches: &[&Batch],
    now: Time,
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB>,
    for<'q> Time: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let rows: Vec<(&Batch, &NewMessage)> =
        batches.iter().flat_map(|b| b.messages.iter().map(move |m| (*b, m))).collect();
    let mut tx = pool.begin().await?;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = insert_sql(backend, chunk.len());
        let mut query = sqlx::query::<DB>(&sql);
        for (batch, m) in chunk {
            query = query
                .bind(batch.execution_id)
                .bind(batch.session_id)
                .bind(m.seq)
                .bind(m.session_seq)
                .bind(m.type_name.as_str())
                .bind(m.subtype.as_deref())
                .bind(m.uuid.as_deref())
                .bind(&*m.payload)
                .bind(&now);
        }
        query.execute(&mut *tx).await?;
    }
    let counts = Counts::of(batches);
    for (table, counts) in [("execution", &counts.executions), ("session", &counts.sessions)] {
        for chunk in counts.chunks(ROWS_PER_INSERT) {
            let touched = table == "session";
            let sql = set_counts_sql(backend, table, touched, chunk.len());
            let mut query = sqlx::query::<DB>(&sql);
            for &(id, count) in chunk {
                query = query.bind(id).bind(count);
            }
            if touched {
                query = query.bind(&now);
            }
            for &(id, _) in chunk {
                query = query.bind(id);
            }
            query.execute(&mut *tx).await?;
        }
    }
    if backend == DatabaseBackend::Postgres {
        // Other replicas hear of the new lines once they are committed.
        let ids: Vec<String> = counts.executions.iter().map(|(id, _)| id.to_string()).collect();
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            let calls: Vec<String> = (0..chunk.len()).map(|i| format!("pg_notify($1, ${})", i + 2)).collect();
            let sql = format!("SELECT {}", calls.join(", "));
            let mut query = sqlx::query::<DB>(&sql).bind(super::signals::EVENTS_CHANNEL);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            query.execute(&mut *tx).await?;
        }
    }
    tx.commit().await
}

/// The highest counts a group of batches reaches, per execution and per
/// session (two runs of one session may be in one group).
struct Counts {
    executions: Vec<(Uuid, i64)>,
    sessions: Vec<(Uuid, i64)>,
}

impl Counts {
    fn of(batches: &[&Batch]) -> Counts {
        let mut executions = std::collections::HashMap::new();
        let mut sessions = std::collections::HashMap::new();
        for batch in batches {
            let Some(last) = batch.messages.last() else { continue };
            let count = executions.entry(batch.execution_id).or_insert(last.seq);
            *count = (*count).max(last.seq);
            let count = sessions.entry(batch.session_id).or_insert(last.session_seq);
            *count = (*count).max(last.session_seq);
        }
        Counts { executions: executions.into_iter().collect(), sessions: sessions.into_iter().collect() }
    }
}

/// Writes `n` placeholders, numbered on from `*next`, separated by commas.
/// (SQLite's are anonymous `?`: the driver asks SQLite for the name of
/// every numbered one, which SQLite finds by a linear search of the
/// statement's names, so a 4500-parameter INSERT ran 4x slower.)
fn placeholders(sql: &mut String, backend: DatabaseBackend, next: &mut usize, n: usize) {
    for i in 0..n {
        if i > 0 {
            sql.push(',');
        }
        let _ = write!(sql, "{}", super::placeholder(backend, *next));
        *next += 1;
    }
}

/// `INSERT` of `rows` lines. (The driver caches its prepared statement by
/// this text.)
fn insert_sql(backend: DatabaseBackend, rows: usize) -> String {
    let mut sql = String::with_capacity(160 + rows * 64);
    sql.push_str(
        "INSERT INTO \"message\" (\"execution_id\", \"session_id\", \"seq\", \"session_seq\", \"type\", \
         \"subtype\", \"uuid\", \"payload\", \"created_at\") VALUES ",
    );
    let mut next = 1;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ",(" });
        placeholders(&mut sql, backend, &mut next, 9);
        sql.push(')');
    }
    sql
}

/// `UPDATE table SET message_count = CASE id WHEN ? THEN ? .. END WHERE id
/// IN (..)` for `n` rows; bound: the (id, count) pairs, the time if
/// `touched` (it sets `last_activity_at`), the ids.
fn set_counts_sql(backend: DatabaseBackend, table: &str, touched: bool, n: usize) -> String {
    let mut sql = format!("UPDATE \"{table}\" SET \"message_count\" = CASE \"id\"");
    let mut next = 1;
    for _ in 0..n {
        sql.push_str(" WHEN ");
        placeholders(&mut sql, backend, &mut next, 1);
        sql.push_str(" THEN ");
        placeholders(&mut sql, backend, &mut next, 1);
    }
    sql.push_str(" END");
    if touched {
        sql.push_str(", \"last_activity_at\" = ");
        placeholders(&mut sql, backend, &mut next, 1);
    }
    sql.push_str(" WHERE \"id\" IN (");
    placeholders(&mut sql, backend, &mut next, n);
    sql.push(')');
    sql
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
