//! Loads for many parents at once, for the GraphQL layer's batching: rows
//! by id (scoped to their owner), and one page of children per parent in a
//! single query (a window function numbers each parent's children).

use std::collections::HashMap;

use entity::{execution, session, workspace};
use sea_orm::{prelude::*, FromQueryResult, Statement, Value};
use uuid::Uuid;

use super::DbResult;

/// `owner`'s workspaces among `ids`.
pub async fn workspaces(db: &DatabaseConnection, owner: &str, ids: &[Uuid]) -> DbResult<Vec<workspace::Model>> {
    Ok(workspace::Entity::find()
        .filter(workspace::Column::Id.is_in(ids.iter().copied()))
        .filter(workspace::Column::Owner.eq(owner))
        .all(db)
        .await?)
}

/// `owner`'s sessions among `ids`.
pub async fn sessions(db: &DatabaseConnection, owner: &str, ids: &[Uuid]) -> DbResult<Vec<session::Model>> {
    Ok(session::Entity::find()
        .filter(session::Column::Id.is_in(ids.iter().copied()))
        .filter(session::Column::WorkspaceId.in_subquery(super::workspaces::owned_by(owner)))
        .all(db)
        .await?)
}

/// `owner`'s executions among `ids`.
pub async fn executions(db: &DatabaseConnection, owner: &str, ids: &[Uuid]) -> DbResult<Vec<execution::Model>> {
    Ok(execution::Entity::find()
        .filter(execution::Column::Id.is_in(ids.iter().copied()))
        .filter(execution::Column::WorkspaceId.in_subquery(super::workspaces::owned_by(owner)))
        .all(db)
        .await?)
}

/// Which page of children to read for every parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page {
    /// Rows per parent (one more is read, to tell whether there is more).
    pub limit: u64,
    /// Only ids below this (the `after` cursor).
    pub before: Option<Uuid>,
    /// Only this status (sessions).
    pub status: Option<&'static str>,
}

/// One page of sessions for each workspace in `parents`, newest first.
pub async fn session_pages(
    db: &DatabaseConnection,
    parents: &[Uuid],
    page: Page,
) -> DbResult<HashMap<Uuid, Vec<session::Model>>> {
    let rows: Vec<session::Model> = windowed(db, "session", "workspace_id", parents, page).await?;
    Ok(group(rows, |s| s.workspace_id))
}

/// One page of executions for each session in `parents`, newest first.
pub async fn execution_pages(
    db: &DatabaseConnection,
    parents: &[Uuid],
    page: Page,
) -> DbResult<HashMap<Uuid, Vec<execution::Model>>> {
    let rows: Vec<execution::Model> = windowed(db, "execution", "session_id", parents, page).await?;
    Ok(group(rows, |e| e.session_id))
}

fn group<M>(rows: Vec<M>, parent: impl Fn(&M) -> Uuid) -> HashMap<Uuid, Vec<M>> {
    let mut groups: HashMap<Uuid, Vec<M>> = HashMap::new();
    for row in rows {
        groups.entry(parent(&row)).or_default().push(row);
    }
    groups
}

/// The first `page.limit + 1` rows of `table` per `parent_column` value,
/// newest (largest UUIDv7) first, in one statement.
async fn windowed<M: FromQueryResult>(
    db: &DatabaseConnection,
    table: &str,
    parent_column: &str,
    parents: &[Uuid],
    page: Page,
) -> DbResult<Vec<M>> {
    if parents.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let mut values: Vec<Value> = Vec::new();
    let mut bind = |value: Value| {
        values.push(value);
        super::placeholder(backend, values.len()).to_string()
    };
    let list: Vec<String> = parents.iter().map(|id| bind((*id).into())).collect();
    let mut filters = format!("\"{parent_column}\" IN ({})", list.join(", "));
    if let Some(status) = page.status {
        filters.push_str(&format!(" AND \"status\" = {}", bind(status.into())));
    }
    if let Some(before) = page.before {
        filters.push_str(&format!(" AND \"id\" < {}", bind(before.into())));
    }
    let limit = bind(((page.limit + 1) as i64).into());
    let sql = format!(
        "SELECT * FROM (SELECT t.*, ROW_NUMBER() OVER (PARTITION BY \"{parent_column}\" ORDER BY \"id\" DESC) AS \"row_number\" \
         FROM \"{table}\" t WHERE {filters}) numbered WHERE \"row_number\" <= {limit} ORDER BY \"{parent_column}\", \"id\" DESC"
    );
    Ok(M::find_by_statement(Statement::from_sql_and_values(backend, sql, values)).all(db).await?)
}
