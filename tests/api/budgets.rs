//! Spending caps: per workspace and per user and day, checked before a run
//! starts and passed to the CLI as what is left, so a run stops when it
//! has spent it.

use serde_json::{json, Value};

use crate::{
    auth::{as_user, code, secured, token_for},
    helpers::TestApp,
    on_every_db,
};

const START: &str = "mutation($input: StartExecutionInput!) { startExecution(input: $input) { execution { id } } }";
const WORKSPACE: &str = "query($id: ID!) { workspace(id: $id) { dailyBudgetUsd spentTodayUsd } }";

on_every_db!(a_workspace_budget_caps_its_runs);

/// The `--max-budget-usd` of each start of the stand-in in `dir`.
fn budgets(app: &TestApp, dir: &std::path::Path) -> Vec<Option<String>> {
    app.fake_log(dir)
        .iter()
        .filter(|e| e["event"] == "start")
        .map(|e| {
            let argv: Vec<&str> = e["argv"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
            argv.iter().position(|a| *a == "--max-budget-usd").map(|i| argv[i + 1].to_owned())
        })
        .collect()
}

async fn a_workspace_budget_caps_its_runs(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    // Bad caps are refused.
    for bad in [0.0, -1.0] {
        let refused = app
            .gql(
                "mutation($id: ID!, $b: Float) { updateWorkspace(id: $id, input: {dailyBudgetUsd: $b}) { id } }",
                json!({ "id": workspace, "b": bad }),
            )
            .await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
        assert_eq!(refused["errors"][0]["extensions"]["details"]["field"], "dailyBudgetUsd");
    }
    // A stand-in turn costs $0.0123: the cap allows one and a bit.
    app.ok(
        "mutation($id: ID!) { updateWorkspace(id: $id, input: {dailyBudgetUsd: 0.02}) { dailyBudgetUsd } }",
        json!({ "id": workspace }),
    )
    .await;

    let (first, _) = app.start(json!({ "workspaceId": workspace, "prompt": "one" })).await;
    assert_eq!(app.wait_finished(&first).await["status"], "COMPLETED");
    let spent = app.ok(WORKSPACE, json!({ "id": workspace })).await;
    assert_eq!(spent["workspace"], json!({ "dailyBudgetUsd": 0.02, "spentTodayUsd": 0.0123 }));

    // The second gets what is left, runs over it and is stopped.
    let (second, _) = app.start(json!({ "workspaceId": workspace, "prompt": "two", "maxBudgetUsd": 5.0 })).await;
    let second = app.wait_finished(&second).await;
    assert_eq!(
        (second["status"].as_str(), second["error"]["code"].as_str()),
        (Some("FAILED"), Some("BUDGET_EXCEEDED"))
    );
    let given = budgets(&app, &dir);
    assert_eq!(given[0].as_deref(), Some("0.02"));
    let left: f64 = given[1].as_deref().unwrap().parse().unwrap();
    assert!((left - 0.0077).abs() < 1e-9, "{given:?}");

    // Spent: the third is refused before it starts, queued or not.
    let refused = app.gql(START, json!({ "input": { "workspaceId": workspace, "prompt": "three" } })).await;
    assert_eq!(code(&refused), "BUDGET_EXCEEDED", "{refused}");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("midnight UTC"));
    assert_eq!(budgets(&app, &dir).len(), 2, "nothing else started");

    // Lifting the cap lets runs start again; a client's own cap still holds.
    app.ok(
        "mutation($id: ID!) { updateWorkspace(id: $id, input: {dailyBudgetUsd: null}) { dailyBudgetUsd } }",
        json!({ "id": workspace }),
    )
    .await;
    let (fourth, _) = app.start(json!({ "workspaceId": workspace, "prompt": "four", "maxBudgetUsd": 1.5 })).await;
    assert_eq!(app.wait_finished(&fourth).await["status"], "COMPLETED");
    assert_eq!(budgets(&app, &dir)[2].as_deref(), Some("1.5"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_budget_caps_every_workspace_of_the_user() {
    let app = secured(|c| c.user_daily_budget_usd = Some(0.03)).await;
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    let mut workspaces = Vec::new();
    for (user, name) in [(&alice, "a1"), (&alice, "a2"), (&bob, "b")] {
        workspaces.push(app.workspace_of(user, name).await.0);
    }
    let run = |user: &String, workspace: &str| {
        let (app, user, workspace) = (&app, user.clone(), workspace.to_owned());
        async move {
            let started =
                as_user(app, &user, START, json!({ "input": { "workspaceId": workspace, "prompt": "x" } })).await;
            let Some(id) = started["data"]["startExecution"]["execution"]["id"].as_str() else { return started };
            loop {
                let e =
                    as_user(app, &user, "query($id: ID!) { execution(id: $id) { status } }", json!({ "id": id })).await;
                if ["COMPLETED", "FAILED", "CANCELLED"].contains(&e["data"]["execution"]["status"].as_str().unwrap()) {
                    return e;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    // Two runs of alice's, in two workspaces, use up her $0.03.
    assert_eq!(run(&alice, &workspaces[0]).await["data"]["execution"]["status"], "COMPLETED");
    assert_eq!(run(&alice, &workspaces[1]).await["data"]["execution"]["status"], "COMPLETED");
    let third = run(&alice, &workspaces[0]).await;
    assert_eq!(third["data"]["execution"]["status"], "FAILED", "{third}");
    let refused = run(&alice, &workspaces[1]).await;
    assert_eq!(code(&refused), "BUDGET_EXCEEDED", "{refused}");
    // Bob's budget is his own.
    assert_eq!(run(&bob, &workspaces[2]).await["data"]["execution"]["status"], "COMPLETED");
}
