//! Schedules: a cron pattern starts a prompt, in a new or the same
//! session; with two replicas, each occurrence starts once.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    auth::code,
    helpers::{spawn_with, Db, TestApp},
};

const CREATE: &str = "mutation($input: CreateScheduleInput!) {
    createSchedule(input: $input) { id enabled nextRunAt timezone options } }";
const EXECUTIONS: &str = "query($w: ID!) { executions(filter: {workspaceId: $w}, first: 100) {
    edges { node { id status metadata session { id } } } } }";

async fn executions(app: &TestApp, workspace: &str) -> Vec<Value> {
    let data = app.ok(EXECUTIONS, json!({ "w": workspace })).await;
    data["executions"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect()
}

async fn fast(db: Db) -> Option<TestApp> {
    spawn_with(db, |c| c.min_schedule_interval = Duration::from_secs(1)).await
}

async fn a_schedule_starts_its_prompt_at_each_occurrence(db: Db) {
    let Some(app) = fast(db).await else { return };
    let (workspace, _) = app.workspace().await;
    // Bad input names its field.
    for (input, field) in [
        (json!({ "cron": "0 9 * *" }), "cron"),
        (json!({ "cron": "0 9 * * *", "timezone": "Mars/Olympus" }), "timezone"),
        (json!({ "cron": "0 9 * * *", "prompt": " " }), "prompt"),
        (json!({ "cron": "0 9 * * *", "maxTurns": 0 }), "maxTurns"),
        (json!({ "cron": "0 9 * * *", "name": "" }), "name"),
    ] {
        let mut full = json!({ "workspaceId": workspace, "name": "n", "prompt": "p" });
        full.as_object_mut().unwrap().extend(input.as_object().unwrap().clone());
        let refused = app.gql(CREATE, json!({ "input": full })).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{full}: {refused}");
        assert_eq!(refused["errors"][0]["extensions"]["details"]["field"], field, "{refused}");
    }

    // Every second, in one session.
    let created = app
        .ok(
            CREATE,
            json!({ "input": { "workspaceId": workspace, "name": "tick", "cron": "* * * * * *", "prompt": "tick",
                "sameSession": true, "maxTurns": 3, "timezone": "Europe/Berlin" } }),
        )
        .await;
    let schedule = created["createSchedule"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["createSchedule"]["enabled"], true);
    assert_eq!(created["createSchedule"]["options"]["maxTurns"], 3);
    let runs = loop {
        let runs = executions(&app, &workspace).await;
        if runs.len() >= 3 {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let off = app
        .ok(
            "mutation($id: ID!) { setScheduleEnabled(id: $id, enabled: false) { enabled nextRunAt lastRunAt lastExecution { id } session { id } } }",
            json!({ "id": schedule }),
        )
        .await;
    assert_eq!(off["setScheduleEnabled"]["enabled"], false);
    assert!(off["setScheduleEnabled"]["nextRunAt"].is_null());
    assert!(off["setScheduleEnabled"]["lastExecution"]["id"].is_string());
    // One session, each run marked with its schedule and occurrence.
    let session = off["setScheduleEnabled"]["session"]["id"].as_str().unwrap();
    for run in &runs {
        assert_eq!(run["session"]["id"], session);
        assert_eq!(run["metadata"]["scheduleId"], schedule.as_str());
    }
    let mut occurrences: Vec<&str> = runs.iter().map(|r| r["metadata"]["occurrence"].as_str().unwrap()).collect();
    occurrences.sort();
    occurrences.dedup();
    assert_eq!(occurrences.len(), runs.len(), "one run per occurrence");

    // Off: nothing more starts.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = executions(&app, &workspace).await.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(executions(&app, &workspace).await.len(), after);

    // Deleted: gone from the list; its runs stay.
    app.ok("mutation($id: ID!) { deleteSchedule(id: $id) { deletedId } }", json!({ "id": schedule })).await;
    assert_eq!(app.ok("query { schedules { id } }", json!({})).await["schedules"], json!([]));
    assert_eq!(executions(&app, &workspace).await.len(), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_starts_its_prompt_at_each_occurrence_sqlite() {
    a_schedule_starts_its_prompt_at_each_occurrence(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_starts_its_prompt_at_each_occurrence_postgres() {
    a_schedule_starts_its_prompt_at_each_occurrence(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_interval_refuses_a_pattern_of_seconds() {
    let app = spawn_with(Db::Sqlite, |_| {}).await.unwrap();
    let (workspace, _) = app.workspace().await;
    let input = json!({ "workspaceId": workspace, "name": "n", "prompt": "p", "cron": "*/5 * * * * *" });
    let refused = app.gql(CREATE, json!({ "input": input })).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("at most every 1m"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_each_occurrence_starts_once() {
    let Some(a) = spawn_with(Db::Postgres, |c| {
        c.replica_id = Some("replica-a".into());
        c.min_schedule_interval = Duration::from_secs(1);
    })
    .await
    else {
        return;
    };
    let b = a.replica("replica-b").await;
    let (workspace, _) = a.workspace().await;
    let created = a
        .ok(
            CREATE,
            json!({ "input": { "workspaceId": workspace, "name": "n", "cron": "* * * * * *", "prompt": "hi" } }),
        )
        .await;
    let schedule = created["createSchedule"]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    b.ok("mutation($id: ID!) { setScheduleEnabled(id: $id, enabled: false) { id } }", json!({ "id": schedule })).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runs = executions(&a, &workspace).await;
    assert!(runs.len() >= 3, "{runs:?}");
    let mut occurrences: Vec<&str> = runs.iter().map(|r| r["metadata"]["occurrence"].as_str().unwrap()).collect();
    occurrences.sort();
    let all = occurrences.len();
    occurrences.dedup();
    assert_eq!(occurrences.len(), all, "an occurrence started twice: {runs:?}");
    // Each its own session.
    let mut sessions: Vec<&str> = runs.iter().map(|r| r["session"]["id"].as_str().unwrap()).collect();
    sessions.sort();
    sessions.dedup();
    assert_eq!(sessions.len(), all);
}
