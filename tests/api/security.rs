//! The server tried as an attacker would: what a client may grant, what a
//! hostile `claude` can reach, tokens, paths, and inputs no store takes.

use std::{os::unix::fs::PermissionsExt, path::Path, time::Duration};

use claude_graphql::{app::StartupError, App, Config};
use serde_json::{json, Value};

use crate::{
    auth::{as_user, code, now, secured, token, token_for, SECRET},
    helpers::{spawn_with, Db, ServerProcess, TestApp, EVENTS_SUBSCRIPTION},
    on_every_db,
    ws::{closed, connect, send},
};

const CREATE: &str = "mutation($p: String!, $a: Boolean) { createWorkspace(input: {name: \"w\", path: $p, requireApproval: $a}) { id } }";
const START: &str = "mutation($input: StartExecutionInput!) { startExecution(input: $input) { execution { id } } }";

/// A workspace of `user` on a new directory `name` under the app's root.
async fn workspace_of(app: &TestApp, user: &str, name: &str, approval: bool) -> (String, std::path::PathBuf) {
    let dir = app.dir.path().join(name);
    std::fs::create_dir_all(dir.join(".fake-claude")).unwrap();
    let created = as_user(app, user, CREATE, json!({ "p": dir, "a": approval })).await;
    let id = created["data"]["createWorkspace"]["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
    (id, dir)
}

/// POSTs a raw GraphQL-over-HTTP body; returns the answer.
async fn post(app: &TestApp, body: Value) -> Value {
    app.http.post(app.url("/graphql")).json(&body).send().await.unwrap().json().await.unwrap()
}

fn message(response: &Value) -> &str {
    response["errors"][0]["message"].as_str().unwrap_or_else(|| panic!("no error in {response}"))
}

async fn wait_finished_as(app: &TestApp, user: &str, execution: &str) -> Value {
    for _ in 0..400 {
        let e = as_user(
            app,
            user,
            "query($id: ID!) { execution(id: $id) { status error { code message } } }",
            json!({ "id": execution }),
        )
        .await;
        if ["COMPLETED", "FAILED", "CANCELLED"].contains(&e["data"]["execution"]["status"].as_str().unwrap_or("")) {
            return e["data"]["execution"].clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{execution} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_rules_the_cli_would_read_as_several_are_refused() {
    let app = secured(|c| c.grantable_tools = vec!["Read".into()]).await;
    let alice = token_for("alice");
    let (workspace, dir) = workspace_of(&app, &alice, "rules", false).await;
    for smuggled in [
        "Read(x) Bash(cat:*)",
        "Read(x)\tBash(cat:*)",
        "Read(x)\nBash(cat:*)",
        "Read(x),Bash",
        "Read Bash",
        "Read(a (b) Bash)",
        "Read(x)Bash",
        " Bash",
        "Read(x\u{0})",
    ] {
        let input = json!({ "workspaceId": workspace, "prompt": "hi", "allowedTools": [smuggled] });
        let refused = as_user(&app, &alice, START, json!({ "input": input })).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{smuggled:?}: {refused}");
        assert_eq!(refused["errors"][0]["extensions"]["details"]["field"], "allowedTools");
    }
    assert!(app.fake_log(&dir).is_empty(), "claude never ran");
    // One rule with a space inside its parentheses is one rule.
    let input = json!({ "workspaceId": workspace, "prompt": "hi", "allowedTools": ["Read(src/my file.txt)", "Read"] });
    let started = as_user(&app, &alice, START, json!({ "input": input })).await;
    let execution = started["data"]["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    assert_eq!(wait_finished_as(&app, &alice, &execution).await["status"], "COMPLETED");
    let argv = app.fake_log(&dir)[0]["argv"].clone();
    let at = argv.as_array().unwrap().iter().position(|a| a == "--allowedTools").unwrap();
    assert_eq!(argv[at + 1], "Read(src/my file.txt),Read");
}

/// Starts `fake: ask=Bash` with approvals and waits for its request id.
async fn asked(app: &TestApp, user: &str, workspace: &str) -> (String, String) {
    let started =
        as_user(app, user, START, json!({ "input": { "workspaceId": workspace, "prompt": "fake: ask=Bash" } })).await;
    let execution = started["data"]["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    let pending = "query($e: ID!) { pendingPermissionRequests(executionId: $e) { id } }";
    for _ in 0..400 {
        let found = as_user(app, user, pending, json!({ "e": execution })).await;
        if let Some(id) = found["data"]["pendingPermissionRequests"][0]["id"].as_str() {
            return (execution, id.to_owned());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no permission request");
}

const ANSWER: &str = "mutation($id: ID!, $d: PermissionDecision!, $input: JSON, $s: Int) {
    answerPermissionRequest(id: $id, decision: $d, updatedInput: $input, applySuggestion: $s) { status } }";

/// The `updatedPermissions` that reached claude's stdin, if any.
fn sent_permissions(app: &TestApp, dir: &Path) -> Option<Value> {
    app.fake_log(dir).iter().filter(|e| e["event"] == "stdin").find_map(|e| {
        let line: Value = serde_json::from_str(e["line"].as_str()?).ok()?;
        (line["type"] == "control_response").then(|| line["response"]["response"]["updatedPermissions"].clone())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_answers_grant_only_what_may_be_granted() {
    // Bash may not be granted: no ALLOW for it, with or without an input.
    let app = secured(|c| c.grantable_tools = vec!["Read".into()]).await;
    let alice = token_for("alice");
    let (workspace, _) = workspace_of(&app, &alice, "answers", true).await;
    let (execution, request) = asked(&app, &alice, &workspace).await;
    for variables in [
        json!({ "id": request, "d": "ALLOW" }),
        json!({ "id": request, "d": "ALLOW", "input": { "command": "cat /etc/shadow" } }),
        json!({ "id": request, "d": "ALLOW", "s": 0 }),
    ] {
        let refused = as_user(&app, &alice, ANSWER, variables.clone()).await;
        assert_eq!(code(&refused), "FORBIDDEN", "{variables}: {refused}");
    }
    let denied = as_user(&app, &alice, ANSWER, json!({ "id": request, "d": "DENY" })).await;
    assert_eq!(denied["data"]["answerPermissionRequest"]["status"], "DENIED", "{denied}");
    wait_finished_as(&app, &alice, &execution).await;

    // Bash may be granted: suggestions apply to this session only, and
    // never add a directory outside the workspace or switch to bypass.
    let app = secured(|c| c.grantable_tools = vec!["Read".into(), "Bash".into()]).await;
    let (workspace, dir) = workspace_of(&app, &alice, "answers2", true).await;
    let (execution, request) = asked(&app, &alice, &workspace).await;
    let not_an_object =
        as_user(&app, &alice, ANSWER, json!({ "id": request, "d": "ALLOW", "input": "rm -rf /" })).await;
    assert_eq!(code(&not_an_object), "BAD_USER_INPUT");
    let allowed = as_user(&app, &alice, ANSWER, json!({ "id": request, "d": "ALLOW", "s": 0 })).await;
    assert_eq!(allowed["data"]["answerPermissionRequest"]["status"], "ALLOWED", "{allowed}");
    wait_finished_as(&app, &alice, &execution).await;
    let sent = sent_permissions(&app, &dir).expect("the answer reached claude");
    assert_eq!(sent[0]["type"], "addRules");
    assert_eq!(sent[0]["destination"], "session", "the CLI suggested localSettings: {sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_claude_cannot_read_the_servers_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let alice = token_for("alice");
    let (id, workspace) = server.workspace(&alice, "w").await;
    let gql = |query: &'static str, variables: Value| server.gql(&alice, query, variables);
    let started = gql(START, json!({ "input": { "workspaceId": id, "prompt": "hi" } })).await;
    let execution = started["data"]["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    for _ in 0..400 {
        let e = gql("query($id: ID!) { execution(id: $id) { status } }", json!({ "id": execution })).await;
        if e["data"]["execution"]["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let log = std::fs::read_to_string(workspace.join(".fake-claude/log.jsonl")).unwrap();
    let start: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(start["env_secrets"], json!([]), "not in its own environment: {start}");
    // Running as root it may read the file, but finds no secret in it.
    assert_eq!(start["parent_environ"]["secrets"].as_array().map_or(0, Vec::len), 0, "{start}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_files_and_must_be_long_enough() {
    let dir = tempfile::tempdir().unwrap();
    let base = || {
        let mut config = Config::defaults();
        config.bind = "127.0.0.1:0".parse().unwrap();
        config.database_url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display()).into();
        config.workspace_roots = vec![dir.path().to_path_buf()];
        config
    };
    for weak in ["", "short", &"x".repeat(31)] {
        let mut config = base();
        config.jwt_secret = Some(weak.to_owned().into());
        let refused = App::build(config).await.err().expect("a weak secret is refused");
        assert!(matches!(refused, StartupError::WeakSecret(_)), "{refused}");
        assert!(refused.to_string().contains("at least 32"), "{refused}");
    }
    // From files: the secret and the database URL.
    let secret_file = dir.path().join("jwt");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let url_file = dir.path().join("db-url");
    std::fs::write(&url_file, format!("sqlite://{}/from-file.db?mode=rwc\n", dir.path().display())).unwrap();
    let mut config = base();
    config.jwt_secret_file = Some(secret_file);
    config.database_url_file = Some(url_file);
    let app = App::build(config.clone()).await.unwrap();
    assert!(dir.path().join("from-file.db").exists(), "the URL came from the file");
    let addr = app.local_addr();
    let stop = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    // A token signed with the file's secret (without its newline) works.
    let response: Value = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(token_for("alice"))
        .json(&json!({ "query": "{ workspaces { edges { cursor } } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(response.get("errors").is_none(), "{response}");
    stop.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_file_is_private() {
    let app = spawn_with(Db::Sqlite, |_| {}).await.unwrap();
    let (workspace, _) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "hi" })).await;
    app.wait_finished(&execution).await;
    for name in ["test.db", "test.db-wal", "test.db-shm"] {
        let mode = std::fs::metadata(app.dir.path().join(name)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{name} is {mode:o}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_say_why_they_are_refused() {
    let app = secured(|c| c.max_token_lifetime = Some(Duration::from_secs(3600))).await;
    let query = "{ workspaces { edges { cursor } } }";
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": "alice", "exp": now() + 600, "aud": "claude-graphql" }),
        &jsonwebtoken::EncodingKey::from_secret(b"another secret that is long enough, too"),
    )
    .unwrap();
    for (bad, says) in [
        (token(json!({ "sub": "alice", "exp": now() - 600, "aud": "claude-graphql" })), "expired"),
        (wrong_key, "signature"),
        (token(json!({ "sub": "alice", "exp": now() + 600, "nbf": "tomorrow", "aud": "claude-graphql" })), "invalid"),
        (
            token(json!({ "sub": "alice", "exp": now() + 600, "nbf": now() + 300, "aud": "claude-graphql" })),
            "not valid yet",
        ),
        (token(json!({ "sub": "alice", "exp": now() + 7200, "aud": "claude-graphql" })), "longer"),
    ] {
        let response = as_user(&app, &bad, query, json!({})).await;
        assert_eq!(code(&response), "UNAUTHENTICATED", "{says}");
        assert!(message(&response).contains(says), "{says}: {response}");
    }
    let anonymous = app.gql(query, json!({})).await;
    assert!(message(&anonymous).contains("bearer token is required"), "{anonymous}");
    assert!(claude_graphql::http::auth::mint(&app.config, "carol", Duration::from_secs(7200)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_closes_when_its_token_expires() {
    let app = secured(|_| {}).await;
    let alice = token_for("alice");
    let (workspace, _) = workspace_of(&app, &alice, "expiring", false).await;
    let started =
        as_user(&app, &alice, START, json!({ "input": { "workspaceId": workspace, "prompt": "fake: hang" } })).await;
    let execution = started["data"]["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    // Valid for about two more seconds (five of leeway, minus three).
    let short = token(json!({ "sub": "alice", "exp": now() - 3, "aud": "claude-graphql" }));
    let mut socket = connect(&app, Some("graphql-transport-ws")).await;
    send(&mut socket, json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {short}") } }))
        .await;
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": EVENTS_SUBSCRIPTION, "variables": { "id": execution, "after": 0 } } }),
    )
    .await;
    let started = std::time::Instant::now();
    let (code, reason) = closed(&mut socket).await;
    assert_eq!((code, reason.as_str()), (4403, "Forbidden: the token has expired"));
    assert!(started.elapsed() < Duration::from_secs(5), "closed at expiry, not later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_swapped_for_a_link_is_not_followed() {
    let app = secured(|c| c.max_concurrent_executions = 1).await;
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    let (alices, alice_dir) = workspace_of(&app, &alice, "alice-dir", false).await;
    let (_, bob_dir) = workspace_of(&app, &bob, "bob-dir", false).await;
    let swap = || {
        std::fs::rename(&alice_dir, app.dir.path().join("alice-dir.moved")).unwrap();
        std::os::unix::fs::symlink(&bob_dir, &alice_dir).unwrap();
    };

    // Swapped while a run waits for its slot: the run does not start there.
    let (other, _) = workspace_of(&app, &alice, "alice-other", false).await;
    let blocker =
        as_user(&app, &alice, START, json!({ "input": { "workspaceId": other, "prompt": "fake: hang" } })).await;
    let blocker = blocker["data"]["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    let queued = as_user(&app, &alice, START, json!({ "input": { "workspaceId": alices, "prompt": "hi" } })).await;
    let queued =
        queued["data"]["startExecution"]["execution"]["id"].as_str().unwrap_or_else(|| panic!("{queued}")).to_owned();
    swap();
    as_user(&app, &alice, "mutation($id: ID!) { cancelExecution(id: $id) { id } }", json!({ "id": blocker })).await;
    let failed = wait_finished_as(&app, &alice, &queued).await;
    assert_eq!(failed["error"]["code"], "SPAWN_FAILED", "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap().contains("no longer the directory"), "{failed}");

    // And a new start is refused outright.
    let refused = as_user(&app, &alice, START, json!({ "input": { "workspaceId": alices, "prompt": "hi" } })).await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    assert!(app.fake_log(&bob_dir).is_empty(), "nothing ran in Bob's directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_outside_the_root_are_refused_with_one_message() {
    let app = secured(|_| {}).await;
    let alice = token_for("alice");
    let root = app.dir.path();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("file"), "x").unwrap();
    std::os::unix::fs::symlink(outside.path().join("missing"), root.join("to-missing")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("file"), root.join("to-file")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("to-dir")).unwrap();
    let mut messages = std::collections::BTreeSet::new();
    for path in [
        root.join("to-missing"),
        root.join("to-file"),
        root.join("to-dir"),
        root.join("to-dir/nested"),
        root.join("to-dir/file"),
        outside.path().to_path_buf(),
        outside.path().join("file"),
    ] {
        let refused = as_user(&app, &alice, CREATE, json!({ "p": path })).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{path:?}");
        messages.insert(message(&refused).to_owned());
    }
    assert_eq!(messages.len(), 1, "one message for every reason: {messages:?}");
    // Inside the root, with no link on the way, it says what is wrong.
    std::fs::write(root.join("a-file"), "x").unwrap();
    for (path, says) in [(root.join("missing"), "does not exist"), (root.join("a-file"), "not a directory")] {
        let refused = as_user(&app, &alice, CREATE, json!({ "p": path })).await;
        assert!(message(&refused).contains(says), "{refused}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_per_user_are_capped() {
    let app = secured(|c| c.max_workspaces_per_user = 2).await;
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    workspace_of(&app, &alice, "cap-1", false).await;
    workspace_of(&app, &alice, "cap-2", false).await;
    let dir = app.dir.path().join("cap-3");
    std::fs::create_dir_all(&dir).unwrap();
    let refused = as_user(&app, &alice, CREATE, json!({ "p": dir })).await;
    assert_eq!(code(&refused), "RATE_LIMITED", "{refused}");
    // Another user is not affected.
    workspace_of(&app, &bob, "cap-bob", false).await;
}

on_every_db!(nul_bytes_and_option_like_values_are_bad_input);

async fn nul_bytes_and_option_like_values_are_bad_input(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let start = |input: Value| {
        let mut full = json!({ "workspaceId": workspace, "prompt": "hi" });
        full.as_object_mut().unwrap().extend(input.as_object().unwrap().clone());
        full
    };
    for (field, input) in [
        ("prompt", json!({ "prompt": "a\u{0}b" })),
        ("systemPrompt", json!({ "systemPrompt": "a\u{0}b" })),
        ("appendSystemPrompt", json!({ "appendSystemPrompt": "a\u{0}b" })),
        ("metadata", json!({ "metadata": { "k": "a\u{0}b" } })),
        ("metadata", json!({ "metadata": { "k\u{0}": 1 } })),
        ("model", json!({ "model": "-p" })),
        ("model", json!({ "model": "--dangerously-skip-permissions" })),
        ("model", json!({ "model": "a\u{0}" })),
    ] {
        let response = app.gql(START, json!({ "input": start(input) })).await;
        assert_eq!(code(&response), "BAD_USER_INPUT", "{field}: {response}");
        assert_eq!(response["errors"][0]["extensions"]["details"]["field"], field, "{response}");
    }
    let named = app.gql(CREATE, json!({ "p": dir.join("x\u{0}") })).await;
    assert_eq!(code(&named), "BAD_USER_INPUT", "{named}");
    assert!(app.fake_log(&dir).is_empty(), "claude never ran");
}

/// The JWT-mode server on `db`, or None without PostgreSQL.
async fn secured_on(db: Db, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    spawn_with(db, |c| {
        c.jwt_secret = Some(SECRET.to_owned().into());
        c.jwt_audience = Some("claude-graphql".into());
        tweak(c);
    })
    .await
}

/// Forty racing starts against a limit of three active runs, and twenty
/// racing registrations of one directory by two users: the checks and
/// the inserts are atomic.
async fn races_are_decided_once(db: Db) {
    let Some(app) = secured_on(db, |c| c.max_active_executions_per_user = 3).await else { return };
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    let (workspace, _) = workspace_of(&app, &alice, "racing", false).await;
    let input = json!({ "input": { "workspaceId": workspace, "prompt": "fake: hang" } });
    let starts = (0..40).map(|_| as_user(&app, &alice, START, input.clone()));
    let responses = futures_util::future::join_all(starts).await;
    let admitted = responses.iter().filter(|r| r.get("errors").is_none()).count();
    assert_eq!(admitted, 3, "{responses:?}");
    assert!(responses.iter().filter(|r| r.get("errors").is_some()).all(|r| code(r) == "RATE_LIMITED"));

    let contested = app.dir.path().join("contested");
    std::fs::create_dir_all(&contested).unwrap();
    let tokens: Vec<String> = (0..20).map(|i| if i % 2 == 0 { alice.clone() } else { bob.clone() }).collect();
    let registrations = tokens.iter().map(|t| as_user(&app, t, CREATE, json!({ "p": contested })));
    let responses = futures_util::future::join_all(registrations).await;
    let registered = responses.iter().filter(|r| r.get("errors").is_none()).count();
    assert_eq!(registered, 1, "{responses:?}");
    assert!(responses.iter().filter(|r| r.get("errors").is_some()).all(|r| code(r) == "BAD_USER_INPUT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_are_decided_once_sqlite() {
    races_are_decided_once(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_are_decided_once_postgres() {
    races_are_decided_once(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_documents_are_refused_before_parsing_and_never_cached() {
    use sha2::{Digest, Sha256};
    let app = secured(|_| {}).await;
    // ~2 MB: about a million fields, with its matching persisted-query hash,
    // and no credentials at all.
    let huge = format!("{{ {} }}", "a ".repeat(1_000_000));
    let hash = format!("{:x}", Sha256::digest(huge.as_bytes()));
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let started = std::time::Instant::now();
    let floods = (0..5)
        .map(|_| app.http.post(app.url("/graphql")).json(&json!({ "query": huge, "extensions": persisted })).send());
    let health = app.http.get(app.url("/healthz")).send();
    let (responses, health) = tokio::join!(futures_util::future::join_all(floods), health);
    assert!(health.unwrap().status().is_success());
    for response in responses {
        let body: Value = response.unwrap().json().await.unwrap();
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert!(message(&body).contains("tokens"), "{body}");
    }
    assert!(started.elapsed() < Duration::from_secs(10), "refused without parsing: {:?}", started.elapsed());
    // Spreads written without spaces are tokens too.
    let spreads = format!("{{a{} }} fragment F on Query {{ __typename }}", "...F".repeat(400_000));
    let refused = post(&app, json!({ "query": spreads })).await;
    assert!(message(&refused).contains("tokens"), "{refused}");
    // Nothing was remembered under that hash.
    let lookup = post(&app, json!({ "extensions": persisted })).await;
    assert_eq!(message(&lookup), "PersistedQueryNotFound", "{lookup}");

    // A document that does not validate is not remembered either; one
    // that does is.
    for (query, remembered) in [("{ nope }", false), ("{ __typename }", true)] {
        let hash = format!("{:x}", Sha256::digest(query.as_bytes()));
        let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
        app.http
            .post(app.url("/graphql"))
            .json(&json!({ "query": query, "extensions": persisted }))
            .send()
            .await
            .unwrap();
        let lookup = post(&app, json!({ "extensions": persisted })).await;
        assert_eq!(lookup.get("errors").is_none(), remembered, "{query}: {lookup}");
    }

    // The same limit holds on a WebSocket.
    let mut socket = connect(&app, Some("graphql-transport-ws")).await;
    let alice = token_for("alice");
    send(&mut socket, json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {alice}") } }))
        .await;
    assert_eq!(crate::ws::next(&mut socket).await["type"], "connection_ack");
    send(&mut socket, json!({ "id": "big", "type": "subscribe", "payload": { "query": huge } })).await;
    let error = crate::ws::next(&mut socket).await;
    assert_eq!(error["type"], "error", "{error}");
    assert!(error["payload"][0]["message"].as_str().unwrap().contains("tokens"), "{error}");
}

on_every_db!(one_socket_cannot_starve_the_store);

/// One client opens as many subscriptions as it may on one socket, to a
/// long stored run, and reads nothing; another user's queries stay fast.
async fn one_socket_cannot_starve_the_store(app: TestApp) {
    let (workspace, _) = app.workspace().await;
    let (execution, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: messages=3000 size=2000" })).await;
    app.wait_finished(&execution).await;
    let mut socket = crate::ws::acked_socket(&app).await;
    for i in 0..app.config.max_subscriptions_per_connection {
        let subscribe = json!({ "id": i.to_string(), "type": "subscribe", "payload": { "query": EVENTS_SUBSCRIPTION, "variables": { "id": execution, "after": 0 } } });
        send(&mut socket, subscribe).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(5), app.execution(&execution)).await;
        assert!(answer.is_ok(), "a query waited {:?} for the store", started.elapsed());
        let (other, _) = app.start(json!({ "workspaceId": workspace, "prompt": "hi" })).await;
        let finished = tokio::time::timeout(Duration::from_secs(5), app.wait_finished(&other)).await;
        assert_eq!(finished.expect("a run finishes while the socket hogs")["status"], "COMPLETED");
    }
    drop(socket);
}

on_every_db!(nested_pages_cost_what_they_ask_for_and_load_in_batches);

/// Query cost multiplies by page sizes; nested pages load in one batch per
/// level and still page correctly; a response has a size cap.
async fn nested_pages_cost_what_they_ask_for_and_load_in_batches(app: TestApp) {
    let (workspace, _) = app.workspace().await;
    // Three sessions with 3, 2 and 1 executions.
    let mut sessions = Vec::new();
    for runs in [3, 2, 1] {
        let (first, session) = app.start(json!({ "workspaceId": workspace, "prompt": "hi" })).await;
        app.wait_finished(&first).await;
        for _ in 1..runs {
            let (next, _) =
                app.start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "again" })).await;
            app.wait_finished(&next).await;
        }
        sessions.push((session, runs));
    }
    // The attacker's query: 30 aliases x 100 sessions x 100 executions.
    let aliases: String =
        (0..30).map(|i| format!("a{i}: sessions(first: 100) {{ edges {{ node {{ executions(first: 100) {{ edges {{ node {{ prompt }} }} }} }} }} }} ")).collect();
    let hog =
        app.gql(&format!("query($w: ID!) {{ workspace(id: $w) {{ {aliases} }} }}"), json!({ "w": workspace })).await;
    assert_eq!(code(&hog), "BAD_USER_INPUT", "{hog}");
    assert!(message(&hog).contains("complex"), "{hog}");
    let one = app
        .gql(
            "query($w: ID!) { workspace(id: $w) { sessions(first: 100) { edges { node { executions(first: 100) { edges { node { prompt } } } } } } } }",
            json!({ "w": workspace }),
        )
        .await;
    assert_eq!(code(&one), "BAD_USER_INPUT", "100 x 100 is too much: {one}");

    // A page of sessions, each with a page of its executions, batched.
    let nested = app
        .ok(
            "query($w: ID!) { workspace(id: $w) { sessions(first: 10) { edges { node { id workspace { id }
               executions(first: 2) { edges { node { id session { id } workspace { id } } } pageInfo { hasNextPage } } } } } } }",
            json!({ "w": workspace }),
        )
        .await;
    let edges = nested["workspace"]["sessions"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 3);
    for edge in edges {
        let node = &edge["node"];
        let runs = sessions.iter().find(|(id, _)| node["id"] == id.as_str()).unwrap().1;
        assert_eq!(node["workspace"]["id"], workspace.as_str());
        let executions = node["executions"]["edges"].as_array().unwrap();
        assert_eq!(executions.len(), runs.min(2), "{node}");
        assert_eq!(node["executions"]["pageInfo"]["hasNextPage"], runs > 2, "{node}");
        for execution in executions {
            assert_eq!(execution["node"]["session"]["id"], node["id"]);
            assert_eq!(execution["node"]["workspace"]["id"], workspace.as_str());
        }
    }
    // The same page one session at a time says the same (newest first).
    let (session, _) = &sessions[0];
    let alone = app
        .ok(
            "query($s: ID!) { session(id: $s) { executions(first: 2) { edges { node { id } } pageInfo { hasNextPage endCursor } } } }",
            json!({ "s": session }),
        )
        .await;
    let cursor = alone["session"]["executions"]["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let rest = app
        .ok(
            "query($s: ID!, $after: String) { session(id: $s) { executions(first: 2, after: $after) { edges { node { id } } pageInfo { hasNextPage } } } }",
            json!({ "s": session, "after": cursor }),
        )
        .await;
    assert_eq!(rest["session"]["executions"]["edges"].as_array().unwrap().len(), 1);
    assert_eq!(rest["session"]["executions"]["pageInfo"]["hasNextPage"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_has_a_size_cap() {
    let app = spawn_with(Db::Sqlite, |c| c.max_response_bytes = 64 * 1024).await.unwrap();
    let (workspace, _) = app.workspace().await;
    let (execution, session) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: messages=100 size=2000" })).await;
    app.wait_finished(&execution).await;
    let logs = "query($s: ID!, $n: Int!) { sessionLogs(sessionId: $s, limit: $n) { seq payload } }";
    let small = app.gql(logs, json!({ "s": session, "n": 5 })).await;
    assert!(small.get("errors").is_none(), "{small}");
    let big = app.gql(logs, json!({ "s": session, "n": 1000 })).await;
    assert_eq!(code(&big), "BAD_USER_INPUT", "{big}");
    assert!(message(&big).contains("larger than"), "{big}");
}

#[test]
fn the_token_command_takes_the_secret_before_or_after_it() {
    let bin = env!("CARGO_BIN_EXE_claude-graphql");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).env_remove("JWT_SECRET").output().unwrap();
    for args in [
        vec!["token", "--sub", "alice", "--jwt-secret", SECRET, "--jwt-audience", "claude-graphql"],
        vec!["--jwt-secret", SECRET, "--jwt-audience", "claude-graphql", "token", "--sub", "alice"],
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let token = String::from_utf8(out.stdout).unwrap();
        assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");
    }
    let weak = run(&["token", "--sub", "alice", "--jwt-secret", "short"]);
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 32"));
}
