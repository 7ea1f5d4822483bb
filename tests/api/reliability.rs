//! A truthful record whatever fails: runs that end, servers that die,
//! children that linger.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::{
    helpers::{final_status, TestApp},
    on_every_db,
};

on_every_db!(permission_requests_are_settled_when_their_run_ends, out_of_range_positions_are_bad_input);

const PENDING: &str = "query($e: ID!) { pendingPermissionRequests(executionId: $e) { id } }";
const ANSWER: &str = "mutation($id: ID!) { answerPermissionRequest(id: $id, decision: ALLOW) { status } }";

/// Starts a `claude` that asks for a permission (and then never answers an
/// interrupt, so it never withdraws the request itself: only a signal ends
/// it), with approvals, and waits for its request.
async fn asked(app: &TestApp, workspace: &str) -> (String, String) {
    let prompt = "fake: ask=Bash ignore_interrupt";
    let (execution, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": prompt, "requireApproval": true })).await;
    for _ in 0..400 {
        let found = app.ok(PENDING, json!({ "e": execution })).await;
        if let Some(id) = found["pendingPermissionRequests"][0]["id"].as_str() {
            return (execution, id.to_owned());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no permission request");
}

async fn request_status(app: &TestApp, execution: &str) -> Vec<String> {
    let data = app
        .ok("query($e: ID!) { execution(id: $e) { permissionRequests { status } } }", json!({ "e": execution }))
        .await;
    data["execution"]["permissionRequests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect()
}

async fn permission_requests_are_settled_when_their_run_ends(app: TestApp) {
    let (workspace, _) = app.workspace().await;
    // Cancelled run: its request is cancelled, answers are refused, and a
    // subscriber sees it settled before the final status.
    let (execution, request) = asked(&app, &workspace).await;
    let mut events = Box::pin(app.subscribe(&execution, 0).await.unwrap());
    // Once the subscriber has the pending request, the run is cancelled.
    loop {
        let event = events.next().await.expect("the pending request").unwrap();
        if event["__typename"] == "PermissionRequestEvent" {
            assert_eq!(event["request"]["status"], "PENDING");
            break;
        }
    }
    app.ok("mutation($id: ID!) { cancelExecution(id: $id) { id } }", json!({ "id": execution })).await;
    app.wait_finished(&execution).await;
    assert_eq!(request_status(&app, &execution).await, ["CANCELLED"]);
    assert!(app.ok(PENDING, json!({ "e": execution })).await["pendingPermissionRequests"]
        .as_array()
        .unwrap()
        .is_empty());
    let late = app.gql(ANSWER, json!({ "id": request })).await;
    assert_eq!(late["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{late}");
    assert!(late["errors"][0]["message"].as_str().unwrap().contains("CANCELLED"), "{late}");
    let events: Vec<Value> = tokio::time::timeout(Duration::from_secs(20), events.map(Result::unwrap).collect())
        .await
        .expect("the subscription completes");
    let settled = events
        .iter()
        .rposition(|e| e["__typename"] == "PermissionRequestEvent" && e["request"]["status"] == "CANCELLED")
        .unwrap_or_else(|| panic!("a settled PermissionRequestEvent in {events:#?}"));
    assert!(settled < events.len() - 1);
    assert_eq!(final_status(&events)["status"], "CANCELLED");

    // A server that stops with a request pending: settled too, and stays so
    // after the restart.
    let (execution, request) = asked(&app, &workspace).await;
    let app = app.restart().await;
    assert_eq!(request_status(&app, &execution).await, ["CANCELLED"]);
    let late = app.gql(ANSWER, json!({ "id": request })).await;
    assert_eq!(late["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{late}");
}

async fn out_of_range_positions_are_bad_input(app: TestApp) {
    let (workspace, _) = app.workspace().await;
    let (execution, session) = app.start(json!({ "workspaceId": workspace, "prompt": "hi" })).await;
    app.wait_finished(&execution).await;
    let logs = app
        .gql("query($s: ID!) { sessionLogs(sessionId: $s, afterSeq: 2147483648) { seq } }", json!({ "s": session }))
        .await;
    assert_eq!(logs["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{logs}");
    let mut socket = crate::ws::acked_socket(&app).await;
    crate::ws::send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": crate::helpers::EVENTS_SUBSCRIPTION, "variables": { "id": execution, "after": 2147483648u64 } } }),
    )
    .await;
    // Refused before anything is delivered (the engine coerces arguments
    // as the field resolves, so it comes as the operation's only result).
    let refused = crate::ws::next(&mut socket).await;
    let errors = if refused["type"] == "error" { &refused["payload"] } else { &refused["payload"]["errors"] };
    assert_eq!(errors[0]["extensions"]["code"], "BAD_USER_INPUT", "{refused}");
    assert!(refused["payload"]["data"].is_null(), "{refused}");
}

/// The pids the stand-in left behind (`background=…`).
fn background_pids(app: &TestApp, dir: &std::path::Path) -> Vec<u32> {
    app.fake_log(dir)
        .iter()
        .filter(|e| e["event"] == "background")
        .filter_map(|e| e["pid"].as_u64())
        .map(|p| p as u32)
        .collect()
}

async fn gone(pid: u32) -> bool {
    for _ in 0..200 {
        if !crate::helpers::process_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_a_run_outlives_it() {
    let app = crate::helpers::spawn_app().await;
    let (workspace, dir) = app.workspace().await;
    for how in ["group", "escape"] {
        let (execution, _) =
            app.start(json!({ "workspaceId": workspace, "prompt": format!("fake: background={how}") })).await;
        assert_eq!(app.wait_finished(&execution).await["status"], "COMPLETED");
    }
    let pids = background_pids(&app, &dir);
    assert_eq!(pids.len(), 2);
    for pid in pids {
        assert!(gone(pid).await, "{pid} outlived its run");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_no_run_behind() {
    use crate::helpers::ServerProcess;
    let dir = tempfile::tempdir().unwrap();
    let alice = crate::auth::token_for("alice");
    let mut server = ServerProcess::start(dir.path());
    let (id, workspace) = server.workspace(&alice, "w").await;
    let started = server
        .gql(
            &alice,
            "mutation($w: ID!) { startExecution(input: {workspaceId: $w, prompt: \"fake: background=group hang\"}) { execution { id } } }",
            json!({ "w": id }),
        )
        .await;
    let execution = started["data"]["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    let log = |event: &str| -> Option<u32> {
        let text = std::fs::read_to_string(workspace.join(".fake-claude/log.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["event"] == event)
            .and_then(|e| e["pid"].as_u64())
            .map(|p| p as u32)
    };
    let mut pids = None;
    for _ in 0..400 {
        if let (Some(claude), Some(job)) = (log("start"), log("background")) {
            pids = Some((claude, job));
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (claude, job) = pids.expect("claude started and left a job");

    // SIGKILL: no shutdown code runs. claude goes with it (death signal);
    // its job, orphaned, stays until a server comes back.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(gone(claude).await, "claude outlived the server");
    assert!(crate::helpers::process_alive(job));
    let server = ServerProcess::start(dir.path());
    assert!(gone(job).await, "the restarted server killed what the dead one left");
    let found = server
        .gql(&alice, "query($id: ID!) { execution(id: $id) { status error { code } } }", json!({ "id": execution }))
        .await;
    assert_eq!(found["data"]["execution"]["status"], "FAILED", "{found}");
    assert_eq!(found["data"]["execution"]["error"]["code"], "INTERRUPTED");
}

on_every_db!(a_stopping_server_delivers_everything_then_says_goodbye);

/// Live subscribers of a server that stops gracefully get every stored
/// message, the terminal status, `complete`, and a 1001 close.
async fn a_stopping_server_delivers_everything_then_says_goodbye(mut app: TestApp) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let (workspace, _) = app.workspace().await;
    let (execution, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: messages=5000 size=300 delay_ms=1" })).await;
    let mut socket = crate::ws::acked_socket(&app).await;
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": crate::helpers::EVENTS_SUBSCRIPTION, "variables": { "id": execution, "after": 0 } } });
    socket.send(Message::text(subscribe.to_string())).await.unwrap();
    // Read everything, concurrently with the stop.
    let reader = tokio::spawn(async move {
        let mut frames = Vec::new();
        let mut close = None;
        while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
            match frame {
                Ok(Message::Text(text)) => frames.push(serde_json::from_str::<Value>(&text).unwrap()),
                Ok(Message::Close(frame)) => {
                    close = frame.map(|f| u16::from(f.code));
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        (frames, close)
    });
    // Well under way (however slow the machine is) before the stop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.execution(&execution).await["messageCount"].as_i64().unwrap_or(0) < 20 {
        assert!(tokio::time::Instant::now() < deadline, "the run never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
    let (frames, close) = reader.await.unwrap();
    assert_eq!(close, Some(1001), "a going-away close, not a cut connection");
    assert_eq!(frames.last().unwrap(), &json!({ "type": "complete", "id": "1" }));
    let events: Vec<&Value> =
        frames.iter().filter(|f| f["type"] == "next").map(|f| &f["payload"]["data"]["executionEvents"]).collect();
    let last = events.last().unwrap();
    assert_eq!((last["__typename"].as_str(), last["status"].as_str()), (Some("StatusEvent"), Some("FAILED")), "{last}");
    assert_eq!(last["error"]["code"], "INTERRUPTED");
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert!(seqs.len() > 10, "the run was well under way: {frames:?}");
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "every message, in order, once");
    // Exactly what was stored.
    let app = app.restart().await;
    assert_eq!(app.execution(&execution).await["messageCount"], seqs.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_of_a_gone_replica_are_finished_by_another() {
    use crate::helpers::ServerProcess;
    let dir = tempfile::tempdir().unwrap();
    let alice = crate::auth::token_for("alice");
    let mut first = ServerProcess::start_with(dir.path(), &[("REPLICA_ID", "first"), ("REPLICA_LEASE", "1s")]);
    let (id, _) = first.workspace(&alice, "w").await;
    let start = "mutation($w: ID!, $s: ID) { startExecution(input: {workspaceId: $w, sessionId: $s, prompt: \"fake: hang\"}) { execution { id status } session { id } } }";
    let started = first.gql(&alice, start, json!({ "w": id })).await;
    let execution = started["data"]["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    let session = started["data"]["startExecution"]["session"]["id"].as_str().unwrap().to_owned();
    let status = "query($id: ID!) { execution(id: $id) { status error { code } } }";
    for _ in 0..200 {
        if first.gql(&alice, status, json!({ "id": execution })).await["data"]["execution"]["status"] == "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The first server dies; a server with another id (a new container)
    // comes up on the same database.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let second = ServerProcess::start_with(dir.path(), &[("REPLICA_ID", "second"), ("REPLICA_LEASE", "1s")]);
    let mut finished = Value::Null;
    for _ in 0..200 {
        finished = second.gql(&alice, status, json!({ "id": execution })).await["data"]["execution"].clone();
        if finished["status"] != "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(finished["status"], "FAILED", "{finished}");
    assert_eq!(finished["error"]["code"], "INTERRUPTED");
    // Its session is free again.
    let again = second.gql(&alice, start, json!({ "w": id, "s": session })).await;
    assert!(again.get("errors").is_none(), "{again}");
}

async fn a_live_replicas_runs_are_its_own_to_finish(db: crate::helpers::Db) {
    use claude_graphql::db;
    let Some(app) = crate::helpers::spawn_with(db, |c| c.replica_lease = Duration::from_millis(600)).await else {
        return;
    };
    let (workspace, _) = app.workspace().await;
    // A run of another replica ("elsewhere"), alive and well.
    let conn = db::connect(&app.database_url).await.unwrap();
    let workspace_id: uuid::Uuid = workspace.parse().unwrap();
    let execution_id = uuid::Uuid::now_v7();
    let session = db::sessions::create(&conn, uuid::Uuid::now_v7(), workspace_id, execution_id, "a prompt", None, None)
        .await
        .unwrap();
    let new = db::executions::NewExecution {
        id: execution_id,
        session_id: session.id,
        workspace_id,
        prompt: "p".into(),
        content: None,
        options: json!({}),
        metadata: None,
        resumed_from: None,
        replica_id: Some("elsewhere".into()),
    };
    db::executions::create(&conn, new).await.unwrap();
    db::executions::mark_running(&conn, execution_id).await.unwrap();
    db::replicas::renew(&conn, "elsewhere", chrono::Utc::now() + chrono::Duration::hours(1)).await.unwrap();
    let id = execution_id.to_string();
    // A cancel here asks it to stop, but does not finish it behind its back.
    let cancelled = app.ok("mutation($id: ID!) { cancelExecution(id: $id) { status } }", json!({ "id": id })).await;
    assert_eq!(cancelled["cancelExecution"]["status"], "RUNNING");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.execution(&id).await["status"], "RUNNING", "a live replica's run is left to it");
    // Its lease runs out: this server finishes the run.
    db::replicas::renew(&conn, "elsewhere", chrono::Utc::now() - chrono::Duration::seconds(1)).await.unwrap();
    let finished = app.wait_finished(&id).await;
    assert_eq!(
        (finished["status"].as_str(), finished["error"]["code"].as_str()),
        (Some("FAILED"), Some("INTERRUPTED"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_replicas_runs_are_its_own_to_finish_sqlite() {
    a_live_replicas_runs_are_its_own_to_finish(crate::helpers::Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_replicas_runs_are_its_own_to_finish_postgres() {
    a_live_replicas_runs_are_its_own_to_finish(crate::helpers::Db::Postgres).await;
}

/// A directory on a tmpfs of `size`, unmounted when dropped; None (with a
/// note) where mounting is not allowed (not root).
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(SmallDisk(dir))
    }

    fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_nothing_that_was_delivered() {
    let Some(disk) = SmallDisk::mount("16m") else { return };
    let url = format!("sqlite://{}/full.db?mode=rwc", disk.path().display());
    let app =
        crate::helpers::spawn_with(crate::helpers::Db::Sqlite, |c| c.database_url = url.clone().into()).await.unwrap();
    let (workspace, _) = app.workspace().await;
    // Leave about 3 MiB free.
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 12 * 1024 * 1024]).unwrap();
    let (execution, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: messages=20000 size=400" })).await;
    let subscriber = {
        let stream = app.subscribe(&execution, 0).await.unwrap();
        tokio::spawn(tokio::time::timeout(Duration::from_secs(120), stream.collect::<Vec<_>>()))
    };
    // The store fills up: not ready, while the run is stopped.
    let mut unready = false;
    for _ in 0..300 {
        if app.http.get(app.url("/readyz")).send().await.unwrap().status() == 503 {
            unready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(unready, "not ready while the store takes no writes");
    // Its final state is stored too, unless the disk is so full that even
    // that fails; then it is stored once space is back.
    for _ in 0..100 {
        if app.execution(&execution).await["status"] != "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Space again: the server recovers by itself.
    std::fs::remove_file(&ballast).unwrap();
    let events: Vec<Value> =
        subscriber.await.unwrap().expect("the subscription completes").into_iter().map(Result::unwrap).collect();
    let delivered = crate::helpers::seqs(&events);
    let last = final_status(&events);
    assert_eq!(last["status"], "FAILED", "{last}");
    assert_eq!(last["error"]["code"], "STORAGE_FAILED", "its own code: {last}");
    // Nothing reached a subscriber that is not stored, in order, once.
    assert_eq!(delivered, (1..=delivered.len() as i64).collect::<Vec<_>>());
    let stored = app.execution(&execution).await;
    assert_eq!(stored["messageCount"].as_i64().unwrap(), delivered.len() as i64, "delivered = stored: {stored}");
    let replay = app.events(&execution, 0).await.unwrap();
    assert_eq!(crate::helpers::seqs(&replay), delivered, "a replay says the same");
    let (next, _) = app.start(json!({ "workspaceId": workspace, "prompt": "hi" })).await;
    assert_eq!(app.wait_finished(&next).await["status"], "COMPLETED");
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_reads_nothing_cannot_hold_up_its_cancel() {
    let app = crate::helpers::spawn_with(crate::helpers::Db::Sqlite, |c| c.cancel_grace = Duration::from_secs(3))
        .await
        .unwrap();
    let (workspace, _) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang deaf" })).await;
    app.wait_status(&execution, "RUNNING").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A follow-up larger than the pipe holds: its write cannot finish.
    let big = "x".repeat(1024 * 1024);
    let sender = {
        let (http, url, execution) = (app.http.clone(), app.url("/graphql"), execution.clone());
        tokio::spawn(async move {
            let query = "mutation($id: ID!, $t: String!) { sendMessage(executionId: $id, text: $t) { messageId } }";
            let body = json!({ "query": query, "variables": { "id": execution, "t": big } });
            http.post(url).json(&body).send().await.unwrap().json::<Value>().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    app.ok("mutation($id: ID!) { cancelExecution(id: $id) { id } }", json!({ "id": execution })).await;
    let finished = app.wait_finished(&execution).await;
    // One grace period (then SIGTERM), not one more for the stuck write.
    assert!(started.elapsed() < Duration::from_millis(4800), "the cancel took {:?}", started.elapsed());
    assert_eq!(finished["status"], "CANCELLED");
    let sent = sender.await.unwrap();
    assert_eq!(sent["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "the message was not written: {sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_run_shows_it_and_an_unheeded_interrupt_escalates() {
    use nix::sys::signal::{kill, Signal};
    let app = crate::helpers::spawn_with(crate::helpers::Db::Sqlite, |c| c.stall_after = Duration::from_millis(400))
        .await
        .unwrap();
    let (workspace, dir) = app.workspace().await;
    let (execution, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: messages=400 size=100 delay_ms=50" })).await;
    app.wait_status(&execution, "RUNNING").await;
    let mut events = Box::pin(app.subscribe(&execution, 0).await.unwrap());
    let claude = loop {
        if let Some(pid) = app.fake_log(&dir).iter().find(|e| e["event"] == "start").and_then(|e| e["pid"].as_u64()) {
            break nix::unistd::Pid::from_raw(pid as i32);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stalled = "query($id: ID!) { execution(id: $id) { stalledSince } }";
    assert!(app.ok(stalled, json!({ "id": execution })).await["execution"]["stalledSince"].is_null());

    // Stopped: after the threshold it is stalled, and subscribers hear so.
    kill(claude, Signal::SIGSTOP).unwrap();
    async fn until(events: &mut (impl futures_util::Stream<Item = anyhow::Result<Value>> + Unpin), stalled: bool) {
        loop {
            let e = tokio::time::timeout(Duration::from_secs(10), events.next()).await.unwrap().unwrap().unwrap();
            if e["__typename"] == "ProgressEvent" && e["stalledSince"].is_null() != stalled {
                return;
            }
        }
    }
    until(&mut events, true).await;
    assert!(app.ok(stalled, json!({ "id": execution })).await["execution"]["stalledSince"].is_string());
    // Continued: it writes again, and is no longer stalled.
    kill(claude, Signal::SIGCONT).unwrap();
    until(&mut events, false).await;
    assert!(app.ok(stalled, json!({ "id": execution })).await["execution"]["stalledSince"].is_null());

    // Stopped again, an interrupt cannot be heard: it becomes a cancel.
    kill(claude, Signal::SIGSTOP).unwrap();
    let started = std::time::Instant::now();
    app.ok("mutation($id: ID!) { interruptExecution(id: $id) { id } }", json!({ "id": execution })).await;
    let finished = app.wait_finished(&execution).await;
    assert_eq!(finished["status"], "CANCELLED", "{finished}");
    assert!(started.elapsed() < Duration::from_secs(5), "escalated after the grace period: {:?}", started.elapsed());
    assert!(!crate::helpers::process_alive(claude.as_raw() as u32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_follows_the_end_of_a_burst() {
    let app = crate::helpers::spawn_app().await;
    let (workspace, _) = app.workspace().await;
    // A burst of 200 lines, then two quiet seconds before the rest.
    let (execution, _) = app
        .start(json!({ "workspaceId": workspace, "prompt": "fake: messages=200 size=50 pause_at=150 pause_ms=2000" }))
        .await;
    let mut events = Box::pin(app.subscribe(&execution, 0).await.unwrap());
    let (mut last_seq, mut counted) = (0, false);
    loop {
        match tokio::time::timeout(Duration::from_millis(1000), events.next()).await {
            Ok(Some(e)) => {
                let e = e.unwrap();
                if let Some(seq) = e["seq"].as_i64() {
                    (last_seq, counted) = (seq, false);
                }
                if e["__typename"] == "ProgressEvent" && e["messageCount"] == last_seq {
                    counted = true;
                }
            }
            // The pause: by now a progress event has counted everything.
            Err(_) if last_seq > 100 => {
                assert!(counted, "no progress event after message {last_seq}");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_claude_bin_is_resolved_at_startup_and_a_missing_one_is_reported() {
    // The quick start's own form: a path relative to where the server runs.
    let cwd = std::env::current_dir().unwrap();
    let fake = std::path::Path::new(crate::helpers::FAKE_CLAUDE);
    let relative = pathdiff(fake, &cwd);
    assert!(relative.is_relative());
    let app =
        crate::helpers::spawn_with(crate::helpers::Db::Sqlite, |c| c.claude_bin = relative.clone()).await.unwrap();
    let (workspace, _) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "hi" })).await;
    assert_eq!(app.wait_finished(&execution).await["status"], "COMPLETED");
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let app = crate::helpers::spawn_with(crate::helpers::Db::Sqlite, |c| c.claude_bin = "no-such-claude".into())
        .await
        .unwrap();
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(body["claude"].as_str().unwrap().contains("no-such-claude"), "{body}");
}

/// `path` relative to `base` (both absolute).
fn pathdiff(path: &std::path::Path, base: &std::path::Path) -> std::path::PathBuf {
    let (path, base): (Vec<_>, Vec<_>) = (path.components().collect(), base.components().collect());
    let common = path.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut relative = std::path::PathBuf::new();
    for _ in common..base.len() {
        relative.push("..");
    }
    for part in &path[common..] {
        relative.push(part);
    }
    relative
}
