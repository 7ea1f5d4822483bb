//! Cancelling, closing, queueing, shutting down and restarting.

use std::time::Duration;

use serde_json::json;

use crate::{
    helpers::{final_status, process_alive, spawn_with, Db, TestApp},
    on_every_db,
};

fn pid_of(app: &TestApp, dir: &std::path::Path) -> u32 {
    app.fake_log(dir).iter().find(|e| e["event"] == "start").expect("claude started")["pid"].as_u64().unwrap() as u32
}

async fn wait_for_pid(app: &TestApp, dir: &std::path::Path) -> u32 {
    for _ in 0..200 {
        if app.fake_log(dir).iter().any(|e| e["event"] == "start") {
            return pid_of(app, dir);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("claude never started");
}

on_every_db!(cancel_stops_the_process, close_session_cancels_and_refuses);

async fn cancel_stops_the_process(app: TestApp) {
    // A cooperative claude: the interrupt ends the turn.
    let (workspace, dir) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    let pid = wait_for_pid(&app, &dir).await;
    app.wait_status(&execution, "RUNNING").await;
    let cancelled = app
        .ok("mutation($id: ID!) { cancelExecution(id: $id) { status error { code } } }", json!({ "id": execution }))
        .await;
    assert_eq!(cancelled["cancelExecution"]["status"], "CANCELLED");
    assert_eq!(cancelled["cancelExecution"]["error"]["code"], "CANCELLED");
    let events = app.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["status"], "CANCELLED");
    assert!(events.iter().any(|m| m["subtype"] == "error_during_execution"), "the interrupted turn's output is stored");
    assert!(!process_alive(pid));
    let stdin: Vec<String> = app
        .fake_log(&dir)
        .iter()
        .filter(|e| e["event"] == "stdin")
        .map(|e| e["line"].as_str().unwrap().to_owned())
        .collect();
    assert!(stdin.iter().any(|l| l.contains("\"subtype\":\"interrupt\"")), "{stdin:?}");

    // A stubborn one: no answer to the interrupt, SIGTERM ignored.
    let (workspace, dir) = app.workspace().await;
    let (execution, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang ignore_interrupt ignore_term" })).await;
    let pid = wait_for_pid(&app, &dir).await;
    app.wait_status(&execution, "RUNNING").await;
    let cancelled =
        app.ok("mutation($id: ID!) { cancelExecution(id: $id) { status } }", json!({ "id": execution })).await;
    assert_eq!(cancelled["cancelExecution"]["status"], "CANCELLED");
    assert!(!process_alive(pid), "SIGKILL ended it");

    // Cancelling a finished run changes nothing.
    let again = app.ok("mutation($id: ID!) { cancelExecution(id: $id) { status } }", json!({ "id": execution })).await;
    assert_eq!(again["cancelExecution"]["status"], "CANCELLED");
}

async fn close_session_cancels_and_refuses(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let (execution, session) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    let pid = wait_for_pid(&app, &dir).await;

    // One execution at a time per session: refused when asked to be.
    let busy = app
        .gql(
            "mutation($i: StartExecutionInput!) { startExecution(input: $i) { execution { id } } }",
            json!({ "i": { "workspaceId": workspace, "sessionId": session, "prompt": "more", "ifBusy": "REJECT" } }),
        )
        .await;
    assert_eq!(busy["errors"][0]["extensions"]["code"], "SESSION_BUSY");
    // Else queued, and cancelled with the session.
    let (queued, _) = app.start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "queued" })).await;

    let closed = app.ok("mutation($id: ID!) { closeSession(id: $id) { status } }", json!({ "id": session })).await;
    assert_eq!(closed["closeSession"]["status"], "CLOSED");
    assert_eq!(app.wait_finished(&execution).await["status"], "CANCELLED");
    let queued = app.wait_finished(&queued).await;
    assert_eq!((queued["status"].as_str(), queued["startedAt"].as_str()), (Some("CANCELLED"), None));
    assert!(!process_alive(pid));

    let refused = app
        .gql(
            "mutation($i: StartExecutionInput!) { startExecution(input: $i) { execution { id } } }",
            json!({ "i": { "workspaceId": workspace, "sessionId": session, "prompt": "more" } }),
        )
        .await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "SESSION_CLOSED");
    let sessions = app
        .ok("query($w: ID!) { active: sessions(workspaceId: $w, status: ACTIVE) { edges { node { id } } } closed: sessions(workspaceId: $w, status: CLOSED) { edges { node { id } } } }", json!({ "w": workspace }))
        .await;
    assert_eq!(sessions["active"]["edges"].as_array().unwrap().len(), 0);
    assert_eq!(sessions["closed"]["edges"][0]["node"]["id"], session.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_runs_wait_as_pending_and_start_in_order() {
    let app = spawn_with(Db::Sqlite, |c| c.max_concurrent_executions = 1).await.unwrap();
    let (workspace, dir) = app.workspace().await;
    let (blocker, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    wait_for_pid(&app, &dir).await;
    let (second, _) = app.start(json!({ "workspaceId": workspace, "prompt": "second" })).await;
    let (third, _) = app.start(json!({ "workspaceId": workspace, "prompt": "third" })).await;
    assert_eq!(app.execution(&second).await["status"], "PENDING");

    // Subscribed before it started: still the whole stream.
    let early = app.subscribe(&second, 0).await.unwrap();
    let early = tokio::spawn(async move { futures_util::StreamExt::collect::<Vec<_>>(early).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.execution(&third).await["status"], "PENDING");
    app.ok("mutation($id: ID!) { cancelExecution(id: $id) { status } }", json!({ "id": blocker })).await;

    let second_done = app.wait_finished(&second).await;
    let third_done = app.wait_finished(&third).await;
    assert_eq!((second_done["status"].as_str(), third_done["status"].as_str()), (Some("COMPLETED"), Some("COMPLETED")));
    assert!(second_done["startedAt"].as_str() <= third_done["startedAt"].as_str(), "started in order");
    let early: Vec<_> = early.await.unwrap().into_iter().map(Result::unwrap).collect();
    assert!(early.iter().any(|e| e["__typename"] == "StatusEvent" && e["status"] == "RUNNING"));
    assert_eq!(final_status(&early)["status"], "COMPLETED");
    assert_eq!(crate::helpers::seqs(&early).len() as i64, second_done["messageCount"].as_i64().unwrap());

    // A pending run can be cancelled before it ever starts.
    let (blocker, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    app.wait_status(&blocker, "RUNNING").await;
    let (queued, _) = app.start(json!({ "workspaceId": workspace, "prompt": "never" })).await;
    let cancelled =
        app.ok("mutation($id: ID!) { cancelExecution(id: $id) { status startedAt } }", json!({ "id": queued })).await;
    assert_eq!(cancelled["cancelExecution"]["status"], "CANCELLED");
    assert!(cancelled["cancelExecution"]["startedAt"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_interrupts_runs_and_a_restart_recovers() {
    let mut app = spawn_with(Db::Sqlite, |_| {}).await.unwrap();
    let (workspace, dir) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    let pid = wait_for_pid(&app, &dir).await;
    app.wait_status(&execution, "RUNNING").await;
    app.stop().await;
    assert!(!process_alive(pid), "no claude outlives the server");

    let app = app.restart().await;
    let execution = app.execution(&execution).await;
    assert_eq!(execution["status"], "FAILED");
    assert_eq!(execution["error"]["code"], "INTERRUPTED");
    // Its session is usable again.
    let session = execution["session"]["id"].as_str().unwrap();
    let (next, _) = app.start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "hello again" })).await;
    assert_eq!(app.wait_finished(&next).await["status"], "COMPLETED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_left_running_by_a_crashed_server_are_marked_interrupted() {
    use sea_orm::{ConnectionTrait, Statement};
    let mut app = spawn_with(Db::Sqlite, |_| {}).await.unwrap();
    let (workspace, _) = app.workspace().await;
    let (execution, session) = app.start(json!({ "workspaceId": workspace, "prompt": "hello" })).await;
    app.wait_finished(&execution).await;
    app.stop().await;

    // What a server that died mid-run leaves behind.
    let db = claude_graphql::db::connect(&app.database_url).await.unwrap();
    let backend = db.get_database_backend();
    let id = uuid::Uuid::parse_str(&execution).unwrap();
    let session_id = uuid::Uuid::parse_str(&session).unwrap();
    db.execute(Statement::from_sql_and_values(
        backend,
        "UPDATE execution SET status = 'RUNNING', finished_at = NULL WHERE id = $1",
        [id.into()],
    ))
    .await
    .unwrap();
    db.execute(Statement::from_sql_and_values(
        backend,
        "UPDATE session SET active_execution_id = $1 WHERE id = $2",
        [id.into(), session_id.into()],
    ))
    .await
    .unwrap();
    // And a prompt queued behind that run.
    let queued = uuid::Uuid::now_v7();
    let new = claude_graphql::db::executions::NewExecution {
        id: queued,
        session_id,
        workspace_id: uuid::Uuid::parse_str(&workspace).unwrap(),
        prompt: "queued".into(),
        content: None,
        options: json!({}),
        metadata: None,
        resumed_from: None,
        replica_id: None,
    };
    claude_graphql::db::executions::create(&db, new).await.unwrap();
    db.close().await.unwrap();

    let app = app.restart().await;
    let recovered = app.execution(&execution).await;
    assert_eq!(
        (recovered["status"].as_str(), recovered["error"]["code"].as_str()),
        (Some("FAILED"), Some("INTERRUPTED"))
    );
    // The queued prompt runs once the session is free again.
    assert_eq!(app.wait_finished(&queued.to_string()).await["status"], "COMPLETED");
    let (next, _) = app.start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "again" })).await;
    assert_eq!(app.wait_finished(&next).await["status"], "COMPLETED");
}
