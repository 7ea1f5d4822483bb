//! Tool approvals: a client answers Claude's permission prompts.

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::{
    helpers::{final_status, spawn_with, Db, TestApp},
    on_every_db,
};

on_every_db!(a_client_approves_a_tool_call, denials_and_silence_refuse_the_tool);

const ANSWER: &str = "mutation($id: ID!, $d: PermissionDecision!, $input: JSON, $m: String) {
    answerPermissionRequest(id: $id, decision: $d, updatedInput: $input, message: $m) { id status answeredBy decision } }";

/// Starts `prompt` with approvals on and waits for its first permission
/// request; returns (execution, request id, the open subscription).
async fn until_asked(
    app: &TestApp,
    workspace: &str,
    prompt: &str,
) -> (String, String, impl futures_util::Stream<Item = anyhow::Result<Value>>) {
    let (execution, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": prompt, "requireApproval": true })).await;
    let mut events = Box::pin(app.subscribe(&execution, 0).await.unwrap());
    loop {
        let event = events.next().await.expect("a permission request").unwrap();
        if event["__typename"] == "PermissionRequestEvent" {
            assert_eq!(event["request"]["status"], "PENDING");
            assert_eq!(event["request"]["toolName"], "Bash");
            return (execution, event["request"]["id"].as_str().unwrap().to_owned(), events);
        }
    }
}

async fn rest(events: impl futures_util::Stream<Item = anyhow::Result<Value>>) -> Vec<Value> {
    let mut events = Box::pin(events);
    let mut all = Vec::new();
    while let Some(e) =
        tokio::time::timeout(std::time::Duration::from_secs(20), events.next()).await.expect("the run ends")
    {
        all.push(e.unwrap());
    }
    all
}

fn tool_result(events: &[Value]) -> &Value {
    events
        .iter()
        .find_map(|e| e["message"]["message"]["content"].as_array()?.iter().find(|c| c["type"] == "tool_result"))
        .expect("a tool_result")
}

async fn a_client_approves_a_tool_call(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let (execution, request, events) = until_asked(&app, &workspace, "fake: ask=Bash").await;
    let pending = app
        .ok("query($e: ID!) { pendingPermissionRequests(executionId: $e) { id input } }", json!({ "e": execution }))
        .await;
    assert_eq!(pending["pendingPermissionRequests"][0]["id"], request.as_str());
    assert_eq!(pending["pendingPermissionRequests"][0]["input"]["command"], "touch created.txt");

    let answered = app.ok(ANSWER, json!({ "id": request, "d": "ALLOW", "input": { "command": "echo hi" } })).await;
    let answered = &answered["answerPermissionRequest"];
    assert_eq!((answered["status"].as_str(), answered["answeredBy"].as_str()), (Some("ALLOWED"), Some("local")));
    assert_eq!(answered["decision"]["updatedInput"]["command"], "echo hi");

    let events = rest(events).await;
    assert_eq!(final_status(&events)["status"], "COMPLETED");
    assert_eq!(tool_result(&events)["content"], "ran: echo hi");
    assert!(events.iter().any(|e| e["__typename"] == "PermissionRequestEvent" && e["request"]["status"] == "ALLOWED"));

    // Exactly once.
    let again = app.gql(ANSWER, json!({ "id": request, "d": "DENY" })).await;
    assert_eq!(again["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    // The audit trail, and the flag that turned prompts on.
    let audit = app
        .ok(
            "query($e: ID!) { execution(id: $e) { permissionRequests { status answeredAt } } }",
            json!({ "e": execution }),
        )
        .await;
    assert_eq!(audit["execution"]["permissionRequests"][0]["status"], "ALLOWED");
    let argv = app.fake_log(&dir)[0]["argv"].clone();
    assert!(argv.to_string().contains("\"--permission-prompt-tool\",\"stdio\""), "{argv}");
    let pending =
        app.ok("query($e: ID!) { pendingPermissionRequests(executionId: $e) { id } }", json!({ "e": execution })).await;
    assert_eq!(pending["pendingPermissionRequests"], json!([]));
}

async fn denials_and_silence_refuse_the_tool(app: TestApp) {
    let (workspace, _) = app.workspace().await;
    let (_, request, events) = until_asked(&app, &workspace, "fake: ask=Bash").await;
    app.ok(ANSWER, json!({ "id": request, "d": "DENY", "m": "not today" })).await;
    let events = rest(events).await;
    let result = tool_result(&events);
    assert_eq!((result["content"].as_str(), result["is_error"].as_bool()), (Some("not today"), Some(true)));

    // Interrupted while it waits: the CLI withdraws the request.
    let (execution, _, events) = until_asked(&app, &workspace, "fake: ask=Bash").await;
    app.ok("mutation($id: ID!) { interruptExecution(id: $id) { id } }", json!({ "id": execution })).await;
    let events = rest(events).await;
    assert_eq!(final_status(&events)["status"], "CANCELLED");
    let request = app
        .ok("query($e: ID!) { execution(id: $e) { permissionRequests { id status } } }", json!({ "e": execution }))
        .await;
    assert_eq!(request["execution"]["permissionRequests"][0]["status"], "CANCELLED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_requests_expire_and_are_denied() {
    let app = spawn_with(Db::Sqlite, |c| c.permission_timeout = std::time::Duration::from_millis(300)).await.unwrap();
    let dir = app.dir.path().join("asks");
    std::fs::create_dir_all(dir.join(".fake-claude")).unwrap();
    // Asking is the workspace's default here.
    let created = app
        .ok("mutation($p: String!) { createWorkspace(input: {name: \"w\", path: $p, requireApproval: true}) { id requireApproval } }", json!({ "p": dir }))
        .await;
    assert_eq!(created["createWorkspace"]["requireApproval"], true);
    let workspace = created["createWorkspace"]["id"].as_str().unwrap();
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: ask=Bash" })).await;
    let events = app.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["status"], "COMPLETED");
    let result = tool_result(&events);
    assert_eq!(result["is_error"], true);
    assert!(result["content"].as_str().unwrap().contains("no answer came in time"), "{result}");
    let audit = app
        .ok(
            "query($e: ID!) { execution(id: $e) { permissionRequests { status answeredBy } } }",
            json!({ "e": execution }),
        )
        .await;
    assert_eq!(audit["execution"]["permissionRequests"][0], json!({ "status": "EXPIRED", "answeredBy": null }));
}
