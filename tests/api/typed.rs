//! The typed API a generated client works with: typed Claude messages,
//! Relay nodes, executions across workspaces, usage totals, managing
//! workspaces and sessions, and typed questions and plans.

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::{
    auth::{as_user, code, secured, token_for},
    helpers::{final_status, spawn_app, TestApp},
    on_every_db,
};

on_every_db!(messages_arrive_typed, executions_are_listed_filtered_and_totalled, sessions_and_workspaces_are_managed);

/// The fields a client renders, as a generated client would ask for them.
const TYPED: &str = "
    __typename type subtype uuid raw
    ... on SystemInitMessage { model cwd tools permissionMode claudeCodeVersion mcpServers { name status } }
    ... on AssistantMessage { messageId model isApiError usage { inputTokens outputTokens }
        content { __typename type ...Blocks } }
    ... on UserMessage { isReplay content { __typename type ...Blocks } }
    ... on ResultMessage { isError result numTurns durationMs totalCostUsd terminalReason errors
        usage { inputTokens outputTokens } permissionDenials { toolName } }
    ... on PartialMessage { eventType index deltaType delta apiMessageId }
    ... on StderrMessage { text }
    ... on UnknownMessage { text }";

const BLOCKS: &str = "fragment Blocks on ContentBlock {
    ... on TextBlock { text }
    ... on ThinkingBlock { thinking }
    ... on ToolUseBlock { id name input }
    ... on ToolResultBlock { toolUseId isError text }
}";

/// Every event of a run, with typed messages.
async fn typed_events(app: &TestApp, execution: &str) -> Vec<Value> {
    let query = format!(
        "subscription($id: ID!) {{ executionEvents(executionId: $id) {{ __typename
            ... on MessageEvent {{ seq type message claudeMessage {{ {TYPED} }} }}
            ... on StatusEvent {{ status }} }} }} {BLOCKS}"
    );
    let stream = app.subscription(&query, json!({ "id": execution }), "executionEvents").await.unwrap();
    let events: Vec<_> = tokio::time::timeout(std::time::Duration::from_secs(30), stream.collect::<Vec<_>>())
        .await
        .expect("the subscription completes");
    events.into_iter().map(Result::unwrap).collect()
}

fn typed<'a>(events: &'a [Value], typename: &str) -> Vec<&'a Value> {
    events.iter().map(|e| &e["claudeMessage"]).filter(|m| m["__typename"] == typename).collect()
}

async fn messages_arrive_typed(app: TestApp) {
    let (workspace, _) = app.workspace().await;
    let (execution, session) = app
        .start(json!({ "workspaceId": workspace, "prompt": "fake: fixture=tool_bash garbage stderr=a_warning" }))
        .await;
    let events = typed_events(&app, &execution).await;
    assert_eq!(final_status(&events)["status"], "COMPLETED");

    let init = typed(&events, "SystemInitMessage");
    assert_eq!(init[0]["model"], "claude-opus-5-5", "{}", init[0]);
    assert!(init[0]["tools"].as_array().unwrap().contains(&json!("Bash")));
    assert_eq!(init[0]["permissionMode"], "default");

    // The reply's text and its tool call are separate lines of one message.
    let assistant = typed(&events, "AssistantMessage");
    let blocks: Vec<&Value> = assistant.iter().flat_map(|m| m["content"].as_array().unwrap()).collect();
    assert_eq!(blocks[0]["__typename"], "TextBlock");
    let tool_use = blocks.iter().find(|b| b["__typename"] == "ToolUseBlock").expect("a tool call");
    assert_eq!((&tool_use["name"], &tool_use["input"]["command"]), (&json!("Bash"), &json!("echo hello")));
    assert_eq!(assistant[0]["messageId"], assistant[1]["messageId"]);
    assert!(assistant[0]["usage"]["inputTokens"].as_i64().unwrap() > 0);

    let user = typed(&events, "UserMessage");
    let result_block = &user[0]["content"][0];
    assert_eq!(result_block["__typename"], "ToolResultBlock");
    assert_eq!(result_block["toolUseId"], tool_use["id"]);
    assert_eq!(result_block["isError"], false);

    let result = typed(&events, "ResultMessage");
    assert_eq!(result.len(), 1);
    assert_eq!((&result[0]["isError"], &result[0]["numTurns"]), (&json!(false), &json!(2)));
    assert!(result[0]["totalCostUsd"].as_f64().unwrap() > 0.0);
    assert_eq!(result[0]["terminalReason"], "completed");

    // What the CLI did not write as JSON still arrives, as text.
    assert!(typed(&events, "StderrMessage").iter().any(|m| m["text"] == "a warning"));
    assert!(typed(&events, "UnknownMessage").iter().any(|m| m["type"] == "invalid_json" && m["text"].is_string()));

    // `raw` is the line as written, the same as `message`.
    for event in events.iter().filter(|e| e["__typename"] == "MessageEvent") {
        assert_eq!(event["claudeMessage"]["raw"], event["message"], "{event}");
        assert_eq!(event["claudeMessage"]["type"], event["type"]);
    }

    // sessionLogs types the same stored lines the same way.
    let logs = app
        .ok(
            &format!(
                "query($s: ID!) {{ sessionLogs(sessionId: $s, limit: 100) {{ seq claudeMessage {{ {TYPED} }} }} }} {BLOCKS}"
            ),
            json!({ "s": session }),
        )
        .await;
    let from_logs: Vec<&Value> = logs["sessionLogs"].as_array().unwrap().iter().map(|l| &l["claudeMessage"]).collect();
    let from_events: Vec<&Value> =
        events.iter().filter(|e| e["__typename"] == "MessageEvent").map(|e| &e["claudeMessage"]).collect();
    assert_eq!(from_logs, from_events);

    // Partial-token events are typed too (live only).
    let (execution, _) = app
        .start(json!({ "workspaceId": workspace, "prompt": "fake: fixture=text_partial_messages",
                       "includePartialMessages": true }))
        .await;
    let events = typed_events(&app, &execution).await;
    let partial = typed(&events, "PartialMessage");
    let text: String = partial.iter().filter_map(|p| p["delta"].as_str()).collect();
    assert!(!text.is_empty() && partial.iter().any(|p| p["eventType"] == "content_block_delta"), "{partial:?}");
    let final_text = typed(&events, "ResultMessage")[0]["result"].as_str().unwrap().to_owned();
    assert_eq!(text, final_text);
}

async fn executions_are_listed_filtered_and_totalled(app: TestApp) {
    let (first, _) = app.workspace().await;
    let (second, _) = app.workspace().await;
    let started = chrono::Utc::now();
    let mut ids = Vec::new();
    for (workspace, prompt) in [(&first, "one"), (&second, "two"), (&first, "fake: error_result")] {
        let (id, _) = app.start(json!({ "workspaceId": workspace, "prompt": prompt })).await;
        app.wait_finished(&id).await;
        ids.push(id);
    }
    let list = "query($f: ExecutionFilter, $first: Int, $after: String) {
        executions(filter: $f, first: $first, after: $after) {
            edges { cursor node { id status model costUsd workspace { id } } } pageInfo { hasNextPage endCursor } } }";
    let ids_of = |data: &Value| -> Vec<String> {
        data["executions"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // Newest first, across workspaces.
    let all = app.ok(list, json!({})).await;
    assert_eq!(ids_of(&all), ids.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(all["executions"]["edges"][0]["node"]["model"], "claude-fake-1");
    // Paging.
    let page = app.ok(list, json!({ "first": 2 })).await;
    assert_eq!(page["executions"]["pageInfo"]["hasNextPage"], true);
    let next = app.ok(list, json!({ "first": 2, "after": page["executions"]["pageInfo"]["endCursor"] })).await;
    assert_eq!(ids_of(&next), vec![ids[0].clone()]);
    // Filters.
    let failed = app.ok(list, json!({ "f": { "status": ["FAILED"] } })).await;
    assert_eq!(ids_of(&failed), vec![ids[2].clone()]);
    let in_first = app.ok(list, json!({ "f": { "workspaceId": first, "status": ["COMPLETED", "FAILED"] } })).await;
    assert_eq!(ids_of(&in_first), vec![ids[2].clone(), ids[0].clone()]);
    let since = app.ok(list, json!({ "f": { "since": started.to_rfc3339() } })).await;
    assert_eq!(ids_of(&since).len(), 3);
    let before = app.ok(list, json!({ "f": { "until": started.to_rfc3339() } })).await;
    assert!(ids_of(&before).is_empty());
    let later = (chrono::Utc::now() + chrono::Duration::seconds(5)).to_rfc3339();
    assert!(ids_of(&app.ok(list, json!({ "f": { "since": later } })).await).is_empty());
    for bad in [json!({ "workspaceId": "nope" }), json!({ "status": ["DONE"] }), json!({ "since": "yesterday" })] {
        let response = app.gql(list, json!({ "f": bad })).await;
        assert_eq!(code(&response), "BAD_USER_INPUT", "{bad}: {response}");
    }

    // Totals: per user and per workspace, matching the executions' own costs.
    let cost = |data: &Value| -> f64 {
        data["executions"]["edges"].as_array().unwrap().iter().filter_map(|e| e["node"]["costUsd"].as_f64()).sum()
    };
    let totals = app
        .ok(
            "query($w: ID!) { usage { executionCount totalCostUsd numTurns messageCount }
                workspace(id: $w) { usage { executionCount totalCostUsd } } }",
            json!({ "w": first }),
        )
        .await;
    assert_eq!(totals["usage"]["executionCount"], 3);
    assert!((totals["usage"]["totalCostUsd"].as_f64().unwrap() - cost(&all)).abs() < 1e-9, "{totals}");
    assert!(totals["usage"]["messageCount"].as_i64().unwrap() > 3);
    assert_eq!(totals["workspace"]["usage"]["executionCount"], 2);
    assert!((totals["workspace"]["usage"]["totalCostUsd"].as_f64().unwrap() - cost(&in_first)).abs() < 1e-9);
    let failed_only = app.ok("{ usage(filter: {status: [FAILED]}) { executionCount } }", json!({})).await;
    assert_eq!(failed_only["usage"]["executionCount"], 1);
}

async fn sessions_and_workspaces_are_managed(app: TestApp) {
    let (workspace, _) = app.workspace().await;
    let (execution, session) = app
        .start(
            json!({ "workspaceId": workspace, "prompt": "\n  Fix the login bug\nin the form, please", "metadata": {} }),
        )
        .await;
    app.wait_finished(&execution).await;
    let title = app.ok("query($s: ID!) { session(id: $s) { title } }", json!({ "s": session })).await;
    assert_eq!(title["session"]["title"], "Fix the login bug");

    // Search by title, ignoring case; LIKE's wildcards are plain text.
    let (other, _) = app.start(json!({ "workspaceId": workspace, "prompt": "Write 100% of the docs_now" })).await;
    app.wait_finished(&other).await;
    let search = "query($w: ID!, $q: String) { sessions(workspaceId: $w, search: $q) { nodes { title } } }";
    let titles = |data: Value| -> Vec<String> {
        data["sessions"]["nodes"].as_array().unwrap().iter().map(|n| n["title"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(titles(app.ok(search, json!({ "w": workspace, "q": "LOGIN" })).await), ["Fix the login bug"]);
    assert_eq!(titles(app.ok(search, json!({ "w": workspace, "q": "100%" })).await), ["Write 100% of the docs_now"]);
    assert!(titles(app.ok(search, json!({ "w": workspace, "q": "1_0" })).await).is_empty());
    assert!(titles(app.ok(search, json!({ "w": workspace, "q": "%" })).await).len() == 1);
    assert_eq!(titles(app.ok(search, json!({ "w": workspace, "q": " " })).await).len(), 2);
    let long = app.gql(search, json!({ "w": workspace, "q": "x".repeat(201) })).await;
    assert_eq!(code(&long), "BAD_USER_INPUT");

    let renamed = app
        .ok("mutation($s: ID!) { renameSession(id: $s, title: \"  Login  \") { id title } }", json!({ "s": session }))
        .await;
    assert_eq!(renamed["renameSession"]["title"], "Login");
    let updated = app
        .ok(
            "mutation($w: ID!) { updateWorkspace(id: $w, input: {name: \"renamed\", requireApproval: true}) {
                name requireApproval path } }",
            json!({ "w": workspace }),
        )
        .await;
    assert_eq!(updated["updateWorkspace"]["name"], "renamed");
    assert_eq!(updated["updateWorkspace"]["requireApproval"], true);
    for (query, vars) in [
        ("mutation($s: ID!) { renameSession(id: $s, title: \" \") { id } }", json!({ "s": session })),
        ("mutation($s: ID!) { renameSession(id: $s, title: \"a\\u0000b\") { id } }", json!({ "s": session })),
        ("mutation($w: ID!) { updateWorkspace(id: $w, input: {name: \"\"}) { id } }", json!({ "w": workspace })),
        (
            "mutation($s: ID!, $t: String!) { renameSession(id: $s, title: $t) { id } }",
            json!({ "s": session, "t": "x".repeat(201) }),
        ),
    ] {
        assert_eq!(code(&app.gql(query, vars.clone()).await), "BAD_USER_INPUT", "{query} {vars}");
    }

    // A running execution keeps its session and workspace from deletion.
    let (running, _) =
        app.start(json!({ "workspaceId": workspace, "sessionId": session, "prompt": "fake: hang" })).await;
    app.wait_status(&running, "RUNNING").await;
    let delete_session = "mutation($id: ID!) { deleteSession(id: $id) { deletedId } }";
    let delete_workspace = "mutation($id: ID!) { deleteWorkspace(id: $id) { deletedId } }";
    assert_eq!(code(&app.gql(delete_session, json!({ "id": session })).await), "SESSION_BUSY");
    assert_eq!(code(&app.gql(delete_workspace, json!({ "id": workspace })).await), "SESSION_BUSY");
    app.ok("mutation($id: ID!) { cancelExecution(id: $id) { id } }", json!({ "id": running })).await;
    app.wait_finished(&running).await;

    let deleted = app.ok(delete_session, json!({ "id": session })).await;
    assert_eq!(deleted["deleteSession"]["deletedId"], session.as_str());
    let gone = app
        .gql(
            "query($s: ID!, $e: ID!) { session(id: $s) { id } execution(id: $e) { id } node(id: $e) { id }
                sessionLogs(sessionId: $s) { seq } }",
            json!({ "s": session, "e": execution }),
        )
        .await;
    assert_eq!(code(&gone), "NOT_FOUND", "{gone}");
    assert_eq!(code(&app.gql(delete_session, json!({ "id": session })).await), "NOT_FOUND");
    // A second session in the workspace goes with it.
    let (other, _) = app.start(json!({ "workspaceId": workspace, "prompt": "again" })).await;
    app.wait_finished(&other).await;
    app.ok(delete_workspace, json!({ "id": workspace })).await;
    let after = app
        .ok(
            "query($w: ID!, $e: ID!) { workspace(id: $w) { id } execution(id: $e) { id } }",
            json!({ "w": workspace, "e": other }),
        )
        .await;
    assert_eq!(after, json!({ "workspace": null, "execution": null }));
    assert_eq!(code(&app.gql(delete_workspace, json!({ "id": workspace })).await), "NOT_FOUND");
}

/// `node` finds each kind of object of yours by id alone, and nothing of
/// anyone else's; the management mutations do not reach across users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_found_by_id_and_only_by_their_owner() {
    let app = secured(|_| {}).await;
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    let dir = app.dir.path().join("alice");
    std::fs::create_dir_all(&dir).unwrap();
    let created = as_user(
        &app,
        &alice,
        "mutation($p: String!) { createWorkspace(input: {name: \"a\", path: $p}) { id } }",
        json!({ "p": dir }),
    )
    .await;
    let workspace = created["data"]["createWorkspace"]["id"].as_str().unwrap().to_owned();
    let started = as_user(
        &app,
        &alice,
        "mutation($w: ID!) { startExecution(input: {workspaceId: $w, prompt: \"fake: ask=Bash\", requireApproval: true}) {
            execution { id } session { id } } }",
        json!({ "w": workspace }),
    )
    .await;
    let execution = started["data"]["startExecution"]["execution"]["id"].as_str().unwrap().to_owned();
    let session = started["data"]["startExecution"]["session"]["id"].as_str().unwrap().to_owned();
    let mut request = Value::Null;
    for _ in 0..400 {
        let pending = as_user(
            &app,
            &alice,
            "query($e: ID!) { pendingPermissionRequests(executionId: $e) { id } }",
            json!({ "e": execution }),
        )
        .await;
        request = pending["data"]["pendingPermissionRequests"][0]["id"].clone();
        if request.is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let ids = [&json!(workspace), &json!(session), &json!(execution), &request];
    let query = "query($ids: [ID!]!, $one: ID!) { node(id: $one) { __typename id }
        nodes(ids: $ids) { __typename id ... on Execution { status } ... on PermissionRequest { kind toolName } } }";
    let vars = json!({ "ids": [ids[0], ids[1], ids[2], ids[3], "not-an-id", uuid::Uuid::now_v7().to_string()], "one": execution });
    let found = as_user(&app, &alice, query, vars.clone()).await;
    let nodes = found["data"]["nodes"].as_array().unwrap_or_else(|| panic!("{found}"));
    let typenames: Vec<&Value> = nodes.iter().map(|n| &n["__typename"]).collect();
    assert_eq!(
        typenames,
        [
            &json!("Workspace"),
            &json!("Session"),
            &json!("Execution"),
            &json!("PermissionRequest"),
            &Value::Null,
            &Value::Null
        ]
    );
    for (node, id) in nodes.iter().zip(ids) {
        assert_eq!(&node["id"], id);
    }
    assert_eq!(nodes[3]["kind"], "TOOL_USE");
    assert_eq!(found["data"]["node"]["__typename"], "Execution");

    // Bob gets nothing of Alice's: not by node, and not by deleting.
    let as_bob = as_user(&app, &bob, query, vars).await;
    assert_eq!(as_bob["data"]["node"], Value::Null, "{as_bob}");
    assert!(as_bob["data"]["nodes"].as_array().unwrap().iter().all(Value::is_null));
    for (mutation, id) in [
        ("mutation($id: ID!) { deleteWorkspace(id: $id) { deletedId } }", &workspace),
        ("mutation($id: ID!) { deleteSession(id: $id) { deletedId } }", &session),
        ("mutation($id: ID!) { renameSession(id: $id, title: \"mine\") { id } }", &session),
        ("mutation($id: ID!) { updateWorkspace(id: $id, input: {name: \"mine\"}) { id } }", &workspace),
    ] {
        assert_eq!(code(&as_user(&app, &bob, mutation, json!({ "id": id })).await), "NOT_FOUND", "{mutation}");
    }
    let bobs =
        as_user(&app, &bob, "{ executions { edges { node { id } } } usage { executionCount } }", json!({})).await;
    assert_eq!(bobs["data"], json!({ "executions": { "edges": [] }, "usage": { "executionCount": 0 } }));
    // At most 100 ids at once.
    let many: Vec<String> = (0..101).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let refused =
        as_user(&app, &alice, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", json!({ "ids": many })).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT");
}

/// Questions (AskUserQuestion) and plans (ExitPlanMode) come typed, and a
/// question is answered with typed answers that reach Claude as the tool's
/// input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_and_plans_are_typed() {
    let app = spawn_app().await;
    let (workspace, dir) = app.workspace().await;
    let request = |prompt: &'static str| {
        let app = &app;
        let workspace = workspace.clone();
        async move {
            let (execution, _) =
                app.start(json!({ "workspaceId": workspace, "prompt": prompt, "requireApproval": true })).await;
            for _ in 0..400 {
                let pending = app
                    .ok(
                        "query($e: ID!) { pendingPermissionRequests(executionId: $e) { id kind plan toolName
                            questions { question header multiSelect options { label description } } } }",
                        json!({ "e": execution }),
                    )
                    .await;
                if let Some(request) = pending["pendingPermissionRequests"].get(0) {
                    return (execution, request.clone());
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            panic!("no permission request");
        }
    };

    let (execution, question) = request("fake: ask=AskUserQuestion").await;
    assert_eq!(question["kind"], "QUESTION");
    assert_eq!(question["questions"][0]["question"], "Which color should the button be?");
    assert_eq!(question["questions"][0]["options"][1], json!({ "label": "Blue", "description": "Cool" }));
    assert_eq!(question["questions"][1]["multiSelect"], true);
    assert_eq!(question["plan"], Value::Null);

    let answer = "mutation($id: ID!, $d: PermissionDecision!, $a: [QuestionAnswer!], $input: JSON) {
        answerPermissionRequest(id: $id, decision: $d, answers: $a, updatedInput: $input) { status decision } }";
    let color = |labels: Value| json!({ "question": "Which color should the button be?", "selected": labels });
    let sizes = json!({ "question": "Which sizes?", "selected": ["Small", "Large"] });
    for (decision, answers, input) in [
        ("ALLOW", json!([color(json!(["Red"]))]), Value::Null),
        ("ALLOW", json!([color(json!(["Red", "Blue"])), sizes]), Value::Null),
        ("ALLOW", json!([color(json!([])), sizes]), Value::Null),
        ("ALLOW", json!([color(json!(["Red"])), sizes, { "question": "Who?", "selected": ["me"] }]), Value::Null),
        ("ALLOW", json!([color(json!(["Red"])), sizes, color(json!(["Blue"]))]), Value::Null),
        ("DENY", json!([color(json!(["Red"])), sizes]), Value::Null),
        ("ALLOW", json!([color(json!(["Red"])), sizes]), json!({ "questions": [] })),
    ] {
        let vars = json!({ "id": question["id"], "d": decision, "a": answers, "input": input });
        let response = app.gql(answer, vars).await;
        assert_eq!(code(&response), "BAD_USER_INPUT", "{answers}: {response}");
    }
    let answered =
        app.ok(answer, json!({ "id": question["id"], "d": "ALLOW", "a": [color(json!(["Blue"])), sizes] })).await;
    assert_eq!(answered["answerPermissionRequest"]["status"], "ALLOWED");
    let finished = app.wait_finished(&execution).await;
    assert_eq!(finished["status"], "COMPLETED");
    // What Claude got: its questions, with the answers the CLI reads.
    let sent = app.fake_log(&dir).into_iter().find_map(|entry| {
        let line: Value = serde_json::from_str(entry["line"].as_str().filter(|_| entry["event"] == "stdin")?).ok()?;
        (line["type"] == "control_response").then(|| line["response"]["response"]["updatedInput"].clone())
    });
    let sent = sent.expect("the answer reached claude");
    assert_eq!(sent["answers"], json!({ "Which color should the button be?": "Blue", "Which sizes?": "Small, Large" }));
    assert_eq!(sent["questions"].as_array().unwrap().len(), 2);

    // Answers fit questions only.
    let (_, tool) = request("fake: ask=Bash").await;
    let response = app.gql(answer, json!({ "id": tool["id"], "d": "ALLOW", "a": [sizes] })).await;
    assert_eq!(code(&response), "BAD_USER_INPUT");

    let (plan_run, plan) = request("fake: ask=ExitPlanMode").await;
    assert_eq!((&plan["kind"], &plan["plan"]), (&json!("PLAN"), &json!("1. Read the code\n2. Fix the bug")));
    assert_eq!(plan["questions"], json!([]));
    app.ok(answer, json!({ "id": plan["id"], "d": "ALLOW" })).await;
    assert_eq!(app.wait_finished(&plan_run).await["status"], "COMPLETED");
}

/// GraphiQL renders every newline of a description as a break, so
/// descriptions are served unwrapped (paragraphs and list items kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptions_are_served_unwrapped() {
    let app = spawn_app().await;
    let data = app
        .ok(
            "{ __type(name: \"Execution\") { fields { name description } }
               __schema { mutationType { fields { name description } } } }",
            json!({}),
        )
        .await;
    let stalled = data["__type"]["fields"].as_array().unwrap().iter().find(|f| f["name"] == "stalledSince").unwrap();
    let text = stalled["description"].as_str().unwrap();
    assert!(text.starts_with("Since when the run has written nothing, if it has been quiet for longer"), "{text}");
    assert!(!text.contains('\n'), "{text}");
    let fields = data["__schema"]["mutationType"]["fields"].as_array().unwrap();
    assert!(fields.iter().all(|f| !f["description"].as_str().unwrap_or_default().contains(" \n")));
}
