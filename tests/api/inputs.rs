//! Bad inputs: a clear error with the right code, and nothing written.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {response}"))
}

async fn start_error(app: &TestApp, input: Value) -> Value {
    app.gql(
        "mutation($i: StartExecutionInput!) { startExecution(input: $i) { execution { id } } }",
        json!({ "i": input }),
    )
    .await
}

async fn counts(app: &TestApp) -> (usize, usize) {
    let data = app
        .ok(
            "{ workspaces(first: 10) { edges { node { id sessions(first: 50) { edges { node { id } } } } } } }",
            json!({}),
        )
        .await;
    let workspaces = data["workspaces"]["edges"].as_array().unwrap();
    let sessions = workspaces.iter().map(|w| w["node"]["sessions"]["edges"].as_array().unwrap().len()).sum();
    (workspaces.len(), sessions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_start_inputs_are_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let (workspace, _) = app.workspace().await;
    let before = counts(&app).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let cases = [
        (json!({ "workspaceId": "nope", "prompt": "hi" }), "BAD_USER_INPUT", Some("workspaceId")),
        (json!({ "workspaceId": unknown, "prompt": "hi" }), "NOT_FOUND", None),
        (json!({ "workspaceId": workspace, "prompt": "   " }), "BAD_USER_INPUT", Some("prompt")),
        (json!({ "workspaceId": workspace, "prompt": "hi", "maxTurns": -1 }), "BAD_USER_INPUT", Some("maxTurns")),
        (json!({ "workspaceId": workspace, "prompt": "hi", "maxTurns": 0 }), "BAD_USER_INPUT", Some("maxTurns")),
        (json!({ "workspaceId": workspace, "prompt": "hi", "sessionId": "x" }), "BAD_USER_INPUT", Some("sessionId")),
        (json!({ "workspaceId": workspace, "prompt": "hi", "sessionId": unknown }), "NOT_FOUND", None),
        (
            json!({ "workspaceId": workspace, "prompt": "hi", "permissionMode": "bypassPermissions" }),
            "BAD_USER_INPUT",
            Some("permissionMode"),
        ),
        (
            json!({ "workspaceId": workspace, "prompt": "hi", "allowedTools": ["Bash,Write"] }),
            "BAD_USER_INPUT",
            Some("allowedTools"),
        ),
        (json!({ "workspaceId": workspace, "prompt": "hi", "model": "a b" }), "BAD_USER_INPUT", Some("model")),
        (
            json!({ "workspaceId": workspace, "prompt": "hi", "maxBudgetUsd": 0 }),
            "BAD_USER_INPUT",
            Some("maxBudgetUsd"),
        ),
        (
            json!({ "workspaceId": workspace, "prompt": "hi", "metadata": { "x": "y".repeat(70_000) } }),
            "BAD_USER_INPUT",
            Some("metadata"),
        ),
        (json!({ "workspaceId": workspace }), "BAD_USER_INPUT", None),
        (json!({ "workspaceId": workspace, "prompt": 5 }), "BAD_USER_INPUT", None),
    ];
    for (input, expected, field) in cases {
        let response = start_error(&app, input.clone()).await;
        assert_eq!(code(&response), expected, "{input}: {response}");
        if let Some(field) = field {
            assert_eq!(response["errors"][0]["extensions"]["details"]["field"], field, "{response}");
        }
        assert!(response["data"].is_null() || response["data"]["startExecution"].is_null());
    }
    assert_eq!(counts(&app).await, before, "nothing was written");

    // Good options reach claude as flags.
    let ok = start_error(&app, json!({ "workspaceId": workspace, "prompt": "hi", "allowedTools": ["Bash(git log:*)", "Read"], "permissionMode": "acceptEdits", "metadata": { "ticket": 7 } })).await;
    assert!(ok.get("errors").is_none(), "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_workspaces_and_lookups_are_refused() {
    let app = spawn_app().await;
    let file = app.dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let outside = tempfile::tempdir().unwrap();
    let escape = app.dir.path().join("escape");
    std::os::unix::fs::symlink(outside.path(), &escape).unwrap();
    for (path, why) in [
        (app.dir.path().join("missing").display().to_string(), "does not exist"),
        (file.display().to_string(), "not a directory"),
        ("relative/dir".to_owned(), "absolute"),
        ("".to_owned(), "empty"),
        (outside.path().display().to_string(), "workspace root"),
        (escape.display().to_string(), "workspace root"),
        (format!("{}/..", app.dir.path().display()), "workspace root"),
    ] {
        let response = app
            .gql(
                "mutation($p: String!) { createWorkspace(input: {name: \"w\", path: $p}) { id } }",
                json!({ "p": path }),
            )
            .await;
        assert_eq!(code(&response), "BAD_USER_INPUT", "{path}: {response}");
        assert!(response["errors"][0]["message"].as_str().unwrap().contains(why), "{path}: {response}");
        assert_eq!(response["errors"][0]["extensions"]["details"]["field"], "path");
    }
    // Outside the roots, nothing is said about what exists there.
    for probe in ["/etc/passwd", "/nonexistent/dir", "/etc"] {
        let response = app
            .gql(
                "mutation($p: String!) { createWorkspace(input: {name: \"w\", path: $p}) { id } }",
                json!({ "p": probe }),
            )
            .await;
        assert_eq!(
            response["errors"][0]["message"], "`path` is not an existing directory under an allowed workspace root",
            "{probe}"
        );
    }
    let response =
        app.gql("mutation { createWorkspace(input: {name: \"  \", path: \"/tmp\"}) { id } }", json!({})).await;
    assert_eq!(code(&response), "BAD_USER_INPUT");
    assert_eq!(counts(&app).await, (0, 0), "nothing was written");

    let unknown = uuid::Uuid::now_v7().to_string();
    for query in [
        "query($id: ID!) { workspace(id: $id) { id } }",
        "query($id: ID!) { session(id: $id) { id } }",
        "query($id: ID!) { execution(id: $id) { id } }",
    ] {
        let data = app.ok(query, json!({ "id": unknown })).await;
        assert!(data.as_object().unwrap().values().all(Value::is_null), "unknown id gives null: {data}");
        let response = app.gql(query, json!({ "id": "not-a-uuid" })).await;
        assert_eq!(code(&response), "BAD_USER_INPUT", "{query}");
    }
    for (query, expected) in [
        ("mutation($id: ID!) { cancelExecution(id: $id) { id } }", "NOT_FOUND"),
        ("mutation($id: ID!) { closeSession(id: $id) { id } }", "NOT_FOUND"),
        ("query($id: ID!) { sessionLogs(sessionId: $id) { seq } }", "NOT_FOUND"),
        ("query($id: ID!) { sessions(workspaceId: $id) { edges { cursor } } }", "NOT_FOUND"),
    ] {
        assert_eq!(code(&app.gql(query, json!({ "id": unknown })).await), expected, "{query}");
        assert_eq!(code(&app.gql(query, json!({ "id": "bad" })).await), "BAD_USER_INPUT", "{query}");
    }
    let subscription = app.subscribe(&unknown, 0).await;
    let first = futures_util::StreamExt::next(&mut Box::pin(subscription.unwrap())).await.unwrap();
    assert!(first.unwrap_err().to_string().contains("NOT_FOUND"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_sizes_are_limited_and_cursors_work() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.workspace().await;
    }
    for (query, field) in [
        ("{ workspaces(first: 101) { edges { cursor } } }", "first"),
        ("{ workspaces(first: -1) { edges { cursor } } }", "first"),
        ("{ workspaces(after: \"garbage!\") { edges { cursor } } }", "after"),
    ] {
        let response = app.gql(query, json!({})).await;
        assert_eq!(code(&response), "BAD_USER_INPUT", "{query}");
        assert_eq!(response["errors"][0]["extensions"]["details"]["field"], field);
    }
    let (workspace, _) = app.workspace().await;
    let (_, session) = app.start(json!({ "workspaceId": workspace, "prompt": "hi" })).await;
    for limit in [0, 1001] {
        let response = app
            .gql(
                "query($s: ID!, $l: Int!) { sessionLogs(sessionId: $s, limit: $l) { seq } }",
                json!({ "s": session, "l": limit }),
            )
            .await;
        assert_eq!(code(&response), "BAD_USER_INPUT");
    }

    // Newest first, two at a time, no repeats.
    let page1 = app
        .ok("{ workspaces(first: 2) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }", json!({}))
        .await;
    assert_eq!(page1["workspaces"]["edges"][0]["node"]["id"], workspace.as_str());
    assert_eq!(page1["workspaces"]["pageInfo"]["hasNextPage"], true);
    let after = page1["workspaces"]["pageInfo"]["endCursor"].clone();
    let page2 = app
        .ok(
            "query($a: String) { workspaces(first: 2, after: $a) { edges { node { id } } pageInfo { hasNextPage } } }",
            json!({ "a": after }),
        )
        .await;
    assert_eq!(page2["workspaces"]["edges"].as_array().unwrap().len(), 2);
    assert_eq!(page2["workspaces"]["pageInfo"]["hasNextPage"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_has_code_trace_id_and_timestamp() {
    let app = spawn_app().await;
    let cases = [
        json!({ "query": "{ nope }" }),
        json!({ "query": "{{{" }),
        json!({ "query": "query($id: ID!) { execution(id: $id) { id } }", "variables": { "id": "bad" } }),
    ];
    for body in cases {
        let response =
            app.http.post(app.url("/graphql")).header("x-request-id", "trace-123").json(&body).send().await.unwrap();
        assert_eq!(response.headers()["x-request-id"], "trace-123");
        let body: Value = response.json().await.unwrap();
        let extensions = &body["errors"][0]["extensions"];
        assert_eq!(extensions["code"], "BAD_USER_INPUT", "{body}");
        assert_eq!(extensions["traceId"], "trace-123");
        assert!(chrono::DateTime::parse_from_rfc3339(extensions["timestamp"].as_str().unwrap()).is_ok());
    }
    // Without one, the server makes one and returns it.
    let response = app.http.post(app.url("/graphql")).json(&json!({ "query": "{ nope }" })).send().await.unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["traceId"], id.as_str());
    assert!(!id.is_empty());
}
