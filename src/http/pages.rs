//! Pages and assets served from the binary: GraphiQL at `/`, the live
//! view at `/live`, their assets under `/assets/`, and `/metrics`. Nothing is fetched from elsewhere, so
//! they work where the network ends at this server.

use axum::{
    extract::Path,
    http::{header, StatusCode},
    response::{Html, IntoResponse, Response},
};
use metrics_exporter_prometheus::PrometheusHandle;

/// The live view: start a prompt and watch the run (see assets/live/).
pub async fn live() -> Html<&'static str> {
    Html(include_str!("../../assets/live/index.html"))
}

/// Prometheus text format.
pub async fn metrics(handle: PrometheusHandle) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
}

/// Static files under `/assets/<name>`, embedded at build time.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => {
            ([(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "public, max-age=86400")], *bytes)
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// GraphiQL, served from the binary (pinned versions: assets/graphiql/VERSIONS;
/// assets/graphiql/update.sh updates them).
pub async fn graphiql() -> Html<&'static str> {
    Html(include_str!("../../assets/graphiql/index.html"))
}

const JS: &str = "text/javascript; charset=utf-8";

/// (path under /assets/, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("graphiql/graphiql.min.js", JS, include_bytes!("../../assets/graphiql/graphiql.min.js")),
    ("graphiql/graphiql.min.css", "text/css; charset=utf-8", include_bytes!("../../assets/graphiql/graphiql.min.css")),
    ("graphiql/react.production.min.js", JS, include_bytes!("../../assets/graphiql/react.production.min.js")),
    ("graphiql/react-dom.production.min.js", JS, include_bytes!("../../assets/graphiql/react-dom.production.min.js")),
    ("graphiql/graphql-ws.min.js", JS, include_bytes!("../../assets/graphiql/graphql-ws.min.js")),
    (
        "graphiql/LICENSE.graphiql",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/graphiql/LICENSE.graphiql"),
    ),
    ("graphiql/LICENSE.react", "text/plain; charset=utf-8", include_bytes!("../../assets/graphiql/LICENSE.react")),
    (
        "graphiql/LICENSE.react-dom",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/graphiql/LICENSE.react-dom"),
    ),
    (
        "graphiql/LICENSE.graphql-ws",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/graphiql/LICENSE.graphql-ws"),
    ),
];
