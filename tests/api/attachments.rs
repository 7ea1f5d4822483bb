//! Images and documents in prompts: sent in one multipart request, inline
//! as base64, or uploaded before and named by id; checked, owned, limited
//! and cleaned up.

use std::time::Duration;

use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::{json, Value};

use crate::{
    auth::{as_user, code, secured, token_for},
    helpers::{final_status, spawn_with, Db, TestApp},
    on_every_db,
};

/// A 1×1 PNG (the image the recordings sent).
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

const START: &str = "mutation($input: StartExecutionInput!) {
    startExecution(input: $input) { execution { id prompt content { type text attachment { id name mediaType size } } } } }";
const UPLOAD: &str =
    "mutation($input: FileInput!) { uploadAttachment(input: $input) { id name mediaType size expiresAt } }";

fn png() -> Vec<u8> {
    STANDARD.decode(PNG).unwrap()
}

/// The user messages the stand-in read in `dir`.
fn user_lines(app: &TestApp, dir: &std::path::Path) -> Vec<Value> {
    app.fake_log(dir)
        .iter()
        .filter(|e| e["event"] == "stdin")
        .map(|e| serde_json::from_str::<Value>(e["line"].as_str().unwrap()).unwrap())
        .filter(|l| l["type"] == "user")
        .collect()
}

/// A GraphQL multipart request: `operations`, `map`, and the files.
async fn multipart(
    app: &TestApp,
    operations: Value,
    map: Value,
    files: Vec<(&str, &str, Vec<u8>)>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut form =
        reqwest::multipart::Form::new().text("operations", operations.to_string()).text("map", map.to_string());
    for (field, name, bytes) in files {
        form = form.part(field.to_owned(), reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()));
    }
    let mut request = app.http.post(app.url("/graphql")).multipart(form);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

on_every_db!(a_screenshot_goes_with_the_start_in_one_call, files_inline_and_by_id, bad_files_are_refused);

async fn a_screenshot_goes_with_the_start_in_one_call(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    let operations = json!({
        "query": START,
        "variables": { "input": { "workspaceId": workspace, "prompt": "What is wrong here?",
            "content": [{ "image": { "file": null } }, { "image": { "file": null } }] } },
    });
    // One file, named twice (the spec allows it): both blocks get all of it.
    let map = json!({ "0": ["variables.input.content.0.image.file", "variables.input.content.1.image.file"] });
    let response =
        multipart(&app, operations, map, vec![("0", "screen.png", png())], &[("GraphQL-Require-Preflight", "1")]).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    let execution = &body["data"]["startExecution"]["execution"];
    assert_eq!(execution["prompt"], "What is wrong here?");
    let content = execution["content"].as_array().unwrap();
    assert_eq!(content[0], json!({ "type": "TEXT", "text": "What is wrong here?", "attachment": null }));
    assert_eq!(content[1]["type"], "IMAGE");
    assert_eq!(content[1]["attachment"]["name"], "screen.png");
    assert_eq!(content[1]["attachment"]["mediaType"], "image/png");
    assert_eq!(content[1]["attachment"]["size"], png().len());
    let finished = app.wait_finished(execution["id"].as_str().unwrap()).await;
    assert_eq!(finished["status"], "COMPLETED", "{finished}");

    // Claude got one user message of two content blocks, the image in base64.
    let users = user_lines(&app, &dir);
    assert_eq!(users.len(), 1);
    let blocks = &users[0]["message"]["content"];
    assert_eq!(blocks[0], json!({ "type": "text", "text": "What is wrong here?" }));
    assert_eq!(blocks[1]["type"], "image");
    assert_eq!(blocks[1]["source"], json!({ "type": "base64", "media_type": "image/png", "data": PNG }));
    assert_eq!(blocks[2]["source"]["data"], PNG);
    // And read it: the stand-in says what it got.
    let events = app.events(execution["id"].as_str().unwrap(), 0).await.unwrap();
    let answer = events.iter().find(|e| e["type"] == "assistant").expect("an answer").to_string();
    assert!(answer.contains("What is wrong here? [image image/png, 70 bytes]"), "{answer}");
    let listed = app.ok("{ attachments { name mediaType } }", json!({})).await;
    assert_eq!(listed["attachments"], json!([{ "name": "screen.png", "mediaType": "image/png" }]));
}

async fn files_inline_and_by_id(app: TestApp) {
    let (workspace, dir) = app.workspace().await;
    // Uploaded before: the same bytes twice are one attachment.
    let notes = STANDARD.encode("the build fails on line 3");
    let first = app.ok(UPLOAD, json!({ "input": { "base64": notes, "name": "notes.txt" } })).await;
    let again = app.ok(UPLOAD, json!({ "input": { "base64": notes, "name": "notes.txt" } })).await;
    let id = first["uploadAttachment"]["id"].as_str().unwrap();
    assert_eq!(again["uploadAttachment"]["id"], id);
    assert_eq!(first["uploadAttachment"]["mediaType"], "text/plain");
    // By id, beside an inline image and a text block; no prompt.
    let started = app
        .ok(
            START,
            json!({ "input": { "workspaceId": workspace, "content": [
                { "text": "Compare these." },
                { "document": { "attachmentId": id } },
                { "image": { "base64": PNG } },
            ] } }),
        )
        .await;
    let execution = &started["startExecution"]["execution"];
    assert_eq!(execution["prompt"], "Compare these.");
    assert_eq!(app.wait_finished(execution["id"].as_str().unwrap()).await["status"], "COMPLETED");
    let blocks = &user_lines(&app, &dir)[0]["message"]["content"];
    assert_eq!(
        blocks[1],
        json!({ "type": "document", "title": "notes.txt",
            "source": { "type": "text", "media_type": "text/plain", "data": "the build fails on line 3" } })
    );
    assert_eq!(blocks[2]["source"]["data"], PNG);

    // A follow-up message with an image.
    let (workspace, dir) = app.workspace().await;
    let (execution, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: messages=5 delay_ms=100" })).await;
    app.wait_status(&execution, "RUNNING").await;
    let send = "mutation($id: ID!, $content: [ContentBlockInput!]) {
        sendMessage(executionId: $id, text: \"and this\", content: $content) { messageId } }";
    app.ok(send, json!({ "id": execution, "content": [{ "image": { "base64": PNG } }] })).await;
    let events = app.events(&execution, 0).await.unwrap();
    assert_eq!(final_status(&events)["status"], "COMPLETED");
    let users = user_lines(&app, &dir);
    assert_eq!(users[1]["message"]["content"][0], json!({ "type": "text", "text": "and this" }));
    assert_eq!(users[1]["message"]["content"][1]["source"]["data"], PNG);

    // Deleted: gone from the list, and a start naming it is refused.
    app.ok("mutation($id: ID!) { deleteAttachment(id: $id) { deletedId } }", json!({ "id": id })).await;
    let refused = app
        .gql(
            START,
            json!({ "input": { "workspaceId": workspace, "content": [{ "document": { "attachmentId": id } }] } }),
        )
        .await;
    assert_eq!(code(&refused), "NOT_FOUND", "{refused}");
}

async fn bad_files_are_refused(app: TestApp) {
    let (workspace, _) = app.workspace().await;
    let start = |content: Value| json!({ "input": { "workspaceId": workspace, "prompt": "look", "content": content } });
    let program = STANDARD.encode(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff");
    for (content, field) in [
        (json!([{ "image": { "base64": program } }]), "content.0"),
        (json!([{ "image": { "base64": "not base64!" } }]), "content.0.base64"),
        (json!([{ "document": { "base64": PNG } }]), "content.0"),
        (json!([{ "image": { "base64": STANDARD.encode("just text") } }]), "content.0"),
        (json!([{ "image": { "base64": PNG, "attachmentId": "x" } }]), "content.0"),
        (json!([{ "image": {} }]), "content.0"),
        (json!([{ "text": "  " }]), "content.0"),
        (json!([{ "image": { "attachmentId": "not-an-id" } }]), "content.0.attachmentId"),
        (json!([]), "content"),
        (json!(vec![json!({ "text": "x" }); 21]), "content"),
    ] {
        let refused = app.gql(START, start(content.clone())).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{content}: {refused}");
        assert_eq!(refused["errors"][0]["extensions"]["details"]["field"], field, "{content}: {refused}");
    }
    // An image block naming a document, and neither prompt nor content.
    let doc = app.ok(UPLOAD, json!({ "input": { "base64": STANDARD.encode("%PDF-1.4 ...") } })).await;
    let doc_id = doc["uploadAttachment"]["id"].as_str().unwrap();
    assert_eq!(doc["uploadAttachment"]["mediaType"], "application/pdf");
    let refused = app.gql(START, start(json!([{ "image": { "attachmentId": doc_id } }]))).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    let refused = app.gql(START, json!({ "input": { "workspaceId": workspace } })).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    let executions = app.ok("{ executions(first: 50) { edges { node { id } } } }", json!({})).await;
    assert_eq!(executions["executions"]["edges"], json!([]), "nothing was started");

    // A multipart request without a header that forces a preflight, as a
    // cross-site form would send it, is refused before anything runs.
    let operations = json!({ "query": UPLOAD, "variables": { "input": { "file": null } } });
    let map = json!({ "0": ["variables.input.file"] });
    let refused = multipart(&app, operations.clone(), map.clone(), vec![("0", "a.png", png())], &[]).await;
    assert_eq!(refused.status(), 400);
    assert!(app.ok("{ attachments { id } }", json!({})).await["attachments"].as_array().unwrap().len() == 1);
    // The file marker cannot be forged in JSON (it would index the files).
    for marker in ["#__graphql_file__:0", "#__graphql_file__:x"] {
        let forged = app.gql(UPLOAD, json!({ "input": { "file": marker } })).await;
        assert!(forged["errors"][0]["message"].as_str().unwrap().contains("names no file"), "{forged}");
    }
    // Nor in the document itself.
    let written =
        app.gql("mutation { uploadAttachment(input: { file: \"#__graphql_file__:x\" }) { id } }", json!({})).await;
    assert!(written["errors"][0]["message"].as_str().unwrap().contains("names no file"), "{written}");
    let forged = multipart(
        &app,
        json!({ "query": START, "variables": { "input": { "workspaceId": workspace, "prompt": "x",
            "content": [{ "image": { "file": "#__graphql_file__:1" } }] } } }),
        json!({ "0": ["variables.nothing"] }),
        vec![("0", "a.png", png())],
        &[("Apollo-Require-Preflight", "true")],
    )
    .await;
    let forged: Value = forged.json().await.unwrap();
    assert!(forged["errors"][0]["message"].as_str().unwrap().contains("names no file"), "{forged}");
}

#[tokio::test]
async fn sizes_and_quotas_are_limits() {
    let app = spawn_with(Db::Sqlite, |c| {
        c.attachment_max_bytes = 1000;
        c.attachment_quota_bytes = 2500;
    })
    .await
    .unwrap();
    let big = vec![b'a'; 1001];
    let refused = app.gql(UPLOAD, json!({ "input": { "base64": STANDARD.encode(&big) } })).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("larger than 1000 bytes"));
    let operations = json!({ "query": UPLOAD, "variables": { "input": { "file": null } } });
    let response = multipart(
        &app,
        operations,
        json!({ "0": ["variables.input.file"] }),
        vec![("0", "big.txt", vec![b'a'; 5000])],
        &[("GraphQL-Require-Preflight", "1")],
    )
    .await;
    assert_eq!(response.status(), 200);
    let refused: Value = response.json().await.unwrap();
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    // A file larger than any request may be is cut off as it streams in.
    let operations = json!({ "query": UPLOAD, "variables": { "input": { "file": null } } });
    let huge = vec![b'a'; app.config.max_body_bytes + 1];
    let response = multipart(
        &app,
        operations,
        json!({ "0": ["variables.input.file"] }),
        vec![("0", "huge.txt", huge)],
        &[("GraphQL-Require-Preflight", "1")],
    )
    .await;
    assert_eq!(response.status(), 413);
    // 900 + 900 fit; a third 900 would pass the quota of 2500.
    for byte in [b'a', b'b'] {
        app.ok(UPLOAD, json!({ "input": { "base64": STANDARD.encode(vec![byte; 900]) } })).await;
    }
    let refused = app.gql(UPLOAD, json!({ "input": { "base64": STANDARD.encode(vec![b'c'; 900]) } })).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("1800 used"), "{refused}");
}

#[tokio::test]
async fn attachments_expire_unless_a_waiting_run_uses_them() {
    let app = spawn_with(Db::Sqlite, |c| {
        c.attachment_ttl = Duration::from_millis(500);
        c.replica_lease = Duration::from_millis(900);
    })
    .await
    .unwrap();
    let (workspace, _) = app.workspace().await;
    let kept = app.ok(UPLOAD, json!({ "input": { "base64": PNG } })).await["uploadAttachment"]["id"].clone();
    let dropped = app.ok(UPLOAD, json!({ "input": { "base64": STANDARD.encode("notes") } })).await["uploadAttachment"]
        ["id"]
        .clone();
    // A run that keeps its session busy, and one queued behind it that
    // uses the image.
    let (running, session) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    app.wait_status(&running, "RUNNING").await;
    let queued = app
        .ok(
            START,
            json!({ "input": { "workspaceId": workspace, "sessionId": session, "prompt": "now this",
                "content": [{ "image": { "attachmentId": kept } }] } }),
        )
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let ids: Vec<Value> = app.ok("{ attachments { id } }", json!({})).await["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].clone())
            .collect();
        if !ids.contains(&dropped) {
            assert!(ids.contains(&kept), "the queued run's image is kept");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the expired attachment was never deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The queued run still gets its image once its turn comes.
    app.ok("mutation($id: ID!) { interruptExecution(id: $id) { id } }", json!({ "id": running })).await;
    let queued_id = queued["startExecution"]["execution"]["id"].as_str().unwrap();
    assert_eq!(app.wait_finished(queued_id).await["status"], "COMPLETED");
}

#[tokio::test]
async fn attachments_are_their_owners_alone() {
    let app = secured(|_| {}).await;
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    let uploaded = as_user(&app, &alice, UPLOAD, json!({ "input": { "base64": PNG } })).await;
    let id = uploaded["data"]["uploadAttachment"]["id"].as_str().unwrap().to_owned();
    let (workspace, _) = app.workspace_of(&bob, "bobs").await;
    // Bob cannot send, see or delete Alice's attachment.
    let start = json!({ "input": { "workspaceId": workspace, "prompt": "x",
        "content": [{ "image": { "attachmentId": id } }] } });
    assert_eq!(code(&as_user(&app, &bob, START, start).await), "NOT_FOUND");
    let listed = as_user(&app, &bob, "{ attachments { id } }", json!({})).await;
    assert_eq!(listed["data"]["attachments"], json!([]));
    let delete = "mutation($id: ID!) { deleteAttachment(id: $id) { deletedId } }";
    assert_eq!(code(&as_user(&app, &bob, delete, json!({ "id": id })).await), "NOT_FOUND");
    // The same bytes uploaded by Bob are Bob's own attachment.
    let his = as_user(&app, &bob, UPLOAD, json!({ "input": { "base64": PNG } })).await;
    assert_ne!(his["data"]["uploadAttachment"]["id"], id.as_str());
    // Without a token nothing is uploaded, and a multipart body is not even read.
    let anonymous = app.gql(UPLOAD, json!({ "input": { "base64": PNG } })).await;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED");
    let operations = json!({ "query": UPLOAD, "variables": { "input": { "file": null } } });
    let map = json!({ "0": ["variables.input.file"] });
    let preflight = [("GraphQL-Require-Preflight", "1")];
    let response =
        multipart(&app, operations, map, vec![("0", "a.png", STANDARD.decode(PNG).unwrap())], &preflight).await;
    assert_eq!(response.status(), 401);
}
