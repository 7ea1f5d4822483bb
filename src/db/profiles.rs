//! Agent profiles.

use chrono::Utc;
use entity::agent_profile;
use sea_orm::{prelude::*, ActiveValue::Set, Condition, QueryOrder};
use serde_json::Value as Json;
use uuid::Uuid;

use super::DbResult;

/// Creates a profile; None when the owner has one of that name there.
pub async fn create(
    db: &impl ConnectionTrait,
    owner: &str,
    workspace_id: Option<Uuid>,
    name: &str,
    options: Json,
) -> DbResult<Option<agent_profile::Model>> {
    let model = agent_profile::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner: Set(owner.to_owned()),
        workspace_id: Set(workspace_id),
        name: Set(name.to_owned()),
        options: Set(options),
        created_at: Set(Utc::now()),
    };
    match model.insert(db).await {
        Ok(created) => Ok(Some(created)),
        Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The owner's profiles (user-level ones, and those of `workspace_id` if
/// given; all when None), oldest first.
pub async fn list(
    db: &impl ConnectionTrait,
    owner: &str,
    workspace_id: Option<Uuid>,
) -> DbResult<Vec<agent_profile::Model>> {
    let mut query = agent_profile::Entity::find().filter(agent_profile::Column::Owner.eq(owner));
    if let Some(id) = workspace_id {
        query = query.filter(
            Condition::any()
                .add(agent_profile::Column::WorkspaceId.is_null())
                .add(agent_profile::Column::WorkspaceId.eq(id)),
        );
    }
    Ok(query.order_by_asc(agent_profile::Column::Id).all(db).await?)
}

/// The profile a start in `workspace_id` means by `name`: the workspace's,
/// else the user's.
pub async fn named(
    db: &impl ConnectionTrait,
    owner: &str,
    workspace_id: Uuid,
    name: &str,
) -> DbResult<Option<agent_profile::Model>> {
    let found = list(db, owner, Some(workspace_id)).await?;
    Ok(found.into_iter().filter(|p| p.name == name).max_by_key(|p| p.workspace_id.is_some()))
}

/// How many profiles the owner has.
pub async fn count(db: &impl ConnectionTrait, owner: &str) -> DbResult<u64> {
    use sea_orm::PaginatorTrait;
    Ok(agent_profile::Entity::find().filter(agent_profile::Column::Owner.eq(owner)).count(db).await?)
}

/// Deletes the owner's profile; false if there is none.
pub async fn delete(db: &impl ConnectionTrait, owner: &str, id: Uuid) -> DbResult<bool> {
    let deleted = agent_profile::Entity::delete_many()
        .filter(agent_profile::Column::Id.eq(id))
        .filter(agent_profile::Column::Owner.eq(owner))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected == 1)
}
