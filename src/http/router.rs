//! The routes and the layers around them.

use std::time::Instant;

use axum::{
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::HeaderName,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use tracing::info_span;

use super::{auth::Authenticator, graphql, graphql_http, health, pages, ws::WsSettings};
use crate::{
    graphql::{documents::Documents, AppSchema},
    state::AppState,
    telemetry::metrics as m,
};

/// How a stopping server closes its WebSocket connections: cancel the
/// token once the runs have stopped, then wait for the tracker.
#[derive(Clone, Default)]
pub struct WsClosing {
    pub token: tokio_util::sync::CancellationToken,
    pub tracker: tokio_util::task::TaskTracker,
}

/// What the GraphQL handlers need.
#[derive(Clone)]
pub struct HttpState {
    pub schema: AppSchema,
    pub auth: Authenticator,
    /// Reads documents (and keeps persisted queries).
    pub documents: Documents,
    /// Largest response body of a query.
    pub max_response_bytes: usize,
    pub ws: WsSettings,
    pub state: AppState,
}

pub fn router(state: AppState, schema: AppSchema, ws_closing: WsClosing) -> Router {
    let ws = WsSettings {
        closing: ws_closing.token,
        tracker: ws_closing.tracker,
        init_timeout: state.config.ws_init_timeout,
        keep_alive: state.config.ws_keep_alive,
        max_operations: state.config.max_subscriptions_per_connection,
        max_connections_per_user: state.config.max_connections_per_user,
        connections: Default::default(),
    };
    let http = HttpState {
        schema,
        auth: Authenticator::new(&state.config),
        documents: Documents::new(state.config.max_query_tokens),
        max_response_bytes: state.config.max_response_bytes,
        ws,
        state: state.clone(),
    };
    let request_id = HeaderName::from_static("x-request-id");
    let metrics = m::install();
    let body_limit = state.config.max_body_bytes;
    let local_mode = state.config.jwt_secret.is_none();
    let graphql_routes = Router::new()
        .route("/", get(pages::graphiql))
        .route("/graphql", get(graphql_http::graphql_http).post(graphql_http::graphql_http))
        .route("/graphql/ws", get(graphql::graphql_ws))
        .with_state(http);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state)
        .route("/live", get(pages::live))
        .route("/assets/{*name}", get(pages::asset))
        .route("/metrics", get(move || pages::metrics(metrics.clone())))
        .merge(graphql_routes)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(move |request: Request, next: Next| guard_local_mode(local_mode, request, next)))
        .layer(middleware::from_fn(record_duration))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let trace_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
            info_span!("request", trace_id = %trace_id, method = %request.method(), uri = %request.uri())
        }))
        // Outermost: a client's own x-request-id is kept, else one is made.
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// In local mode nothing protects the API but the loopback address, so a
/// web page the user visits must not reach it: the `Host` must be a
/// loopback name (no DNS rebinding), and an `Origin`, when a browser sends
/// one, must be a loopback origin too (WebSockets have no CORS).
async fn guard_local_mode(local_mode: bool, request: Request, next: Next) -> Response {
    if local_mode {
        let header = |name| request.headers().get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok());
        let host_ok = header(axum::http::header::HOST).is_none_or(is_loopback_authority);
        let origin_ok = header(axum::http::header::ORIGIN).is_none_or(|origin| {
            origin.split_once("://").is_some_and(|(_, authority)| is_loopback_authority(authority))
        });
        if !host_ok || !origin_ok {
            return (axum::http::StatusCode::FORBIDDEN, "local mode answers loopback hosts and origins only")
                .into_response();
        }
    }
    next.run(request).await
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Records each request's duration by route, method and status.
async fn record_duration(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = request.method().to_string();
    let response = next.run(request).await;
    let labels = [("route", route), ("method", method), ("status", response.status().as_u16().to_string())];
    metrics::histogram!(m::HTTP_REQUEST_SECONDS, &labels).record(started.elapsed().as_secs_f64());
    response
}
