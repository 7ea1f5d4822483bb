//! `GET /healthz` (liveness): the server is up and its database answers.
//! `GET /readyz` (readiness): the store takes writes (this server's lease
//! is renewed: a real write), so runs can be recorded, and `claude` is an
//! executable file.

use axum::{extract::State, http::StatusCode, Json};
use serde_json::{json, Value};

use crate::state::AppState;

pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.db.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({
                "status": "ok",
                "liveExecutions": state.executor.live_runs(),
            })),
        ),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "database unavailable" }))),
    }
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let health = state.broker.store_health();
    let writable = state.executor.renew_lease(state.config.replica_lease).await.is_ok();
    // A small write may get through where a run's batch does not (a disk
    // that is nearly full): a recent failure counts until a batch is
    // stored again, or the probe has kept succeeding for a while.
    match health.failing_for() {
        Some(failing) if writable && failing > STILL_FAILING => health.succeeded(),
        Some(failing) => {
            let body =
                json!({ "status": "unavailable", "store": "failing", "failingForMs": failing.as_millis() as u64 });
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
        }
        None => {}
    }
    let claude = crate::claude::command::resolve_bin(&state.config.claude_bin).is_some();
    if !claude {
        let body = json!({ "status": "unavailable", "store": if writable { "ok" } else { "not writable" },
                           "claude": format!("{} is not an executable file", state.config.claude_bin.display()) });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    if writable {
        (StatusCode::OK, Json(json!({ "status": "ready", "store": "ok", "claude": "ok" })))
    } else {
        health.failed();
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "store": "not writable" })))
    }
}

/// How long a store failure keeps the server unready when nothing proves
/// the store writable again.
const STILL_FAILING: std::time::Duration = std::time::Duration::from_secs(30);
