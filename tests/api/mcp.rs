//! MCP servers: per workspace and per start, passed to the CLI in a
//! private file with `--strict-mcp-config`, only from the operator's
//! allow-lists, their secrets never shown back, their status on the
//! execution.

use serde_json::{json, Value};

use crate::{
    auth::code,
    helpers::{spawn_with, Db, TestApp},
};

const UPDATE: &str = "mutation($id: ID!, $input: UpdateWorkspaceInput!) { updateWorkspace(id: $id, input: $input) {
    mcpServers { name command args envNames url transport headerNames } } }";
const START: &str = "mutation($input: StartExecutionInput!) { startExecution(input: $input) { execution { id } } }";

async fn app(db: Db) -> Option<TestApp> {
    spawn_with(db, |c| {
        c.mcp_stdio_commands = vec!["/bin/true".into(), "/nonexistent/mcp-server".into()];
        c.mcp_allowed_urls = vec!["https://mcp.example.com/".into(), "https://*.tools.example/mcp".into()];
    })
    .await
}

/// The argv of the stand-in's last start in `dir`, and the MCP config it read.
fn last_start(app: &TestApp, dir: &std::path::Path) -> (Vec<String>, Option<Value>) {
    let log = app.fake_log(dir);
    let start = log.iter().rposition(|e| e["event"] == "start").expect("a start");
    let argv = log[start]["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
    let config = log[start..].iter().find(|e| e["event"] == "mcp_config").map(|e| e["config"].clone());
    (argv, config)
}

#[tokio::test]
async fn workspace_and_start_servers_reach_the_cli_sqlite() {
    workspace_and_start_servers_reach_the_cli(app(Db::Sqlite).await.unwrap()).await;
}

#[tokio::test]
async fn workspace_and_start_servers_reach_the_cli_postgres() {
    let Some(app) = app(Db::Postgres).await else { return };
    workspace_and_start_servers_reach_the_cli(app).await;
}

async fn workspace_and_start_servers_reach_the_cli(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    // Without servers, nothing MCP is passed.
    let (plain, _) = app.start(json!({ "workspaceId": workspace, "prompt": "hi" })).await;
    app.wait_finished(&plain).await;
    let (argv, config) = last_start(&app, &dir);
    assert!(!argv.iter().any(|a| a.starts_with("--mcp") || a == "--strict-mcp-config"), "{argv:?}");
    assert_eq!(config, None);

    let updated = app
        .ok(
            UPDATE,
            json!({ "id": workspace, "input": { "mcpServers": [
                { "name": "files", "command": "/bin/true", "args": ["--root", "/srv"],
                  "env": [{ "name": "TOKEN", "value": "s3cret-env" }] },
                { "name": "docs", "url": "https://mcp.example.com/docs",
                  "headers": [{ "name": "Authorization", "value": "Bearer s3cret-header" }] },
            ] } }),
        )
        .await;
    let shown = updated["updateWorkspace"]["mcpServers"].clone();
    assert!(!shown.to_string().contains("s3cret"), "secrets are not shown: {shown}");
    assert_eq!(shown[0]["envNames"], json!(["TOKEN"]));
    assert_eq!(shown[1]["headerNames"], json!(["Authorization"]));
    assert_eq!(shown[1]["transport"], "HTTP");

    // The start replaces `docs` and adds a server whose program is missing.
    let started = app
        .ok(
            START,
            json!({ "input": { "workspaceId": workspace, "prompt": "use your tools", "mcpServers": [
                { "name": "docs", "url": "https://a.tools.example/mcp/v2", "transport": "SSE",
                  "headers": [{ "name": "X-Key", "value": "s3cret-start" }] },
                { "name": "broken", "command": "/nonexistent/mcp-server" },
            ] } }),
        )
        .await;
    let execution = started["startExecution"]["execution"]["id"].as_str().unwrap();
    assert_eq!(app.wait_finished(execution).await["status"], "COMPLETED");
    let (argv, config) = last_start(&app, &dir);
    let at = argv.iter().position(|a| a == "--mcp-config").expect("--mcp-config");
    assert_eq!(argv.get(at + 2).map(String::as_str), Some("--strict-mcp-config"));
    assert!(!argv.join(" ").contains("s3cret"), "no secret in the argv: {argv:?}");
    assert!(!std::path::Path::new(&argv[at + 1]).exists(), "the config file is gone with the run");
    assert_eq!(
        config.unwrap(),
        json!({ "mcpServers": {
            "files": { "command": "/bin/true", "args": ["--root", "/srv"], "env": { "TOKEN": "s3cret-env" } },
            "docs": { "type": "sse", "url": "https://a.tools.example/mcp/v2", "headers": { "X-Key": "s3cret-start" } },
            "broken": { "command": "/nonexistent/mcp-server", "args": [], "env": {} },
        } })
    );
    let seen = app
        .ok("query($id: ID!) { execution(id: $id) { mcpServers { name status } options } }", json!({ "id": execution }))
        .await;
    assert_eq!(
        seen["execution"]["mcpServers"],
        json!([{ "name": "broken", "status": "failed" }, { "name": "docs", "status": "connected" },
               { "name": "files", "status": "connected" }])
    );
    assert!(!seen.to_string().contains("s3cret"), "{seen}");
    assert_eq!(seen["execution"]["options"]["mcpServers"][0]["headers"]["X-Key"], "(hidden)");

    // An empty list removes the workspace's servers.
    let cleared = app.ok(UPDATE, json!({ "id": workspace, "input": { "mcpServers": [] } })).await;
    assert_eq!(cleared["updateWorkspace"]["mcpServers"], json!([]));
}

#[tokio::test]
async fn only_allowed_servers_are_accepted() {
    let app = app(Db::Sqlite).await.unwrap();
    let (workspace, _) = app.workspace().await;
    let cases = [
        (json!({ "name": "x", "command": "/bin/sh" }), "mcpServers.0.command"),
        (json!({ "name": "x", "command": "true" }), "mcpServers.0.command"),
        (json!({ "name": "x", "url": "https://evil.example/" }), "mcpServers.0.url"),
        (json!({ "name": "x", "url": "http://mcp.example.com/" }), "mcpServers.0.url"),
        (json!({ "name": "x", "url": "https://mcp.example.com.evil.example/" }), "mcpServers.0.url"),
        (json!({ "name": "x", "url": "https://user:pw@mcp.example.com/" }), "mcpServers.0.url"),
        (json!({ "name": "x", "url": "https://tools.example/mcp" }), "mcpServers.0.url"),
        (json!({ "name": "x", "url": "not a url" }), "mcpServers.0.url"),
        (json!({ "name": "x", "command": "/bin/true", "url": "https://mcp.example.com/" }), "mcpServers.0"),
        (json!({ "name": "x" }), "mcpServers.0"),
        (json!({ "name": "x", "command": "/bin/true", "transport": "SSE" }), "mcpServers.0.headers"),
        (json!({ "name": "x", "url": "https://mcp.example.com/", "args": ["-v"] }), "mcpServers.0.args"),
        (json!({ "name": "bad name!", "command": "/bin/true" }), "mcpServers.0.name"),
        (json!({ "name": "", "command": "/bin/true" }), "mcpServers.0.name"),
        (json!({ "name": "x", "command": "/bin/true", "args": ["a\u{0}b"] }), "mcpServers.0"),
        // What would make the allowed program run code of the client's.
        (
            json!({ "name": "x", "command": "/bin/true", "env": [{ "name": "NODE_OPTIONS", "value": "--import=x" }] }),
            "mcpServers.0.env",
        ),
        (
            json!({ "name": "x", "command": "/bin/true", "env": [{ "name": "LD_PRELOAD", "value": "/tmp/x.so" }] }),
            "mcpServers.0.env",
        ),
        (
            json!({ "name": "x", "command": "/bin/true", "env": [{ "name": "PYTHONPATH", "value": "." }] }),
            "mcpServers.0.env",
        ),
        (
            json!({ "name": "x", "command": "/bin/true", "env": [{ "name": "BASH_ENV", "value": "x" }] }),
            "mcpServers.0.env",
        ),
        (json!({ "name": "x", "command": "/bin/true", "env": [{ "name": "A=B", "value": "x" }] }), "mcpServers.0.env"),
    ];
    for (server, field) in cases {
        let start = json!({ "input": { "workspaceId": workspace, "prompt": "x", "mcpServers": [server] } });
        let refused = app.gql(START, start).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{server}: {refused}");
        assert_eq!(refused["errors"][0]["extensions"]["details"]["field"], field, "{server}: {refused}");
        let refused = app.gql(UPDATE, json!({ "id": workspace, "input": { "mcpServers": [server] } })).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{server}: {refused}");
        let profile = "mutation($i: CreateAgentProfileInput!) { createAgentProfile(input: $i) { id } }";
        let refused = app.gql(profile, json!({ "i": { "name": "p", "mcpServers": [server] } })).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{server}: {refused}");
    }
    let twice = json!([{ "name": "a", "command": "/bin/true" }, { "name": "a", "command": "/bin/true" }]);
    let refused =
        app.gql(START, json!({ "input": { "workspaceId": workspace, "prompt": "x", "mcpServers": twice } })).await;
    assert_eq!(refused["errors"][0]["extensions"]["details"]["field"], "mcpServers.1.name", "{refused}");
    let executions = app.ok("{ executions(first: 5) { edges { node { id } } } }", json!({})).await;
    assert_eq!(executions["executions"]["edges"], json!([]), "nothing was started");

    // A server with no allow-list configured allows no MCP server at all.
    let closed = spawn_with(Db::Sqlite, |_| {}).await.unwrap();
    let (workspace, _) = closed.workspace().await;
    let server = json!({ "name": "files", "command": "/bin/true" });
    let refused = closed
        .gql(START, json!({ "input": { "workspaceId": workspace, "prompt": "x", "mcpServers": [server] } }))
        .await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
}

#[tokio::test]
async fn a_profile_brings_its_servers() {
    let app = app(Db::Sqlite).await.unwrap();
    let (workspace, dir) = app.workspace().await;
    let profile = "mutation($i: CreateAgentProfileInput!) { createAgentProfile(input: $i) { options } }";
    let created = app
        .ok(profile, json!({ "i": { "name": "researcher", "mcpServers": [
            { "name": "docs", "url": "https://mcp.example.com/", "headers": [{ "name": "Authorization", "value": "s3cret" }] }
        ] } }))
        .await;
    assert_eq!(created["createAgentProfile"]["options"]["mcpServers"][0]["headers"]["Authorization"], "(hidden)");
    let started =
        app.ok(START, json!({ "input": { "workspaceId": workspace, "prompt": "x", "profile": "researcher" } })).await;
    app.wait_finished(started["startExecution"]["execution"]["id"].as_str().unwrap()).await;
    let (_, config) = last_start(&app, &dir);
    assert_eq!(config.unwrap()["mcpServers"]["docs"]["headers"]["Authorization"], "s3cret");
}
