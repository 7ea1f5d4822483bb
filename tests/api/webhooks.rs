//! Webhooks: signed deliveries of run events, retried after a failure,
//! logged, and never sent where the operator did not allow.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, http::HeaderMap, http::StatusCode, routing::post, Router};
use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::{
    auth::code,
    helpers::{spawn_with, Db},
};

const CREATE: &str = "mutation($input: CreateWebhookInput!) {
    createWebhook(input: $input) { secret webhook { id url events workspace { id } } } }";
const DELIVERIES: &str = "query { webhooks { id deliveries(first: 50) {
    id event status attempts lastStatusCode lastError payload finishedAt } } }";

/// What a receiver got: the headers and body of each request.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    /// Statuses to answer with, in turn; 200 once they are used up.
    answers: Arc<Mutex<VecDeque<u16>>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    receiver.got.lock().unwrap().push((headers, body));
    let status = receiver.answers.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

/// A receiver on 127.0.0.1; its URL.
async fn receiver(answers: &[u16]) -> (Receiver, String) {
    let receiver = Receiver { answers: Arc::new(Mutex::new(answers.iter().copied().collect())), ..Default::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new().route("/hook", post(receive)).with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, url)
}

/// Whether `headers` sign `body` with `secret`, as Standard Webhooks says.
fn signed(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", header("webhook-id"), header("webhook-timestamp"), body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header("webhook-signature").split(' ').any(|s| s == expected)
}

async fn wait_for(receiver: &Receiver, count: usize) -> Vec<(HeaderMap, Value, String)> {
    for _ in 0..500 {
        let got = receiver.got.lock().unwrap().clone();
        if got.len() >= count {
            return got.into_iter().map(|(h, b)| (h, serde_json::from_str(&b).unwrap(), b)).collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the receiver got {} of {count}", receiver.got.lock().unwrap().len());
}

async fn deliveries_are_signed_retried_and_logged(db: Db) {
    let Some(app) = spawn_with(db, |c| {
        c.webhook_allowed_hosts = vec!["127.0.0.1".into()];
        c.webhook_retry_base = Duration::from_millis(200);
    })
    .await
    else {
        return;
    };
    let (workspace, _) = app.workspace().await;
    // The first attempt gets a 500.
    let (receiver, url) = receiver(&[500]).await;
    let created = app.ok(CREATE, json!({ "input": { "url": url, "workspaceId": workspace } })).await;
    let secret = created["createWebhook"]["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created["createWebhook"]["webhook"]["events"].as_array().unwrap().len(), 5);

    let (execution, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": "hello", "metadata": { "ticket": 7 } })).await;
    app.wait_finished(&execution).await;
    let got = wait_for(&receiver, 2).await;
    let (first, second) = (&got[0], &got[1]);
    // The retry is the same delivery: same id, same body, signed anew.
    assert_eq!(first.0["webhook-id"], second.0["webhook-id"]);
    assert_eq!(first.2, second.2);
    for (headers, body, raw) in &got {
        assert!(signed(&secret, headers, raw), "a valid signature: {headers:?}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body["type"], "execution.completed");
        assert_eq!(body["data"]["execution"]["id"], execution.as_str());
        assert_eq!(body["data"]["execution"]["status"], "COMPLETED");
        assert_eq!(body["data"]["execution"]["metadata"], json!({ "ticket": 7 }));
    }
    // A forged signature does not verify.
    assert!(!signed("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &first.0, &first.2));

    // The log says what happened.
    let log = loop {
        let log = app.ok(DELIVERIES, json!({})).await;
        if log["webhooks"][0]["deliveries"][0]["status"] == "DELIVERED" {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let delivery = &log["webhooks"][0]["deliveries"][0];
    assert_eq!(delivery["event"], "EXECUTION_COMPLETED");
    assert_eq!(delivery["attempts"], 2);
    assert_eq!(delivery["lastStatusCode"], 200);
    assert_eq!(delivery["payload"], first.1);

    // Permission requests and parked runs are announced too.
    let (asking, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: ask=Bash", "requireApproval": true })).await;
    let got = wait_for(&receiver, 3).await;
    assert_eq!(got[2].1["type"], "permission.requested");
    assert_eq!(got[2].1["data"]["permissionRequest"]["toolName"], "Bash");
    assert_eq!(got[2].1["data"]["execution"]["id"], asking.as_str());
    app.ok("mutation($id: ID!) { cancelExecution(id: $id) { id } }", json!({ "id": asking })).await;
    let got = wait_for(&receiver, 4).await;
    assert_eq!(got[3].1["type"], "execution.cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_retried_and_logged_sqlite() {
    deliveries_are_signed_retried_and_logged(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_retried_and_logged_postgres() {
    deliveries_are_signed_retried_and_logged(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_the_operator_did_not_allow_get_nothing() {
    // No allow-list: public addresses only.
    let app = spawn_with(Db::Sqlite, |c| c.webhook_retry_base = Duration::from_millis(100)).await.unwrap();
    let (workspace, _) = app.workspace().await;
    let (receiver, url) = receiver(&[]).await;
    let port = url.trim_start_matches("http://127.0.0.1:").split('/').next().unwrap().to_owned();
    for bad in [
        url.clone(),
        format!("http://[::1]:{port}/hook"),
        "http://10.0.0.8/hook".into(),
        "http://169.254.169.254/latest/meta-data".into(),
        "http://localhost/hook".into(),
        "file:///etc/passwd".into(),
        "http://user:secret@example.com/".into(),
    ] {
        let refused = app.gql(CREATE, json!({ "input": { "url": bad } })).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{bad}: {refused}");
        assert_eq!(refused["errors"][0]["extensions"]["details"]["field"], "url");
    }
    // A name that resolved to a public address when it was registered and
    // to loopback now (DNS rebinding) is refused when it is to be sent:
    // nothing reaches the receiver, and it is not tried again.
    let db = claude_graphql::db::connect(&app.database_url).await.unwrap();
    let url = format!("http://localhost:{port}/hook");
    let events = vec![claude_graphql::db::webhooks::EXECUTION_COMPLETED];
    let new = claude_graphql::db::webhooks::NewWebhook {
        owner: "local",
        workspace_id: None,
        url: &url,
        secret: "whsec_AAAA",
        events,
    };
    claude_graphql::db::webhooks::create(&db, new).await.unwrap();
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "hello" })).await;
    app.wait_finished(&execution).await;
    let log = loop {
        let log = app.ok(DELIVERIES, json!({})).await;
        if log["webhooks"][0]["deliveries"][0]["status"] == "FAILED" {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let error = log["webhooks"][0]["deliveries"][0]["lastError"].as_str().unwrap();
    assert!(error.contains("not a public address"), "{error}");
    assert_eq!(log["webhooks"][0]["deliveries"][0]["attempts"], 1, "not retried");
    assert!(receiver.got.lock().unwrap().is_empty());

    // With an allow-list, only the hosts on it.
    let listed = spawn_with(Db::Sqlite, |c| c.webhook_allowed_hosts = vec!["hooks.example.com".into()]).await.unwrap();
    let refused = listed.gql(CREATE, json!({ "input": { "url": "https://other.example.com/x" } })).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("WEBHOOK_ALLOWED_HOSTS"));
    let ok = listed
        .ok(CREATE, json!({ "input": { "url": "https://hooks.example.com/x", "events": ["EXECUTION_FAILED"] } }))
        .await;
    assert_eq!(ok["createWebhook"]["webhook"]["events"], json!(["EXECUTION_FAILED"]));
    // Another user's webhook is not yours to delete; yours is.
    let id = ok["createWebhook"]["webhook"]["id"].as_str().unwrap();
    let deleted = listed.ok("mutation($id: ID!) { deleteWebhook(id: $id) { deletedId } }", json!({ "id": id })).await;
    assert_eq!(deleted["deleteWebhook"]["deletedId"], id);
    let again = listed.gql("mutation($id: ID!) { deleteWebhook(id: $id) { deletedId } }", json!({ "id": id })).await;
    assert_eq!(code(&again), "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_per_user() {
    use crate::auth::{as_user, secured, token_for};
    let app = secured(|c| c.webhook_allowed_hosts = vec!["127.0.0.1".into()]).await;
    let (receiver, url) = receiver(&[]).await;
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    let created = as_user(&app, &alice, CREATE, json!({ "input": { "url": url } })).await;
    let id = created["data"]["createWebhook"]["webhook"]["id"].as_str().unwrap().to_owned();
    // Bob sees none, deletes none, and his runs are not sent to alice's.
    let seen = as_user(&app, &bob, DELIVERIES, json!({})).await;
    assert_eq!(seen["data"]["webhooks"], json!([]));
    let refused =
        as_user(&app, &bob, "mutation($id: ID!) { deleteWebhook(id: $id) { deletedId } }", json!({ "id": id })).await;
    assert_eq!(code(&refused), "NOT_FOUND");
    let (workspace, _) = app.workspace_of(&bob, "bob").await;
    let started = as_user(
        &app,
        &bob,
        "mutation($w: ID!) { startExecution(input: {workspaceId: $w, prompt: \"hi\"}) { execution { id } } }",
        json!({ "w": workspace }),
    )
    .await;
    assert!(started.get("errors").is_none(), "{started}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(receiver.got.lock().unwrap().is_empty());
}
