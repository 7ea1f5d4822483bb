//! GraphQL over WebSocket (`/graphql/ws`) and GraphiQL (`/`).

use async_graphql::{http::GraphiQLSource, Data};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::{
    extract::{State, WebSocketUpgrade},
    http::HeaderMap,
    response::{Html, IntoResponse, Response},
};

use super::{router::HttpState, trace_id};

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
