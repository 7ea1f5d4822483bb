//! Query root: reads, always scoped to the viewer.

use async_graphql::{connection::Connection, Context, Object, ID};
use uuid::Uuid;

use super::types::node::{node_id, MAX_NODES};
use super::types::{
    owned_execution, page_cost, parse_id, state, viewer, Execution, ExecutionFilter, LogEntry, Node, PageArgs,
    PermissionRequest, Session, SessionStatus, Usage, Workspace,
};
use crate::{
    db,
    error::{AppError, Gql},
};

/// The largest `sessionLogs` page.
pub const MAX_LOG_LIMIT: i32 = 1000;

#[derive(Default)]
pub struct QueryRoot;

/// Reads: only ever of what is yours.
#[Object(name = "Query")]
impl QueryRoot {
    /// Your schedules (in one workspace, if given), oldest first.
    async fn schedules(
        &self,
        ctx: &Context<'_>,
        workspace_id: Option<ID>,
    ) -> async_graphql::Result<Vec<super::types::schedule::Schedule>> {
        let workspace = workspace_id.as_ref().map(|id| parse_id(id, "workspaceId")).transpose().gql()?;
        let rows = db::schedules::list(&state(ctx)?.db, &viewer(ctx)?.sub, workspace).await.gql()?;
        Ok(rows.into_iter().map(super::types::schedule::Schedule).collect())
    }

    /// Your agent profiles: those for all your workspaces, and, with
    /// `workspaceId`, that workspace's (all of them without it).
    async fn agent_profiles(
        &self,
        ctx: &Context<'_>,
        workspace_id: Option<ID>,
    ) -> async_graphql::Result<Vec<super::types::profile::AgentProfile>> {
        let workspace = workspace_id.as_ref().map(|id| parse_id(id, "workspaceId")).transpose().gql()?;
        let rows = db::profiles::list(&state(ctx)?.db, &viewer(ctx)?.sub, workspace).await.gql()?;
        Ok(rows.into_iter().map(super::types::profile::AgentProfile).collect())
    }

    /// Your attachments, newest first (at most 500).
    async fn attachments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<super::types::attachment::Attachment>> {
        let rows = db::attachments::list(&state(ctx)?.db, &viewer(ctx)?.sub, 500).await.gql()?;
        Ok(rows.into_iter().map(super::types::attachment::Attachment).collect())
    }

    /// Your webhooks, oldest first.
    async fn webhooks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<super::types::webhook::Webhook>> {
        let rows = db::webhooks::list(&state(ctx)?.db, &viewer(ctx)?.sub).await.gql()?;
        Ok(rows.into_iter().map(super::types::webhook::Webhook).collect())
    }

    /// A workspace of yours, or null.
    async fn workspace(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Workspace>> {
        let id = parse_id(&id, "id").gql()?;
        let found = db::workspaces::get(&state(ctx)?.db, &viewer(ctx)?.sub, id).await.gql()?;
        Ok(found.map(Workspace))
    }

    /// Your workspaces, newest first.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn workspaces(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Workspace>> {
        let args = PageArgs::parse(first, after.as_deref()).gql()?;
        let rows = db::workspaces::list(&state(ctx)?.db, &viewer(ctx)?.sub, args.limit, args.before).await.gql()?;
        Ok(super::types::page(rows, args, |w| w.id, Workspace))
    }

    /// A session of yours, or null.
    async fn session(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Session>> {
        let id = parse_id(&id, "id").gql()?;
        let found = db::sessions::get(&state(ctx)?.db, &viewer(ctx)?.sub, id).await.gql()?;
        Ok(found.map(Session))
    }

    /// A workspace's sessions, newest first, optionally only ACTIVE or
    /// CLOSED ones, or those whose title contains `search`.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        status: Option<SessionStatus>,
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Session>> {
        let id = parse_id(&workspace_id, "workspaceId").gql()?;
        let workspace = db::workspaces::get(&state(ctx)?.db, &viewer(ctx)?.sub, id)
            .await
            .gql()?
            .ok_or(AppError::NotFound("workspace"))
            .gql()?;
        Workspace(workspace).sessions(ctx, status, search, first, after).await
    }

    /// The stored messages of a session, across its executions, oldest
    /// first: at most `limit` (1..1000) of them after position `afterSeq`
    /// (`LogEntry.seq`).
    #[graphql(complexity = "(limit.clamp(1, MAX_LOG_LIMIT) as usize).saturating_mul(child_complexity)")]
    async fn session_logs(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        #[graphql(default = 100)] limit: i32,
        after_seq: Option<i32>,
    ) -> async_graphql::Result<Vec<LogEntry>> {
        let id = parse_id(&session_id, "sessionId").gql()?;
        if !(1..=MAX_LOG_LIMIT).contains(&limit) {
            return Err(AppError::bad_input("limit", format!("`limit` must be between 1 and {MAX_LOG_LIMIT}"))).gql();
        }
        let after = i64::from(after_seq.unwrap_or(0));
        if after < 0 {
            return Err(AppError::bad_input("afterSeq", "`afterSeq` must not be negative")).gql();
        }
        let state = state(ctx)?;
        db::sessions::get(&state.db, &viewer(ctx)?.sub, id).await.gql()?.ok_or(AppError::NotFound("session")).gql()?;
        let rows = db::messages::session_logs(&state.db, id, after, limit as u64).await.gql()?;
        Ok(rows.into_iter().map(LogEntry).collect())
    }

    /// The permission requests of an execution that wait for an answer.
    #[graphql(complexity = "10 * child_complexity")]
    async fn pending_permission_requests(
        &self,
        ctx: &Context<'_>,
        execution_id: ID,
    ) -> async_graphql::Result<Vec<PermissionRequest>> {
        let id = parse_id(&execution_id, "executionId").gql()?;
        owned_execution(ctx, id).await?;
        let rows = db::permissions::of_execution(&state(ctx)?.db, id, true).await.gql()?;
        Ok(rows.into_iter().map(PermissionRequest).collect())
    }

    /// Anything of yours by its id (Relay's object identification), or null.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
        Ok(Node::find_many(ctx, &[node_id(&id)]).await?.pop().flatten())
    }

    /// `node` for several ids at once (at most 100), in their order.
    #[graphql(complexity = "ids.len().saturating_mul(child_complexity)")]
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> async_graphql::Result<Vec<Option<Node>>> {
        if ids.len() > MAX_NODES {
            return Err(AppError::bad_input("ids", format!("at most {MAX_NODES} ids"))).gql();
        }
        let ids: Vec<Option<Uuid>> = ids.iter().map(node_id).collect();
        Node::find_many(ctx, &ids).await
    }

    /// Your executions across workspaces, newest first, optionally
    /// filtered.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn executions(
        &self,
        ctx: &Context<'_>,
        filter: Option<ExecutionFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Execution>> {
        let args = PageArgs::parse(first, after.as_deref()).gql()?;
        let filter = filter.unwrap_or_default().to_db().gql()?;
        let rows = db::executions::search(&state(ctx)?.db, &viewer(ctx)?.sub, &filter, args.limit, args.before);
        Ok(super::types::page(rows.await.gql()?, args, |e| e.id, Execution))
    }

    /// What your executions (those the filter covers) added up to: counts
    /// and cost.
    async fn usage(&self, ctx: &Context<'_>, filter: Option<ExecutionFilter>) -> async_graphql::Result<Usage> {
        let filter = filter.unwrap_or_default().to_db().gql()?;
        let totals = db::executions::totals(&state(ctx)?.db, &viewer(ctx)?.sub, &filter).await.gql()?;
        Ok(totals.into())
    }

    /// An execution of yours, or null.
    async fn execution(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Execution>> {
        let id = parse_id(&id, "id").gql()?;
        let found = db::executions::get(&state(ctx)?.db, &viewer(ctx)?.sub, id).await.gql()?;
        Ok(found.map(Execution))
    }
}
