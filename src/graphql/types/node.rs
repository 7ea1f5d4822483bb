//! Relay's `Node`: anything with an id can be fetched again by it alone.
//!
//! Ids are UUIDs, unique across all types, so they serve as global ids as
//! they are (and stay the ids every other field and argument takes).

use async_graphql::{Context, Interface, ID};
use uuid::Uuid;

use super::{state, viewer, Execution, PermissionRequest, Session, Workspace};
use crate::graphql::loaders::{load_error, loaders};
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
    /// The viewer's objects with these ids, whatever their types, in order;
    /// None for an id that names nothing of theirs. Executions, sessions
    /// and workspaces are loaded in one batch each.
    pub async fn find_many(ctx: &Context<'_>, ids: &[Uuid]) -> async_graphql::Result<Vec<Option<Node>>> {
        let loaders = loaders(ctx)?;
        let keys = ids.iter().copied();
        let executions = loaders.executions.load_many(keys.clone()).await.map_err(load_error).gql()?;
        let sessions = loaders.sessions.load_many(keys.clone()).await.map_err(load_error).gql()?;
        let workspaces = loaders.workspaces.load_many(keys).await.map_err(load_error).gql()?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            let node = if let Some(e) = executions.get(id) {
                Some(Node::Execution(Execution(e.clone())))
            } else if let Some(s) = sessions.get(id) {
                Some(Node::Session(Session(s.clone())))
            } else if let Some(w) = workspaces.get(id) {
                Some(Node::Workspace(Workspace(w.clone())))
            } else {
                let request = db::permissions::get(&state(ctx)?.db, &viewer(ctx)?.sub, *id).await.gql()?;
                request.map(|p| Node::PermissionRequest(PermissionRequest(p)))
            };
            found.push(node);
        }
        Ok(found)
    }
}

/// The ids `nodes` takes at most.
pub const MAX_NODES: usize = 100;

/// An id argument as a UUID; an id that is not one names nothing.
pub fn node_id(id: &ID) -> Option<Uuid> {
    Uuid::parse_str(id.as_str()).ok()
}
