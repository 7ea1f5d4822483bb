//! Pages and assets served from the binary: GraphiQL at `/`, the live
//! view at `/live`, and `/metrics`. Nothing is fetched from elsewhere, so
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

/// (path under /assets/, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[];
