//! The real Claude Code CLI through the real server, against a mock of the
//! Anthropic Messages API served here on loopback. Runs when
//! TEST_CLAUDE_BIN points at the CLI (`.ci/run` installs a pinned version
//! and runs this inside a loopback-only network namespace); says it was
//! skipped otherwise.

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
mod mock;

use std::time::Duration;

use serde_json::{json, Value};

use helpers::{final_status, spawn_with, Db, TestApp};
use mock::{MockApi, Reply};

/// The server, with `claude` wrapped so that it talks to `api` only.
async fn app_with(api: &MockApi) -> Option<TestApp> {
    app_configured(api, |_| {}).await
}

/// Like `app_with`, with `tweak` applied to the server's config.
async fn app_configured(api: &MockApi, tweak: impl FnOnce(&mut claude_graphql::Config)) -> Option<TestApp> {
    let Some(real) = std::env::var_os("TEST_CLAUDE_BIN").filter(|v| !v.is_empty()) else {
        eprintln!("skipped: TEST_CLAUDE_BIN is not set");
        return None;
    };
    let home = tempfile::tempdir().unwrap().keep();
    let wrapper = home.join("claude");
    std::fs::create_dir_all(home.join("tmp")).unwrap();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexport ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY=sk-ant-test HOME={home} CLAUDE_CONFIG_DIR={home}/config \
             TMPDIR={home}/tmp CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 \
             DISABLE_AUTOUPDATER=1 CLAUDE_CODE_MAX_RETRIES=0\nexec {real} \"$@\"\n",
            url = api.url,
            home = home.display(),
            real = std::path::Path::new(&real).display(),
        ),
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&wrapper).unwrap().permissions(), 0o755);
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    spawn_with(Db::Sqlite, |c| {
        c.claude_bin = wrapper.clone();
        c.execution_timeout = Duration::from_secs(60);
        tweak(c);
    })
    .await
}

fn texts(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "assistant")
        .flat_map(|e| e["message"]["message"]["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_answer_and_a_resumed_session() {
    let api = MockApi::start(vec![Reply::Text("Hello from the mock.".into()), Reply::Text("Still here.".into())]).await;
    let Some(app) = app_with(&api).await else { return };
    let (workspace, _) = app.workspace().await;
    let (execution, session) = app.start(json!({ "workspaceId": workspace, "prompt": "Say hello" })).await;
    let events = app.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["status"], "COMPLETED", "{events:?}");
    let init = events.iter().find(|e| e["subtype"] == "init").unwrap();
    assert!(init["message"]["claude_code_version"].is_string());
    assert_eq!(texts(&events), ["Hello from the mock."]);
    let done = app.execution(&execution).await;
    assert_eq!(done["result"], "Hello from the mock.");
    assert!(done["costUsd"].as_f64().unwrap() > 0.0);

    // Continued with --resume: the API sees the earlier turn.
    let (second, _) = app.start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "Again" })).await;
    assert_eq!(app.wait_finished(&second).await["status"], "COMPLETED");
    let last = api.requests().last().cloned().unwrap();
    assert!(last.to_string().contains("Say hello") && last.to_string().contains("Hello from the mock."), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_and_a_document_reach_the_model() {
    const PNG: &str =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let api = MockApi::start(vec![Reply::Text("A single pixel.".into())]).await;
    let Some(app) = app_with(&api).await else { return };
    let (workspace, _) = app.workspace().await;
    let notes = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "line 3 fails");
    let started = app
        .ok(
            "mutation($i: StartExecutionInput!) { startExecution(input: $i) { execution { id } } }",
            json!({ "i": { "workspaceId": workspace, "prompt": "What is this?", "content": [
                { "image": { "base64": PNG, "name": "pixel.png" } },
                { "document": { "base64": notes, "name": "notes.txt" } },
            ] } }),
        )
        .await;
    let execution = started["startExecution"]["execution"]["id"].as_str().unwrap();
    let done = app.wait_finished(execution).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["result"], "A single pixel.");
    // The model got the three blocks of the user's turn.
    let request = api.requests().last().cloned().unwrap();
    let user = request["messages"].as_array().unwrap().iter().rfind(|m| m["role"] == "user").unwrap().clone();
    let blocks = user["content"].as_array().unwrap();
    assert!(blocks.iter().any(|b| b["type"] == "text" && b["text"] == "What is this?"), "{user}");
    let image = blocks.iter().find(|b| b["type"] == "image").unwrap_or_else(|| panic!("no image in {user}"));
    assert_eq!(image["source"]["data"], PNG);
    assert_eq!(image["source"]["media_type"], "image/png");
    let document = blocks.iter().find(|b| b["type"] == "document").unwrap_or_else(|| panic!("no document in {user}"));
    assert_eq!(document["source"]["data"], "line 3 fails", "{document}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_server_that_fails_is_reported_and_the_run_goes_on() {
    let api = MockApi::start(vec![Reply::Text("Done without it.".into())]).await;
    let tweak = |c: &mut claude_graphql::Config| c.mcp_stdio_commands = vec!["/nonexistent/mcp-server".into()];
    let Some(app) = app_configured(&api, tweak).await else { return };
    let (workspace, _) = app.workspace().await;
    let update = "mutation($id: ID!, $i: UpdateWorkspaceInput!) { updateWorkspace(id: $id, input: $i) { id } }";
    let servers = json!([{ "name": "broken", "command": "/nonexistent/mcp-server" }]);
    app.ok(update, json!({ "id": workspace, "i": { "mcpServers": servers } })).await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "Say hello" })).await;
    assert_eq!(app.wait_finished(&execution).await["status"], "COMPLETED");
    let seen = app
        .ok("query($id: ID!) { execution(id: $id) { mcpServers { name status } } }", json!({ "id": execution }))
        .await;
    assert_eq!(seen["execution"]["mcpServers"], json!([{ "name": "broken", "status": "failed" }]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_in_its_own_worktree_resumes_there() {
    let git = |dir: &std::path::Path, args: &[&str]| {
        std::process::Command::new("git").args(args).current_dir(dir).output().is_ok_and(|o| o.status.success())
    };
    if !git(std::path::Path::new("."), &["--version"]) {
        eprintln!("skipped: git is not installed");
        return;
    }
    let api = MockApi::start(vec![Reply::Text("First.".into()), Reply::Text("Second.".into())]).await;
    let Some(app) = app_with(&api).await else { return };
    let (workspace, dir) = app.workspace().await;
    for args in [&["init", "-q"][..], &["config", "user.email", "t@example.com"], &["config", "user.name", "t"]] {
        assert!(git(&dir, args));
    }
    std::fs::write(dir.join("a.txt"), "a\n").unwrap();
    assert!(git(&dir, &["add", "a.txt"]) && git(&dir, &["commit", "-q", "-m", "start"]));
    let start = "mutation($i: StartExecutionInput!) { startExecution(input: $i) {
        execution { id } session { id worktree { path } } } }";
    let first =
        app.ok(start, json!({ "i": { "workspaceId": workspace, "prompt": "Remember me", "worktree": true } })).await;
    let path = first["startExecution"]["session"]["worktree"]["path"].as_str().unwrap().to_owned();
    let id = first["startExecution"]["execution"]["id"].as_str().unwrap();
    let done = app.wait_finished(id).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let events = app.events(id, 0).await.unwrap();
    let init = events.iter().find(|e| e["subtype"] == "init").unwrap();
    assert_eq!(init["message"]["cwd"], path.as_str(), "claude ran in the worktree");
    // Resumed in the same worktree, where Claude keeps the conversation.
    let session = first["startExecution"]["session"]["id"].clone();
    let (second, _) = app.start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "Again" })).await;
    assert_eq!(app.wait_finished(&second).await["status"], "COMPLETED");
    let last = api.requests().last().cloned().unwrap();
    assert!(last.to_string().contains("Remember me") && last.to_string().contains("First."), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_session_continues_a_copy_under_its_own_id() {
    let api = MockApi::start(vec![Reply::Text("The first way.".into()), Reply::Text("Another way.".into())]).await;
    let Some(app) = app_with(&api).await else { return };
    let (workspace, _) = app.workspace().await;
    let (first, session) = app.start(json!({ "workspaceId": workspace, "prompt": "Pick a way" })).await;
    let original = app.wait_finished(&first).await["session"]["claudeSessionId"].as_str().unwrap().to_owned();
    let forked = app
        .ok(
            "mutation($i: StartExecutionInput!) { startExecution(input: $i) { execution { id } session { id } } }",
            json!({ "i": { "workspaceId": workspace, "forkSessionId": session, "prompt": "Try another" } }),
        )
        .await;
    let execution = forked["startExecution"]["execution"]["id"].as_str().unwrap();
    let done = app.wait_finished(execution).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let fork_id = done["session"]["claudeSessionId"].as_str().unwrap();
    assert_ne!(fork_id, original, "the CLI gave the fork a new session id");
    // The API saw the first conversation, continued.
    let last = api.requests().last().cloned().unwrap();
    assert!(last.to_string().contains("Pick a way") && last.to_string().contains("The first way."), "{last}");
    let original_now =
        app.ok("query($id: ID!) { session(id: $id) { claudeSessionId } }", json!({ "id": session })).await;
    assert_eq!(original_now["session"]["claudeSessionId"], original.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bash_call_approved_and_one_denied_through_graphql() {
    let touch = || Reply::Tool {
        name: "Bash".into(),
        input: json!({ "command": "touch created.txt", "description": "Create a file" }),
    };
    let api =
        MockApi::start(vec![touch(), Reply::Text("Made it.".into()), touch(), Reply::Text("Fine, I won't.".into())])
            .await;
    let Some(app) = app_with(&api).await else { return };
    for (decision, exists) in [("ALLOW", true), ("DENY", false)] {
        let (workspace, dir) = app.workspace().await;
        let (execution, _) =
            app.start(json!({ "workspaceId": workspace, "prompt": "Make a file", "requireApproval": true })).await;
        let request = loop {
            let pending = app
                .ok(
                    "query($e: ID!) { pendingPermissionRequests(executionId: $e) { id toolName } }",
                    json!({ "e": execution }),
                )
                .await;
            if let Some(request) = pending["pendingPermissionRequests"].as_array().and_then(|r| r.first()).cloned() {
                break request;
            }
            assert_ne!(app.execution(&execution).await["status"], "COMPLETED", "it never asked");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(request["toolName"], "Bash");
        app.ok(
            "mutation($id: ID!, $d: PermissionDecision!) { answerPermissionRequest(id: $id, decision: $d, message: \"no\") { status } }",
            json!({ "id": request["id"], "d": decision }),
        )
        .await;
        let done = app.wait_finished(&execution).await;
        assert_eq!(done["status"], "COMPLETED", "{decision}: {done}");
        assert_eq!(dir.join("created.txt").exists(), exists, "{decision}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_failures_map_to_error_codes() {
    let api = MockApi::start(vec![
        Reply::Status(500, json!({ "type": "error", "error": { "type": "api_error", "message": "Internal server error" } })),
        Reply::Status(429, json!({ "type": "error", "error": { "type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit" } })),
        Reply::Tool { name: "Bash".into(), input: json!({ "command": "echo hi", "description": "Say hi" }) },
    ])
    .await;
    // Here a rate-limited run fails (see the next test for parking).
    let Some(app) = app_configured(&api, |c| c.park_rate_limited = false).await else { return };
    let (workspace, _) = app.workspace().await;
    for (input, code) in [
        (json!({ "workspaceId": workspace, "prompt": "fail" }), "CLAUDE_ERROR"),
        (json!({ "workspaceId": workspace, "prompt": "limit" }), "RATE_LIMITED"),
        (json!({ "workspaceId": workspace, "prompt": "loop", "maxTurns": 1, "allowedTools": ["Bash"] }), "MAX_TURNS"),
    ] {
        let (execution, _) = app.start(input).await;
        let done = app.wait_finished(&execution).await;
        assert_eq!((done["status"].as_str(), done["error"]["code"].as_str()), (Some("FAILED"), Some(code)), "{done}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_run_is_parked_and_resumes_its_session() {
    let api = MockApi::start(vec![
        Reply::Status(429, json!({ "type": "error", "error": { "type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit" } })),
        Reply::Text("Back after the limit.".into()),
    ])
    .await;
    let Some(app) = app_configured(&api, |c| c.rate_limit_wait = Duration::from_secs(2)).await else { return };
    let (workspace, _) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "hello" })).await;
    let parked = loop {
        let e = app
            .ok("query($id: ID!) { execution(id: $id) { status resumeAt parkCount } }", json!({ "id": execution }))
            .await;
        if e["execution"]["status"] == "SCHEDULED" {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(parked["execution"]["parkCount"], 1);
    let done = app.wait_finished(&execution).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let events = app.events(&execution, 0).await.unwrap();
    assert!(texts(&events).iter().any(|t| t.contains("Back after the limit.")), "{events:?}");
    // The real CLI resumed its own session, and was told to continue.
    let inits: Vec<&Value> = events.iter().filter(|e| e["subtype"] == "init").collect();
    assert_eq!(inits.len(), 2);
    assert_eq!(inits[0]["message"]["session_id"], inits[1]["message"]["session_id"]);
}

/// Polls the session's log until a line mentions `what`.
async fn wait_for(app: &TestApp, execution: &str, what: &str) {
    for _ in 0..200 {
        let found = app.ok("query($e: ID!) { execution(id: $e) { session { id } } }", json!({ "e": execution })).await;
        let session = found["execution"]["session"]["id"].clone();
        let logs = app
            .ok("query($s: ID!) { sessionLogs(sessionId: $s, limit: 1000) { type payload } }", json!({ "s": session }))
            .await;
        if logs.to_string().contains(what) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never saw {what}");
}

fn slow(text: &str) -> Reply {
    Reply::Slow { text: text.into(), pause: Duration::from_millis(150) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_mid_stream_keeps_the_partial_answer() {
    let api = MockApi::start(vec![slow("one two three four five six seven eight nine ten eleven twelve")]).await;
    let Some(app) = app_with(&api).await else { return };
    let (workspace, _) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "Count slowly" })).await;
    wait_for(&app, &execution, "system").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    app.ok("mutation($id: ID!) { interruptExecution(id: $id) { id } }", json!({ "id": execution })).await;
    let events = app.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["status"], "CANCELLED", "{events:?}");
    let result = events.iter().find(|e| e["type"] == "result").unwrap();
    assert_eq!(result["message"]["terminal_reason"], "aborted_streaming");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_mid_tool_stops_the_tool() {
    let api = MockApi::start(vec![Reply::Tool {
        name: "Bash".into(),
        input: json!({ "command": "python3 -c \"import time; time.sleep(31)\"", "description": "Run a command" }),
    }])
    .await;
    let Some(app) = app_with(&api).await else { return };
    let (workspace, _) = app.workspace().await;
    let (execution, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": "Wait", "allowedTools": ["Bash"] })).await;
    wait_for(&app, &execution, "tool_use").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.ok("mutation($id: ID!) { interruptExecution(id: $id) { id } }", json!({ "id": execution })).await;
    let events = app.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["status"], "CANCELLED");
    let result = events.iter().find(|e| e["type"] == "result").unwrap();
    // `aborted_tools` once the tool runs (`aborted_streaming` if it came first).
    assert!(result["message"]["terminal_reason"].as_str().unwrap().starts_with("aborted"), "{result}");
    let sleeping = std::process::Command::new("pgrep").args(["-f", "time.sleep.31"]).output().unwrap();
    assert!(sleeping.stdout.is_empty(), "the tool's process was stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_joins_the_run() {
    let api =
        MockApi::start(vec![slow("first answer comes slowly word by word"), Reply::Text("Second answer.".into())])
            .await;
    let Some(app) = app_with(&api).await else { return };
    let (workspace, _) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "Tell me something" })).await;
    wait_for(&app, &execution, "system").await;
    app.ok(
        "mutation($id: ID!) { sendMessage(executionId: $id, text: \"And another thing\") { messageId } }",
        json!({ "id": execution }),
    )
    .await;
    let events = app.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["status"], "COMPLETED", "{events:?}");
    let all = texts(&events).join(" ");
    assert!(all.contains("first answer") && all.contains("Second answer."), "{all}");
    assert!(api.requests().iter().any(|r| r.to_string().contains("And another thing")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_output_comes_from_the_cli() {
    let api = MockApi::start(vec![
        Reply::Tool { name: "StructuredOutput".into(), input: json!({ "name": "Ada" }) },
        // The second run never calls the tool (the CLI asks it to, once).
        Reply::Text("No.".into()),
        Reply::Text("Still no.".into()),
    ])
    .await;
    let Some(app) = app_with(&api).await else { return };
    let (workspace, _) = app.workspace().await;
    let schema = json!({ "type": "object", "properties": { "name": { "type": "string" } }, "required": ["name"] });
    let start = "mutation($i: StartExecutionInput!) { startExecution(input: $i) { execution { id } } }";
    let read = "query($id: ID!) { execution(id: $id) { status structuredOutput error { code } } }";
    let first =
        app.ok(start, json!({ "i": { "workspaceId": workspace, "prompt": "Name one", "outputSchema": schema } })).await;
    let id = first["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    app.wait_finished(&id).await;
    let done = app.ok(read, json!({ "id": id })).await;
    assert_eq!(done["execution"]["status"], "COMPLETED", "{done}");
    assert_eq!(done["execution"]["structuredOutput"], json!({ "name": "Ada" }));
    // The CLI offered the model the schema as its StructuredOutput tool.
    let tools = api.requests()[0]["tools"].clone();
    let tool = tools.as_array().unwrap().iter().find(|t| t["name"] == "StructuredOutput").expect("the tool");
    assert_eq!(tool["input_schema"], schema);

    let second =
        app.ok(start, json!({ "i": { "workspaceId": workspace, "prompt": "Name one", "outputSchema": schema } })).await;
    let id = second["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    app.wait_finished(&id).await;
    let failed = app.ok(read, json!({ "id": id })).await;
    assert_eq!(failed["execution"]["status"], "FAILED", "{failed}");
    assert_eq!(failed["execution"]["error"]["code"], "NO_STRUCTURED_OUTPUT");
}
