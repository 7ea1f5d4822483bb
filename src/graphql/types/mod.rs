//! The GraphQL object types: thin views over stored rows and live events.

pub mod attachment;
pub mod changes;
mod connection;
pub mod dashboard;
pub mod event;
mod execution;
mod json;
pub mod message;
pub mod node;
pub mod permission;
pub mod profile;
pub mod schedule;
mod session;
pub mod webhook;
mod workspace;

pub use connection::{decode_cursor, page, page_cost, PageArgs};
pub use event::{ExecutionEvent, LogEntry};
pub use execution::{Execution, ExecutionFilter, ExecutionStatus, RunErrorInfo, Usage};
pub use json::{Json, RawJson};
pub use node::Node;
pub use permission::{PermissionRequest, PermissionStatus};
pub use session::{Session, SessionStatus};
pub use workspace::Workspace;

use async_graphql::{Context, ErrorExtensions, ID};
use uuid::Uuid;

use crate::{error::AppError, state::AppState};

/// Parses a GraphQL `ID` argument; `field` names it in the error.
pub fn parse_id(id: &ID, field: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id.as_str()).map_err(|_| AppError::bad_input(field, format!("`{}` is not a valid id", id.as_str())))
}

/// The server state in a resolver.
pub fn state<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a AppState> {
    ctx.data::<AppState>()
}

/// The viewer's execution with this id, or NOT_FOUND (also when it is
/// someone else's).
pub async fn owned_execution(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<entity::execution::Model> {
    use crate::error::Gql;
    let found = crate::db::executions::get(&state(ctx)?.db, &viewer(ctx)?.sub, id).await.gql()?;
    found.ok_or(AppError::NotFound("execution")).gql()
}

/// Who is asking: the owner every lookup is scoped to.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub sub: String,
    /// When the credentials stop being valid (None: never, local mode).
    pub expires_at: Option<std::time::SystemTime>,
}

impl Viewer {
    /// Whether the credentials have expired by now.
    pub fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|at| at <= std::time::SystemTime::now())
    }
}

/// Request data: why the request carries no viewer.
#[derive(Debug, Clone)]
pub struct Unauthenticated(pub crate::http::auth::AuthError);

pub fn viewer<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Viewer> {
    match ctx.data_opt::<Viewer>() {
        Some(viewer) if !viewer.is_expired() => Ok(viewer),
        Some(_) => Err(AppError::Unauthenticated(crate::http::auth::AuthError::Expired.to_string()).extend()),
        None => {
            let why = ctx.data_opt::<Unauthenticated>().map(|u| u.0.clone());
            let why = why.unwrap_or(crate::http::auth::AuthError::Missing);
            Err(AppError::Unauthenticated(why.to_string()).extend())
        }
    }
}
