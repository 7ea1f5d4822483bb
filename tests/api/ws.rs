//! graphql-transport-ws, rule by rule, with raw frames.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, http::HeaderValue, protocol::frame::coding::CloseCode, Message},
    MaybeTlsStream, WebSocketStream,
};

use crate::helpers::{spawn_app, spawn_with, Db, TestApp, EVENTS_SUBSCRIPTION};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn connect(app: &TestApp, protocol: Option<&'static str>) -> Socket {
    let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    if let Some(protocol) = protocol {
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
    }
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

pub async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).await.unwrap();
}

/// The next JSON message (skipping server pings unless asked for).
pub async fn next(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message")
            .expect("open")
            .unwrap();
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Waits for the server to close; returns (code, reason).
pub async fn closed(socket: &mut Socket) -> (u16, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a close") {
            Some(Ok(Message::Close(Some(frame)))) => return (u16::from(frame.code), frame.reason.to_string()),
            Some(Ok(Message::Close(None))) | None => return (0, String::new()),
            Some(Err(e)) => panic!("{e}"),
            Some(Ok(_)) => {}
        }
    }
}

pub async fn acked_socket(app: &TestApp) -> Socket {
    acked(app).await
}

async fn acked(app: &TestApp) -> Socket {
    let mut socket = connect(app, Some("graphql-transport-ws")).await;
    send(&mut socket, json!({ "type": "connection_init" })).await;
    assert_eq!(next(&mut socket).await["type"], "connection_ack");
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messages_close_with_4400() {
    let app = spawn_app().await;
    for bad in [
        Message::text("not json"),
        Message::text(r#"{"type":"nonsense"}"#),
        Message::text(r#"{"id":"1"}"#),
        Message::binary(vec![1, 2]),
    ] {
        let mut socket = acked(&app).await;
        socket.send(bad.clone()).await.unwrap();
        let (code, reason) = closed(&mut socket).await;
        assert_eq!(code, 4400, "{bad:?}");
        assert!(reason.len() <= 123);
    }
    // A subscribe without an id or payload is invalid too.
    let mut socket = acked(&app).await;
    send(&mut socket, json!({ "type": "subscribe", "payload": { "query": "{ __typename }" } })).await;
    assert_eq!(closed(&mut socket).await.0, 4400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_before_ack_is_4401_and_a_second_init_is_4429() {
    let app = spawn_app().await;
    let mut socket = connect(&app, Some("graphql-transport-ws")).await;
    send(&mut socket, json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ __typename }" } })).await;
    assert_eq!(closed(&mut socket).await, (4401, "Unauthorized".into()));

    let mut socket = acked(&app).await;
    send(&mut socket, json!({ "type": "connection_init" })).await;
    assert_eq!(closed(&mut socket).await, (4429, "Too many initialisation requests".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_init_in_time_is_4408() {
    let app = spawn_with(Db::Sqlite, |c| c.ws_init_timeout = Duration::from_millis(300)).await.unwrap();
    let mut socket = connect(&app, Some("graphql-transport-ws")).await;
    assert_eq!(closed(&mut socket).await, (4408, "Connection initialisation timeout".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_init_is_4403() {
    let app = spawn_with(Db::Sqlite, |c| c.jwt_secret = Some(crate::auth::SECRET.to_owned().into())).await.unwrap();
    for payload in [json!({}), json!({ "Authorization": "Bearer nonsense" }), json!({ "token": "x.y.z" })] {
        let mut socket = connect(&app, Some("graphql-transport-ws")).await;
        send(&mut socket, json!({ "type": "connection_init", "payload": payload })).await;
        let (code, reason) = closed(&mut socket).await;
        assert_eq!(code, 4403, "{payload}");
        assert!(reason.starts_with("Forbidden: "), "the reason says why: {reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_operation_id_is_4409() {
    let app = spawn_app().await;
    let (workspace, _) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    let mut socket = acked(&app).await;
    let subscribe = json!({ "id": "same", "type": "subscribe", "payload": { "query": EVENTS_SUBSCRIPTION, "variables": { "id": execution, "after": 0 } } });
    send(&mut socket, subscribe.clone()).await;
    assert_eq!(next(&mut socket).await["type"], "next");
    send(&mut socket, subscribe).await;
    assert_eq!(closed(&mut socket).await, (4409, "Subscriber for same already exists".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_operation_gets_an_error_message_and_no_complete() {
    let app = spawn_app().await;
    let mut socket = acked(&app).await;
    send(&mut socket, json!({ "id": "a", "type": "subscribe", "payload": { "query": "subscription { nope }" } })).await;
    let error = next(&mut socket).await;
    assert_eq!((error["type"].as_str(), error["id"].as_str()), (Some("error"), Some("a")), "{error}");
    assert!(error["payload"].as_array().is_some_and(|errors| !errors.is_empty()), "payload is the list of errors");
    // The connection stays usable, and no `complete` for "a" follows.
    send(&mut socket, json!({ "id": "b", "type": "subscribe", "payload": { "query": "{ __typename }" } })).await;
    let next_message = next(&mut socket).await;
    assert_eq!((next_message["type"].as_str(), next_message["id"].as_str()), (Some("next"), Some("b")));
    assert_eq!(next_message["payload"]["data"]["__typename"], "Query");
    assert_eq!(next(&mut socket).await, json!({ "type": "complete", "id": "b" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_both_ways_and_a_silent_client_is_dropped() {
    let app = spawn_with(Db::Sqlite, |c| c.ws_keep_alive = Duration::from_millis(200)).await.unwrap();
    let mut socket = acked(&app).await;
    send(&mut socket, json!({ "type": "ping", "payload": { "n": 1 } })).await;
    assert_eq!(next(&mut socket).await, json!({ "type": "pong", "payload": { "n": 1 } }));
    // The server pings; answering keeps the connection.
    for _ in 0..3 {
        assert_eq!(next(&mut socket).await["type"], "ping");
        send(&mut socket, json!({ "type": "pong" })).await;
    }
    // Not answering ends it.
    assert_eq!(next(&mut socket).await["type"], "ping");
    let (code, _) = closed(&mut socket).await;
    assert_eq!(code, u16::from(CloseCode::Away));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_can_stop_a_subscription_and_no_subprotocol_is_4406() {
    let app = spawn_app().await;
    let (workspace, _) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: hang" })).await;
    let mut socket = acked(&app).await;
    send(&mut socket, json!({ "id": "s", "type": "subscribe", "payload": { "query": EVENTS_SUBSCRIPTION, "variables": { "id": execution, "after": 0 } } })).await;
    assert_eq!(next(&mut socket).await["type"], "next");
    send(&mut socket, json!({ "id": "s", "type": "complete" })).await;
    // The same id may be used again once completed.
    send(&mut socket, json!({ "id": "s", "type": "subscribe", "payload": { "query": "{ __typename }" } })).await;
    loop {
        let message = next(&mut socket).await;
        if message["payload"]["data"]["__typename"] == "Query" {
            break;
        }
    }

    let mut socket = connect(&app, None).await;
    assert_eq!(closed(&mut socket).await.0, 4406);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_with_different_documents_each_get_their_own_shape() {
    let app = spawn_app().await;
    let (workspace, _) = app.workspace().await;
    let (execution, _) =
        app.start(json!({ "workspaceId": workspace, "prompt": "fake: messages=20 delay_ms=20" })).await;
    let documents = [
        "subscription($id: ID!) { executionEvents(executionId: $id) { ... on MessageEvent { seq } } }",
        "subscription($id: ID!, $a: Int!) { e: executionEvents(executionId: $id, afterSeq: $a) { __typename ... on MessageEvent { seq type } } }",
    ];
    let mut sockets = Vec::new();
    for (i, document) in documents.iter().enumerate() {
        for after in [0, 5] {
            let mut socket = acked(&app).await;
            send(&mut socket, json!({ "id": format!("op{i}"), "type": "subscribe", "payload": { "query": document, "variables": { "id": execution, "a": after } } })).await;
            sockets.push((i, after, socket));
        }
    }
    for (i, after, mut socket) in sockets {
        let mut seqs = Vec::new();
        loop {
            let message = next(&mut socket).await;
            if message["type"] == "complete" {
                break;
            }
            assert_eq!(message["id"], format!("op{i}"));
            let event =
                if i == 0 { &message["payload"]["data"]["executionEvents"] } else { &message["payload"]["data"]["e"] };
            if i == 1 {
                assert!(event["__typename"].is_string(), "{message}");
            } else {
                assert!(event.get("__typename").is_none() && event.get("type").is_none(), "{message}");
            }
            if let Some(seq) = event["seq"].as_i64() {
                seqs.push(seq);
            }
        }
        // The first document has no afterSeq: it always starts at 1.
        let start = if i == 1 { after + 1 } else { 1 };
        assert_eq!(seqs, (start..=25).collect::<Vec<_>>(), "document {i}, after {after}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_only_the_engine_renders_sees_each_subscribers_variables() {
    let app = spawn_app().await;
    let (workspace, _) = app.workspace().await;
    let (execution, _) = app.start(json!({ "workspaceId": workspace, "prompt": "fake: messages=3 delay_ms=20" })).await;
    // Directives are the engine's to render (the plan leaves them to it).
    let document = "subscription($id: ID!, $withType: Boolean!, $after: Int) {
        executionEvents(executionId: $id, afterSeq: $after) {
            ... on MessageEvent { seq type @include(if: $withType) } } }";
    for with_type in [true, false] {
        let variables = json!({ "id": execution, "withType": with_type, "after": 0 });
        let stream = app.subscription(document, variables, "executionEvents").await.unwrap();
        let events: Vec<Value> =
            tokio::time::timeout(Duration::from_secs(30), stream.try_collect()).await.expect("it ends").unwrap();
        let messages: Vec<&Value> = events.iter().filter(|e| e.get("seq").is_some()).collect();
        assert_eq!(messages.len(), 8, "{events:?}");
        for message in messages {
            assert_eq!(message.get("type").is_some(), with_type, "{message}");
        }
    }
}
