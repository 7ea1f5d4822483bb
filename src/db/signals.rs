//! PostgreSQL NOTIFY signals between replicas (see `events::replicas`).

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use uuid::Uuid;

/// New messages or a new status for the execution named in the payload.
pub const EVENTS_CHANNEL: &str = "claude_graphql_events";
/// A follow-up message (JSON: execution_id, message_id, text, now).
pub const MESSAGE_CHANNEL: &str = "claude_graphql_message";
/// NOTIFY payloads must stay under PostgreSQL's 8000 bytes.
pub const MAX_PAYLOAD: usize = 7900;
/// Deliver the answer of the permission request named in the payload.
pub const PERMISSION_CHANNEL: &str = "claude_graphql_permission";
/// Interrupt the running turn of the execution named in the payload.
pub const INTERRUPT_CHANNEL: &str = "claude_graphql_interrupt";
/// Cancel the execution named in the payload, wherever it runs.
pub const CANCEL_CHANNEL: &str = "claude_graphql_cancel";

/// A follow-up message for the replica that runs the execution (the
/// payload of [`MESSAGE_CHANNEL`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForwardedMessage {
    pub execution_id: Uuid,
    pub message_id: Uuid,
    /// Text, or content blocks naming attachments.
    pub text: crate::attachments::Prompt,
    /// Replaces the running turn.
    pub now: bool,
}

/// Sends a follow-up message to the replica running its execution, if the
/// database is PostgreSQL; None when it is too long for a signal.
pub async fn forward_message(
    db: &impl ConnectionTrait,
    message: &ForwardedMessage,
) -> Result<Option<()>, sea_orm::DbErr> {
    let payload = serde_json::to_string(message).map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?;
    if payload.len() > MAX_PAYLOAD {
        return Ok(None);
    }
    notify_text(db, MESSAGE_CHANNEL, &payload).await.map(Some)
}

/// Sends `execution_id` on `channel`, if the database is PostgreSQL. Inside
/// a transaction the signal leaves at commit, after the data it announces.
pub async fn notify(db: &impl ConnectionTrait, channel: &str, execution_id: Uuid) -> Result<(), sea_orm::DbErr> {
    notify_text(db, channel, &execution_id.to_string()).await
}

/// Sends a text payload on `channel`, if the database is PostgreSQL.
pub async fn notify_text(db: &impl ConnectionTrait, channel: &str, payload: &str) -> Result<(), sea_orm::DbErr> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    db.execute(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [channel.into(), payload.into()],
    ))
    .await
    .map(|_| ())
}
