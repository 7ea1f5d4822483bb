//! `dashboardEvents`: every change of all of a user's executions, resumed
//! from a cursor with nothing missed, and their progress live.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};

use crate::{
    helpers::{spawn_app_on, Db, TestApp},
    on_every_db,
};

on_every_db!(a_dashboard_follows_every_run_and_resumes_without_a_gap);

const DASHBOARD: &str = "subscription($w: ID, $after: String) { dashboardEvents(workspaceId: $w, after: $after) {
    __typename
    ... on ExecutionUpdate { cursor execution { id status stalledSince workspace { id } }
        pendingPermissionRequests { id toolName kind } }
    ... on ProgressEvent { executionId messageCount }
} }";

type Events = std::pin::Pin<Box<dyn Stream<Item = anyhow::Result<Value>> + Send>>;

async fn dashboard(app: &TestApp, workspace: Option<&str>, after: Option<&str>) -> Events {
    let stream = app.subscription(DASHBOARD, json!({ "w": workspace, "after": after }), "dashboardEvents").await;
    Box::pin(stream.unwrap())
}

/// Reads events until `done` holds for one; returns them all.
async fn until(events: &mut Events, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(20), events.next()).await;
        let event = next.expect("the awaited event comes").expect("the stream stays open").unwrap();
        let last = done(&event);
        seen.push(event);
        if last {
            return seen;
        }
    }
}

fn update_of<'a>(event: &'a Value, id: &str, status: &str) -> Option<&'a Value> {
    (event["__typename"] == "ExecutionUpdate"
        && event["execution"]["id"] == id
        && event["execution"]["status"] == status)
        .then_some(event)
}

fn last_cursor(events: &[Value]) -> String {
    events.iter().rev().find_map(|e| e["cursor"].as_str()).expect("an update").to_owned()
}

async fn a_dashboard_follows_every_run_and_resumes_without_a_gap(app: TestApp) {
    let (workspace, _) = app.workspace().await;
    let (other_workspace, _) = app.workspace().await;
    let (hanging, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    app.wait_status(&hanging, "RUNNING").await;
    let (done, _) = app.start(json!({ "workspaceId": workspace, "prompt": "done before" })).await;
    app.wait_finished(&done).await;

    // It starts with what is pending or running now, and nothing finished.
    let mut events = dashboard(&app, None, None).await;
    let first = until(&mut events, |e| update_of(e, &hanging, "RUNNING").is_some()).await;
    assert!(first.iter().all(|e| e["execution"]["id"] != done.as_str()), "{first:?}");

    // A run asks for a permission, is answered, and finishes: each step
    // shows, with the request waiting and then not.
    let (asking, _) = app
        .start(json!({ "workspaceId": other_workspace, "prompt": "fake: ask=Bash messages=20 delay_ms=30",
                       "requireApproval": true }))
        .await;
    let asked = until(&mut events, |e| {
        e["execution"]["id"] == asking.as_str()
            && e["pendingPermissionRequests"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    let request = asked.last().unwrap()["pendingPermissionRequests"][0].clone();
    assert_eq!((&request["toolName"], &request["kind"]), (&json!("Bash"), &json!("TOOL_USE")));
    app.ok(
        "mutation($id: ID!) { answerPermissionRequest(id: $id, decision: ALLOW) { id } }",
        json!({ "id": request["id"] }),
    )
    .await;
    let finished = until(&mut events, |e| update_of(e, &asking, "COMPLETED").is_some()).await;
    assert!(
        finished.iter().any(|e| e["execution"]["id"] == asking.as_str() && e["pendingPermissionRequests"] == json!([])),
        "the answered request no longer waits: {finished:?}"
    );
    assert!(finished.iter().any(|e| e["__typename"] == "ProgressEvent" && e["executionId"] == asking.as_str()));
    let cursor = last_cursor(&finished);
    drop(events);

    // While nobody watches: one run is cancelled, another runs start to end.
    app.ok("mutation($id: ID!) { cancelExecution(id: $id) { id } }", json!({ "id": hanging })).await;
    app.wait_finished(&hanging).await;
    let (missed, _) = app.start(json!({ "workspaceId": workspace, "prompt": "while away" })).await;
    app.wait_finished(&missed).await;

    // Resuming from the cursor brings exactly those changes, in order, each
    // execution as it is now.
    let mut events = dashboard(&app, None, Some(&cursor)).await;
    let resumed = until(&mut events, |e| update_of(e, &missed, "COMPLETED").is_some()).await;
    let updates: Vec<(&Value, &Value)> =
        resumed.iter().map(|e| (&e["execution"]["id"], &e["execution"]["status"])).collect();
    assert_eq!(
        updates,
        [(&json!(hanging), &json!("CANCELLED")), (&json!(missed), &json!("COMPLETED")),],
        "{resumed:?}"
    );
    drop(events);

    // One workspace only.
    let mut events = dashboard(&app, Some(&other_workspace), Some(&cursor)).await;
    let (elsewhere, _) = app.start(json!({ "workspaceId": workspace, "prompt": "not shown" })).await;
    let (here, _) = app.start(json!({ "workspaceId": other_workspace, "prompt": "shown" })).await;
    let seen = until(&mut events, |e| update_of(e, &here, "COMPLETED").is_some()).await;
    let updates = seen.iter().filter(|e| e["__typename"] == "ExecutionUpdate");
    assert!(updates.clone().all(|e| e["execution"]["workspace"]["id"] == other_workspace.as_str()), "{seen:?}");
    assert!(seen.iter().all(|e| e["execution"]["id"] != elsewhere.as_str() && e["executionId"] != elsewhere.as_str()));
    app.wait_finished(&elsewhere).await;

    // Bad cursors and workspaces that are not yours are refused.
    let unknown = uuid::Uuid::now_v7().to_string();
    for (workspace, after, expected) in [
        (None, Some("bm9wZQ"), "BAD_USER_INPUT"),
        (None, Some("!!"), "BAD_USER_INPUT"),
        (Some("nope"), None, "BAD_USER_INPUT"),
        (Some(unknown.as_str()), None, "NOT_FOUND"),
    ] {
        let mut events = dashboard(&app, workspace, after).await;
        let error = events.next().await.unwrap().unwrap_err().to_string();
        assert!(error.contains(expected), "{workspace:?} {after:?}: {error}");
    }
}

/// With replicas on one PostgreSQL database, a dashboard on one sees the
/// runs of the other, as they change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_sees_runs_on_other_replicas() {
    let Some(a) = spawn_app_on(Db::Postgres).await else { return };
    let b = a.replica("replica-b").await;
    let (workspace, _) = a.workspace().await;
    let mut events = dashboard(&b, None, None).await;
    // The first read is done once the stream answers anything; give it a
    // moment to join before the run starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (execution, _) = a.start(json!({ "workspaceId": workspace, "prompt": "on replica a" })).await;
    let started = std::time::Instant::now();
    let seen = until(&mut events, |e| update_of(e, &execution, "COMPLETED").is_some()).await;
    assert!(seen
        .iter()
        .any(|e| update_of(e, &execution, "PENDING").is_some() || update_of(e, &execution, "RUNNING").is_some()));
    assert!(started.elapsed() < Duration::from_secs(10));
}
