//! Workspaces, always scoped to their owner.

use chrono::Utc;
use entity::workspace;
use sea_orm::{prelude::*, ActiveValue::Set, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::DbResult;

pub async fn create(
    db: &DatabaseConnection,
    owner: &str,
    name: &str,
    path: &str,
    require_approval: bool,
) -> DbResult<workspace::Model> {
    let model = workspace::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner: Set(owner.to_owned()),
        name: Set(name.to_owned()),
        path: Set(path.to_owned()),
        created_at: Set(Utc::now()),
        require_approval: Set(require_approval),
    };
    Ok(model.insert(db).await?)
}

/// The ids of `owner`'s workspaces, as a subquery: every owner-scoped
/// lookup of what lies under a workspace filters on it.
pub fn owned_by(owner: &str) -> sea_orm::sea_query::SelectStatement {
    sea_orm::sea_query::Query::select()
        .column(workspace::Column::Id)
        .from(workspace::Entity)
        .and_where(workspace::Column::Owner.eq(owner))
        .to_owned()
}

/// The workspace, if it exists and belongs to `owner`.
pub async fn get(db: &impl ConnectionTrait, owner: &str, id: Uuid) -> DbResult<Option<workspace::Model>> {
    Ok(workspace::Entity::find_by_id(id).filter(workspace::Column::Owner.eq(owner)).one(db).await?)
}

/// One page of the owner's workspaces, newest first; `limit + 1` rows are
/// read so the caller can tell whether there is a next page.
pub async fn list(
    db: &DatabaseConnection,
    owner: &str,
    limit: u64,
    before: Option<Uuid>,
) -> DbResult<Vec<workspace::Model>> {
    let mut query = workspace::Entity::find().filter(workspace::Column::Owner.eq(owner));
    if let Some(before) = before {
        query = query.filter(workspace::Column::Id.lt(before));
    }
    Ok(query.order_by_desc(workspace::Column::Id).limit(limit + 1).all(db).await?)
}

/// Workspaces of other owners whose path is `path`, lies inside it, or
/// contains it: a directory is never shared between users.
pub async fn overlapping_foreign(db: &DatabaseConnection, owner: &str, path: &str) -> DbResult<bool> {
    let others = workspace::Entity::find().filter(workspace::Column::Owner.ne(owner)).all(db).await?;
    let inside =
        |outer: &str, inner: &str| inner == outer || inner.starts_with(&format!("{}/", outer.trim_end_matches('/')));
    Ok(others.iter().any(|w| inside(&w.path, path) || inside(path, &w.path)))
}
