//! Signals between replicas that share one PostgreSQL database.
//!
//! The database carries the data; LISTEN/NOTIFY carries two signals: "an
//! execution has new stored messages or a new status" (so a subscriber on
//! another replica reads the store at once instead of at its next poll),
//! and "cancel this execution" (so a cancel sent to any replica reaches the
//! one running it). On SQLite there is one server and no signal is sent.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;

use crate::db::signals::{
    ForwardedMessage, CANCEL_CHANNEL, EVENTS_CHANNEL, INTERRUPT_CHANNEL, MESSAGE_CHANNEL, PERMISSION_CHANNEL,
};

/// Wakes local subscribers whose execution runs on another replica.
#[derive(Clone)]
pub struct Wakeups(broadcast::Sender<Uuid>);

impl Default for Wakeups {
    fn default() -> Self {
        // Lagging here only means a poll comes a little later.
        Wakeups(broadcast::channel(1024).0)
    }
}

impl Wakeups {
    pub fn wake(&self, execution_id: Uuid) {
        let _ = self.0.send(execution_id);
    }

    /// A receiver for [`Wakeups::wait`].
    pub fn listen(&self) -> broadcast::Receiver<Uuid> {
        self.0.subscribe()
    }

    /// Waits until `execution_id` is signalled, or `at_most` passes.
    pub async fn wait(rx: &mut broadcast::Receiver<Uuid>, execution_id: Uuid, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, async {
            loop {
                match rx.recv().await {
                    Ok(id) if id == execution_id => return,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                }
            }
        })
        .await;
    }
}

/// What another replica asks of this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Cancel(Uuid),
    Interrupt(Uuid),
    /// Deliver the answer of this permission request.
    Answer(Uuid),
    /// Write this follow-up message.
    Message(ForwardedMessage),
}

/// Listens for the other replicas' signals until `stop` is cancelled:
/// event signals wake local subscribers, requests go to `on_request`.
pub async fn listen(
    db: DatabaseConnection,
    wakeups: Wakeups,
    on_request: impl Fn(Request) + Send,
    stop: CancellationToken,
) {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return;
    }
    let pool = db.get_postgres_connection_pool().clone();
    let mut listener = loop {
        let attempt = async {
            let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener
                .listen_all([EVENTS_CHANNEL, CANCEL_CHANNEL, INTERRUPT_CHANNEL, PERMISSION_CHANNEL, MESSAGE_CHANNEL])
                .await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        match attempt.await {
            Ok(listener) => break listener,
            Err(e) => {
                warn!(error = %e, "could not LISTEN for other replicas; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    loop {
        let notification = tokio::select! {
            _ = stop.cancelled() => return,
            n = listener.recv() => n,
        };
        match notification {
            Ok(n) if n.channel() == MESSAGE_CHANNEL => match serde_json::from_str::<ForwardedMessage>(n.payload()) {
                Ok(message) => on_request(Request::Message(message)),
                Err(e) => warn!(error = %e, "a forwarded message that does not parse"),
            },
            Ok(n) => {
                let Ok(id) = Uuid::parse_str(n.payload()) else { continue };
                debug!(channel = n.channel(), execution_id = %id, "signal from a replica");
                match n.channel() {
                    CANCEL_CHANNEL => on_request(Request::Cancel(id)),
                    INTERRUPT_CHANNEL => on_request(Request::Interrupt(id)),
                    PERMISSION_CHANNEL => on_request(Request::Answer(id)),
                    _ => wakeups.wake(id),
                }
            }
            // recv() reconnects by itself; signals lost meanwhile are
            // covered by the subscribers' polling.
            Err(e) => {
                warn!(error = %e, "listening for other replicas failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
