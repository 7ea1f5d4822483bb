//! The GraphQL object types: thin views over stored rows and live events.

mod connection;
mod event;
mod execution;
mod json;
mod permission;
mod session;
mod workspace;

pub use connection::{decode_cursor, page, PageArgs};
pub use event::{ExecutionEvent, LogEntry};
pub use execution::{Execution, ExecutionStatus, RunErrorInfo};
pub use json::{Json, RawJson};
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
}

pub fn viewer<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Viewer> {
    ctx.data_opt::<Viewer>().ok_or_else(|| AppError::Unauthenticated("a bearer token is required".into()).extend())
}
