//! The HTTP edge: routes, GraphQL over HTTP and WebSocket, auth, health.

pub mod auth;
pub mod graphql;
pub mod graphql_http;
pub mod health;
pub mod pages;
pub mod router;
pub mod ws;

use axum::http::HeaderMap;
pub use router::{router, WsClosing};
use uuid::Uuid;

use crate::graphql::TraceId;

/// The trace id of a request: its `x-request-id` (set by the request-id
/// layer when the client sent none).
fn trace_id(headers: &HeaderMap) -> TraceId {
    let id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    TraceId(id.unwrap_or_else(|| Uuid::new_v4().to_string()))
}
