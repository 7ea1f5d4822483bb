//! A lean graphql-transport-ws subscriber: it reads only what the figures
//! need (seq, emit stamp, final status) from each frame, so the load
//! generator stays cheap.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, http::HeaderValue, Message},
    MaybeTlsStream, WebSocketStream,
};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const DOCUMENT: &str =
    "subscription($id: ID!, $after: Int!) { executionEvents(executionId: $id, afterSeq: $after) { \
    __typename ... on MessageEvent { seq message } ... on StatusEvent { status } } }";

/// What one subscriber saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub messages: u64,
    pub gaps: u64,
    pub duplicates: u64,
    /// Emit-to-receive latencies, in ms, of stamped messages.
    pub latencies_ms: Vec<f64>,
    pub completed: bool,
}

pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The number after `key` in `text` (e.g. `"seq":12`).
pub fn number_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits: &str = &text[start..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Connects and completes the graphql-transport-ws handshake.
pub async fn connect(url: &str) -> Result<Socket> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    socket.send(Message::text(json!({ "type": "connection_init", "payload": {} }).to_string())).await?;
    match socket.next().await {
        Some(Ok(Message::Text(t))) if t.contains("connection_ack") => Ok(socket),
        other => bail!("no connection_ack: {other:?}"),
    }
}

pub async fn subscribe(socket: &mut Socket, execution_id: &str) -> Result<()> {
    subscribe_after(socket, execution_id, 0).await
}

/// Subscribes to what comes after `after_seq` (a resuming client).
pub async fn subscribe_after(socket: &mut Socket, execution_id: &str, after_seq: u64) -> Result<()> {
    let variables = json!({ "id": execution_id, "after": after_seq });
    let message = json!({ "id": "1", "type": "subscribe", "payload": { "query": DOCUMENT, "variables": variables } });
    socket.send(Message::text(message.to_string())).await?;
    Ok(())
}

/// Reads until a message with `seq >= until` arrived (the stream's start,
/// before the measured part).
pub async fn read_until_seq(socket: &mut Socket, until: u64) -> Result<u64> {
    let mut last = 0;
    while last < until {
        let frame = tokio::time::timeout(Duration::from_secs(60), socket.next()).await.context("timed out")?;
        if let Some(Ok(Message::Text(text))) = frame {
            if let Some(seq) = number_after(text.as_str(), "\"seq\":") {
                last = seq;
            }
        } else {
            bail!("unexpected frame before the start: {frame:?}");
        }
    }
    Ok(last)
}

/// Reads until the subscription completes (or `limit` passes), counting
/// messages after `last_seq`.
pub async fn drain(socket: &mut Socket, mut last_seq: u64, limit: Duration) -> Result<Seen> {
    let mut seen = Seen::default();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next()).await.context("timed out")?;
        let Some(frame) = frame else { bail!("connection closed early") };
        let text = match frame? {
            Message::Text(t) => t,
            Message::Ping(_) | Message::Pong(_) => continue,
            other => bail!("unexpected frame {other:?}"),
        };
        let text = text.as_str();
        if text == "{\"type\":\"ping\"}" {
            socket.send(Message::text("{\"type\":\"pong\"}")).await?;
            continue;
        }
        if text.contains("\"type\":\"complete\"") {
            seen.completed = true;
            return Ok(seen);
        }
        if let Some(seq) = number_after(text, "\"seq\":") {
            if seq <= last_seq {
                seen.duplicates += 1;
            } else {
                if seq != last_seq + 1 {
                    seen.gaps += 1;
                }
                last_seq = seq;
                seen.messages += 1;
            }
            if let Some(emitted) = number_after(text, "emit_ns\\\":").or_else(|| number_after(text, "\"emit_ns\":")) {
                seen.latencies_ms.push(now_ns().saturating_sub(emitted) as f64 / 1e6);
            }
        }
    }
}
