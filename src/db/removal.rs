//! Deleting a session or a workspace with everything under it: its
//! executions, their messages and permission requests (by the foreign
//! keys' cascades).

use entity::{execution, session, workspace};
use sea_orm::{prelude::*, PaginatorTrait, TransactionTrait};
use uuid::Uuid;

use super::{executions::Status, DbResult};

/// What is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Session(Uuid),
    Workspace(Uuid),
}

/// What a deletion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Deleted,
    /// An execution in it is pending or running: nothing was deleted.
    Busy,
    /// It is not there, or not the owner's.
    Missing,
}

/// Deletes the owner's session or workspace unless one of its executions
/// is pending or running. The transaction holds the owner's admission lock
/// (the one `startExecution` takes), so no run can start in what is being
/// deleted.
pub async fn remove(db: &DatabaseConnection, owner: &str, target: Target) -> DbResult<Removal> {
    let txn = db.begin().await?;
    super::lock_for(&txn, &format!("admission:{owner}")).await?;
    let (found, under, id) = match target {
        Target::Session(id) => {
            (super::sessions::get(&txn, owner, id).await?.is_some(), execution::Column::SessionId, id)
        }
        Target::Workspace(id) => {
            (super::workspaces::get(&txn, owner, id).await?.is_some(), execution::Column::WorkspaceId, id)
        }
    };
    if !found {
        return Ok(Removal::Missing);
    }
    let active = execution::Entity::find()
        .filter(under.eq(id))
        .filter(execution::Column::Status.is_in(Status::UNFINISHED.map(Status::as_str)))
        .count(&txn)
        .await?;
    if active > 0 {
        return Ok(Removal::Busy);
    }
    match target {
        Target::Session(id) => session::Entity::delete_by_id(id).exec(&txn).await?,
        Target::Workspace(id) => workspace::Entity::delete_by_id(id).exec(&txn).await?,
    };
    txn.commit().await?;
    Ok(Removal::Deleted)
}
