//! Runs that hit a usage or rate limit are parked (SCHEDULED) until it
//! resets, hold the account's other runs meanwhile, and resume by
//! themselves, also after a restart.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    helpers::{final_status, seqs, spawn_with, Db, TestApp},
    on_every_db,
};

const PARKED: &str = "query($id: ID!) { execution(id: $id) {
    status resumeAt parkCount startedAt messageCount error { code } session { claudeSessionId } } }";

on_every_db!(a_run_at_its_usage_limit_is_parked_and_resumes_at_the_reset);

async fn parked(app: &TestApp, id: &str) -> Value {
    app.ok(PARKED, json!({ "id": id })).await["execution"].clone()
}

async fn wait_parked(app: &TestApp, id: &str) -> Value {
    for _ in 0..400 {
        let execution = parked(app, id).await;
        if execution["status"] == "SCHEDULED" {
            return execution;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{id} was not parked");
}

fn start_times(app: &TestApp, dir: &std::path::Path) -> Vec<chrono::DateTime<chrono::Utc>> {
    app.fake_log(dir).iter().filter(|e| e["event"] == "start").filter_map(|e| e["at"].as_str()?.parse().ok()).collect()
}

async fn a_run_at_its_usage_limit_is_parked_and_resumes_at_the_reset(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let (other_workspace, other_dir) = app.workspace().await;
    let (limited, session) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: fixture=usage_limit resets_in=3" })).await;
    let watched = app.subscribe(&limited, 0).await.unwrap();
    let watched = tokio::spawn(async move { futures_util::StreamExt::collect::<Vec<_>>(watched).await });

    let at_limit = wait_parked(&app, &limited).await;
    let resume_at: chrono::DateTime<chrono::Utc> = at_limit["resumeAt"].as_str().unwrap().parse().unwrap();
    let wait = resume_at - chrono::Utc::now();
    assert!(wait > chrono::TimeDelta::zero() && wait <= chrono::TimeDelta::seconds(3), "{at_limit}");
    assert_eq!(at_limit["parkCount"], 1);
    assert!(at_limit["error"].is_null());
    let claude_session = at_limit["session"]["claudeSessionId"].as_str().unwrap().to_owned();

    // Meanwhile another run of the account waits too, without starting.
    let (held, _) = app.start(json!({ "workspaceId": other_workspace, "prompt": "held back" })).await;
    let held_then = wait_parked(&app, &held).await;
    assert_eq!(held_then["resumeAt"], at_limit["resumeAt"]);
    assert!(held_then["startedAt"].is_null());
    assert!(app.fake_log(&other_dir).is_empty(), "it did not start");

    // At the reset both go on: the parked one resumes its session.
    let resumed = app.wait_finished(&limited).await;
    assert_eq!(resumed["status"], "COMPLETED", "{resumed}");
    let held_done = app.wait_finished(&held).await;
    assert_eq!(held_done["status"], "COMPLETED", "{held_done}");
    assert!(start_times(&app, &other_dir)[0] >= resume_at, "held until the reset");
    let starts = start_times(&app, &dir);
    assert_eq!(starts.len(), 2);
    assert!(starts[1] >= resume_at, "resumed at the reset, not before");
    assert_eq!(app.fake_prompts(&dir), ["fake: fixture=usage_limit resets_in=3", "continue"]);
    assert_eq!(app.fake_prompts(&other_dir), ["held back"]);
    let argv: Vec<Value> =
        app.fake_log(&dir).iter().filter(|e| e["event"] == "start").map(|e| e["argv"].clone()).collect();
    assert!(argv[1].as_array().unwrap().windows(2).any(|w| w[0] == "--resume" && w[1] == claude_session.as_str()));

    // One stream, no gap: SCHEDULED, RUNNING again, then the rest.
    let events: Vec<Value> = watched.await.unwrap().into_iter().map(Result::unwrap).collect();
    let statuses: Vec<&str> =
        events.iter().filter(|e| e["__typename"] == "StatusEvent").filter_map(|e| e["status"].as_str()).collect();
    // (The first RUNNING only reaches a subscriber that came before it.)
    assert!(statuses.ends_with(&["SCHEDULED", "RUNNING", "COMPLETED"]), "{statuses:?}");
    assert_eq!(seqs(&events), (1..=resumed["messageCount"].as_i64().unwrap()).collect::<Vec<_>>());
    let replayed = app.events(&limited, 0).await.unwrap();
    assert_eq!(seqs(&replayed), seqs(&events));
    let logs = app
        .ok("query($s: ID!) { sessionLogs(sessionId: $s, limit: 1000) { seq executionSeq } }", json!({ "s": session }))
        .await;
    let session_seqs: Vec<i64> =
        logs["sessionLogs"].as_array().unwrap().iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert_eq!(session_seqs, (1..=session_seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(session_seqs.len() as i64, resumed["messageCount"].as_i64().unwrap());

    // A parked run can be cancelled; its session is free again.
    let (again, _) = app
        .start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "fake: fixture=usage_limit resets_in=60" }))
        .await;
    wait_parked(&app, &again).await;
    let cancelled =
        app.ok("mutation($id: ID!) { cancelExecution(id: $id) { status resumeAt } }", json!({ "id": again })).await;
    assert_eq!(cancelled["cancelExecution"], json!({ "status": "CANCELLED", "resumeAt": null }));
    assert_eq!(final_status(&app.events(&again, 0).await.unwrap())["status"], "CANCELLED");
}

async fn a_parked_run_survives_a_restart(db: Db) {
    let Some(mut app) = spawn_with(db, |c| c.rate_limit_wait = Duration::from_secs(3600)).await else { return };
    let (workspace, dir) = app.workspace().await;
    let (limited, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: fixture=usage_limit resets_in=3" })).await;
    wait_parked(&app, &limited).await;
    app.stop().await;
    let app = app.restart().await;
    assert_eq!(parked(&app, &limited).await["status"], "SCHEDULED");
    let done = app.wait_finished(&limited).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(app.fake_prompts(&dir).last().map(String::as_str), Some("continue"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_run_survives_a_restart_sqlite() {
    a_parked_run_survives_a_restart(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_run_survives_a_restart_postgres() {
    a_parked_run_survives_a_restart(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_without_a_reset_time_waits_the_configured_time() {
    let app = spawn_with(Db::Sqlite, |c| c.rate_limit_wait = Duration::from_secs(2)).await.unwrap();
    let (workspace, dir) = app.workspace().await;
    // The recorded per-minute rate limit says nothing of when it resets.
    let (limited, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: fixture=rate_limit" })).await;
    let at_limit = wait_parked(&app, &limited).await;
    let resume_at: chrono::DateTime<chrono::Utc> = at_limit["resumeAt"].as_str().unwrap().parse().unwrap();
    let wait = resume_at - chrono::Utc::now();
    assert!(wait > chrono::TimeDelta::zero() && wait <= chrono::TimeDelta::seconds(2), "{at_limit}");
    assert_eq!(app.wait_finished(&limited).await["status"], "COMPLETED");
    assert_eq!(app.fake_prompts(&dir).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_parking_a_limited_run_fails() {
    let app = spawn_with(Db::Sqlite, |c| c.park_rate_limited = false).await.unwrap();
    let (workspace, _) = app.workspace().await;
    for prompt in ["fake: fixture=rate_limit", "fake: fixture=usage_limit resets_in=3"] {
        let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": prompt })).await;
        let done = app.wait_finished(&execution).await;
        assert_eq!((done["status"].as_str(), done["error"]["code"].as_str()), (Some("FAILED"), Some("RATE_LIMITED")));
        assert!(done["error"]["message"].as_str().unwrap().contains("429"), "{done}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_parked_on_one_replica_is_cancelled_through_another() {
    let Some(a) = spawn_with(Db::Postgres, |c| c.replica_id = Some("replica-a".into())).await else { return };
    let b = a.replica("replica-b").await;
    let (workspace, _) = a.workspace().await;
    let (limited, _) =
        a.start(json!({ "workspaceId": workspace, "prompt": "fake: fixture=usage_limit resets_in=60" })).await;
    wait_parked(&b, &limited).await;
    let asked = std::time::Instant::now();
    let cancelled = b.ok("mutation($id: ID!) { cancelExecution(id: $id) { status } }", json!({ "id": limited })).await;
    assert_eq!(cancelled["cancelExecution"]["status"], "CANCELLED");
    assert!(asked.elapsed() < Duration::from_secs(2), "no process to wait for");
}
