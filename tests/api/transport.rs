//! The edges: schema drift, legacy graphql-ws, GraphiQL, health, GET.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue, Message};

use crate::helpers::{spawn_app, EVENTS_SUBSCRIPTION};

#[test]
fn schema_graphql_matches_the_code() {
    let checked_in = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert!(
        checked_in == claude_graphql::graphql::sdl(),
        "schema.graphql is out of date: run `cargo run -- schema > schema.graphql`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_graphql_ws_protocol_streams_an_execution() {
    let app = spawn_app().await;
    let (workspace, _) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: messages=5" })).await;

    let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-ws"));
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "graphql-ws");
    let send = |v: Value| Message::text(v.to_string());
    socket.send(send(json!({ "type": "connection_init", "payload": {} }))).await.unwrap();
    socket
        .send(send(json!({ "id": "1", "type": "start", "payload": { "query": EVENTS_SUBSCRIPTION, "variables": { "id": execution, "after": 0 } } })))
        .await
        .unwrap();
    let mut seqs = Vec::new();
    let mut last_status = Value::Null;
    loop {
        let frame =
            tokio::time::timeout(std::time::Duration::from_secs(10), socket.next()).await.unwrap().unwrap().unwrap();
        let Message::Text(text) = frame else { continue };
        let frame: Value = serde_json::from_str(&text).unwrap();
        match frame["type"].as_str().unwrap() {
            "connection_ack" | "ka" => {}
            "data" => {
                let event = &frame["payload"]["data"]["executionEvents"];
                if let Some(seq) = event["seq"].as_i64() {
                    seqs.push(seq);
                }
                if event["__typename"] == "StatusEvent" {
                    last_status = event["status"].clone();
                }
            }
            "complete" => break,
            other => panic!("unexpected frame {other}: {frame}"),
        }
    }
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(seqs.len(), 10, "lifecycle x2, init, 5 messages, result, lifecycle");
    assert_eq!(last_status, "COMPLETED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_health_and_get_requests() {
    let app = spawn_app().await;
    let page = app.http.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("graphiql") || page.contains("GraphiQL"));
    assert!(page.contains("/graphql/ws"), "GraphiQL subscribes over the ws endpoint");

    let health: Value = app.http.get(app.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");

    let response: Value = app
        .http
        .get(app.url("/graphql"))
        .query(&[("query", "{ workspaces { edges { cursor } } }")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["data"]["workspaces"]["edges"], json!([]));
}

/// The value of a Prometheus series (first match of `name` + labels).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_live_figures_during_a_run() {
    let app = spawn_app().await;
    let (workspace, _) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    app.wait_status(&execution, "RUNNING").await;
    let subscription = app.subscribe(&execution, 0).await.unwrap();
    let mut subscription = Box::pin(subscription);
    subscription.next().await.unwrap().unwrap();

    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    // Other tests share the process-wide recorder: at least ours is there.
    assert!(metric(&text, "claude_graphql_executions_running").unwrap() >= 1.0, "{text}");
    assert!(metric(&text, "claude_graphql_subscriptions_live").unwrap() >= 1.0);
    assert!(metric(&text, "claude_graphql_websocket_connections").unwrap() >= 1.0);
    assert!(metric(&text, "claude_graphql_messages_stored_total").unwrap() >= 1.0);
    assert!(text.contains("claude_graphql_store_batch_seconds_bucket"));
    assert!(
        text.contains("claude_graphql_http_request_seconds_bucket{route=\"/graphql\",method=\"POST\",status=\"200\""),
        "{text}"
    );
    app.ok("mutation($id: ID!) { cancelExecution(id: $id) { status } }", json!({ "id": execution })).await;
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metric(&text, "claude_graphql_executions_finished_total{status=\"CANCELLED\"}").unwrap() >= 1.0, "{text}");
}

/// Frames leave at once: the server's end of every connection has
/// TCP_NODELAY (without it, a small frame waits for the previous one's
/// delayed ACK, tens of milliseconds). The server runs in this process, so
/// its socket is found among this process's descriptors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_send_without_delay() {
    let app = spawn_app().await;
    let client = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let client_port = client.local_addr().unwrap().port();
    for _ in 0..200 {
        if let Some(nodelay) = server_end_nodelay(app.addr.port(), client_port) {
            assert!(nodelay, "the server's end of the connection has Nagle's algorithm on");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the server never accepted the connection");
}

/// TCP_NODELAY of the socket whose local port is `server_port` and whose
/// peer's port is `client_port`, if this process has one.
fn server_end_nodelay(server_port: u16, client_port: u16) -> Option<bool> {
    let port_of = |fd: i32, peer: bool| -> Option<u16> {
        // SAFETY: getsockname/getpeername write at most `len` bytes into
        // the zeroed address; on a descriptor that is not a socket they fail.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let at = &mut addr as *mut libc::sockaddr_in as *mut libc::sockaddr;
        let failed = unsafe {
            if peer {
                libc::getpeername(fd, at, &mut len)
            } else {
                libc::getsockname(fd, at, &mut len)
            }
        };
        (failed == 0 && addr.sin_family == libc::AF_INET as libc::sa_family_t).then(|| u16::from_be(addr.sin_port))
    };
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if port_of(fd, false) != Some(server_port) || port_of(fd, true) != Some(client_port) {
            continue;
        }
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes one c_int into `value`.
        let at = &mut value as *mut libc::c_int as *mut libc::c_void;
        if unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, at, &mut len) } == 0 {
            return Some(value != 0);
        }
    }
    None
}
