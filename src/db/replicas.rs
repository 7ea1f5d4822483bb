//! Replica leases (see `entity::replica`).

use chrono::{DateTime, Utc};
use entity::{execution, replica};
use sea_orm::{prelude::*, sea_query::OnConflict, ActiveValue::Set};

use super::{executions::Status, DbResult};

/// Takes or renews `id`'s lease until `expires_at`.
pub async fn renew(db: &DatabaseConnection, id: &str, expires_at: DateTime<Utc>) -> DbResult<()> {
    let now = Utc::now();
    let row = replica::ActiveModel {
        id: Set(id.to_owned()),
        started_at: Set(now),
        renewed_at: Set(now),
        expires_at: Set(expires_at),
    };
    replica::Entity::insert(row)
        .on_conflict(
            OnConflict::column(replica::Column::Id)
                .update_columns([replica::Column::RenewedAt, replica::Column::ExpiresAt])
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// Gives the lease up at once (a stopping server): whatever of its runs
/// did not stop in time is another server's to finish, now.
pub async fn release(db: &DatabaseConnection, id: &str) -> DbResult<()> {
    replica::Entity::update_many()
        .col_expr(replica::Column::ExpiresAt, Expr::value(Utc::now()))
        .filter(replica::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Whether `id` holds a lease that has not expired.
pub async fn is_alive(db: &impl ConnectionTrait, id: &str) -> DbResult<bool> {
    let found = replica::Entity::find_by_id(id.to_owned()).one(db).await?;
    Ok(found.is_some_and(|r| r.expires_at > Utc::now()))
}

/// The PENDING or RUNNING executions of replicas whose lease has expired:
/// their server is gone (killed, or restarted under another id).
pub async fn orphaned_runs(db: &DatabaseConnection, except: &str) -> DbResult<Vec<execution::Model>> {
    let expired = sea_orm::sea_query::Query::select()
        .column(replica::Column::Id)
        .from(replica::Entity)
        .and_where(replica::Column::ExpiresAt.lte(Utc::now()))
        .to_owned();
    Ok(execution::Entity::find()
        .filter(execution::Column::Status.is_in(Status::ACTIVE.map(Status::as_str)))
        .filter(execution::Column::ReplicaId.in_subquery(expired))
        .filter(execution::Column::ReplicaId.ne(except))
        .all(db)
        .await?)
}
