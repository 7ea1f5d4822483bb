//! Auth, tenancy and abuse limits, with two users against one server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use claude_graphql::{app::StartupError, App, Config};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue, Message};

use crate::helpers::{spawn_with, Db, TestApp, EVENTS_SUBSCRIPTION};

pub const SECRET: &str = crate::helpers::JWT_SECRET;

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub fn token(claims: Value) -> String {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

pub fn token_for(sub: &str) -> String {
    token(json!({ "sub": sub, "exp": now() + 3600, "aud": "claude-graphql" }))
}

pub async fn secured(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_with(Db::Sqlite, |c| {
        c.jwt_secret = Some(SECRET.to_owned().into());
        c.jwt_audience = Some("claude-graphql".into());
        tweak(c);
    })
    .await
    .unwrap()
}

/// A GraphQL request with `Authorization: Bearer <token>`.
pub async fn as_user(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    app.gql_as(Some(token), query, variables).await
}

pub fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no error in {response}"))
}

/// Alice's workspace, session and finished execution.
async fn alices_run(app: &TestApp, alice: &str) -> (String, String, String, std::path::PathBuf) {
    let dir = app.dir.path().join("alice-ws");
    std::fs::create_dir_all(&dir).unwrap();
    let created = as_user(
        app,
        alice,
        "mutation($p: String!) { createWorkspace(input: {name: \"a\", path: $p}) { id } }",
        json!({ "p": dir }),
    )
    .await;
    let workspace = created["data"]["createWorkspace"]["id"].as_str().unwrap().to_owned();
    let started = as_user(
        app,
        alice,
        "mutation($w: ID!) { startExecution(input: {workspaceId: $w, prompt: \"hi\"}) { execution { id } session { id } } }",
        json!({ "w": workspace }),
    )
    .await;
    let execution = started["data"]["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    let session = started["data"]["startExecution"]["session"]["id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        let e =
            as_user(app, alice, "query($id: ID!) { execution(id: $id) { status } }", json!({ "id": execution })).await;
        if e["data"]["execution"]["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (workspace, session, execution, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_sees_or_touches_another_users_things() {
    let app = secured(|_| {}).await;
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    let (workspace, session, execution, dir) = alices_run(&app, &alice).await;

    // Lookups: null, as for ids that do not exist.
    for (query, id) in [
        ("query($id: ID!) { workspace(id: $id) { id } }", &workspace),
        ("query($id: ID!) { session(id: $id) { id } }", &session),
        ("query($id: ID!) { execution(id: $id) { id } }", &execution),
    ] {
        let response = as_user(&app, &bob, query, json!({ "id": id })).await;
        assert!(response["data"].as_object().unwrap().values().all(Value::is_null), "{query}: {response}");
        let mine = as_user(&app, &alice, query, json!({ "id": id })).await;
        assert!(mine["data"].as_object().unwrap().values().all(|v| !v.is_null()), "{query}: {mine}");
    }
    let listed = as_user(&app, &bob, "{ workspaces { edges { node { id } } } }", json!({})).await;
    assert_eq!(listed["data"]["workspaces"]["edges"], json!([]));

    // Actions: NOT_FOUND, as for ids that do not exist.
    for (query, variables) in [
        ("query($id: ID!) { sessions(workspaceId: $id) { edges { cursor } } }", json!({ "id": workspace })),
        ("query($id: ID!) { sessionLogs(sessionId: $id) { seq } }", json!({ "id": session })),
        ("mutation($id: ID!) { cancelExecution(id: $id) { id } }", json!({ "id": execution })),
        ("mutation($id: ID!) { closeSession(id: $id) { id } }", json!({ "id": session })),
        (
            "mutation($id: ID!) { startExecution(input: {workspaceId: $id, prompt: \"x\"}) { execution { id } } }",
            json!({ "id": workspace }),
        ),
        ("mutation($id: ID!) { interruptExecution(id: $id) { id } }", json!({ "id": execution })),
        ("mutation($id: ID!) { sendMessage(executionId: $id, text: \"x\") { messageId } }", json!({ "id": execution })),
        ("query($id: ID!) { pendingPermissionRequests(executionId: $id) { id } }", json!({ "id": execution })),
    ] {
        assert_eq!(code(&as_user(&app, &bob, query, variables.clone()).await), "NOT_FOUND", "{query}");
    }
    // Bob's own workspace cannot continue Alice's session either.
    let bob_dir = app.dir.path().join("bob-ws");
    std::fs::create_dir_all(&bob_dir).unwrap();
    let created = as_user(
        &app,
        &bob,
        "mutation($p: String!) { createWorkspace(input: {name: \"b\", path: $p}) { id } }",
        json!({ "p": bob_dir }),
    )
    .await;
    let bobs = created["data"]["createWorkspace"]["id"].as_str().unwrap();
    let resumed = as_user(
        &app,
        &bob,
        "mutation($w: ID!, $s: ID!) { startExecution(input: {workspaceId: $w, sessionId: $s, prompt: \"x\"}) { execution { id } } }",
        json!({ "w": bobs, "s": session }),
    )
    .await;
    assert_eq!(code(&resumed), "NOT_FOUND");

    // Alice's directory, or one inside it or around it, is not Bob's to register.
    std::fs::create_dir_all(dir.join("inner")).unwrap();
    for path in [dir.clone(), dir.join("inner"), app.dir.path().to_path_buf()] {
        let response = as_user(
            &app,
            &bob,
            "mutation($p: String!) { createWorkspace(input: {name: \"b\", path: $p}) { id } }",
            json!({ "p": path }),
        )
        .await;
        assert_eq!(code(&response), "BAD_USER_INPUT", "{}", path.display());
        assert!(!response.to_string().contains("alice"), "it does not say whose it is");
    }

    // Subscriptions too.
    let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let send = |v: Value| Message::text(v.to_string());
    socket
        .send(send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {bob}") } })))
        .await
        .unwrap();
    socket.next().await.unwrap().unwrap();
    socket
        .send(send(json!({ "id": "1", "type": "subscribe", "payload": { "query": EVENTS_SUBSCRIPTION, "variables": { "id": execution, "after": 0 } } })))
        .await
        .unwrap();
    let Message::Text(text) = socket.next().await.unwrap().unwrap() else { panic!("a text frame") };
    assert!(text.contains("NOT_FOUND") && !text.contains("\"seq\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_unauthenticated() {
    let app = secured(|c| c.jwt_issuer = Some("us".into())).await;
    let query = "{ workspaces { edges { cursor } } }";
    let good = token(json!({ "sub": "alice", "exp": now() + 600, "aud": "claude-graphql", "iss": "us" }));
    assert!(as_user(&app, &good, query, json!({})).await.get("errors").is_none());

    let none_alg = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD
            .encode(json!({ "sub": "alice", "exp": now() + 600, "aud": "claude-graphql", "iss": "us" }).to_string())
    );
    let wrong_key = encode(
        &Header::default(),
        &json!({ "sub": "alice", "exp": now() + 600, "aud": "claude-graphql", "iss": "us" }),
        &EncodingKey::from_secret(b"another secret"),
    )
    .unwrap();
    for (what, bad) in [
        ("expired", token(json!({ "sub": "alice", "exp": now() - 600, "aud": "claude-graphql", "iss": "us" }))),
        (
            "not yet valid",
            token(
                json!({ "sub": "alice", "exp": now() + 600, "nbf": now() + 300, "aud": "claude-graphql", "iss": "us" }),
            ),
        ),
        ("another audience", token(json!({ "sub": "alice", "exp": now() + 600, "aud": "someone-else", "iss": "us" }))),
        (
            "another issuer",
            token(json!({ "sub": "alice", "exp": now() + 600, "aud": "claude-graphql", "iss": "them" })),
        ),
        ("no exp", token(json!({ "sub": "alice", "aud": "claude-graphql", "iss": "us" }))),
        ("alg none", none_alg),
        ("wrong signature", wrong_key),
        ("garbage", "not-a-token".into()),
    ] {
        assert_eq!(code(&as_user(&app, &bad, query, json!({})).await), "UNAUTHENTICATED", "{what}");
    }
    let anonymous: Value =
        app.http.post(app.url("/graphql")).json(&json!({ "query": query })).send().await.unwrap().json().await.unwrap();
    assert_eq!(code(&anonymous), "UNAUTHENTICATED");

    // What `claude-graphql token` mints is accepted.
    let minted = claude_graphql::http::auth::mint(&app.config, "carol", Duration::from_secs(60)).unwrap();
    assert!(as_user(&app, &minted, query, json!({})).await.get("errors").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_configurations_are_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::defaults();
    config.database_url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display()).into();
    config.jwt_secret = None;
    config.bind = "0.0.0.0:0".parse().unwrap();
    let refused = App::build(config.clone()).await.err().expect("a non-loopback bind without a secret is refused");
    assert!(matches!(refused, StartupError::UnsafeBind(_)), "{refused}");
    assert!(refused.to_string().contains("loopback"));

    config.jwt_secret = Some(SECRET.to_owned().into());
    config.workspace_roots = vec![];
    let refused = App::build(config).await.err().expect("a secret without workspace roots is refused");
    assert!(matches!(refused, StartupError::NoWorkspaceRoots));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_workspace_roots() {
    let app = secured(|c| c.workspace_roots = vec![c.workspace_roots[0].join("{sub}")]).await;
    for user in ["alice", "bob"] {
        std::fs::create_dir_all(app.dir.path().join(user).join("project")).unwrap();
    }
    let alice = token_for("alice");
    let create = "mutation($p: String!) { createWorkspace(input: {name: \"w\", path: $p}) { id } }";
    let own = as_user(&app, &alice, create, json!({ "p": app.dir.path().join("alice/project") })).await;
    assert!(own.get("errors").is_none(), "{own}");
    let other = as_user(&app, &alice, create, json!({ "p": app.dir.path().join("bob/project") })).await;
    assert_eq!(code(&other), "BAD_USER_INPUT");
    let traversal = as_user(&app, &alice, create, json!({ "p": app.dir.path().join("alice/../bob/project") })).await;
    assert_eq!(code(&traversal), "BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_limits_hold_just_over_and_not_just_under() {
    let app = secured(|c| {
        c.max_query_depth = 7;
        c.max_aliases = 3;
        c.max_body_bytes = 64 * 1024;
        c.max_starts_per_minute = 3;
        c.max_active_executions_per_user = 2;
        c.max_subscriptions_per_connection = 2;
        c.max_connections_per_user = 2;
    })
    .await;
    let alice = token_for("alice");

    // Depth: `workspaces.edges.node.sessions.edges.node.id` is 7 deep.
    let six = "{ workspaces { edges { node { sessions { edges { node { id } } } } } } }";
    assert!(as_user(&app, &alice, six, json!({})).await.get("errors").is_none());
    let seven = "{ workspaces { edges { node { sessions { edges { node { workspace { id } } } } } } } }";
    assert_eq!(code(&as_user(&app, &alice, seven, json!({})).await), "BAD_USER_INPUT");
    // Aliases.
    assert!(as_user(&app, &alice, "{ a: __typename b: __typename c: __typename }", json!({}))
        .await
        .get("errors")
        .is_none());
    let four = as_user(&app, &alice, "{ a: __typename b: __typename c: __typename d: __typename }", json!({})).await;
    assert_eq!(code(&four), "BAD_USER_INPUT");
    // Body size.
    let big = json!({ "query": format!("{{ __typename }} # {}", "x".repeat(70 * 1024)) });
    let response = app.http.post(app.url("/graphql")).bearer_auth(&alice).json(&big).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);

    // Starts: 2 may be active; the 3rd start in the minute is the last one allowed.
    let dir = app.dir.path().join("w");
    std::fs::create_dir_all(&dir).unwrap();
    let created = as_user(
        &app,
        &alice,
        "mutation($p: String!) { createWorkspace(input: {name: \"w\", path: $p}) { id } }",
        json!({ "p": dir }),
    )
    .await;
    let workspace = created["data"]["createWorkspace"]["id"].as_str().unwrap().to_owned();
    let start =
        "mutation($w: ID!) { startExecution(input: {workspaceId: $w, prompt: \"fake: hang\"}) { execution { id } } }";
    let mut running = Vec::new();
    for _ in 0..2 {
        let started = as_user(&app, &alice, start, json!({ "w": workspace })).await;
        running.push(started["data"]["startExecution"]["execution"]["id"].as_str().unwrap().to_owned());
    }
    let third = as_user(&app, &alice, start, json!({ "w": workspace })).await;
    assert_eq!(code(&third), "RATE_LIMITED", "two are active");
    assert!(third["errors"][0]["extensions"]["details"]["retryAfterMs"].as_u64().unwrap() > 0);
    as_user(&app, &alice, "mutation($id: ID!) { cancelExecution(id: $id) { id } }", json!({ "id": running[0] })).await;
    let fourth = as_user(&app, &alice, start, json!({ "w": workspace })).await;
    assert_eq!(code(&fourth), "RATE_LIMITED", "three starts a minute");
    let wait = fourth["errors"][0]["extensions"]["details"]["retryAfterMs"].as_u64().unwrap();
    assert!(wait > 1000 && wait <= 60_000, "{wait}");
    // Another user has a budget of their own.
    assert_eq!(code(&as_user(&app, &token_for("bob"), start, json!({ "w": workspace })).await), "NOT_FOUND");

    // WebSocket: connections per user, operations per connection.
    let connect = || async {
        let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        socket
            .send(Message::text(json!({ "type": "connection_init", "payload": { "token": alice } }).to_string()))
            .await
            .unwrap();
        let reply = socket.next().await.unwrap().unwrap();
        (socket, reply)
    };
    let (mut first, ack) = connect().await;
    assert!(ack.to_string().contains("connection_ack"));
    let (_second, ack) = connect().await;
    assert!(ack.to_string().contains("connection_ack"));
    let (_, refused) = connect().await;
    let Message::Close(Some(frame)) = refused else { panic!("closed: {refused:?}") };
    assert_eq!(u16::from(frame.code), 4429);

    for id in ["1", "2", "3"] {
        let subscribe = json!({ "id": id, "type": "subscribe", "payload": { "query": EVENTS_SUBSCRIPTION, "variables": { "id": running[1], "after": 0 } } });
        first.send(Message::text(subscribe.to_string())).await.unwrap();
    }
    loop {
        let Message::Text(text) = first.next().await.unwrap().unwrap() else { continue };
        let message: Value = serde_json::from_str(&text).unwrap();
        if message["id"] == "3" {
            assert_eq!(message["type"], "error", "{message}");
            assert_eq!(message["payload"][0]["extensions"]["code"], "RATE_LIMITED");
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_grantable_tools_may_be_pre_approved() {
    let app = secured(|c| c.grantable_tools = vec!["Read".into(), "Grep".into()]).await;
    let alice = token_for("alice");
    let dir = app.dir.path().join("w");
    std::fs::create_dir_all(&dir).unwrap();
    let created = as_user(
        &app,
        &alice,
        "mutation($p: String!) { createWorkspace(input: {name: \"w\", path: $p}) { id } }",
        json!({ "p": dir }),
    )
    .await;
    let workspace = created["data"]["createWorkspace"]["id"].as_str().unwrap().to_owned();
    let start = "mutation($w: ID!, $t: [String!]) { startExecution(input: {workspaceId: $w, prompt: \"hi\", allowedTools: $t}) { execution { id } } }";
    let refused = as_user(&app, &alice, start, json!({ "w": workspace, "t": ["Read", "Bash(rm:*)"] })).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT");
    assert_eq!(refused["errors"][0]["extensions"]["details"]["field"], "allowedTools");
    let allowed = as_user(&app, &alice, start, json!({ "w": workspace, "t": ["Read", "Grep"] })).await;
    assert!(allowed.get("errors").is_none(), "{allowed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_requests_are_the_owners_alone() {
    let app = secured(|_| {}).await;
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    let dir = app.dir.path().join("alice-asks");
    std::fs::create_dir_all(&dir).unwrap();
    let created = as_user(
        &app,
        &alice,
        "mutation($p: String!) { createWorkspace(input: {name: \"a\", path: $p, requireApproval: true}) { id } }",
        json!({ "p": dir }),
    )
    .await;
    let workspace = created["data"]["createWorkspace"]["id"].as_str().unwrap().to_owned();
    let started = as_user(&app, &alice, "mutation($w: ID!) { startExecution(input: {workspaceId: $w, prompt: \"fake: ask=Bash\"}) { execution { id } } }", json!({ "w": workspace })).await;
    let execution = started["data"]["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    let pending = "query($e: ID!) { pendingPermissionRequests(executionId: $e) { id } }";
    let request = loop {
        let found = as_user(&app, &alice, pending, json!({ "e": execution })).await;
        if let Some(id) = found["data"]["pendingPermissionRequests"][0]["id"].as_str() {
            break id.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let answer = "mutation($id: ID!) { answerPermissionRequest(id: $id, decision: ALLOW) { status } }";
    assert_eq!(code(&as_user(&app, &bob, answer, json!({ "id": request })).await), "NOT_FOUND");
    let mine = as_user(&app, &alice, answer, json!({ "id": request })).await;
    assert_eq!(mine["data"]["answerPermissionRequest"]["status"], "ALLOWED", "{mine}");
}
