//! Interactive runs: interrupts and follow-up messages.

use serde_json::{json, Value};

use crate::{
    helpers::{final_status, TestApp},
    on_every_db,
};

on_every_db!(interrupt_ends_the_turn_cleanly, follow_ups_join_the_run);

fn stdin_of(app: &TestApp, dir: &std::path::Path) -> Vec<Value> {
    app.fake_log(dir)
        .iter()
        .filter(|e| e["event"] == "stdin")
        .map(|e| serde_json::from_str(e["line"].as_str().unwrap()).unwrap())
        .collect()
}

async fn interrupt_ends_the_turn_cleanly(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let (execution, session) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    app.wait_status(&execution, "RUNNING").await;
    app.ok("mutation($id: ID!) { interruptExecution(id: $id) { id } }", json!({ "id": execution })).await;
    let events = app.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["status"], "CANCELLED");
    assert!(events.iter().any(|e| e["message"]["message"]["content"][0]["text"] == "[Request interrupted by user]"));
    let result = events.iter().find(|e| e["type"] == "result").unwrap();
    assert_eq!(result["message"]["terminal_reason"], "aborted_streaming");
    // The interrupt went in-band, and claude ended by itself (no signal).
    assert!(stdin_of(&app, &dir).iter().any(|l| l["request"]["subtype"] == "interrupt"));
    let exit = app.fake_log(&dir).into_iter().find(|e| e["event"] == "exit").expect("it exited on its own");
    assert_eq!(exit["code"], 0);

    // The session goes on.
    let (next, _) = app.start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "and now?" })).await;
    assert_eq!(app.wait_finished(&next).await["status"], "COMPLETED");

    // Only a running execution can be interrupted.
    let again = app.gql("mutation($id: ID!) { interruptExecution(id: $id) { id } }", json!({ "id": execution })).await;
    assert_eq!(again["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
}

async fn follow_ups_join_the_run(app: TestApp) {
    let send = "mutation($id: ID!, $text: String!, $p: MessagePriority) { sendMessage(executionId: $id, text: $text, priority: $p) { messageId execution { status } } }";
    // NEXT: a second turn after the first.
    let (workspace, dir) = app.workspace().await;
    let (execution, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: messages=5 delay_ms=100" })).await;
    app.wait_status(&execution, "RUNNING").await;
    let sent = app.ok(send, json!({ "id": execution, "text": "and a second thing" })).await;
    let message_id = sent["sendMessage"]["messageId"].as_str().unwrap().to_owned();
    let events = app.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["status"], "COMPLETED");
    let results: Vec<&Value> = events.iter().filter(|e| e["type"] == "result").collect();
    assert_eq!(results.len(), 2, "one result per turn");
    assert_eq!(results[1]["message"]["user_message_uuids"], json!([message_id]));
    assert!(events
        .iter()
        .any(|e| e["type"] == "command_lifecycle" && e["message"]["command_uuid"] == message_id.as_str()));
    let users: Vec<Value> = stdin_of(&app, &dir).into_iter().filter(|l| l["type"] == "user").collect();
    assert_eq!(users[1]["message"]["content"], "and a second thing");
    assert_eq!(users[1]["uuid"], message_id.as_str());

    // NOW: replaces the running turn.
    let (workspace, dir) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    app.wait_status(&execution, "RUNNING").await;
    app.ok(send, json!({ "id": execution, "text": "fake: messages=1", "p": "NOW" })).await;
    let events = app.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["status"], "COMPLETED");
    let results: Vec<&Value> = events.iter().filter(|e| e["type"] == "result").collect();
    assert_eq!(results[0]["message"]["terminal_reason"], "aborted_streaming");
    assert_eq!(results[1]["message"]["terminal_reason"], "completed");
    assert_eq!(stdin_of(&app, &dir).iter().filter(|l| l["priority"] == "now").count(), 1);

    // Nothing can be added to a finished run.
    let late = app.gql(send, json!({ "id": execution, "text": "too late" })).await;
    assert_eq!(late["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let empty = app.gql(send, json!({ "id": execution, "text": " " })).await;
    assert_eq!(empty["errors"][0]["extensions"]["details"]["field"], "text");
}
