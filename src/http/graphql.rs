//! GraphQL over HTTP (`/graphql`), over WebSocket (`/graphql/ws`), and
//! GraphiQL (`/`).

use async_graphql::{http::GraphiQLSource, Data};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::{
    extract::{State, WebSocketUpgrade},
    http::HeaderMap,
    response::{Html, IntoResponse, Response},
};
use uuid::Uuid;

use super::router::HttpState;
use crate::graphql::{errors::set_trace_id, TraceId};

/// The trace id of a request: its `x-request-id` (set by the request-id
/// layer when the client sent none).
fn trace_id(headers: &HeaderMap) -> TraceId {
    let id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    TraceId(id.unwrap_or_else(|| Uuid::new_v4().to_string()))
}

pub async fn graphql_http(
    State(http): State<HttpState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let trace = trace_id(&headers);
    let mut request = request.into_inner().data(trace.clone());
    let credentials = headers.get("authorization").and_then(|v| v.to_str().ok());
    if let Some(viewer) = http.auth.viewer(credentials) {
        request = request.data(viewer);
    }
    let mut response = http.schema.execute(request).await;
    set_trace_id(&mut response.errors, &trace.0);
    response.into()
}

pub async fn graphql_ws(
    State(http): State<HttpState>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let trace = trace_id(&headers);
    upgrade.protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| {
        let auth = http.auth.clone();
        GraphQLWebSocket::new(socket, http.schema.clone(), protocol)
            .on_connection_init(move |payload| async move {
                let credentials = payload
                    .get("Authorization")
                    .or_else(|| payload.get("authorization"))
                    .or_else(|| payload.get("token"))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
                let viewer = auth
                    .viewer(credentials.as_deref())
                    .ok_or_else(|| async_graphql::Error::new("a valid bearer token is required"))?;
                let mut data = Data::default();
                data.insert(viewer);
                data.insert(trace);
                Ok(data)
            })
            .serve()
    })
}

pub async fn graphiql() -> impl IntoResponse {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("claude-graphql")
            .finish(),
    )
}
