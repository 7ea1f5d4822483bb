//! Logs and metrics. Logs: `RUST_LOG` filters (default `info`), text or
//! JSON lines on stderr. Metrics: Prometheus, rendered at `/metrics`.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => registry.with(fmt::layer().with_writer(std::io::stderr)).try_init(),
        // Spans ride along, so a request's trace_id is on every line logged
        // while it is handled (and on the runs it starts).
        LogFormat::Json => registry
            .with(fmt::layer().json().with_current_span(true).with_span_list(true).with_writer(std::io::stderr))
            .try_init(),
    };
}

/// Prometheus metrics. The `metrics` facade records into one process-wide
/// recorder (that is how the facade works); it is installed once, and every
/// server in the process renders from it.
pub mod metrics {
    use std::sync::OnceLock;

    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

    pub const EXECUTIONS_FINISHED: &str = "claude_graphql_executions_finished_total";
    pub const EXECUTIONS_STARTED: &str = "claude_graphql_executions_started_total";
    pub const EXECUTIONS_PENDING: &str = "claude_graphql_executions_pending";
    pub const EXECUTIONS_RUNNING: &str = "claude_graphql_executions_running";
    pub const MESSAGES_STORED: &str = "claude_graphql_messages_stored_total";
    pub const STORE_BATCH_SECONDS: &str = "claude_graphql_store_batch_seconds";
    pub const SUBSCRIPTIONS_LIVE: &str = "claude_graphql_subscriptions_live";
    pub const WS_CONNECTIONS: &str = "claude_graphql_websocket_connections";
    pub const HTTP_REQUEST_SECONDS: &str = "claude_graphql_http_request_seconds";

    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

    /// Installs the recorder (first call) and returns the render handle.
    pub fn install() -> PrometheusHandle {
        HANDLE
            .get_or_init(|| {
                let recorder = PrometheusBuilder::new()
                    .set_buckets(&[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ])
                    .expect("static buckets are valid")
                    .build_recorder();
                let handle = recorder.handle();
                // Another recorder installed by an embedding program wins.
                let _ = metrics::set_global_recorder(recorder);
                handle
            })
            .clone()
    }

    /// Moves a gauge up now and back down when dropped.
    pub struct GaugeGuard(&'static str);

    impl GaugeGuard {
        pub fn new(name: &'static str) -> Self {
            metrics::gauge!(name).increment(1.0);
            GaugeGuard(name)
        }
    }

    impl Drop for GaugeGuard {
        fn drop(&mut self) {
            metrics::gauge!(self.0).decrement(1.0);
        }
    }
}
