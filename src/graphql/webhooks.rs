//! Mutations that manage webhooks (the `webhooks` query is on the root).

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};

use super::management::{owned_workspace_id, DeletePayload};
use super::types::{parse_id, state, viewer, webhook::Webhook, webhook::WebhookEvent};
use crate::{
    db,
    error::{AppError, Gql},
    webhooks::{signature, AllowList},
};

/// Webhooks one user may have.
const MAX_WEBHOOKS: u64 = 20;

/// An endpoint to tell about your runs.
#[derive(InputObject)]
pub struct CreateWebhookInput {
    /// An http(s) URL. Only public addresses, unless the server lists the
    /// host in WEBHOOK_ALLOWED_HOSTS (then only listed hosts).
    pub url: String,
    /// Only this workspace's runs; all of yours when not given.
    pub workspace_id: Option<ID>,
    /// What to send; all events when not given.
    pub events: Option<Vec<WebhookEvent>>,
}

/// A new webhook and its signing secret.
#[derive(SimpleObject)]
pub struct CreateWebhookPayload {
    pub webhook: Webhook,
    /// `whsec_…`: verify `webhook-signature` with it (Standard Webhooks).
    /// Shown this once.
    pub secret: String,
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers a webhook. Deliveries are retried with exponential backoff
    /// (WEBHOOK_RETRY_BASE, times 5 each time, at most an hour apart) for
    /// WEBHOOK_RETRY_FOR after the event; see `Webhook.deliveries`.
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookInput,
    ) -> async_graphql::Result<CreateWebhookPayload> {
        let state = state(ctx)?;
        let owner = &viewer(ctx)?.sub;
        if input.url.len() > 2048 {
            return Err(AppError::bad_input("url", "`url` is longer than 2048 bytes")).gql();
        }
        let allow = AllowList::new(&state.config.webhook_allowed_hosts);
        let url = allow.check_url(&input.url).map_err(|why| AppError::bad_input("url", why)).gql()?;
        // A name that resolves to a private address now is refused now (one
        // that does not resolve yet is taken; every delivery looks again).
        if allow.is_open() {
            if let Err(crate::webhooks::address::Refusal::NotAllowed(why)) = allow.resolve(&url).await {
                return Err(AppError::bad_input("url", why)).gql();
            }
        }
        let workspace_id = owned_workspace_id(&state.db, owner, input.workspace_id.as_ref()).await.gql()?;
        let mut events: Vec<&'static str> =
            input.events.unwrap_or(WebhookEvent::ALL.to_vec()).into_iter().map(WebhookEvent::name).collect();
        events.sort_unstable();
        events.dedup();
        if events.is_empty() {
            return Err(AppError::bad_input("events", "name at least one event")).gql();
        }
        if db::webhooks::count(&state.db, owner).await.gql()? >= MAX_WEBHOOKS {
            let message = format!("at most {MAX_WEBHOOKS} webhooks per user");
            return Err(AppError::RateLimited { message, retry_after_ms: 0 }).gql();
        }
        let secret = signature::new_secret().map_err(|e| AppError::Internal(e.to_string())).gql()?;
        let new = db::webhooks::NewWebhook { owner, workspace_id, url: &input.url, secret: &secret, events };
        let webhook = db::webhooks::create(&state.db, new).await.gql()?;
        Ok(CreateWebhookPayload { webhook: Webhook(webhook), secret })
    }

    /// Deletes a webhook of yours, with its delivery log.
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<DeletePayload> {
        let parsed = parse_id(&id, "id").gql()?;
        if !db::webhooks::delete(&state(ctx)?.db, &viewer(ctx)?.sub, parsed).await.gql()? {
            return Err(AppError::NotFound("webhook")).gql();
        }
        Ok(DeletePayload { deleted_id: id })
    }
}
