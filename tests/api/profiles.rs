//! Agent profiles: named start options that a start names, overridden by
//! what the start gives, the workspace's shadowing the user's.

use serde_json::{json, Value};

use crate::{
    auth::{as_user, code, secured, token_for},
    helpers::TestApp,
    on_every_db,
};

const CREATE: &str = "mutation($input: CreateAgentProfileInput!) {
    createAgentProfile(input: $input) { id name options workspace { id } } }";
const START: &str = "mutation($input: StartExecutionInput!) { startExecution(input: $input) { execution { id } } }";

on_every_db!(a_start_names_a_profile);

/// The argv of the stand-in's last start in `dir`.
fn last_argv(app: &TestApp, dir: &std::path::Path) -> Vec<String> {
    let log = app.fake_log(dir);
    let start = log.iter().rfind(|e| e["event"] == "start").expect("a start");
    start["argv"].as_array().unwrap().iter().filter_map(Value::as_str).map(str::to_owned).collect()
}

fn flag<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
    argv.iter().position(|a| a == name).map(|i| argv[i + 1].as_str())
}

async fn a_start_names_a_profile(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let reviewer = app
        .ok(
            CREATE,
            json!({ "input": { "name": "reviewer", "model": "opus", "maxTurns": 4, "systemPrompt": "You review.",
            "allowedTools": ["Read"] } }),
        )
        .await;
    assert_eq!(reviewer["createAgentProfile"]["options"]["model"], "opus");
    // The same name again is refused; bad options are refused as a start's.
    let again = app.gql(CREATE, json!({ "input": { "name": "reviewer" } })).await;
    assert_eq!(code(&again), "BAD_USER_INPUT", "{again}");
    assert_eq!(again["errors"][0]["extensions"]["details"]["field"], "name");
    for (input, field) in [
        (json!({ "name": "bad", "maxTurns": 0 }), "maxTurns"),
        (json!({ "name": "bad", "model": "--evil" }), "model"),
        (json!({ "name": "bad", "permissionMode": "bypassPermissions" }), "permissionMode"),
        (json!({ "name": "" }), "name"),
    ] {
        let refused = app.gql(CREATE, json!({ "input": input })).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{input}: {refused}");
        assert_eq!(refused["errors"][0]["extensions"]["details"]["field"], field);
    }

    // A start with the profile gets its options; what the start gives wins.
    let started = app
        .ok(
            START,
            json!({ "input": { "workspaceId": workspace, "prompt": "look", "profile": "reviewer",
        "maxTurns": 2 } }),
        )
        .await;
    app.wait_finished(started["startExecution"]["execution"]["id"].as_str().unwrap()).await;
    let argv = last_argv(&app, &dir);
    assert_eq!(flag(&argv, "--model"), Some("opus"));
    assert_eq!(flag(&argv, "--system-prompt"), Some("You review."));
    assert_eq!(flag(&argv, "--allowedTools"), Some("Read"));
    assert_eq!(flag(&argv, "--max-turns"), Some("2"));

    // The workspace's profile of the same name shadows the user's.
    app.ok(CREATE, json!({ "input": { "name": "reviewer", "workspaceId": workspace, "model": "haiku" } })).await;
    let started =
        app.ok(START, json!({ "input": { "workspaceId": workspace, "prompt": "look", "profile": "reviewer" } })).await;
    app.wait_finished(started["startExecution"]["execution"]["id"].as_str().unwrap()).await;
    let argv = last_argv(&app, &dir);
    assert_eq!(flag(&argv, "--model"), Some("haiku"));
    assert_eq!(flag(&argv, "--system-prompt"), None);
    let listed = app
        .ok("query($w: ID!) { agentProfiles(workspaceId: $w) { name workspace { id } } }", json!({ "w": workspace }))
        .await;
    assert_eq!(listed["agentProfiles"].as_array().unwrap().len(), 2);

    // An unknown name is refused, and starts nothing.
    let refused =
        app.gql(START, json!({ "input": { "workspaceId": workspace, "prompt": "x", "profile": "nobody" } })).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT");
    assert_eq!(refused["errors"][0]["extensions"]["details"]["field"], "profile");

    // Deleted, it is gone.
    let id = reviewer["createAgentProfile"]["id"].as_str().unwrap();
    app.ok("mutation($id: ID!) { deleteAgentProfile(id: $id) { deletedId } }", json!({ "id": id })).await;
    let gone = app.gql("mutation($id: ID!) { deleteAgentProfile(id: $id) { deletedId } }", json!({ "id": id })).await;
    assert_eq!(code(&gone), "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_are_their_owners_alone() {
    let app = secured(|_| {}).await;
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    as_user(&app, &alice, CREATE, json!({ "input": { "name": "secret", "model": "opus" } })).await;
    let (bobs, _) = app.workspace_of(&bob, "b").await;
    let seen = as_user(&app, &bob, "query { agentProfiles { name } }", json!({})).await;
    assert_eq!(seen["data"]["agentProfiles"], json!([]));
    let refused =
        as_user(&app, &bob, START, json!({ "input": { "workspaceId": bobs, "prompt": "x", "profile": "secret" } }))
            .await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    // Bob may use the same name for his own.
    let own = as_user(&app, &bob, CREATE, json!({ "input": { "name": "secret" } })).await;
    assert!(own.get("errors").is_none(), "{own}");
}
