//! Subscription root: an execution's events, replayed then live.

use async_graphql::{Context, Subscription, ID};
use futures_util::{Stream, StreamExt};

use super::types::{parse_id, state, viewer, ExecutionEvent};
use crate::{
    db,
    error::{AppError, Gql},
    events::subscription::execution_events,
};

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
        #[graphql(default = 0)] after_seq: i64,
    ) -> async_graphql::Result<impl Stream<Item = ExecutionEvent>> {
        let id = parse_id(&execution_id, "executionId").gql()?;
        if after_seq < 0 {
            return Err(AppError::bad_input("afterSeq", "`afterSeq` must not be negative")).gql();
        }
        let state = state(ctx)?;
        db::executions::get(&state.db, &viewer(ctx)?.sub, id)
            .await
            .gql()?
            .ok_or(AppError::NotFound("execution"))
            .gql()?;
        Ok(execution_events(state.db.clone(), state.broker.clone(), id, after_seq).map(ExecutionEvent::from))
    }
}
