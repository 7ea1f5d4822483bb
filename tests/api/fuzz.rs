//! Malformed input, generated: GraphQL documents, request bodies and
//! WebSocket frames, mutated from valid ones and made up from scratch. The
//! server never panics, always answers with a well-formed error, and keeps
//! serving. `FUZZ_CASES=100000 cargo test --test api fuzz` runs longer.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{spawn_app, EVENTS_SUBSCRIPTION};

/// A small deterministic generator (xorshift), so a failure can be replayed
/// from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const SEEDS: &[&str] = &[
    "{ workspaces { edges { node { id name path } } } }",
    "query($id: ID!) { execution(id: $id) { id status error { code message } session { id } } }",
    "mutation { createWorkspace(input: {name: \"x\", path: \"/tmp\"}) { id } }",
    "mutation($i: StartExecutionInput!) { startExecution(input: $i) { execution { id } } }",
    "{ sessionLogs(sessionId: \"x\", limit: 5, afterSeq: 1) { seq payload } }",
    "fragment F on Query { __typename } query { ...F ...F }",
    EVENTS_SUBSCRIPTION,
];

const PIECES: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "...",
    "$",
    ":",
    "!",
    "@",
    "=",
    "\"",
    "\"\"\"",
    "#",
    "\\",
    "\u{0}",
    "\u{fffd}",
    "query",
    "mutation",
    "subscription",
    "fragment",
    "on",
    "__schema",
    "__typename",
    "null",
    "true",
    "-1",
    "2147483648",
    "1e999",
    "workspaces",
    "first: -5",
    "first: 1000000",
    "a:",
    " ",
    "\n",
    "😀",
    "ID!",
    "Int",
];

/// A document: a valid one mutated, or a soup of pieces.
fn document(rng: &mut Rng) -> String {
    if rng.below(3) == 0 {
        return (0..rng.below(80)).map(|_| rng.pick(PIECES)).collect::<Vec<_>>().join("");
    }
    let mut text: Vec<char> = rng.pick(SEEDS).chars().collect();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(text.len() + 1);
        match rng.below(3) {
            0 if at < text.len() => {
                text.remove(at);
            }
            1 => text.splice(at..at, rng.pick(PIECES).chars()).for_each(drop),
            _ => {
                let end = (at + rng.below(10)).min(text.len());
                let copy: Vec<char> = text[at..end].to_vec();
                text.splice(at..at, copy).for_each(drop);
            }
        }
    }
    text.into_iter().collect()
}

/// A request body: mostly JSON with odd fields, sometimes not JSON at all.
fn body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(6) {
        0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
        1 => json!({ "query": document(rng), "variables": "not an object" }).to_string().into_bytes(),
        2 => json!({ "query": 5, "operationName": [] }).to_string().into_bytes(),
        3 => json!({ "query": "x".repeat(rng.below(100_000)) }).to_string().into_bytes(),
        4 => json!({ "extensions": { "persistedQuery": { "version": rng.below(3), "sha256Hash": document(rng) } } })
            .to_string()
            .into_bytes(),
        _ => json!({
            "query": document(rng),
            "variables": { "id": document(rng), "i": { "workspaceId": "x", "prompt": document(rng) } },
        })
        .to_string()
        .into_bytes(),
    }
}

fn cases() -> usize {
    std::env::var("FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(300)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_requests_get_well_formed_errors() {
    let app = spawn_app().await;
    let mut rng = Rng(0x5eed_cafe);
    for case in 0..cases() {
        let body = body(&mut rng);
        let response = app
            .http
            .post(app.url("/graphql"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("case {case}: the server is gone: {e}"));
        let status = response.status().as_u16();
        assert!([200, 400, 413].contains(&status), "case {case}: status {status}");
        let answer: Value = response.json().await.unwrap_or_else(|e| panic!("case {case}: not JSON: {e}"));
        if let Some(errors) = answer.get("errors") {
            for error in errors.as_array().expect("a list") {
                assert!(error["message"].is_string(), "case {case}: {error}");
                let code = error["extensions"]["code"].as_str().unwrap_or_default();
                assert!(!code.is_empty() && code != "INTERNAL_ERROR", "case {case}: {error}");
            }
        } else {
            assert!(answer.get("data").is_some(), "case {case}: {answer}");
        }
    }
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(health.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_websocket_frames_close_cleanly() {
    let app = spawn_app().await;
    let mut rng = Rng(0xfeed_f00d);
    for case in 0..cases() / 3 {
        let mut socket = crate::ws::acked_socket(&app).await;
        let frame = match rng.below(5) {
            0 => Message::Binary((0..rng.below(100)).map(|_| rng.next() as u8).collect::<Vec<_>>().into()),
            1 => Message::text(document(&mut rng)),
            2 => Message::text(json!({ "type": rng.pick(PIECES), "id": rng.below(3) }).to_string()),
            3 => Message::text(json!({ "type": "subscribe", "id": "1", "payload": { "query": document(&mut rng) } }).to_string()),
            _ => Message::text(json!({ "type": "subscribe", "id": "1", "payload": { "query": EVENTS_SUBSCRIPTION, "variables": { "id": document(&mut rng), "after": rng.next() } } }).to_string()),
        };
        socket.send(frame).await.unwrap();
        // Whatever it was: an error message, a result, or a close with a
        // protocol code; never a dropped connection without a close frame.
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await.expect("an answer") {
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("case {case}: {text}"));
                assert!(
                    ["next", "error", "complete"].contains(&message["type"].as_str().unwrap_or("")),
                    "case {case}: {text}"
                );
            }
            Some(Ok(Message::Close(Some(frame)))) => {
                let code = u16::from(frame.code);
                assert!((4400..4500).contains(&code), "case {case}: close {code}");
            }
            other => panic!("case {case}: {other:?}"),
        }
    }
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(health.status().is_success());
}
