//! `Workspace`.

use async_graphql::{connection::Connection, Context, Object, ID};
use chrono::{DateTime, Utc};
use entity::workspace;

use super::{page, state, PageArgs, Session, SessionStatus};
use crate::{db, error::Gql};

/// A named directory in which Claude runs.
pub struct Workspace(pub workspace::Model);

#[Object]
impl Workspace {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The canonical absolute path `claude` runs in.
    async fn path(&self) -> &str {
        &self.0.path
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Runs here ask before using a tool unless startExecution says otherwise.
    async fn require_approval(&self) -> bool {
        self.0.require_approval
    }

    /// The workspace's sessions, newest first.
    pub async fn sessions(
        &self,
        ctx: &Context<'_>,
        status: Option<SessionStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Session>> {
        let args = PageArgs::parse(first, after.as_deref()).gql()?;
        let rows =
            db::sessions::list(&state(ctx)?.db, self.0.id, status.map(SessionStatus::as_str), args.limit, args.before)
                .await
                .gql()?;
        Ok(page(rows, args, |s| s.id, Session))
    }
}
