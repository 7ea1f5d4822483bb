//! The WebSocket upgrade at `/graphql/ws`.

use axum::{
    extract::{State, WebSocketUpgrade},
    http::{header, HeaderMap},
    response::Response,
};

use super::{
    router::HttpState,
    trace_id,
    ws::{self, Protocol},
};

const READ_BUFFER: usize = 1024;
/// Frames are written once this much is queued, or at each flush.
const WRITE_BUFFER: usize = 32 * 1024;

pub async fn graphql_ws(State(http): State<HttpState>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    let trace = trace_id(&headers);
    let credentials = ws::credentials_from_headers(&headers);
    let offered = headers.get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(protocol) = Protocol::negotiate(offered) else {
        return upgrade.on_upgrade(ws::refuse);
    };
    let settings = http.ws.clone();
    upgrade
        // Small reads (frames larger than this still arrive whole, in more
        // reads): what a client sends is mostly a subscribe of a few hundred
        // bytes, and an idle subscription should cost a few KiB in all, not
        // tungstenite's 128 KiB (or 4 KiB) buffer.
        .read_buffer_size(READ_BUFFER)
        .max_message_size(http.state.config.max_body_bytes)
        .write_buffer_size(WRITE_BUFFER)
        .protocols([protocol.name()])
        .on_upgrade(move |socket| {
            let tracker = settings.tracker.clone();
            tracker.track_future(ws::serve(socket, protocol, http, trace, credentials, settings))
        })
}
