//! The routes and the layers around them.

use axum::{http::HeaderName, routing::get, Router};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use async_graphql::extensions::apollo_persisted_queries::LruCacheStorage;

use super::{auth::Authenticator, graphql, graphql_http, health, ws::WsSettings};
use crate::{graphql::AppSchema, state::AppState};

/// What the GraphQL handlers need.
#[derive(Clone)]
pub struct HttpState {
    pub schema: AppSchema,
    pub auth: Authenticator,
    /// The automatic persisted queries the schema's APQ extension keeps.
    pub persisted: LruCacheStorage,
    pub ws: WsSettings,
}

pub fn router(state: AppState, schema: AppSchema, persisted: LruCacheStorage) -> Router {
    let ws = WsSettings { init_timeout: state.config.ws_init_timeout, keep_alive: state.config.ws_keep_alive };
    let http = HttpState { schema, auth: Authenticator::new(&state.config), persisted, ws };
    let request_id = HeaderName::from_static("x-request-id");
    let graphql_routes = Router::new()
        .route("/", get(graphql::graphiql))
        .route("/graphql", get(graphql_http::graphql_http).post(graphql_http::graphql_http))
        .route("/graphql/ws", get(graphql::graphql_ws))
        .with_state(http);
    Router::new()
        .route("/healthz", get(health::healthz))
        .with_state(state)
        .merge(graphql_routes)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http())
        // Outermost: a client's own x-request-id is kept, else one is made.
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}
