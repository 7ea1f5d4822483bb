//! A generated TypeScript client (graphql-codegen over `schema.graphql`,
//! type-checked by tsc) runs against the real server: it starts a run,
//! streams typed messages, answers Claude's question with typed answers,
//! and resumes after its WebSocket is cut without repeating or missing a
//! message. Its dashboard sees the run too.

use std::{
    process::Stdio,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::Notify,
};

use crate::helpers::spawn_app;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/client-ts");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_typescript_client_runs_resumes_and_answers() {
    if !std::path::Path::new(DIR).join("node_modules/@graphql-codegen/cli").is_dir() {
        eprintln!("skipped: run `npm ci --prefix tests/client-ts` (needs node) to run the TypeScript client");
        return;
    }
    // Generate the client's types from the schema, type-check and build it.
    for script in ["check", "build"] {
        let output = tokio::process::Command::new("npm").args(["run", "--silent", script]).current_dir(DIR).output();
        let output = output.await.expect("npm runs");
        assert!(
            output.status.success(),
            "npm run {script}:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let app = spawn_app().await;
    let proxy = CuttingProxy::start(app.addr).await;
    let base = format!("http://{}", proxy.addr);
    let workspace = app.dir.path().join("client-ts");
    std::fs::create_dir_all(&workspace).unwrap();

    // The dashboard talks to the server directly: only the client is cut.
    let mut dashboard = node(&["dist/dashboard.js", &format!("http://{}", app.addr)]);
    let mut client = node(&[
        "dist/client.js",
        &base,
        workspace.to_str().unwrap(),
        "fake: ask=AskUserQuestion messages=40 delay_ms=20",
    ]);
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let mut events: Vec<Value> = Vec::new();
    let mut cut = false;
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let event: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
            if event.get("final").is_some() {
                return event;
            }
            // Once a few messages are in, the client's WebSocket is cut.
            if !cut && event["seq"].as_i64() >= Some(8) {
                cut = true;
                proxy.cut.notify_waiters();
            }
            events.push(event);
        }
        Value::Null
    })
    .await
    .expect("the client finishes");
    let status = client.wait().await.unwrap();
    assert!(status.success(), "the client failed: {status}");
    assert_eq!(outcome["final"], "COMPLETED", "{events:#?}");
    // It resubscribed after the last seq it had: nothing came twice.
    assert_eq!(outcome["repeated"], 0);
    assert!(proxy.websockets.load(Ordering::SeqCst) >= 2, "the client reconnected");

    // Every stored message exactly once, in order, across the reconnect.
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "{seqs:?}");
    // Typed messages, and the question answered with its first options.
    let typenames: Vec<&str> = events.iter().filter_map(|e| e["claudeMessage"]["__typename"].as_str()).collect();
    for expected in ["SystemInitMessage", "AssistantMessage", "UserMessage", "ResultMessage"] {
        assert!(typenames.contains(&expected), "no {expected} in {typenames:?}");
    }
    let question = events.iter().find(|e| e["request"]["kind"] == "QUESTION").expect("the question");
    assert_eq!(question["request"]["questions"][0]["options"][0]["label"], "Red");
    let answer = events
        .iter()
        .filter(|e| e["claudeMessage"]["__typename"] == "UserMessage")
        .find_map(|e| e["claudeMessage"]["content"][0]["text"].as_str().filter(|t| t.contains("answered")))
        .expect("the tool result of the question");
    assert!(answer.contains("\"Which color should the button be?\":\"Red\""), "{answer}");

    // The dashboard saw the run come and finish.
    let mut updates = BufReader::new(dashboard.stdout.take().unwrap()).lines();
    let finished = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = updates.next_line().await.unwrap() {
            let update: Value = serde_json::from_str(&line).unwrap();
            if update["status"] == "COMPLETED" {
                return update;
            }
        }
        Value::Null
    })
    .await
    .expect("the dashboard shows the run finished");
    assert_eq!(finished["title"], "fake: ask=AskUserQuestion messages=40 delay_ms=20");
    dashboard.kill().await.unwrap();
}

fn node(args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new("node")
        .args(args)
        .current_dir(DIR)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs")
}

/// A TCP proxy in front of the server that can cut the WebSocket
/// connections open at the moment (plain HTTP connections pass untouched).
struct CuttingProxy {
    addr: std::net::SocketAddr,
    cut: Arc<Notify>,
    websockets: Arc<AtomicUsize>,
}

impl CuttingProxy {
    async fn start(target: std::net::SocketAddr) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, websockets) = (Arc::new(Notify::new()), Arc::new(AtomicUsize::new(0)));
        let (cut_, websockets_) = (cut.clone(), websockets.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (cut, websockets) = (cut_.clone(), websockets_.clone());
                tokio::spawn(async move {
                    let mut head = [0u8; 2048];
                    let Ok(n) = client.peek(&mut head).await else { return };
                    let websocket =
                        String::from_utf8_lossy(&head[..n]).to_ascii_lowercase().contains("upgrade: websocket");
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    let (mut client, mut server) = (client, server);
                    if websocket {
                        websockets.fetch_add(1, Ordering::SeqCst);
                        let cut = cut.notified();
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut => {}
                        }
                    } else {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        CuttingProxy { addr, cut, websockets }
    }
}
