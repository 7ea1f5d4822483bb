//! Subscription root: an execution's events, replayed then live.

use std::sync::{Arc, Mutex};

use async_graphql::{Context, Subscription, ID};
use futures_util::{stream, stream::BoxStream, StreamExt};
use uuid::Uuid;

use super::types::{owned_execution, parse_id, state, ExecutionEvent};
use crate::{
    error::{AppError, Gql},
    events::{subscription::execution_events, Event},
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
}
