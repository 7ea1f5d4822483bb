//! A session's queue: starts on a busy session wait, survive restarts, run
//! in order with `--resume`, and can be cancelled while they wait.

use serde_json::{json, Value};

use crate::{
    auth::code,
    helpers::{final_status, spawn_with, Db, TestApp},
    on_every_db,
};

const START: &str = "mutation($input: StartExecutionInput!) {
    startExecution(input: $input) { execution { id status queuePosition } session { id } } }";
const CANCEL: &str = "mutation($id: ID!) { cancelExecution(id: $id) { status startedAt queuePosition } }";

on_every_db!(a_busy_session_queues_starts_and_runs_them_in_order, interrupt_if_busy_ends_the_running_turn);

async fn start(app: &TestApp, input: Value) -> Value {
    let data = app.ok(START, json!({ "input": input })).await;
    data["startExecution"]["execution"].clone()
}

async fn queue_position(app: &TestApp, id: &str) -> Value {
    app.ok("query($id: ID!) { execution(id: $id) { queuePosition } }", json!({ "id": id })).await["execution"]
        ["queuePosition"]
        .clone()
}

/// The argv of each start of the stand-in in `dir`, in order.
fn starts(app: &TestApp, dir: &std::path::Path) -> Vec<Vec<String>> {
    app.fake_log(dir)
        .iter()
        .filter(|e| e["event"] == "start")
        .map(|e| e["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect())
        .collect()
}

async fn a_busy_session_queues_starts_and_runs_them_in_order(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let (running, session) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    app.wait_status(&running, "RUNNING").await;
    let claude_session = loop {
        if let Some(id) = app.execution(&running).await["claudeSessionId"].as_str() {
            break id.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };

    let input = |prompt: &str| json!({ "workspaceId": workspace, "sessionId": session, "prompt": prompt });
    let second = start(&app, input("second")).await;
    let third = start(&app, input("third")).await;
    assert_eq!((second["status"].as_str(), second["queuePosition"].as_i64()), (Some("PENDING"), Some(1)));
    assert_eq!(third["queuePosition"], 2);
    let (second, third) = (second["id"].as_str().unwrap().to_owned(), third["id"].as_str().unwrap().to_owned());
    // Watched before it runs: still the whole stream.
    let early = app.subscribe(&second, 0).await.unwrap();
    let early = tokio::spawn(async move { futures_util::StreamExt::collect::<Vec<_>>(early).await });

    // Cancelled while it waits: it never runs, and the rest move up.
    let cancelled = app.ok(CANCEL, json!({ "id": second })).await["cancelExecution"].clone();
    assert_eq!(cancelled, json!({ "status": "CANCELLED", "startedAt": null, "queuePosition": null }));
    assert_eq!(queue_position(&app, &third).await, 1);
    let early: Vec<Value> = early.await.unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(final_status(&early)["status"], "CANCELLED");
    let fourth = start(&app, input("fourth")).await;
    assert_eq!(fourth["queuePosition"], 2);
    let fourth = fourth["id"].as_str().unwrap().to_owned();
    let (watched, watched_later) = (app.subscribe(&third, 0).await.unwrap(), app.subscribe(&fourth, 0).await.unwrap());
    let watched = tokio::spawn(async move { futures_util::StreamExt::collect::<Vec<_>>(watched).await });
    let watched_later = tokio::spawn(async move { futures_util::StreamExt::collect::<Vec<_>>(watched_later).await });

    // The running one ends: the queue runs, in order, each resuming the
    // session.
    app.ok("mutation($id: ID!) { interruptExecution(id: $id) { id } }", json!({ "id": running })).await;
    let third_done = app.wait_finished(&third).await;
    let fourth_done = app.wait_finished(&fourth).await;
    assert_eq!(third_done["status"], "COMPLETED", "{third_done}");
    assert_eq!(fourth_done["status"], "COMPLETED", "{fourth_done}");
    assert!(third_done["finishedAt"].as_str() <= fourth_done["startedAt"].as_str(), "one at a time, in order");
    assert_eq!(third_done["session"]["claudeSessionId"], claude_session.as_str());
    for events in [watched.await.unwrap(), watched_later.await.unwrap()] {
        let events: Vec<Value> = events.into_iter().map(Result::unwrap).collect();
        assert!(events.iter().any(|e| e["__typename"] == "StatusEvent" && e["status"] == "RUNNING"));
        assert_eq!(final_status(&events)["status"], "COMPLETED");
        assert_eq!(crate::helpers::seqs(&events).first(), Some(&1));
    }
    let argv = starts(&app, &dir);
    assert_eq!(argv.len(), 3, "the cancelled one never ran: {argv:?}");
    for later in &argv[1..] {
        let at = later.iter().position(|a| a == "--resume").expect("--resume");
        assert_eq!(later[at + 1], claude_session);
    }
    assert_eq!(app.fake_prompts(&dir), ["fake: hang", "third", "fourth"]);

    // REJECT keeps the old answer for clients that want it.
    let (busy, _) = app.start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "fake: hang" })).await;
    app.wait_status(&busy, "RUNNING").await;
    let mut rejected = input("not now");
    rejected["ifBusy"] = json!("REJECT");
    let refused = app.gql(START, json!({ "input": rejected })).await;
    assert_eq!(code(&refused), "SESSION_BUSY", "{refused}");
    app.ok(CANCEL, json!({ "id": busy })).await;
}

async fn interrupt_if_busy_ends_the_running_turn(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let (running, session) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    app.wait_status(&running, "RUNNING").await;
    let next = start(
        &app,
        json!({ "workspaceId": workspace, "sessionId": session, "prompt": "instead", "ifBusy": "INTERRUPT" }),
    )
    .await;
    let next = app.wait_finished(next["id"].as_str().unwrap()).await;
    assert_eq!(next["status"], "COMPLETED", "{next}");
    let interrupted = app.execution(&running).await;
    assert_eq!(interrupted["status"], "CANCELLED", "{interrupted}");
    assert!(interrupted["finishedAt"].as_str() <= next["startedAt"].as_str());
    assert_eq!(app.fake_prompts(&dir), ["fake: hang", "instead"]);
}

async fn a_queued_prompt_survives_a_restart(db: Db) {
    let Some(mut app) = spawn_with(db, |c| c.max_concurrent_executions = 1).await else { return };
    let (workspace, dir) = app.workspace().await;
    let (running, session) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    app.wait_status(&running, "RUNNING").await;
    let claude_session = loop {
        if let Some(id) = app.execution(&running).await["claudeSessionId"].as_str() {
            break id.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let queued = start(&app, json!({ "workspaceId": workspace, "sessionId": session, "prompt": "queued" })).await;
    let queued = queued["id"].as_str().unwrap().to_owned();
    // Another session's run waits for the one slot.
    let (waiting, _) = app.start(json!({ "workspaceId": workspace, "prompt": "waiting for a slot" })).await;
    assert_eq!(app.execution(&waiting).await["status"], "PENDING");

    app.stop().await;
    let app = app.restart().await;
    let interrupted = app.execution(&running).await;
    assert_eq!(interrupted["error"]["code"], "INTERRUPTED");
    for id in [&queued, &waiting] {
        let done = app.wait_finished(id).await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
    }
    let argv = starts(&app, &dir);
    assert_eq!(argv.len(), 3, "{argv:?}");
    let resumed = argv.iter().find(|a| a.contains(&"--resume".to_owned())).expect("the queued prompt resumed");
    assert!(resumed.contains(&claude_session));
    let mut ran = app.fake_prompts(&dir);
    ran.sort();
    assert_eq!(ran, ["fake: hang", "queued", "waiting for a slot"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_prompt_survives_a_restart_sqlite() {
    a_queued_prompt_survives_a_restart(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_prompt_survives_a_restart_postgres() {
    a_queued_prompt_survives_a_restart(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_queued_on_one_replica_runs_after_a_run_of_another() {
    let Some(a) = spawn_with(Db::Postgres, |c| c.replica_id = Some("replica-a".into())).await else { return };
    let b = a.replica("replica-b").await;
    let (workspace, dir) = a.workspace().await;
    let (running, session) = a.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    a.wait_status(&running, "RUNNING").await;
    let queued = start(&b, json!({ "workspaceId": workspace, "sessionId": session, "prompt": "from b" })).await;
    assert_eq!(queued["queuePosition"], 1);
    let queued = queued["id"].as_str().unwrap().to_owned();
    let watched = b.events(&queued, 0);
    b.ok("mutation($id: ID!) { interruptExecution(id: $id) { id } }", json!({ "id": running })).await;
    let events = watched.await.unwrap();
    assert_eq!(final_status(&events)["status"], "COMPLETED");
    assert_eq!(a.fake_prompts(&dir), ["fake: hang", "from b"]);

    // The database itself holds one running execution per session.
    use sea_orm::{ConnectionTrait, Statement};
    let (second, _) = a.start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "fake: hang" })).await;
    a.wait_status(&second, "RUNNING").await;
    let db = claude_graphql::db::connect(&a.database_url).await.unwrap();
    let forced = db
        .execute(Statement::from_sql_and_values(
            db.get_database_backend(),
            "UPDATE execution SET status = 'RUNNING' WHERE id = $1",
            [uuid::Uuid::parse_str(&queued).unwrap().into()],
        ))
        .await;
    assert!(forced.is_err(), "a second RUNNING execution in one session was stored");
    a.ok(CANCEL, json!({ "id": second })).await;
}
