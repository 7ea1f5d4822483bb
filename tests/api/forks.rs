//! Forking a session: a new session continues a copy of the conversation
//! (`--resume … --fork-session`), and the original stays as it is.

use serde_json::{json, Value};

use crate::{
    auth::{as_user, code, secured, token_for},
    helpers::TestApp,
    on_every_db,
};

const START: &str = "mutation($input: StartExecutionInput!) {
    startExecution(input: $input) { execution { id } session { id forkedFrom { id } } } }";

on_every_db!(a_fork_continues_a_copy_of_the_conversation);

async fn a_fork_continues_a_copy_of_the_conversation(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let (first, session) = app.start(json!({ "workspaceId": workspace, "prompt": "first" })).await;
    let original = app.wait_finished(&first).await["session"]["claudeSessionId"].as_str().unwrap().to_owned();

    let forked = app
        .ok(START, json!({ "input": { "workspaceId": workspace, "forkSessionId": session, "prompt": "other way" } }))
        .await;
    let fork = forked["startExecution"]["session"]["id"].as_str().unwrap().to_owned();
    assert_ne!(fork, session);
    assert_eq!(forked["startExecution"]["session"]["forkedFrom"]["id"], session.as_str());
    let run = app.wait_finished(forked["startExecution"]["execution"]["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "COMPLETED");
    // Claude gave the fork an id of its own; the original keeps its.
    let fork_claude = run["session"]["claudeSessionId"].as_str().unwrap().to_owned();
    assert_ne!(fork_claude, original);
    let argv: Vec<Value> =
        app.fake_log(&dir).iter().filter(|e| e["event"] == "start").map(|e| e["argv"].clone()).collect();
    let forked_argv: Vec<&str> = argv[1].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(forked_argv.windows(2).any(|w| w == ["--resume", original.as_str()]), "{forked_argv:?}");
    assert!(forked_argv.contains(&"--fork-session"));
    // Continuing the fork resumes the fork, without forking again.
    let (next, same) = app.start(json!({ "workspaceId": workspace, "sessionId": fork, "prompt": "go on" })).await;
    assert_eq!(same, fork);
    app.wait_finished(&next).await;
    let argv: Vec<Value> =
        app.fake_log(&dir).iter().filter(|e| e["event"] == "start").map(|e| e["argv"].clone()).collect();
    let continued: Vec<&str> = argv[2].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(continued.windows(2).any(|w| w == ["--resume", fork_claude.as_str()]), "{continued:?}");
    assert!(!continued.contains(&"--fork-session"));
    let original_now = app
        .ok("query($id: ID!) { session(id: $id) { claudeSessionId forkedFrom { id } } }", json!({ "id": session }))
        .await;
    assert_eq!(original_now["session"], json!({ "claudeSessionId": original, "forkedFrom": null }));

    // Bad forks.
    let (other_workspace, _) = app.workspace().await;
    let cases = [
        (
            json!({ "workspaceId": workspace, "sessionId": session, "forkSessionId": session, "prompt": "x" }),
            "BAD_USER_INPUT",
        ),
        (json!({ "workspaceId": other_workspace, "forkSessionId": session, "prompt": "x" }), "BAD_USER_INPUT"),
        (
            json!({ "workspaceId": workspace, "forkSessionId": uuid::Uuid::new_v4().to_string(), "prompt": "x" }),
            "NOT_FOUND",
        ),
        (json!({ "workspaceId": workspace, "forkSessionId": "not-an-id", "prompt": "x" }), "BAD_USER_INPUT"),
    ];
    for (input, wanted) in cases {
        let refused = app.gql(START, json!({ "input": input })).await;
        assert_eq!(code(&refused), wanted, "{input}: {refused}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_session_cannot_be_forked() {
    let app = secured(|_| {}).await;
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    let (alices, _) = app.workspace_of(&alice, "a").await;
    let started = as_user(&app, &alice, START, json!({ "input": { "workspaceId": alices, "prompt": "secret" } })).await;
    let session = started["data"]["startExecution"]["session"]["id"].as_str().unwrap().to_owned();
    let (bobs, _) = app.workspace_of(&bob, "b").await;
    let refused = as_user(
        &app,
        &bob,
        START,
        json!({ "input": { "workspaceId": bobs, "forkSessionId": session, "prompt": "x" } }),
    )
    .await;
    assert_eq!(code(&refused), "NOT_FOUND", "{refused}");
}
