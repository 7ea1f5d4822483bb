//! Scale-out: replicas sharing one PostgreSQL database.

use serde_json::json;

use crate::helpers::{final_status, process_alive, seqs, spawn_with, Db};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_replica_streams_and_cancels_a_run_of_another() {
    let Some(a) = spawn_with(Db::Postgres, |c| c.replica_id = Some("replica-a".into())).await else { return };
    let b = a.replica("replica-b").await;
    let (workspace, _) = a.workspace().await;

    // Started on A, watched from B while it runs: the same stream.
    let (execution, _) = a.start(json!({ "workspaceId": workspace, "prompt": "fake: messages=30 delay_ms=20" })).await;
    let on_b = b.events(&execution, 0).await.unwrap();
    let on_a = a.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&on_b)["status"], "COMPLETED");
    assert_eq!(seqs(&on_b), (1..=35).collect::<Vec<_>>());
    assert_eq!(seqs(&on_b), seqs(&on_a));

    // Started on A, cancelled through B: A's process stops.
    let (execution, _) = a.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    a.wait_status(&execution, "RUNNING").await;
    let dir = a.dir.path().to_path_buf();
    let pid = {
        let mut pid = None;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let log = a.fake_log(&entry.unwrap().path());
            if let Some(start) = log.iter().rfind(|e| e["event"] == "start") {
                pid = start["pid"].as_u64();
            }
        }
        pid.unwrap() as u32
    };
    let cancelled =
        b.ok("mutation($id: ID!) { cancelExecution(id: $id) { status } }", json!({ "id": execution })).await;
    assert_eq!(cancelled["cancelExecution"]["status"], "CANCELLED");
    assert!(!process_alive(pid), "the replica that ran it stopped it");
    let events = b.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["status"], "CANCELLED");
    assert!(events.iter().any(|m| m["subtype"] == "error_during_execution"), "it was interrupted, not just marked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupts_and_permission_answers_reach_the_replica_running_the_run() {
    let Some(a) = spawn_with(Db::Postgres, |c| c.replica_id = Some("replica-a".into())).await else { return };
    let b = a.replica("replica-b").await;
    let (workspace, _) = a.workspace().await;

    // A permission prompt on A, answered through B.
    let (execution, _) =
        a.start(json!({ "workspaceId": workspace, "prompt": "fake: ask=Bash", "requireApproval": true })).await;
    let request = loop {
        let pending = b
            .ok("query($e: ID!) { pendingPermissionRequests(executionId: $e) { id } }", json!({ "e": execution }))
            .await;
        if let Some(id) = pending["pendingPermissionRequests"][0]["id"].as_str() {
            break id.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    b.ok(
        "mutation($id: ID!) { answerPermissionRequest(id: $id, decision: ALLOW) { status } }",
        json!({ "id": request }),
    )
    .await;
    let events = b.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["status"], "COMPLETED");
    assert!(events.iter().any(|e| e["message"].to_string().contains("ran: touch created.txt")), "the tool ran on A");

    // A follow-up sent through B joins the run on A.
    let (execution, _) = a.start(json!({ "workspaceId": workspace, "prompt": "fake: messages=5 delay_ms=100" })).await;
    a.wait_status(&execution, "RUNNING").await;
    let sent = b
        .ok(
            "mutation($id: ID!) { sendMessage(executionId: $id, text: \"more\") { messageId } }",
            json!({ "id": execution }),
        )
        .await;
    let message_id = sent["sendMessage"]["messageId"].clone();
    let events = b.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["status"], "COMPLETED");
    let results: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "result").collect();
    assert_eq!(results.last().unwrap()["message"]["user_message_uuids"], json!([message_id]), "{events:?}");

    // A turn on A, interrupted through B.
    let (execution, _) = a.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    a.wait_status(&execution, "RUNNING").await;
    b.ok("mutation($id: ID!) { interruptExecution(id: $id) { id } }", json!({ "id": execution })).await;
    let events = b.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["status"], "CANCELLED");
    assert!(events.iter().any(|m| m["subtype"] == "error_during_execution"));
}
