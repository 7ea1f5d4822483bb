//! Runs that go wrong, each with the error code SPEC gives it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    helpers::{final_status, seqs, spawn_app, spawn_with, Db, TestApp},
    on_every_db,
};

/// Runs `prompt` to the end; returns (execution, events).
async fn run(app: &TestApp, prompt: &str) -> (Value, Vec<Value>) {
    let (workspace, _) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": prompt })).await;
    let events = app.events(&execution, 0).await.unwrap();
    (app.wait_finished(&execution).await, events)
}

async fn assert_fails(app: &TestApp, prompt: &str, code: &str) -> (Value, Vec<Value>) {
    let (execution, events) = run(app, prompt).await;
    assert_eq!(execution["status"], "FAILED", "{prompt}: {execution}");
    assert_eq!(execution["error"]["code"], code, "{prompt}: {execution}");
    let status = final_status(&events);
    assert_eq!(status["status"], "FAILED");
    assert_eq!(status["error"]["code"], code);
    (execution, events)
}

on_every_db!(outcomes_come_from_the_result_line);

async fn outcomes_come_from_the_result_line(app: TestApp) {
    let (e, events) = assert_fails(&app, "fake: no_result stderr=it_broke exit=7", "CLAUDE_EXITED").await;
    assert_eq!(e["exitCode"], 7);
    assert!(e["error"]["message"].as_str().unwrap().contains("it broke"), "{e}");
    assert!(events.iter().any(|m| m["type"] == "stderr" && m["message"] == "it broke"), "stderr is in the log");

    let (e, _) = assert_fails(&app, "fake: error_result", "CLAUDE_ERROR").await;
    assert!(e["error"]["message"].as_str().unwrap().contains("API Error: 500"));
    assert_fails(&app, "fake: fixture=error_500", "CLAUDE_ERROR").await;
    let (e, _) = assert_fails(&app, "fake: max_turns", "MAX_TURNS").await;
    assert!(e["error"]["message"].as_str().unwrap().contains("maximum number of turns"));
    assert_fails(&app, "fake: fixture=max_turns_1", "MAX_TURNS").await;
    let (e, _) = assert_fails(&app, "fake: fixture=budget", "BUDGET_EXCEEDED").await;
    assert_eq!(e["costUsd"], 1.2000000000000002, "as the recording has it");

    // An exit code of 1 with a successful result is still a success.
    let (e, _) = run(&app, "fake: exit=1").await;
    assert_eq!((e["status"].as_str(), e["exitCode"].as_i64()), (Some("COMPLETED"), Some(1)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_unknown_lines_are_kept() {
    let app = spawn_app().await;
    let (e, events) = run(&app, "fake: garbage").await;
    assert_eq!(e["status"], "COMPLETED");
    let garbage = events.iter().find(|m| m["type"] == "invalid_json").expect("the garbage line is stored");
    assert_eq!(garbage["message"], "this line is not JSON {");
    assert_eq!(seqs(&events), (1..=seqs(&events).len() as i64).collect::<Vec<_>>());

    // Every recorded type passes through unchanged, known or not.
    for fixture in ["thinking", "tool_bash", "three_tools", "tool_write", "subagent_task"] {
        let (e, events) = run(&app, &format!("fake: fixture={fixture}")).await;
        assert_eq!(e["status"], "COMPLETED", "{fixture}");
        let recorded = std::fs::read_to_string(format!("tests/fixtures/{fixture}.jsonl")).unwrap();
        let recorded: Vec<Value> = recorded.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let got: Vec<&Value> = events
            .iter()
            .filter(|m| m["__typename"] == "MessageEvent" && m["type"] != "command_lifecycle")
            .map(|m| &m["message"])
            .collect();
        let first_result = recorded.iter().position(|l| l["type"] == "result").unwrap();
        assert_eq!(got.len(), first_result + 1, "{fixture}");
        for (got, want) in got.iter().zip(&recorded) {
            assert_eq!(got["type"], want["type"], "{fixture}");
            assert_eq!(got["uuid"], want["uuid"], "{fixture}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lines_work_up_to_the_cap() {
    let app = spawn_with(Db::Sqlite, |c| c.max_line_bytes = 4 * 1024 * 1024).await.unwrap();
    let (e, events) = run(&app, "fake: huge=3000000").await;
    assert_eq!(e["status"], "COMPLETED");
    let big = events.iter().find(|m| m["type"] == "assistant").unwrap();
    assert_eq!(big["message"]["message"]["content"][0]["text"].as_str().unwrap().len(), 3_000_000);

    let (e, _) = assert_fails(&app, "fake: huge=5000000", "LINE_TOO_LONG").await;
    assert!(e["error"]["message"].as_str().unwrap().contains("4194304"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_time_limit_fails_with_timeout() {
    let app = spawn_with(Db::Sqlite, |c| c.execution_timeout = Duration::from_millis(700)).await.unwrap();
    let (workspace, dir) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    let events = app.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["error"]["code"], "TIMEOUT");
    // The interrupt ended the turn cleanly: its output is stored.
    assert!(events.iter().any(|m| m["subtype"] == "error_during_execution"));
    let pid = app.fake_log(&dir)[0]["pid"].as_u64().unwrap() as u32;
    assert!(!crate::helpers::process_alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_claude_fails_the_run_and_the_server_stays_up() {
    let app = spawn_with(Db::Sqlite, |c| c.claude_bin = "/nonexistent/claude".into()).await.unwrap();
    let (e, events) = assert_fails(&app, "hello", "SPAWN_FAILED").await;
    assert!(e["error"]["message"].as_str().unwrap().contains("/nonexistent/claude"));
    assert!(events.iter().all(|e| e["__typename"] != "MessageEvent"), "{events:?}");
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(health.status().is_success());
    // The session is free again.
    let (workspace, _) = app.workspace().await;
    let (first, session) = app.start(json!({ "workspaceId": workspace, "prompt": "again" })).await;
    app.wait_finished(&first).await;
    let (second, _) = app.start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "and again" })).await;
    assert_eq!(app.wait_finished(&second).await["error"]["code"], "SPAWN_FAILED");
}
