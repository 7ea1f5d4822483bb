//! Sends webhook deliveries. Every server takes the due ones from the
//! outbox (`db::webhooks`; a claim per delivery, so replicas never send an
//! attempt twice), signs them (Standard Webhooks) and POSTs them; a failed
//! one is tried again with exponential backoff until WEBHOOK_RETRY_FOR has
//! passed since its event, then it is FAILED. Its log is queryable.

pub mod address;
pub mod signature;

use std::time::Duration;

use entity::{webhook, webhook_delivery};
use sea_orm::DatabaseConnection;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::db::{self, webhooks::Attempt};
pub use address::AllowList;

/// Deliveries taken at once.
const BATCH: u64 = 16;
/// Attempts in flight at once on one server.
const IN_FLIGHT: usize = 64;
/// How often the outbox is looked at when it was empty.
const POLL: Duration = Duration::from_millis(250);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How deliveries are sent.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub allow: AllowList,
    /// The wait after the first failed attempt; each next one is 5 times
    /// longer (at most an hour).
    pub retry_base: Duration,
    /// Attempts stop this long after the event.
    pub retry_for: Duration,
    /// One attempt's limit.
    pub timeout: Duration,
}

/// Sends the outbox's deliveries until stopped.
pub struct Sender {
    db: DatabaseConnection,
    config: SenderConfig,
}

/// Why an attempt did not deliver.
enum SendError {
    /// The address is not allowed: no retry.
    Refused(String),
    /// Worth another attempt.
    Failed { status_code: Option<u16>, error: String },
}

impl Sender {
    pub fn new(db: DatabaseConnection, config: SenderConfig) -> Self {
        Sender { db, config }
    }

    pub async fn run(self, stop: CancellationToken) {
        let this = std::sync::Arc::new(self);
        // A claim outlasts an attempt, so no other server takes it meanwhile.
        let claim = chrono::TimeDelta::from_std(this.config.timeout * 2 + Duration::from_secs(10))
            .unwrap_or(chrono::TimeDelta::minutes(1));
        // Attempts in flight, each on its own: a slow endpoint holds up no
        // other delivery. The set owns them; stopping drops (aborts) them.
        let mut sends = JoinSet::new();
        loop {
            while sends.try_join_next().is_some() {}
            let room = IN_FLIGHT.saturating_sub(sends.len()) as u64;
            let due = match room {
                0 => Vec::new(),
                _ => match db::webhooks::claim_due(&this.db, chrono::Utc::now(), claim, room.min(BATCH)).await {
                    Ok(due) => due,
                    Err(e) => {
                        warn!(error = %e, "could not read the webhook outbox");
                        Vec::new()
                    }
                },
            };
            let idle = due.is_empty();
            for (delivery, hook) in due {
                let this = this.clone();
                sends.spawn(async move { this.send(delivery, hook).await });
            }
            if idle {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    // One ended: there is room again.
                    Some(_) = sends.join_next(), if room == 0 => {}
                    _ = stop.cancelled() => return,
                }
            } else if stop.is_cancelled() {
                return;
            }
        }
    }

    /// One attempt, recorded.
    async fn send(&self, delivery: webhook_delivery::Model, hook: webhook::Model) {
        // The whole attempt, name lookup included, has the time limit: an
        // endpoint (or its DNS) that never answers holds up no one long.
        let limit = self.config.timeout + Duration::from_secs(1);
        let posted = tokio::time::timeout(limit, self.post(&delivery, &hook))
            .await
            .unwrap_or_else(|_| Err(SendError::Failed { status_code: None, error: "no answer in time".into() }));
        let attempt = match posted {
            Ok(status_code) => {
                info!(delivery = %delivery.id, webhook = %hook.id, status_code, "webhook delivered");
                Attempt::Delivered { status_code }
            }
            Err(SendError::Refused(error)) => {
                warn!(delivery = %delivery.id, webhook = %hook.id, %error, "webhook refused");
                Attempt::Failed { status_code: None, error, retry_at: None }
            }
            Err(SendError::Failed { status_code, error }) => {
                let retry_at = self.next_attempt(&delivery);
                warn!(delivery = %delivery.id, webhook = %hook.id, %error, ?retry_at, "webhook attempt failed");
                Attempt::Failed { status_code, error, retry_at }
            }
        };
        if let Err(e) = db::webhooks::record(&self.db, delivery.id, attempt).await {
            warn!(delivery = %delivery.id, error = %e, "could not record a webhook attempt");
        }
    }

    /// When to try again after this attempt failed; None when it was the
    /// last.
    fn next_attempt(&self, delivery: &webhook_delivery::Model) -> Option<chrono::DateTime<chrono::Utc>> {
        let failed = delivery.attempts.max(0) as u32 + 1;
        let wait = self.config.retry_base.saturating_mul(5u32.saturating_pow(failed - 1)).min(MAX_BACKOFF);
        let at = chrono::Utc::now() + chrono::TimeDelta::from_std(wait).ok()?;
        let until = delivery.created_at + chrono::TimeDelta::from_std(self.config.retry_for).ok()?;
        (at <= until).then_some(at)
    }

    async fn post(&self, delivery: &webhook_delivery::Model, hook: &webhook::Model) -> Result<u16, SendError> {
        let url = reqwest::Url::parse(&hook.url).map_err(|e| SendError::Refused(format!("not a URL: {e}")))?;
        let addrs = self.config.allow.resolve(&url).await.map_err(|refusal| match refusal {
            address::Refusal::NotAllowed(why) => SendError::Refused(why),
            address::Refusal::Unresolved(error) => SendError::Failed { status_code: None, error },
        })?;
        let host = url.host_str().unwrap_or_default().to_owned();
        // Sent to the addresses just checked, and never redirected elsewhere.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name again, itself.
            .no_proxy()
            .timeout(self.config.timeout)
            .resolve_to_addrs(&host, &addrs)
            .build()
            .map_err(|e| SendError::Failed { status_code: None, error: e.to_string() })?;
        let id = delivery.id.to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", concat!("claude-graphql/", env!("CARGO_PKG_VERSION")))
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature::sign(&hook.secret, &id, timestamp, &delivery.body))
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|e| SendError::Failed { status_code: None, error: without_url(e) })?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(SendError::Failed { status_code: Some(status.as_u16()), error: format!("HTTP {status}") })
        }
    }
}

/// A request error's text, without the URL (it may hold a token).
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}
