//! Stored messages: the lines `claude` wrote, in order. They are stored in
//! blocks (the consecutive lines of a run committed together share a row)
//! and read back one by one.

use std::{
    collections::{hash_map::Entry, HashMap},
    fmt::Write as _,
    sync::Arc,
};

use chrono::Utc;
use entity::message_block;
use sea_orm::{prelude::*, sqlx, DatabaseBackend, QueryOrder};
use uuid::Uuid;

use super::{DbError, DbResult};
use crate::claude::stream::{name, Name};

/// One line, numbered, ready to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub seq: i64,
    pub session_seq: i64,
    pub type_name: Name,
    pub subtype: Option<Name>,
    pub uuid: Option<String>,
    /// The line, shared with the event that publishes it.
    pub payload: Arc<str>,
}

/// Rows per INSERT: at 9 parameters a row, under SQLite's limit (32766).
const ROWS_PER_INSERT: usize = 500;
/// Lines a block holds at most, and bytes of their text (a longer line is
/// a block alone): what a read of a few lines may have to read besides.
const BLOCK_LINES: usize = 512;
const BLOCK_BYTES: usize = 1 << 20;

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
/// is durable or none is. A batch's consecutive lines share a row (a
/// block): a row, its index entries and its bound values are paid for once
/// a block, not once a line.
///
/// This is the hot path of every run, so it speaks to the driver directly:
/// a few statements a transaction whatever the number of runs, each
/// block's text built once and handed to the driver as it is. The values
/// are encoded as SeaORM's binder encodes them, so the entities read them
/// back the same.
pub async fn store_batches(db: &DatabaseConnection, batches: &[&Batch]) -> DbResult<()> {
    let now = Utc::now();
    let stored = match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            store_in(db.get_postgres_connection_pool(), DatabaseBackend::Postgres, batches, now).await
        }
        // The text the driver makes of a time, made once, not once a block.
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
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Time: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let blocks = Block::split(batches);
    let mut tx = pool.begin().await?;
    for chunk in blocks.chunks(ROWS_PER_INSERT) {
        let sql = insert_sql(backend, chunk.len());
        let mut query = sqlx::query::<DB>(&sql);
        for block in chunk {
            let (first, last) = block.ends();
            query = query
                .bind(block.batch.execution_id)
                .bind(block.batch.session_id)
                .bind(first.seq)
                .bind(last.seq)
                .bind(first.session_seq)
                .bind(last.session_seq)
                .bind(block.headers())
                .bind(block.payload())
                .bind(&now);
        }
        query.execute(&mut *tx).await?;
    }
    let counts = Counts::of(&blocks)?;
    for (table, counts) in [("execution", &counts.executions), ("session", &counts.sessions)] {
        for chunk in counts.chunks(ROWS_PER_INSERT) {
            let touched = table == "session";
            let sql = set_counts_sql(backend, table, touched, chunk.len());
            let mut query = sqlx::query::<DB>(&sql);
            for &(id, before, after) in chunk {
                query = query.bind(id).bind(before).bind(after);
            }
            if touched {
                query = query.bind(&now);
            }
            for &(id, ..) in chunk {
                query = query.bind(id);
            }
            query.execute(&mut *tx).await?;
        }
    }
    if backend == DatabaseBackend::Postgres {
        // Other replicas hear of the new lines once they are committed.
        let ids: Vec<String> = counts.executions.iter().map(|(id, ..)| id.to_string()).collect();
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

/// Consecutive lines of one batch, stored as one row.
struct Block<'a> {
    batch: &'a Batch,
    /// Never empty; numbered one after the other in both numberings.
    lines: &'a [NewMessage],
}

/// A line's `[type, subtype, uuid, length]` in a block's `headers`.
type Header<T> = (T, Option<T>, Option<T>, usize);

impl<'a> Block<'a> {
    /// The blocks of `batches`, in order: a block ends where a batch does,
    /// where it would grow past [`BLOCK_LINES`] or [`BLOCK_BYTES`], and
    /// where the numbering skips (a block's lines are numbered from its
    /// first).
    fn split(batches: &[&'a Batch]) -> Vec<Block<'a>> {
        let mut blocks = Vec::new();
        for &batch in batches {
            let lines = &batch.messages[..];
            let mut start = 0;
            let mut bytes = 0;
            for (i, line) in lines.iter().enumerate() {
                if i > start {
                    let previous = &lines[i - 1];
                    let follows = line.seq == previous.seq + 1 && line.session_seq == previous.session_seq + 1;
                    if !follows || i - start == BLOCK_LINES || bytes + line.payload.len() > BLOCK_BYTES {
                        blocks.push(Block { batch, lines: &lines[start..i] });
                        (start, bytes) = (i, 0);
                    }
                }
                bytes += line.payload.len() + 1;
            }
            if start < lines.len() {
                blocks.push(Block { batch, lines: &lines[start..] });
            }
        }
        blocks
    }

    /// Its first and last lines.
    fn ends(&self) -> (&'a NewMessage, &'a NewMessage) {
        (&self.lines[0], &self.lines[self.lines.len() - 1])
    }

    fn headers(&self) -> String {
        let headers: Vec<Header<&str>> = self
            .lines
            .iter()
            .map(|m| (&*m.type_name, m.subtype.as_deref(), m.uuid.as_deref(), m.payload.len()))
            .collect();
        serde_json::to_string(&headers).expect("strings and numbers are always JSON")
    }

    fn payload(&self) -> String {
        let mut text = String::with_capacity(self.lines.iter().map(|m| m.payload.len() + 1).sum());
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str(&line.payload);
        }
        text
    }
}

/// Each execution's and session's count before a group of blocks and after
/// it: (id, before, after).
///
/// A block must follow what is stored: its first line numbered one past
/// the count (the UPDATE checks that in the database, where the count
/// is), and one past the previous block of the group for the same
/// execution or session (checked here). Blocks do not overlap, so no line
/// is stored twice (a retry that was in fact committed, a run resumed from
/// a stale count).
struct Counts {
    executions: Vec<(Uuid, i64, i64)>,
    sessions: Vec<(Uuid, i64, i64)>,
}

impl Counts {
    fn of(blocks: &[Block]) -> Result<Counts, sqlx::Error> {
        let mut executions = HashMap::new();
        let mut sessions = HashMap::new();
        for block in blocks {
            let (first, last) = block.ends();
            follow(&mut executions, block.batch.execution_id, first.seq, last.seq)?;
            follow(&mut sessions, block.batch.session_id, first.session_seq, last.session_seq)?;
        }
        let flatten = |counts: HashMap<Uuid, (i64, i64)>| counts.into_iter().map(|(id, (b, a))| (id, b, a)).collect();
        Ok(Counts { executions: flatten(executions), sessions: flatten(sessions) })
    }
}

/// Counts lines `first..=last` of `id` in, after the ones before them in
/// the group.
fn follow(counts: &mut HashMap<Uuid, (i64, i64)>, id: Uuid, first: i64, last: i64) -> Result<(), sqlx::Error> {
    match counts.entry(id) {
        Entry::Vacant(entry) => {
            entry.insert((first - 1, last));
        }
        Entry::Occupied(mut entry) if entry.get().1 + 1 == first => entry.get_mut().1 = last,
        Entry::Occupied(entry) => {
            let after = entry.get().1;
            return Err(sqlx::Error::InvalidArgument(format!(
                "lines {first}..{last} of {id} do not follow line {after}"
            )));
        }
    }
    Ok(())
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
        "INSERT INTO \"message_block\" (\"execution_id\", \"session_id\", \"first_seq\", \"last_seq\", \
         \"first_session_seq\", \"last_session_seq\", \"headers\", \"payload\", \"created_at\") VALUES ",
    );
    let mut next = 1;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ",(" });
        placeholders(&mut sql, backend, &mut next, 9);
        sql.push(')');
    }
    sql
}

/// `UPDATE table SET message_count = CASE id WHEN ? THEN (CASE WHEN
/// message_count = ? THEN ? END) .. END WHERE id IN (..)` for `n` rows;
/// bound: the (id, before, after) triples, the time if `touched` (it sets
/// `last_activity_at`), the ids. A count that is not `before` becomes
/// NULL, which the column refuses: lines that do not follow the stored
/// ones fail the whole transaction.
fn set_counts_sql(backend: DatabaseBackend, table: &str, touched: bool, n: usize) -> String {
    let mut sql = format!("UPDATE \"{table}\" SET \"message_count\" = CASE \"id\"");
    let mut next = 1;
    for _ in 0..n {
        sql.push_str(" WHEN ");
        placeholders(&mut sql, backend, &mut next, 1);
        sql.push_str(" THEN (CASE WHEN \"message_count\" = ");
        placeholders(&mut sql, backend, &mut next, 1);
        sql.push_str(" THEN ");
        placeholders(&mut sql, backend, &mut next, 1);
        sql.push_str(" END)");
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

/// One stored line, as read back from its block.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub execution_id: Uuid,
    pub session_id: Uuid,
    /// 1, 2, 3, ... within the execution.
    pub seq: i64,
    /// 1, 2, 3, ... across the session.
    pub session_seq: i64,
    pub type_name: Name,
    pub subtype: Option<Name>,
    /// The line's own `uuid`, when it has one.
    pub uuid: Option<String>,
    /// The line exactly as `claude` wrote it (JSON text).
    pub payload: Arc<str>,
    pub created_at: chrono::DateTime<Utc>,
}

/// An execution's messages with `seq > after_seq`, in order, at most `limit`.
pub async fn after(
    db: &DatabaseConnection,
    execution_id: Uuid,
    after_seq: i64,
    limit: u64,
) -> DbResult<Vec<StoredMessage>> {
    page(db, Numbering::Execution(execution_id), after_seq, limit).await
}

/// A session's messages with `session_seq > after`, in order, at most
/// `limit`.
pub async fn session_logs(
    db: &DatabaseConnection,
    session_id: Uuid,
    after: i64,
    limit: u64,
) -> DbResult<Vec<StoredMessage>> {
    page(db, Numbering::Session(session_id), after, limit).await
}

/// Whose lines a page reads, and so by which number.
#[derive(Clone, Copy)]
enum Numbering {
    Execution(Uuid),
    Session(Uuid),
}

impl Numbering {
    fn scope(self) -> sea_orm::sea_query::SimpleExpr {
        match self {
            Numbering::Execution(id) => message_block::Column::ExecutionId.eq(id),
            Numbering::Session(id) => message_block::Column::SessionId.eq(id),
        }
    }

    fn last_column(self) -> message_block::Column {
        match self {
            Numbering::Execution(_) => message_block::Column::LastSeq,
            Numbering::Session(_) => message_block::Column::LastSessionSeq,
        }
    }

    fn last_of(self, block: &message_block::Model) -> i64 {
        match self {
            Numbering::Execution(_) => block.last_seq,
            Numbering::Session(_) => block.last_session_seq,
        }
    }

    fn of(self, line: &StoredMessage) -> i64 {
        match self {
            Numbering::Execution(_) => line.seq,
            Numbering::Session(_) => line.session_seq,
        }
    }
}

/// The lines numbered after `after`, at most `limit`, by keyset pagination
/// on the blocks' last numbers. Lines are numbered without gaps, so the
/// blocks that end in `(after, after + limit]` hold the page but for the
/// lines of the block it ends in, read next; where the numbering does skip,
/// further blocks are read one by one until the page is full.
async fn page(db: &DatabaseConnection, numbering: Numbering, after: i64, limit: u64) -> DbResult<Vec<StoredMessage>> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let end = after.saturating_add(i64::try_from(limit).unwrap_or(i64::MAX));
    let last = numbering.last_column();
    let mut blocks = message_block::Entity::find()
        .filter(numbering.scope())
        .filter(last.gt(after))
        .filter(last.lte(end))
        .order_by_asc(last)
        .all(db)
        .await?;
    let mut lines = Vec::new();
    let mut read_up_to = after;
    loop {
        for block in blocks {
            read_up_to = numbering.last_of(&block);
            lines.extend(lines_of(block)?.into_iter().filter(|line| numbering.of(line) > after));
        }
        if lines.len() >= limit {
            lines.truncate(limit);
            return Ok(lines);
        }
        let next = message_block::Entity::find()
            .filter(numbering.scope())
            .filter(last.gt(read_up_to))
            .order_by_asc(last)
            .one(db);
        match next.await? {
            Some(block) => blocks = vec![block],
            None => return Ok(lines),
        }
    }
}

/// A block's lines, numbered; an error if the block does not add up.
fn lines_of(block: message_block::Model) -> DbResult<Vec<StoredMessage>> {
    let corrupt = |what: &str| {
        DbError::Db(DbErr::Custom(format!("the stored block {} of execution {}: {what}", block.id, block.execution_id)))
    };
    let headers: Vec<Header<String>> =
        serde_json::from_str(&block.headers).map_err(|e| corrupt(&format!("its headers: {e}")))?;
    let count = i64::try_from(headers.len()).unwrap_or(i64::MAX);
    if block.last_seq - block.first_seq + 1 != count || block.last_session_seq - block.first_session_seq + 1 != count {
        return Err(corrupt("its numbers do not match its lines"));
    }
    let mut lines = Vec::with_capacity(headers.len());
    let mut at: usize = 0;
    for (i, (type_name, subtype, uuid, length)) in (0..).zip(headers) {
        let text = at
            .checked_add(length)
            .and_then(|end| block.payload.get(at..end))
            .ok_or_else(|| corrupt("its lines do not match their lengths"))?;
        at += length + 1;
        lines.push(StoredMessage {
            execution_id: block.execution_id,
            session_id: block.session_id,
            seq: block.first_seq + i,
            session_seq: block.first_session_seq + i,
            type_name: name(&type_name),
            subtype: subtype.as_deref().map(name),
            uuid,
            payload: Arc::from(text),
            created_at: block.created_at,
        });
    }
    if at != block.payload.len() + 1 {
        return Err(corrupt("its lines do not match their lengths"));
    }
    Ok(lines)
}
