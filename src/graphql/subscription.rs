//! Subscription root: an execution's events, replayed then live.

use std::sync::{Arc, Mutex};

use async_graphql::{Context, Subscription, ID};
use futures_util::{stream, stream::BoxStream, StreamExt};
use uuid::Uuid;

use super::types::{
    dashboard::{decode_cursor, DashboardEvent},
    owned_execution, parse_id, state, ExecutionEvent,
};
use crate::{
    error::{AppError, Gql},
    events::{
        dashboard::{dashboard_events, Start},
        subscription::execution_events,
        Event,
    },
};

/// Server-internal request data: resolve exactly this event. The WebSocket
/// edge renders a live event once per subscription document this way and
/// shares the text among all subscribers using that document.
pub struct RenderOne(pub Arc<Event>);

/// Server-internal request data: check access and arguments, report the
/// resolved (execution id, afterSeq) here, and yield nothing.
#[derive(Clone, Default)]
pub struct Probe(pub Arc<Mutex<Option<(Uuid, i64)>>>);

#[derive(Default)]
pub struct SubscriptionRoot;

/// Live streams over `/graphql/ws`.
#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Every stored message with `seq > afterSeq`, then live ones (with
    /// progress and status events), exactly once each and in order; the
    /// terminal StatusEvent comes last and completes the subscription.
    async fn execution_events(
        &self,
        ctx: &Context<'_>,
        execution_id: ID,
        #[graphql(default = 0)] after_seq: i32,
    ) -> async_graphql::Result<BoxStream<'static, ExecutionEvent>> {
        if let Some(RenderOne(event)) = ctx.data_opt::<RenderOne>() {
            return Ok(stream::once(std::future::ready(ExecutionEvent::from(event.clone()))).boxed());
        }
        let id = parse_id(&execution_id, "executionId").gql()?;
        if after_seq < 0 {
            return Err(AppError::bad_input("afterSeq", "`afterSeq` must not be negative")).gql();
        }
        owned_execution(ctx, id).await?;
        let state = state(ctx)?;
        if let Some(Probe(slot)) = ctx.data_opt::<Probe>() {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some((id, i64::from(after_seq)));
            return Ok(stream::empty().boxed());
        }
        let reader = state.broker.reader(&super::types::viewer(ctx)?.sub);
        Ok(execution_events(state.db.clone(), state.broker.clone(), reader, id, i64::from(after_seq))
            .map(ExecutionEvent::from)
            .boxed())
    }

    /// For a dashboard: every change of your executions (optionally of one
    /// workspace): created, started, stalled, a permission request made or
    /// settled, finished; as ExecutionUpdates with the execution as it is
    /// now and the requests waiting for you. Without `after`, it starts with
    /// every pending or running execution; with the `cursor` of the last
    /// update received, with every change since, so nothing is missed
    /// across a reconnect. In between, ProgressEvents of the executions
    /// shown (live only, from runs on the server you are connected to).
    async fn dashboard_events(
        &self,
        ctx: &Context<'_>,
        workspace_id: Option<ID>,
        after: Option<String>,
    ) -> async_graphql::Result<BoxStream<'static, DashboardEvent>> {
        let start = match after.as_deref() {
            Some(cursor) => Start::After(decode_cursor(cursor).gql()?),
            None => Start::Now,
        };
        let state = state(ctx)?;
        let owner = super::types::viewer(ctx)?.sub.clone();
        let workspace = match &workspace_id {
            Some(id) => {
                let id = parse_id(id, "workspaceId").gql()?;
                let found = crate::db::workspaces::get(&state.db, &owner, id).await.gql()?;
                Some(found.ok_or(AppError::NotFound("workspace")).gql()?.id)
            }
            None => None,
        };
        let reader = state.broker.reader(&owner);
        Ok(dashboard_events(state.db.clone(), state.broker.clone(), reader, owner, workspace, start)
            .map(DashboardEvent::from)
            .boxed())
    }
}
