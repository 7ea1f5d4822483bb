//! Relay's `Node`: anything with an id can be fetched again by it alone.
//!
//! Ids are UUIDs, unique across all types, so they serve as global ids as
//! they are (and stay the ids every other field and argument takes).

use async_graphql::{Context, Interface, ID};
use uuid::Uuid;

use super::{state, viewer, Execution, PermissionRequest, Session, Workspace};
use crate::{db, error::Gql};

/// An object that can be fetched by its id with `node(id:)`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Unique across all types."))]
pub enum Node {
    Workspace(Workspace),
    Session(Session),
    Execution(Execution),
    PermissionRequest(PermissionRequest),
}

impl Node {
    /// The viewer's object with this id, whatever its type; None when there
    /// is none (or it is someone else's).
    pub async fn find(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Node>> {
        let db = &state(ctx)?.db;
        let owner = viewer(ctx)?.sub.as_str();
        if let Some(found) = db::executions::get(db, owner, id).await.gql()? {
            return Ok(Some(Node::Execution(Execution(found))));
        }
        if let Some(found) = db::sessions::get(db, owner, id).await.gql()? {
            return Ok(Some(Node::Session(Session(found))));
        }
        if let Some(found) = db::workspaces::get(db, owner, id).await.gql()? {
            return Ok(Some(Node::Workspace(Workspace(found))));
        }
        let found = db::permissions::get(db, owner, id).await.gql()?;
        Ok(found.map(|p| Node::PermissionRequest(PermissionRequest(p))))
    }
}

/// The ids `nodes` takes at most.
pub const MAX_NODES: usize = 100;

/// An id argument as a UUID; an id that is not one names nothing.
pub fn node_id(id: &ID) -> Option<Uuid> {
    Uuid::parse_str(id.as_str()).ok()
}
