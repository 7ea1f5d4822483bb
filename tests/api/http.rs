//! GraphQL over HTTP as its specification says: media types, methods,
//! status codes; and the CSRF cases that must never start a run.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_http_audit_suite_passes() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http-audit");
    if !std::path::Path::new(dir).join("node_modules/graphql-http").is_dir() {
        eprintln!("skipped: run `npm ci --prefix tests/http-audit` (needs node) to run the graphql-http audit");
        return;
    }
    let app = spawn_app().await;
    let output = tokio::process::Command::new("node")
        .arg("audit.mjs")
        .arg(app.url("/graphql"))
        .current_dir(dir)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let problems: Vec<&str> =
        stdout.lines().filter(|l| l.contains("\"status\":\"warn\"") || l.contains("\"status\":\"error\"")).collect();
    assert!(
        output.status.success() && problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" 0 warnings, 0 errors"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_types_follow_accept() {
    let app = spawn_app().await;
    let query = json!({ "query": "{ __typename }" });
    for (accept, status, content_type) in [
        (None, 200, Some("application/json")),
        (Some("application/json"), 200, Some("application/json")),
        (Some("*/*"), 200, Some("application/json")),
        (Some("application/graphql-response+json"), 200, Some("application/graphql-response+json")),
        (
            Some("application/json;q=0.5, application/graphql-response+json"),
            200,
            Some("application/graphql-response+json"),
        ),
        (Some("text/html"), 406, None),
    ] {
        let mut request = app.http.post(app.url("/graphql")).json(&query);
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{accept:?}");
        if let Some(content_type) = content_type {
            assert!(response.headers()["content-type"].to_str().unwrap().starts_with(content_type), "{accept:?}");
        }
    }

    // A request error: 400 and no data under the GraphQL media type, 200
    // with errors under application/json.
    for (accept, status) in [("application/graphql-response+json", 400), ("application/json", 200)] {
        let response = app
            .http
            .post(app.url("/graphql"))
            .header("accept", accept)
            .json(&json!({ "query": "{ nope" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{accept}");
        let body: Value = response.json().await.unwrap();
        assert!(body.get("data").is_none(), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    }
    // Parameters of the wrong type are 400 in either case.
    for body in [
        json!({ "query": 5 }),
        json!({ "query": "{ __typename }", "variables": [] }),
        json!([{ "query": "{ __typename }" }]),
        json!({}),
    ] {
        let response = app.http.post(app.url("/graphql")).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_requests_never_start_a_run() {
    let app = spawn_app().await;
    let (workspace, dir) = app.workspace().await;
    let mutation = format!("mutation {{ startExecution(input: {{workspaceId: \"{workspace}\", prompt: \"pwned\"}}) {{ execution {{ id }} }} }}");

    // A form post (what a hostile page can send without CORS).
    let form = app.http.post(app.url("/graphql")).form(&[("query", mutation.as_str())]).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let plain = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "text/plain")
        .body(json!({ "query": mutation }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // An image or link GET.
    let get = app.http.get(app.url("/graphql")).query(&[("query", mutation.as_str())]).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.headers()["allow"], "POST");
    let body: Value = get.json().await.unwrap();
    assert!(body.get("data").is_none());

    assert!(app.fake_log(&dir).is_empty(), "claude was never started");
    let sessions =
        app.ok("query($w: ID!) { sessions(workspaceId: $w) { edges { cursor } } }", json!({ "w": workspace })).await;
    assert_eq!(sessions["sessions"]["edges"], json!([]));

    // Queries over GET are fine.
    let get = app.http.get(app.url("/graphql")).query(&[("query", "{ __typename }")]).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_persisted_queries() {
    use sha2::{Digest, Sha256};
    let app = spawn_app().await;
    let query = "{ workspaces { edges { cursor } } }";
    let hash = format!("{:x}", Sha256::digest(query.as_bytes()));
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });

    // Unknown hash: the client is told to send the query.
    let miss: Value = app
        .http
        .post(app.url("/graphql"))
        .json(&json!({ "extensions": extensions }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(miss["errors"][0]["message"], "PersistedQueryNotFound", "{miss}");
    // Query and hash: run and remembered.
    let full: Value = app
        .http
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "extensions": extensions }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(full["data"]["workspaces"]["edges"], json!([]));
    // Hash alone now works, also over GET.
    let hit: Value = app
        .http
        .get(app.url("/graphql"))
        .query(&[("extensions", extensions.to_string())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hit["data"]["workspaces"]["edges"], json!([]), "{hit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_refuses_foreign_hosts_and_origins() {
    let app = spawn_app().await;
    let query = json!({ "query": "{ __typename }" });
    let ok = app
        .http
        .post(app.url("/graphql"))
        .header("origin", format!("http://{}", app.addr))
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let localhost =
        app.http.post(app.url("/graphql")).header("origin", "http://localhost:3000").json(&query).send().await.unwrap();
    assert_eq!(localhost.status(), StatusCode::OK, "a local front-end may call it");
    // A page of another site, and DNS rebinding.
    let foreign =
        app.http.post(app.url("/graphql")).header("origin", "https://evil.example").json(&query).send().await.unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let rebound = app.http.post(app.url("/graphql")).header("host", "evil.example").json(&query).send().await.unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);

    // The WebSocket upgrade too (WebSockets have no CORS).
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};
    let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    request.headers_mut().insert("Origin", HeaderValue::from_static("https://evil.example"));
    let refused = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(refused.to_string().contains("403"), "{refused}");
}
