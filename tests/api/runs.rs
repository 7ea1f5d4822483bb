//! Runs that go well: the stream, the store, sessions.

use serde_json::{json, Value};

use crate::{
    helpers::{final_status, seqs, TestApp},
    on_every_db,
};

on_every_db!(
    happy_path,
    late_and_early_subscribers_see_the_same_stream,
    resumed_session,
    partial_messages_are_live_only
);

async fn happy_path(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let (execution, session) =
        app.start(json!({ "workspaceId": workspace, "prompt": "Say hello", "maxTurns": 3 })).await;
    let events = app.events(&execution, 0).await.unwrap();

    let messages: Vec<&Value> = events.iter().filter(|e| e["__typename"] == "MessageEvent").collect();
    let types: Vec<&str> = messages.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"system") && types.contains(&"assistant") && types.contains(&"result"), "{types:?}");
    assert_eq!(seqs(&events), (1..=messages.len() as i64).collect::<Vec<_>>());
    assert!(messages.iter().all(|m| m["executionId"] == execution.as_str()));
    let init = messages.iter().find(|m| m["subtype"] == "init").unwrap();
    assert_eq!(init["message"]["cwd"], dir.display().to_string());
    assert_eq!(final_status(&events)["status"], "COMPLETED");
    assert!(events.iter().any(|e| e["__typename"] == "ProgressEvent" && e["progress"] == 1.0));

    let stored = app.execution(&execution).await;
    assert_eq!(stored["status"], "COMPLETED");
    assert_eq!(stored["messageCount"], messages.len());
    assert_eq!(stored["numTurns"], 1);
    assert_eq!(stored["costUsd"], 0.0123);
    assert_eq!(stored["exitCode"], 0);
    assert_eq!(stored["result"], "(fake claude) Done.");
    assert!(stored["error"].is_null());
    assert_eq!(stored["session"]["id"], session.as_str());
    assert_eq!(stored["session"]["claudeSessionId"], init["message"]["session_id"]);
    assert!(stored["startedAt"].is_string() && stored["finishedAt"].is_string());

    // sessionLogs reads the same stored lines.
    let logs = app
        .ok(
            "query($s: ID!) { sessionLogs(sessionId: $s) { seq executionSeq executionId type subtype payload } }",
            json!({ "s": session }),
        )
        .await;
    let logs = logs["sessionLogs"].as_array().unwrap();
    assert_eq!(logs.len(), messages.len());
    for (log, message) in logs.iter().zip(&messages) {
        assert_eq!(log["seq"], message["seq"]);
        assert_eq!(log["payload"], message["message"]);
        assert_eq!(log["type"], message["type"]);
    }

    // claude was started as SPEC says, with the prompt on stdin.
    let log = app.fake_log(&dir);
    assert_eq!(
        log[0]["argv"],
        json!([
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
            "--max-turns",
            "3"
        ])
    );
    let first_stdin: Value = serde_json::from_str(log[1]["line"].as_str().unwrap()).unwrap();
    assert_eq!(first_stdin["type"], "user");
    assert_eq!(first_stdin["message"], json!({ "role": "user", "content": "Say hello" }));
    assert!(uuid::Uuid::parse_str(first_stdin["uuid"].as_str().unwrap()).is_ok());
}

async fn late_and_early_subscribers_see_the_same_stream(app: TestApp) {
    let (workspace, _) = app.workspace().await;
    let (execution, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: messages=40 delay_ms=15" })).await;
    let early = tokio::spawn({
        let stream = app.subscribe(&execution, 0).await.unwrap();
        async move { futures_util::StreamExt::collect::<Vec<_>>(stream).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let during = app.events(&execution, 0).await.unwrap();
    let after = app.events(&execution, 0).await.unwrap();
    let early: Vec<Value> = early.await.unwrap().into_iter().map(Result::unwrap).collect();

    let payloads = |events: &[Value]| -> Vec<(i64, Value)> {
        events.iter().filter_map(|e| Some((e["seq"].as_i64()?, e["message"].clone()))).collect()
    };
    let early_seqs = seqs(&early);
    assert_eq!(early_seqs, (1..=early_seqs.len() as i64).collect::<Vec<_>>());
    // 2 lifecycle lines, init, 40 messages, the result, 1 lifecycle line.
    assert_eq!(early_seqs.len(), 45);
    assert_eq!(payloads(&early), payloads(&during));
    assert_eq!(payloads(&early), payloads(&after));
    for events in [&early, &during, &after] {
        assert_eq!(final_status(events)["status"], "COMPLETED");
    }

    // A subscriber that already has some resumes after them.
    let resumed = app.events(&execution, 10).await.unwrap();
    assert_eq!(seqs(&resumed), (11..=early_seqs.len() as i64).collect::<Vec<_>>());
}

async fn resumed_session(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let (first, session) = app.start(json!({ "workspaceId": workspace, "prompt": "first" })).await;
    let first = app.wait_finished(&first).await;
    let claude_session = first["session"]["claudeSessionId"].as_str().unwrap().to_owned();

    let (second, same_session) = app
        .start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "second", "model": "sonnet", "maxBudgetUsd": 0.5 }))
        .await;
    assert_eq!(same_session, session);
    let second = app.wait_finished(&second).await;
    assert_eq!(second["status"], "COMPLETED");
    // --resume keeps Claude's session id.
    assert_eq!(second["claudeSessionId"], claude_session.as_str());

    let log = app.fake_log(&dir);
    let starts: Vec<&Value> = log.iter().filter(|e| e["event"] == "start").collect();
    assert_eq!(starts.len(), 2);
    let argv: Vec<&str> = starts[1]["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(argv[6..], ["--resume", claude_session.as_str(), "--model", "sonnet", "--max-budget-usd", "0.5"]);
    let stdin: Vec<Value> = log
        .iter()
        .filter(|e| e["event"] == "stdin")
        .map(|e| serde_json::from_str(e["line"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        stdin.iter().filter(|l| l["type"] == "user").map(|l| l["message"]["content"].clone()).collect::<Vec<_>>(),
        ["first", "second"]
    );

    // sessionLogs pages across both executions with no gap.
    let total = first["messageCount"].as_i64().unwrap() + second["messageCount"].as_i64().unwrap();
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .ok(
                "query($s: ID!, $a: Int) { sessionLogs(sessionId: $s, limit: 3, afterSeq: $a) { seq executionId } }",
                json!({ "s": session, "a": after }),
            )
            .await;
        let page = page["sessionLogs"].as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap()["seq"].as_i64().unwrap();
        seen.extend(page);
    }
    assert_eq!(seen.iter().map(|l| l["seq"].as_i64().unwrap()).collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>());
    let session = app
        .ok(
            "query($s: ID!) { session(id: $s) { messageCount totalCostUsd executions { edges { node { id } } } } }",
            json!({ "s": session }),
        )
        .await;
    assert_eq!(session["session"]["messageCount"], total);
    assert_eq!(session["session"]["executions"]["edges"].as_array().unwrap().len(), 2);
    assert!((session["session"]["totalCostUsd"].as_f64().unwrap() - 0.0246).abs() < 1e-9);
}

async fn partial_messages_are_live_only(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let (execution, session) = app
        .start(json!({ "workspaceId": workspace, "prompt": "fake: messages=3 delay_ms=150", "includePartialMessages": true }))
        .await;
    let events = app.events(&execution, 0).await.unwrap();
    let partial: Vec<&Value> = events.iter().filter(|e| e["type"] == "stream_event").collect();
    assert!(!partial.is_empty(), "partial events arrive live");
    assert!(partial.iter().all(|e| e["seq"].is_null()));
    assert_eq!(seqs(&events), (1..=seqs(&events).len() as i64).collect::<Vec<_>>());
    assert!(app.fake_log(&dir)[0]["argv"].as_array().unwrap().contains(&json!("--include-partial-messages")));

    // Not stored: neither a late subscriber nor sessionLogs sees them.
    let replay = app.events(&execution, 0).await.unwrap();
    assert!(replay.iter().all(|e| e["type"] != "stream_event"));
    assert_eq!(seqs(&replay), seqs(&events));
    let logs = app.ok("query($s: ID!) { sessionLogs(sessionId: $s) { type } }", json!({ "s": session })).await;
    assert!(logs["sessionLogs"].as_array().unwrap().iter().all(|l| l["type"] != "stream_event"));
}
