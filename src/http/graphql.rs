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

pub async fn graphql_ws(State(http): State<HttpState>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    let trace = trace_id(&headers);
    let credentials = ws::credentials_from_headers(&headers);
    let offered = headers.get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(protocol) = Protocol::negotiate(offered) else {
        return upgrade.on_upgrade(ws::refuse);
    };
    let settings = http.ws.clone();
    upgrade
        .protocols([protocol.name()])
        .on_upgrade(move |socket| ws::serve(socket, protocol, http, trace, credentials, settings))
}
