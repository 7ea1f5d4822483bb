//! `Webhook` and `WebhookDelivery`.

use async_graphql::{Context, Enum, Object, ID};
use chrono::{DateTime, Utc};
use entity::{webhook, webhook_delivery};

use super::{state, Json, Workspace};
use crate::{db, error::Gql};

/// What a webhook is told about. The body is `{"type", "timestamp",
/// "data"}`; `type` is the event's name in lower case with a dot
/// (`execution.completed`, ..., `permission.requested`), and `data` holds
/// `execution` (or `permissionRequest` and `execution`).
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WebhookEvent {
    /// An execution ended COMPLETED.
    ExecutionCompleted,
    /// An execution ended FAILED.
    ExecutionFailed,
    /// An execution was cancelled (also while queued).
    ExecutionCancelled,
    /// An execution was parked until a usage or rate limit resets.
    ExecutionScheduled,
    /// A run asks before using a tool.
    PermissionRequested,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 5] = [
        Self::ExecutionCompleted,
        Self::ExecutionFailed,
        Self::ExecutionCancelled,
        Self::ExecutionScheduled,
        Self::PermissionRequested,
    ];

    /// Its `type` in a delivery's body.
    pub fn name(self) -> &'static str {
        match self {
            Self::ExecutionCompleted => db::webhooks::EXECUTION_COMPLETED,
            Self::ExecutionFailed => db::webhooks::EXECUTION_FAILED,
            Self::ExecutionCancelled => db::webhooks::EXECUTION_CANCELLED,
            Self::ExecutionScheduled => db::webhooks::EXECUTION_SCHEDULED,
            Self::PermissionRequested => db::webhooks::PERMISSION_REQUESTED,
        }
    }

    fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// Where a delivery is.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WebhookDeliveryStatus {
    /// Not sent yet, or to be tried again at `nextAttemptAt`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Given up: WEBHOOK_RETRY_FOR passed, or the address is not allowed.
    Failed,
}

pub struct Webhook(pub webhook::Model);

/// An endpoint told about your runs: POSTs signed as Standard Webhooks
/// (`webhook-id`, `webhook-timestamp` and `webhook-signature` headers;
/// HMAC-SHA256 with the secret `createWebhook` returned).
#[Object]
impl Webhook {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn url(&self) -> &str {
        &self.0.url
    }

    /// Only this workspace's runs; all of yours when null.
    async fn workspace(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Workspace>> {
        let Some(id) = self.0.workspace_id else { return Ok(None) };
        Ok(db::workspaces::get(&state(ctx)?.db, &self.0.owner, id).await.gql()?.map(Workspace))
    }

    async fn events(&self) -> Vec<WebhookEvent> {
        let names = self.0.events.as_array().cloned().unwrap_or_default();
        names.iter().filter_map(|n| n.as_str()).filter_map(WebhookEvent::named).collect()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The latest deliveries, newest first (at most 100).
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> async_graphql::Result<Vec<WebhookDelivery>> {
        let limit = first.clamp(0, 100) as u64;
        let rows = db::webhooks::deliveries(&state(ctx)?.db, self.0.id, limit).await.gql()?;
        Ok(rows.into_iter().map(WebhookDelivery).collect())
    }
}

pub struct WebhookDelivery(pub webhook_delivery::Model);

/// One event sent (or being sent) to a webhook.
#[Object]
impl WebhookDelivery {
    /// Also its `webhook-id` header, the same on every attempt.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn event(&self) -> Option<WebhookEvent> {
        WebhookEvent::named(&self.0.event)
    }

    async fn status(&self) -> WebhookDeliveryStatus {
        match self.0.status.as_str() {
            db::webhooks::DELIVERED => WebhookDeliveryStatus::Delivered,
            db::webhooks::FAILED => WebhookDeliveryStatus::Failed,
            _ => WebhookDeliveryStatus::Pending,
        }
    }

    async fn attempts(&self) -> i32 {
        self.0.attempts
    }

    /// The HTTP status of the last attempt, if it got an answer.
    async fn last_status_code(&self) -> Option<i32> {
        self.0.last_status_code
    }

    /// Why the last attempt failed.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }

    /// When the event happened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// While PENDING: when it is (tried again).
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.0.status == db::webhooks::PENDING).then_some(self.0.next_attempt_at)
    }

    /// When it was delivered or given up.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }

    /// The body, as sent.
    async fn payload(&self) -> Option<Json> {
        serde_json::from_str(&self.0.body).ok().map(Json)
    }
}
