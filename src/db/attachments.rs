//! Attachments: files users upload for prompts.

use chrono::{DateTime, Utc};
use entity::{attachment, execution, execution_attachment};
use sea_orm::{
    prelude::*, sea_query::Query, ActiveValue::Set, FromQueryResult, QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::{executions::Status, DbResult};

/// An attachment without its bytes.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct Info {
    pub id: Uuid,
    pub name: String,
    pub media_type: String,
    pub size: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A file to store.
pub struct NewAttachment {
    pub name: String,
    pub media_type: String,
    pub sha256: String,
    pub data: Vec<u8>,
    pub expires_at: DateTime<Utc>,
}

/// Why a file was not stored.
pub enum Refused {
    /// The owner's attachments would take more than the quota.
    OverQuota { used: i64 },
}

/// Stores a file for `owner`; the same bytes stored before are that
/// attachment again, kept until `expires_at` if that is later. Refused when
/// the owner's attachments would then take more than `quota` bytes.
pub async fn store(
    db: &DatabaseConnection,
    owner: &str,
    new: NewAttachment,
    quota: i64,
) -> DbResult<Result<Info, Refused>> {
    let txn = db.begin().await?;
    // Uploads of one owner take turns, so racing ones cannot all pass the quota.
    super::lock_for(&txn, &format!("attachments:{owner}")).await?;
    let same = attachment::Entity::find()
        .filter(attachment::Column::Owner.eq(owner))
        .filter(attachment::Column::Sha256.eq(&new.sha256))
        .select_only()
        .columns(INFO_COLUMNS)
        .into_model::<Info>()
        .one(&txn)
        .await?;
    if let Some(mut same) = same {
        if same.expires_at < new.expires_at {
            attachment::Entity::update_many()
                .col_expr(attachment::Column::ExpiresAt, Expr::value(new.expires_at))
                .filter(attachment::Column::Id.eq(same.id))
                .exec(&txn)
                .await?;
            same.expires_at = new.expires_at;
        }
        txn.commit().await?;
        return Ok(Ok(same));
    }
    let used = used(&txn, owner).await?;
    let size = new.data.len() as i64;
    if used + size > quota {
        return Ok(Err(Refused::OverQuota { used }));
    }
    let now = Utc::now();
    let model = attachment::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner: Set(owner.to_owned()),
        name: Set(new.name),
        media_type: Set(new.media_type),
        size: Set(size),
        sha256: Set(new.sha256),
        data: Set(new.data),
        created_at: Set(now),
        expires_at: Set(new.expires_at),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(Ok(info(&model)))
}

const INFO_COLUMNS: [attachment::Column; 6] = [
    attachment::Column::Id,
    attachment::Column::Name,
    attachment::Column::MediaType,
    attachment::Column::Size,
    attachment::Column::CreatedAt,
    attachment::Column::ExpiresAt,
];

fn info(model: &attachment::Model) -> Info {
    Info {
        id: model.id,
        name: model.name.clone(),
        media_type: model.media_type.clone(),
        size: model.size,
        created_at: model.created_at,
        expires_at: model.expires_at,
    }
}

/// Bytes the owner's attachments take.
async fn used(db: &impl ConnectionTrait, owner: &str) -> DbResult<i64> {
    let sum: Option<Option<i64>> = attachment::Entity::find()
        .filter(attachment::Column::Owner.eq(owner))
        .select_only()
        .column_as(Expr::col(attachment::Column::Size).sum().cast_as("BIGINT"), "total")
        .into_tuple()
        .one(db)
        .await?;
    Ok(sum.flatten().unwrap_or(0))
}

/// The owner's attachments, newest first, at most `limit`.
pub async fn list(db: &impl ConnectionTrait, owner: &str, limit: u64) -> DbResult<Vec<Info>> {
    Ok(attachment::Entity::find()
        .filter(attachment::Column::Owner.eq(owner))
        .select_only()
        .columns(INFO_COLUMNS)
        .order_by_desc(attachment::Column::Id)
        .limit(limit)
        .into_model::<Info>()
        .all(db)
        .await?)
}

/// These attachments without their bytes (those of `owner` only, if given).
pub async fn infos(db: &impl ConnectionTrait, owner: Option<&str>, ids: &[Uuid]) -> DbResult<Vec<Info>> {
    let mut query = attachment::Entity::find().filter(attachment::Column::Id.is_in(ids.iter().copied()));
    if let Some(owner) = owner {
        query = query.filter(attachment::Column::Owner.eq(owner));
    }
    Ok(query.select_only().columns(INFO_COLUMNS).into_model::<Info>().all(db).await?)
}

/// These attachments with their bytes (those of `owner` only, if given).
pub async fn load(db: &impl ConnectionTrait, owner: Option<&str>, ids: &[Uuid]) -> DbResult<Vec<attachment::Model>> {
    let mut query = attachment::Entity::find().filter(attachment::Column::Id.is_in(ids.iter().copied()));
    if let Some(owner) = owner {
        query = query.filter(attachment::Column::Owner.eq(owner));
    }
    Ok(query.all(db).await?)
}

/// Deletes one of the owner's attachments; false if there is none.
pub async fn delete(db: &impl ConnectionTrait, owner: &str, id: Uuid) -> DbResult<bool> {
    let deleted = attachment::Entity::delete_many()
        .filter(attachment::Column::Id.eq(id))
        .filter(attachment::Column::Owner.eq(owner))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected > 0)
}

/// Records that an execution's prompt uses these attachments.
pub async fn link(db: &impl ConnectionTrait, execution_id: Uuid, ids: &[Uuid]) -> DbResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    let rows = ids.into_iter().map(|attachment_id| execution_attachment::ActiveModel {
        execution_id: Set(execution_id),
        attachment_id: Set(attachment_id),
    });
    execution_attachment::Entity::insert_many(rows).exec_without_returning(db).await?;
    Ok(())
}

/// Deletes attachments past their time, except those an execution that has
/// not ended yet uses (it sends them when it starts).
pub async fn forget_expired(db: &impl ConnectionTrait, now: DateTime<Utc>) -> DbResult<u64> {
    let in_use = Query::select()
        .column((execution_attachment::Entity, execution_attachment::Column::AttachmentId))
        .from(execution_attachment::Entity)
        .inner_join(
            execution::Entity,
            Expr::col((execution::Entity, execution::Column::Id))
                .equals((execution_attachment::Entity, execution_attachment::Column::ExecutionId)),
        )
        .and_where(
            Expr::col((execution::Entity, execution::Column::Status)).is_in(Status::UNFINISHED.map(|s| s.as_str())),
        )
        .to_owned();
    let deleted = attachment::Entity::delete_many()
        .filter(attachment::Column::ExpiresAt.lt(now))
        .filter(attachment::Column::Id.not_in_subquery(in_use))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}
