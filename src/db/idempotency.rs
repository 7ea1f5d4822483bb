//! Idempotency keys of starts (see `Executor::start`).

use chrono::{DateTime, Utc};
use entity::idempotency_key;
use sea_orm::{prelude::*, sea_query::OnConflict, ActiveValue::Set};
use uuid::Uuid;

use super::DbResult;

/// The owner's key, if it was recorded after `since` (older ones have
/// expired).
pub async fn find(
    db: &impl ConnectionTrait,
    owner: &str,
    key: &str,
    since: DateTime<Utc>,
) -> DbResult<Option<idempotency_key::Model>> {
    Ok(idempotency_key::Entity::find_by_id((owner.to_owned(), key.to_owned()))
        .filter(idempotency_key::Column::CreatedAt.gt(since))
        .one(db)
        .await?)
}

/// Forgets the owner's keys recorded before `before`.
pub async fn forget_expired(db: &impl ConnectionTrait, owner: &str, before: DateTime<Utc>) -> DbResult<()> {
    idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::Owner.eq(owner))
        .filter(idempotency_key::Column::CreatedAt.lte(before))
        .exec(db)
        .await?;
    Ok(())
}

/// Records that `key` started `execution_id`. False when the owner already
/// has that key: the primary key decides between racing starts.
pub async fn record(
    db: &impl ConnectionTrait,
    owner: &str,
    key: &str,
    request_hash: &str,
    execution_id: Uuid,
) -> DbResult<bool> {
    let row = idempotency_key::ActiveModel {
        owner: Set(owner.to_owned()),
        key: Set(key.to_owned()),
        request_hash: Set(request_hash.to_owned()),
        execution_id: Set(execution_id),
        created_at: Set(Utc::now()),
    };
    let inserted = idempotency_key::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([idempotency_key::Column::Owner, idempotency_key::Column::Key]).do_nothing().to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(inserted == 1)
}
