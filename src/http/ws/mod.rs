//! GraphQL over WebSocket: `graphql-transport-ws` to the letter of the
//! graphql-ws project's protocol document, and the legacy `graphql-ws`
//! subprotocol of subscriptions-transport-ws.
//!
//! One task owns a connection: a `select!` loop over the socket, the
//! connection's operations (a `StreamMap`, polled only when the socket can
//! take more, so a slow client slows nobody else: its subscriptions fall
//! behind and catch up from the store), the `connection_init` deadline and
//! the keep-alive timer.
//!
//! `shared` renders `executionEvents` once per event for all the
//! subscribers of one document; `plan` writes most of those frames without
//! the engine.

mod plan;
mod shared;

use std::{
    hash::{Hash, Hasher},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use async_graphql::{
    parser::types::{ExecutableDocument, OperationType, Selection},
    Data, Request, Response,
};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{stream, FutureExt, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::time::{interval_at, sleep, Instant};
use tokio_stream::StreamMap;
use tokio_util::task::AbortOnDropHandle;

use super::router::HttpState;
use crate::{
    events::{subscription::execution_events, Event},
    graphql::{
        documents::{Params, Prepared},
        errors::is_request_error,
        loaders::Loaders,
        subscription::{Probe, RenderOne},
        types::Viewer,
        TraceId,
    },
    telemetry::metrics::{self as m, GaugeGuard},
};
use shared::{events_operation, shared_render_key};

/// Which subprotocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws` (the graphql-ws library).
    TransportWs,
    /// `graphql-ws` (the legacy subscriptions-transport-ws).
    Legacy,
}

impl Protocol {
    /// From the `Sec-WebSocket-Protocol` offers, in the client's order.
    pub fn negotiate(offers: &str) -> Option<Protocol> {
        offers.split(',').map(str::trim).find_map(|p| match p {
            "graphql-transport-ws" => Some(Protocol::TransportWs),
            "graphql-ws" => Some(Protocol::Legacy),
            _ => None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::TransportWs => "graphql-transport-ws",
            Protocol::Legacy => "graphql-ws",
        }
    }
}

/// Timers and limits of connections.
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// `connection_init` must arrive within this (else 4408).
    pub init_timeout: Duration,
    /// How often the server pings (graphql-transport-ws) or sends `ka`
    /// (legacy); a graphql-transport-ws client that has not answered the
    /// previous ping by the next one is disconnected.
    pub keep_alive: Duration,
    /// Operations one connection may run at once.
    pub max_operations: usize,
    /// Connections one user may hold.
    pub max_connections_per_user: usize,
    /// Open connections per user.
    pub connections: ConnectionCounts,
    /// Cancelled when the server stops, once its runs have stopped: each
    /// connection then delivers what its operations still have (the
    /// terminal events of those runs), and closes with 1001.
    pub closing: tokio_util::sync::CancellationToken,
    /// Every connection, so that the server can wait for them to close.
    pub tracker: tokio_util::task::TaskTracker,
}

/// Open connections per user, shared by all connections of a server.
#[derive(Debug, Clone, Default)]
pub struct ConnectionCounts(Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>);

impl ConnectionCounts {
    /// Counts one more connection of `sub`, unless it already has `max`.
    fn acquire(&self, sub: &str, max: usize) -> Option<ConnectionSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(sub.to_owned()).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot { counts: self.clone(), sub: sub.to_owned() })
    }
}

/// One counted connection; dropping it uncounts it.
#[derive(Debug)]
struct ConnectionSlot {
    counts: ConnectionCounts,
    sub: String,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.sub) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.sub);
            }
        }
    }
}

/// How long a stopping server lets connections deliver what their
/// operations still have.
const CLOSING_GRACE: Duration = Duration::from_secs(2);

/// Most frames written before one flush.
const WRITE_BATCH: usize = 64;

/// Close codes of graphql-transport-ws.
mod close {
    pub const INVALID_MESSAGE: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE_ID: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
    /// The peer stopped answering pings (a standard "going away").
    pub const PONG_TIMEOUT: u16 = 1001;
    /// The server is stopping (a standard "going away").
    pub const GOING_AWAY: u16 = 1001;
    pub const SUBPROTOCOL_NOT_ACCEPTABLE: u16 = 4406;
}

/// One message from the client, in either protocol.
#[derive(Debug, Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<Value>,
}

/// The payload of `subscribe` / `start`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OperationPayload {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<Map<String, Value>>,
    extensions: Option<Map<String, Value>>,
}

/// One result of an operation: a response to serialise, or an event already
/// rendered to the text of a response (shared with other subscribers).
enum Frame {
    Response(Box<Response>),
    Rendered(Arc<str>),
}

/// What an operation's stream yields: frames, then `None` at its end.
type Operation = Pin<Box<dyn Stream<Item = Option<Frame>> + Send>>;

/// Why the loop ends.
struct Close(u16, String);

struct Connection {
    socket: WebSocket,
    protocol: Protocol,
    http: HttpState,
    trace: TraceId,
    /// Credentials from the upgrade request, used when `connection_init`
    /// carries none.
    header_credentials: Option<String>,
    viewer: Option<Viewer>,
    slot: Option<ConnectionSlot>,
    settings: WsSettings,
    init_received: bool,
    operations: StreamMap<String, Operation>,
}

/// Closes a connection that offered no subprotocol we speak.
pub async fn refuse(mut socket: WebSocket) {
    let frame = CloseFrame {
        code: close::SUBPROTOCOL_NOT_ACCEPTABLE,
        reason: Utf8Bytes::from_static("Subprotocol not acceptable"),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Serves one upgraded connection until either side ends it.
pub async fn serve(
    socket: WebSocket,
    protocol: Protocol,
    http: HttpState,
    trace: TraceId,
    header_credentials: Option<String>,
    settings: WsSettings,
) {
    let _open = GaugeGuard::new(m::WS_CONNECTIONS);
    let mut connection = Connection {
        socket,
        protocol,
        http,
        trace,
        header_credentials,
        viewer: None,
        slot: None,
        settings: settings.clone(),
        init_received: false,
        operations: StreamMap::new(),
    };
    if let Err(Close(code, reason)) = connection.run(settings).await {
        let frame = CloseFrame { code, reason: Utf8Bytes::from(truncate(&reason, 123)) };
        let _ = connection.socket.send(Message::Close(Some(frame))).await;
    }
}

/// A close reason may be at most 123 bytes.
fn truncate(reason: &str, max: usize) -> String {
    let mut end = reason.len().min(max);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

impl Connection {
    async fn run(&mut self, settings: WsSettings) -> Result<(), Close> {
        let init_deadline = sleep(settings.init_timeout);
        tokio::pin!(init_deadline);
        let mut keep_alive = interval_at(Instant::now() + settings.keep_alive, settings.keep_alive);
        let mut awaiting_pong = false;
        // Armed once `connection_init` brought credentials that expire.
        let expiry = sleep(Duration::ZERO);
        tokio::pin!(expiry);
        let mut expiry_armed = false;
        // Set when the server stops: what is left is delivered, until then.
        // Made once, not at every turn of the loop (each would join and
        // leave the token's waiters).
        let closing = settings.closing.clone();
        let closing = closing.cancelled();
        tokio::pin!(closing);
        let mut closing_deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            if closing_deadline.is_some() && self.operations.is_empty() {
                return Err(Close(close::GOING_AWAY, "The server is shutting down".into()));
            }
            if !expiry_armed {
                if let Some(at) = self.viewer.as_ref().and_then(|v| v.expires_at) {
                    let left = at.duration_since(std::time::SystemTime::now()).unwrap_or_default();
                    expiry.as_mut().reset(Instant::now() + left);
                    expiry_armed = true;
                }
            }
            tokio::select! {
                message = self.socket.recv() => match message {
                    Some(Ok(Message::Text(text))) => {
                        // Boxed: the connection's own future (a tokio task
                        // for as long as the client stays) would otherwise
                        // be as large as a subscribe's, several KiB.
                        if Box::pin(self.on_text(text.as_str())).await? == Flow::Stop {
                            return Ok(());
                        }
                        if self.protocol == Protocol::TransportWs {
                            // Any message from the client shows it is alive.
                            awaiting_pong = false;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        return Err(Close(close::INVALID_MESSAGE, "Binary messages are not supported".into()));
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                    Some(Ok(_)) => {} // WebSocket-level ping/pong: axum answers pings.
                },
                Some((id, item)) = self.operations.next(), if !self.operations.is_empty() => {
                    self.on_operation_item(id, item).await?;
                    // Whatever else is ready goes out in the same write.
                    for _ in 0..WRITE_BATCH {
                        match self.operations.next().now_or_never() {
                            Some(Some((id, item))) => self.on_operation_item(id, item).await?,
                            _ => break,
                        }
                    }
                    self.flush().await?;
                }
                _ = &mut closing, if closing_deadline.is_none() => {
                    closing_deadline = Some(Box::pin(sleep(CLOSING_GRACE)));
                }
                _ = async { closing_deadline.as_mut().expect("armed").await }, if closing_deadline.is_some() => {
                    // Operations that do not end with this server (runs of
                    // other replicas, idle subscriptions): the client
                    // resumes them elsewhere with afterSeq.
                    return Err(Close(close::GOING_AWAY, "The server is shutting down".into()));
                }
                _ = &mut expiry, if expiry_armed => {
                    // The token ran out: nothing more runs on its authority.
                    return Err(Close(close::FORBIDDEN, "Forbidden: the token has expired".into()));
                }
                _ = &mut init_deadline, if !self.init_received => {
                    return Err(Close(close::INIT_TIMEOUT, "Connection initialisation timeout".into()));
                }
                _ = keep_alive.tick() => {
                    match self.protocol {
                        Protocol::TransportWs => {
                            if awaiting_pong {
                                return Err(Close(close::PONG_TIMEOUT, "No pong received in time".into()));
                            }
                            awaiting_pong = true;
                            self.send(json!({ "type": "ping" })).await?;
                        }
                        Protocol::Legacy if self.viewer.is_some() => self.send(json!({ "type": "ka" })).await?,
                        Protocol::Legacy => {}
                    }
                }
            }
        }
    }

    async fn send(&mut self, message: Value) -> Result<(), Close> {
        self.send_text(message.to_string()).await
    }

    async fn send_text(&mut self, text: String) -> Result<(), Close> {
        // A failed send means the peer is gone; end quietly.
        self.socket.send(Message::Text(Utf8Bytes::from(text))).await.map_err(|_| Close(1000, String::new()))
    }

    /// Queues a frame without flushing (see the batch in `run`).
    async fn feed_text(&mut self, text: String) -> Result<(), Close> {
        self.socket.feed(Message::Text(Utf8Bytes::from(text))).await.map_err(|_| Close(1000, String::new()))
    }

    async fn flush(&mut self) -> Result<(), Close> {
        self.socket.flush().await.map_err(|_| Close(1000, String::new()))
    }

    async fn on_text(&mut self, text: &str) -> Result<Flow, Close> {
        let invalid = |why: &str| Close(close::INVALID_MESSAGE, why.to_owned());
        let message: ClientMessage = serde_json::from_str(text).map_err(|_| invalid("Invalid message received"))?;
        match (self.protocol, message.kind.as_str()) {
            (_, "connection_init") => self.on_init(message.payload).await?,
            (Protocol::TransportWs, "ping") => {
                let mut pong = json!({ "type": "pong" });
                if let Some(payload) = message.payload {
                    pong["payload"] = payload;
                }
                self.send(pong).await?;
            }
            (Protocol::TransportWs, "pong") => {}
            (Protocol::TransportWs, "subscribe") | (Protocol::Legacy, "start") => {
                let id = message.id.filter(|id| !id.is_empty()).ok_or_else(|| invalid("Operation id is required"))?;
                let payload = message.payload.ok_or_else(|| invalid("Operation payload is required"))?;
                let payload: OperationPayload =
                    serde_json::from_value(payload).map_err(|_| invalid("Invalid operation payload"))?;
                self.on_subscribe(id, payload).await?;
            }
            (Protocol::TransportWs, "complete") | (Protocol::Legacy, "stop") => {
                let id = message.id.ok_or_else(|| invalid("Operation id is required"))?;
                self.operations.remove(&id);
            }
            (Protocol::Legacy, "connection_terminate") => return Ok(Flow::Stop),
            _ => return Err(invalid(&format!("Unexpected message type {}", message.kind))),
        }
        Ok(Flow::Continue)
    }

    async fn on_init(&mut self, payload: Option<Value>) -> Result<(), Close> {
        if self.init_received {
            return Err(Close(close::TOO_MANY_INITS, "Too many initialisation requests".into()));
        }
        self.init_received = true;
        let credentials = payload
            .as_ref()
            .and_then(|p| p.get("Authorization").or_else(|| p.get("authorization")).or_else(|| p.get("token")))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| self.header_credentials.clone());
        match self.http.auth.authenticate(credentials.as_deref()) {
            Ok(viewer) => {
                let Some(slot) = self.settings.connections.acquire(&viewer.sub, self.settings.max_connections_per_user)
                else {
                    return Err(Close(close::TOO_MANY_INITS, "Too many connections for this user".into()));
                };
                self.slot = Some(slot);
                self.viewer = Some(viewer);
                self.send(json!({ "type": "connection_ack" })).await
            }
            Err(why) => {
                let reason = format!("Forbidden: {why}");
                if self.protocol == Protocol::Legacy {
                    self.send(json!({ "type": "connection_error", "payload": { "message": reason } })).await?;
                }
                Err(Close(close::FORBIDDEN, reason))
            }
        }
    }

    async fn on_subscribe(&mut self, id: String, payload: OperationPayload) -> Result<(), Close> {
        let Some(viewer) = self.viewer.clone() else {
            return Err(Close(close::UNAUTHORIZED, "Unauthorized".into()));
        };
        if viewer.is_expired() {
            return Err(Close(close::FORBIDDEN, "Forbidden: the token has expired".into()));
        }
        if self.operations.contains_key(&id) {
            return Err(Close(close::DUPLICATE_ID, format!("Subscriber for {id} already exists")));
        }
        if self.operations.len() >= self.settings.max_operations {
            let message =
                format!("at most {} operations may run at once on one connection", self.settings.max_operations);
            let mut errors = vec![crate::graphql::errors::coded(message, "RATE_LIMITED")];
            crate::graphql::errors::shape(&mut errors, Some(self.trace.0.clone()));
            return self.send(json!({ "type": "error", "id": id, "payload": errors })).await;
        }
        let mut prepared = match self.http.documents.prepare(payload.params()).await {
            Ok(prepared) => prepared,
            Err(error) => {
                let mut errors = vec![error];
                crate::graphql::errors::shape(&mut errors, Some(self.trace.0.clone()));
                return self.send(json!({ "type": "error", "id": id, "payload": errors })).await;
            }
        };
        // Persisted queries are registered over HTTP; here they are only used.
        let _ = prepared.take_remember();
        let mut data = Data::default();
        data.insert(Loaders::new(self.http.state.db.clone(), &viewer.sub));
        data.insert(viewer.clone());
        data.insert(self.trace.clone());
        let session = Arc::new(data);
        let operation: Operation = match shared_render_key(&payload, prepared.document.as_ref()) {
            Some(key) => events_operation(self.http.clone(), prepared, key, session, &viewer).await,
            None => {
                let subscription = prepared
                    .document
                    .as_ref()
                    .and_then(|d| crate::graphql::selected_operation(d, prepared.request.operation_name.as_deref()))
                    .is_some_and(|op| op.node.ty == OperationType::Subscription);
                let responses = self.http.schema.execute_stream_with_session_data(prepared.into_request(), session);
                let responses: Pin<Box<dyn Stream<Item = Response> + Send>> = if subscription {
                    Box::pin(responses)
                } else {
                    // A query or mutation runs to its end on a task of its
                    // own: were it polled only when this socket can take
                    // more, a client that reads nothing could keep its
                    // store connections checked out.
                    let task = AbortOnDropHandle::new(tokio::spawn(responses.collect::<Vec<_>>()));
                    Box::pin(stream::once(task).flat_map(|done| stream::iter(done.unwrap_or_default())))
                };
                Box::pin(responses.map(|r| Some(Frame::Response(Box::new(r)))).chain(stream::once(async { None })))
            }
        };
        self.operations.insert(id, operation);
        Ok(())
    }
}

impl Connection {
    async fn on_operation_item(&mut self, id: String, item: Option<Frame>) -> Result<(), Close> {
        let kind = match self.protocol {
            Protocol::TransportWs => "next",
            Protocol::Legacy => "data",
        };
        let response = match item {
            // The stream ended (StreamMap drops it by itself).
            None => return self.feed_text(json!({ "type": "complete", "id": id }).to_string()).await,
            Some(Frame::Rendered(payload)) => return self.feed_text(envelope(kind, &id, &payload)).await,
            Some(Frame::Response(response)) => *response,
        };
        if is_request_error(&response) {
            // It never ran (did not parse or validate): `error`, and no
            // `complete` after it.
            self.operations.remove(&id);
            return self.feed_text(json!({ "type": "error", "id": id, "payload": response.errors }).to_string()).await;
        }
        let mut payload = serde_json::to_string(&response).unwrap_or_else(|_| "null".into());
        let max = self.http.max_response_bytes;
        if payload.len() > max {
            payload = crate::graphql::errors::too_large(max, &self.trace.0).to_string();
        }
        self.feed_text(envelope(kind, &id, &payload)).await
    }
}

/// `{"type":kind,"id":id,"payload":payload}`, in one allocation of the
/// right size: `format!` grew the string several times for every event.
fn envelope(kind: &str, id: &str, payload: &str) -> String {
    // An id is almost always plain ("1", a UUID): quoted as it is, not
    // escaped into a string of its own for every frame.
    let plain = !id.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
    let escaped;
    let id = if plain {
        id
    } else {
        escaped = Value::String(id.to_owned()).to_string();
        &escaped[1..escaped.len() - 1]
    };
    let mut text = String::with_capacity(34 + kind.len() + id.len() + payload.len());
    for piece in ["{\"type\":\"", kind, "\",\"id\":\"", id, "\",\"payload\":", payload, "}"] {
        text.push_str(piece);
    }
    text
}

impl OperationPayload {
    fn params(&self) -> Params {
        let this = self.clone();
        Params {
            query: this.query,
            operation_name: this.operation_name,
            variables: this.variables,
            extensions: this.extensions,
            uploads: 0,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// The upgrade request's own `Authorization`, if it has one.
pub fn credentials_from_headers(headers: &axum::http::HeaderMap) -> Option<String> {
    headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_quote_any_id_as_json_does() {
        for id in ["1", "0f8e-uuid", "quote\"d", "back\\slash", "line\nbreak\u{1}", "é"] {
            let text = envelope("next", id, r#"{"data":null}"#);
            let parsed: Value = serde_json::from_str(&text).expect(&text);
            assert_eq!(parsed, json!({ "type": "next", "id": id, "payload": { "data": null } }), "{text}");
        }
    }
}
