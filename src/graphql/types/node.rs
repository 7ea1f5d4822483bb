//! Relay's `Node`: anything with an id can be fetched again by it alone.
//!
//! Ids are UUIDs, unique across all types, so they serve as global ids as
//! they are (and stay the ids every other field and argument takes).

use std::collections::HashMap;

use async_graphql::{Context, Interface, ID};
use uuid::Uuid;

use super::{state, viewer, Execution, PermissionRequest, Session, Workspace};
use crate::graphql::loaders::{load_error, loaders};
use crate::{db, error::Gql};

/// An object that can be fetched by its id with `node(id:)`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Unique across all types."))]
// Made per `node` lookup and gone with its response: the size of a stored
// execution row is no cost here worth a box (which the derive cannot see
// through).
#[allow(clippy::large_enum_variant)]
pub enum Node {
    Workspace(Workspace),
    Session(Session),
    Execution(Execution),
    PermissionRequest(PermissionRequest),
}

impl Node {
    /// The viewer's objects with these ids, whatever their types, in order;
    /// None for an id that names nothing of theirs (or is not a UUID).
    /// Each type is loaded in one batch.
    pub async fn find_many(ctx: &Context<'_>, ids: &[Option<Uuid>]) -> async_graphql::Result<Vec<Option<Node>>> {
        let loaders = loaders(ctx)?;
        let keys = ids.iter().flatten().copied();
        let executions = loaders.executions.load_many(keys.clone()).await.map_err(load_error).gql()?;
        let sessions = loaders.sessions.load_many(keys.clone()).await.map_err(load_error).gql()?;
        let workspaces = loaders.workspaces.load_many(keys.clone()).await.map_err(load_error).gql()?;
        let rest: Vec<Uuid> = keys
            .filter(|id| !(executions.contains_key(id) || sessions.contains_key(id) || workspaces.contains_key(id)))
            .collect();
        let requests: HashMap<Uuid, _> = db::permissions::get_many(&state(ctx)?.db, &viewer(ctx)?.sub, &rest)
            .await
            .gql()?
            .into_iter()
            .map(|request| (request.id, request))
            .collect();
        let node = |id: &Uuid| {
            if let Some(e) = executions.get(id) {
                Some(Node::Execution(Execution(e.clone())))
            } else if let Some(s) = sessions.get(id) {
                Some(Node::Session(Session(s.clone())))
            } else if let Some(w) = workspaces.get(id) {
                Some(Node::Workspace(Workspace(w.clone())))
            } else {
                requests.get(id).map(|p| Node::PermissionRequest(PermissionRequest(p.clone())))
            }
        };
        Ok(ids.iter().map(|id| id.as_ref().and_then(node)).collect())
    }
}

/// The ids `nodes` takes at most.
pub const MAX_NODES: usize = 100;

/// An id argument as a UUID; an id that is not one names nothing.
pub fn node_id(id: &ID) -> Option<Uuid> {
    Uuid::parse_str(id.as_str()).ok()
}
