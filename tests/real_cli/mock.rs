//! A mock of the Anthropic Messages API: scripted replies, streamed as the
//! real API streams them (SSE), on a loopback port.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use futures_util::StreamExt;
use serde_json::{json, Value};

/// What the next API call answers.
#[derive(Debug, Clone)]
pub enum Reply {
    Text(String),
    /// Text streamed word by word, `pause` apart (something to interrupt).
    Slow {
        text: String,
        pause: std::time::Duration,
    },
    Tool {
        name: String,
        input: Value,
    },
    /// An error status with this body (and no retry).
    Status(u16, Value),
}

#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Value>>,
}

pub struct MockApi {
    pub url: String,
    script: Arc<Script>,
}

impl MockApi {
    pub async fn start(replies: Vec<Reply>) -> MockApi {
        let script = Arc::new(Script { replies: Mutex::new(replies.into()), requests: Mutex::default() });
        let app = Router::new().route("/v1/messages", post(messages)).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        MockApi { url, script }
    }

    /// The bodies of the streamed (main) requests so far.
    pub fn requests(&self) -> Vec<Value> {
        self.script.requests.lock().unwrap().clone()
    }
}

async fn messages(State(script): State<Arc<Script>>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if request["stream"] != true {
        // Side requests (titles, token counts): a short plain answer.
        return axum::Json(message("ok", "end_turn")).into_response();
    }
    script.requests.lock().unwrap().push(request);
    let reply = script.replies.lock().unwrap().pop_front().unwrap_or(Reply::Text("ok".into()));
    let (content_start, deltas, stop) = match &reply {
        Reply::Status(status, body) => {
            return (
                StatusCode::from_u16(*status).unwrap(),
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::HeaderName::from_static("x-should-retry"), "false"),
                ],
                body.to_string(),
            )
                .into_response();
        }
        Reply::Slow { text, pause } => return slow(text.clone(), *pause),
        Reply::Text(text) => {
            (json!({ "type": "text", "text": "" }), json!({ "type": "text_delta", "text": text }), "end_turn")
        }
        Reply::Tool { name, input } => (
            json!({ "type": "tool_use", "id": format!("toolu_mock_{}", uuid::Uuid::new_v4().simple()), "name": name, "input": {} }),
            json!({ "type": "input_json_delta", "partial_json": input.to_string() }),
            "tool_use",
        ),
    };
    let mut start = message("", stop);
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    let events = [
        ("message_start", json!({ "type": "message_start", "message": start })),
        ("content_block_start", json!({ "type": "content_block_start", "index": 0, "content_block": content_start })),
        ("content_block_delta", json!({ "type": "content_block_delta", "index": 0, "delta": deltas })),
        ("content_block_stop", json!({ "type": "content_block_stop", "index": 0 })),
        (
            "message_delta",
            json!({ "type": "message_delta", "delta": { "stop_reason": stop, "stop_sequence": null }, "usage": { "output_tokens": 12 } }),
        ),
        ("message_stop", json!({ "type": "message_stop" })),
    ];
    let body: String = events.iter().map(|(name, data)| format!("event: {name}\ndata: {data}\n\n")).collect();
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

/// An SSE response that sends one word per `pause`.
fn slow(text: String, pause: std::time::Duration) -> Response {
    let mut start = message("", "end_turn");
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    let event = |name: &str, data: Value| {
        Ok::<_, std::convert::Infallible>(Bytes::from(format!("event: {name}\ndata: {data}\n\n")))
    };
    let head = vec![
        event("message_start", json!({ "type": "message_start", "message": start })),
        event(
            "content_block_start",
            json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
        ),
    ];
    let words: Vec<String> = text.split(' ').map(|w| format!("{w} ")).collect();
    let body = futures_util::stream::iter(head)
        .chain(futures_util::stream::iter(words).then(move |word| async move {
            tokio::time::sleep(pause).await;
            event("content_block_delta", json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": word } }))
        }))
        .chain(futures_util::stream::iter(vec![
            event("content_block_stop", json!({ "type": "content_block_stop", "index": 0 })),
            event("message_delta", json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn", "stop_sequence": null }, "usage": { "output_tokens": 12 } })),
            event("message_stop", json!({ "type": "message_stop" })),
        ]));
    ([(header::CONTENT_TYPE, "text/event-stream")], axum::body::Body::from_stream(body)).into_response()
}

fn message(text: &str, stop: &str) -> Value {
    json!({
        "id": format!("msg_mock_{}", uuid::Uuid::new_v4().simple()),
        "type": "message",
        "role": "assistant",
        "model": "claude-mock-1",
        "content": [{ "type": "text", "text": text }],
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": { "input_tokens": 100, "output_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 },
    })
}
