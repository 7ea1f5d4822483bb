//! Structured output: a start's JSON Schema goes to the CLI as
//! `--json-schema`, and the answer that matched it is
//! `Execution.structuredOutput`; a run that never gives one fails.

use serde_json::{json, Value};

use crate::{auth::code, helpers::TestApp, on_every_db};

const START: &str = "mutation($input: StartExecutionInput!) { startExecution(input: $input) { execution { id } } }";
const READ: &str = "query($id: ID!) { execution(id: $id) { status structuredOutput result error { code message } } }";

on_every_db!(the_answer_matches_the_schema);

async fn the_answer_matches_the_schema(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let schema = json!({ "type": "object", "properties": { "name": { "type": "string" },
        "severity": { "enum": ["low", "high"] }, "count": { "type": "integer" } }, "required": ["name"] });
    let started = app
        .ok(START, json!({ "input": { "workspaceId": workspace, "prompt": "triage", "outputSchema": schema } }))
        .await;
    let id = started["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    app.wait_finished(&id).await;
    let done = app.ok(READ, json!({ "id": id })).await;
    assert_eq!(done["execution"]["status"], "COMPLETED", "{done}");
    assert_eq!(done["execution"]["structuredOutput"], json!({ "name": "fake", "severity": "low", "count": 0 }));
    let log = app.fake_log(&dir);
    let argv: Vec<&str> = log.iter().rfind(|e| e["event"] == "start").unwrap()["argv"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let at = argv.iter().position(|a| *a == "--json-schema").expect("--json-schema");
    assert_eq!(serde_json::from_str::<Value>(argv[at + 1]).unwrap(), schema);

    // No answer that matched: the run fails, and says why.
    let started = app
        .ok(
            START,
            json!({ "input": { "workspaceId": workspace, "prompt": "fake: no_structured", "outputSchema": schema } }),
        )
        .await;
    let id = started["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    app.wait_finished(&id).await;
    let failed = app.ok(READ, json!({ "id": id })).await;
    assert_eq!(failed["execution"]["status"], "FAILED", "{failed}");
    assert_eq!(failed["execution"]["error"]["code"], "NO_STRUCTURED_OUTPUT");
    assert_eq!(failed["execution"]["structuredOutput"], Value::Null);

    // Without a schema there is none, and nothing changes.
    let (plain, _) = app.start(json!({ "workspaceId": workspace, "prompt": "hello" })).await;
    app.wait_finished(&plain).await;
    let plain = app.ok(READ, json!({ "id": plain })).await;
    assert_eq!(plain["execution"]["status"], "COMPLETED");
    assert_eq!(plain["execution"]["structuredOutput"], Value::Null);

    // A schema is a JSON object, and not a huge one.
    let huge = json!({ "type": "object", "description": "x".repeat(70 * 1024) });
    for bad in [json!("string"), json!([1, 2]), json!(42), huge] {
        let refused =
            app.gql(START, json!({ "input": { "workspaceId": workspace, "prompt": "x", "outputSchema": bad } })).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
        assert_eq!(refused["errors"][0]["extensions"]["details"]["field"], "outputSchema");
    }
}
