//! Idempotent starts: a retried `startExecution` with the same key returns
//! the execution the first one made, and starts nothing.

use serde_json::{json, Value};

use crate::{
    auth::{as_user, code, secured, token_for},
    helpers::{spawn_with, Db, TestApp},
    on_every_db,
};

const START: &str = "mutation($input: StartExecutionInput!) {
    startExecution(input: $input) { replayed execution { id prompt } session { id } } }";

on_every_db!(a_retry_returns_the_first_start, racing_starts_with_one_key_make_one_run, bad_keys_are_refused);

/// How many times the stand-in `claude` was started in `dir`.
fn claude_starts(app: &TestApp, dir: &std::path::Path) -> usize {
    app.fake_log(dir).iter().filter(|e| e["event"] == "start").count()
}

async fn start_with_key(app: &TestApp, input: Value) -> Value {
    app.gql(START, json!({ "input": input })).await
}

async fn a_retry_returns_the_first_start(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let input = json!({ "workspaceId": workspace, "prompt": "Say hello", "metadata": {"a": 1, "b": 2},
        "idempotencyKey": "7f0c2a52-retry" });
    let first = start_with_key(&app, input.clone()).await;
    let first = &first["data"]["startExecution"];
    assert_eq!(first["replayed"], false);
    let execution = first["execution"]["id"].as_str().unwrap().to_owned();
    app.wait_finished(&execution).await;

    // The same start again (metadata's keys in another order): the same
    // execution and session, and no second run.
    let mut again = input.clone();
    again["metadata"] = json!({"b": 2, "a": 1});
    let second = start_with_key(&app, again).await;
    let second = &second["data"]["startExecution"];
    assert_eq!(second["replayed"], true, "{second}");
    assert_eq!(second["execution"]["id"], execution.as_str());
    assert_eq!(second["session"]["id"], first["session"]["id"]);
    assert_eq!(claude_starts(&app, &dir), 1);

    // The same key with another prompt is refused, and starts nothing.
    let mut other = input.clone();
    other["prompt"] = json!("Say goodbye");
    let refused = start_with_key(&app, other).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    assert_eq!(refused["errors"][0]["extensions"]["details"]["field"], "idempotencyKey");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("other input"), "{refused}");

    // The header is the same key.
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("Idempotency-Key", "7f0c2a52-retry")
        .json(&json!({ "query": START, "variables": { "input": { "workspaceId": workspace, "prompt": "Say hello",
            "metadata": {"a": 1, "b": 2} } } }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(response["data"]["startExecution"]["execution"]["id"], execution.as_str(), "{response}");
    assert_eq!(response["data"]["startExecution"]["replayed"], true);
    assert_eq!(claude_starts(&app, &dir), 1);

    // Another key is another start; no key is always a new start.
    let mut fresh = input.clone();
    fresh["idempotencyKey"] = json!("another");
    let third = start_with_key(&app, fresh).await;
    assert_ne!(third["data"]["startExecution"]["execution"]["id"], execution.as_str());
    app.wait_finished(third["data"]["startExecution"]["execution"]["id"].as_str().unwrap()).await;

    // A start that failed records no key: its retry is a new attempt.
    let (busy, session) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    let follow_up = json!({ "workspaceId": workspace, "sessionId": session, "prompt": "next", "idempotencyKey": "k2",
        "ifBusy": "REJECT" });
    let refused = start_with_key(&app, follow_up.clone()).await;
    assert_eq!(code(&refused), "SESSION_BUSY", "{refused}");
    app.ok("mutation($id: ID!) { cancelExecution(id: $id) { status } }", json!({ "id": busy })).await;
    app.wait_finished(&busy).await;
    let retried = start_with_key(&app, follow_up.clone()).await;
    assert_eq!(retried["data"]["startExecution"]["replayed"], false, "{retried}");
    let queued = retried["data"]["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    app.wait_finished(&queued).await;

    // Deleting the session forgets its keys.
    app.ok("mutation($id: ID!) { deleteSession(id: $id) { deletedId } }", json!({ "id": session })).await;
    let after_delete = start_with_key(&app, follow_up).await;
    assert_eq!(code(&after_delete), "NOT_FOUND", "the session is gone, not replayed: {after_delete}");
}

async fn racing_starts_with_one_key_make_one_run(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    for round in 0..5 {
        let input =
            json!({ "workspaceId": workspace, "prompt": "Say hello", "idempotencyKey": format!("race-{round}") });
        let responses = futures_util::future::join_all((0..4).map(|_| start_with_key(&app, input.clone()))).await;
        let ids: Vec<&str> =
            responses.iter().map(|r| r["data"]["startExecution"]["execution"]["id"].as_str().unwrap()).collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{responses:?}");
        let fresh = responses.iter().filter(|r| r["data"]["startExecution"]["replayed"] == false).count();
        assert_eq!(fresh, 1, "{responses:?}");
        app.wait_finished(ids[0]).await;
    }
    assert_eq!(claude_starts(&app, &dir), 5);
}

async fn bad_keys_are_refused(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let long = "k".repeat(256);
    for key in ["", long.as_str(), "tab\there", "newline\n", "ünïcode"] {
        let input = json!({ "workspaceId": workspace, "prompt": "Say hello", "idempotencyKey": key });
        let refused = start_with_key(&app, input).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{key:?}: {refused}");
        assert_eq!(refused["errors"][0]["extensions"]["details"]["field"], "idempotencyKey");
    }
    // The header and the input must agree.
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("Idempotency-Key", "one")
        .json(&json!({ "query": START, "variables": { "input": { "workspaceId": workspace, "prompt": "x",
            "idempotencyKey": "two" } } }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(code(&response), "BAD_USER_INPUT", "{response}");
    // A header that is not UTF-8 is not a key.
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("Idempotency-Key", reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap())
        .json(&json!({ "query": START, "variables": { "input": { "workspaceId": workspace, "prompt": "x" } } }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(code(&response), "BAD_USER_INPUT", "{response}");
    assert_eq!(claude_starts(&app, &dir), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_per_user_and_expire() {
    let app = secured(|c| c.idempotency_key_ttl = std::time::Duration::from_secs(2)).await;
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    let mut workspaces = Vec::new();
    for (user, name) in [(&alice, "a"), (&bob, "b")] {
        workspaces.push(app.workspace_of(user, name).await.0);
    }
    let start = |user: &String, workspace: &str, prompt: &str| {
        let input = json!({ "workspaceId": workspace, "prompt": prompt, "idempotencyKey": "shared-key" });
        let (app, user) = (&app, user.clone());
        async move { as_user(app, &user, START, json!({ "input": input })).await }
    };
    // One key, two users: two starts, neither sees the other's.
    let a = start(&alice, &workspaces[0], "alice's").await;
    let b = start(&bob, &workspaces[1], "bob's").await;
    assert_eq!(a["data"]["startExecution"]["replayed"], false, "{a}");
    assert_eq!(b["data"]["startExecution"]["replayed"], false, "{b}");
    assert_eq!(b["data"]["startExecution"]["execution"]["prompt"], "bob's");

    // Once the key has expired, it starts anew (with any input).
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let again = start(&alice, &workspaces[0], "alice's second").await;
    assert_eq!(again["data"]["startExecution"]["replayed"], false, "{again}");
    assert_ne!(again["data"]["startExecution"]["execution"]["id"], a["data"]["startExecution"]["execution"]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_starts_on_two_replicas_make_one_run() {
    let Some(a) = spawn_with(Db::Postgres, |c| c.replica_id = Some("replica-a".into())).await else { return };
    let b = a.replica("replica-b").await;
    let (workspace, dir) = a.workspace().await;
    for round in 0..5 {
        let input = json!({ "workspaceId": workspace, "prompt": "Say hello", "idempotencyKey": format!("k{round}") });
        let (on_a, on_b) = tokio::join!(start_with_key(&a, input.clone()), start_with_key(&b, input.clone()));
        let id = |r: &Value| r["data"]["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
        assert_eq!(id(&on_a), id(&on_b), "{on_a} {on_b}");
        a.wait_finished(&id(&on_a)).await;
    }
    assert_eq!(claude_starts(&a, &dir), 5);
}
