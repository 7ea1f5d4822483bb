//! A bounded soak: for a few minutes, many runs (chatty, crashing, garbled,
//! hanging and cancelled), with subscribers that join late, drop and come
//! back with `afterSeq`. Every subscriber's sequence must be complete, in
//! order and without duplicates, and match what is stored; at the end the
//! server's memory, file descriptors, threads, connections and live
//! subscriptions must be back near where they started.
//!
//!     cargo run --release -p bench -- soak --minutes 3

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    client::{self, number_after},
    proc,
    server::Server,
};

/// What one subscriber saw.
#[derive(Default)]
struct Watch {
    last_seq: u64,
    gaps: u64,
    duplicates: u64,
    reconnects: u64,
    terminal: bool,
}

/// The server's resources at one moment.
#[derive(Clone, Copy)]
struct Footprint {
    rss_kib: u64,
    fds: usize,
    threads: u64,
    ws_connections: f64,
    live_subscriptions: f64,
    running: f64,
}

pub async fn soak(minutes: u64, postgres: Option<&str>) -> Result<()> {
    let dir = crate::scenarios::tempdir()?;
    let server = Server::start(0, postgres, &dir)?;
    let workspace = server.workspace().await?;
    // Warm up once, then take the baseline.
    let (warm, _) = server.start_run(&workspace, "hi").await?;
    server.wait_finished(&warm, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = footprint(&server).await?;
    let deadline = Instant::now() + Duration::from_secs(minutes * 60);
    let (mut runs, mut subscribers, mut messages, mut broken) = (0u64, 0u64, 0u64, 0u64);
    let mut rng = 0x5eed_u64;
    while Instant::now() < deadline {
        let mut round = Vec::new();
        for i in 0..8 {
            rng = xorshift(rng);
            let prompt = match rng % 6 {
                0 => "fake: messages=400 size=300 delay_ms=2",
                1 => "fake: messages=50 no_result stderr=crashed",
                2 => "fake: messages=100 garbage",
                3 => "fake: hang",
                4 => "fake: fixture=three_tools",
                _ => "fake: messages=2000 size=100",
            };
            let (execution, _) = server.start_run(&workspace, prompt).await?;
            let cancel = prompt.ends_with("hang");
            round.push(tokio::spawn(watch(server.ws_url(), execution.clone(), rng.wrapping_add(i), cancel)));
            if cancel {
                let (url, id) = (format!("http://{}/graphql", server.addr), execution.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let body = serde_json::json!({ "query": "mutation($id: ID!) { cancelExecution(id: $id) { id } }", "variables": { "id": id } });
                    let _ = reqwest::Client::new().post(url).json(&body).send().await;
                });
            }
            runs += 1;
        }
        for task in round {
            let (execution, watch) = task.await??;
            subscribers += 1;
            let stored = server.wait_finished(&execution, Duration::from_secs(60)).await?;
            let count = stored["messageCount"].as_u64().unwrap_or_default();
            messages += count;
            if watch.gaps > 0 || watch.duplicates > 0 || !watch.terminal || watch.last_seq != count {
                broken += 1;
                eprintln!(
                    "execution {execution}: gaps {}, duplicates {}, terminal {}, last seq {} of {count} stored",
                    watch.gaps, watch.duplicates, watch.terminal, watch.last_seq
                );
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = footprint(&server).await?;
    println!(
        "soak: {minutes} min, {runs} runs, {subscribers} subscribers, {messages} messages, {broken} broken sequences"
    );
    for (name, f) in [("before", before), ("after", after)] {
        println!(
            "{name:>6}: rss {} KiB, fds {}, threads {}, websockets {}, live subscriptions {}, running {}",
            f.rss_kib, f.fds, f.threads, f.ws_connections, f.live_subscriptions, f.running
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    if broken > 0 {
        bail!("{broken} sequences were incomplete, out of order or repeated");
    }
    // The pool may have grown to its size meanwhile (a descriptor each).
    if after.fds > before.fds + 16
        || after.ws_connections > 0.0
        || after.live_subscriptions > 0.0
        || after.running > 0.0
    {
        bail!("resources did not return to the baseline");
    }
    Ok(())
}

/// Follows one execution to its end, dropping the connection now and then
/// and resuming with `afterSeq`; joins late (after a random pause).
async fn watch(url: String, execution: String, seed: u64, cancelled: bool) -> Result<(String, Watch)> {
    let mut watch = Watch::default();
    let mut rng = seed | 1;
    rng = xorshift(rng);
    tokio::time::sleep(Duration::from_millis(rng % 200)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    'connections: while Instant::now() < deadline {
        let mut socket = client::connect(&url).await?;
        client::subscribe_after(&mut socket, &execution, watch.last_seq).await?;
        rng = xorshift(rng);
        // Drop this connection after a while, unless the run is one that
        // is cancelled (its end is what is checked there).
        let drop_after = if cancelled { u64::MAX } else { 50 + rng % 400 };
        let mut received = 0;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), socket.next()).await.context("silence")?;
            let Some(Ok(Message::Text(text))) = frame else { continue 'connections };
            let text = text.as_str();
            if text.contains("\"type\":\"complete\"") {
                break 'connections;
            }
            if text.contains("\"StatusEvent\"")
                && (text.contains("COMPLETED") || text.contains("FAILED") || text.contains("CANCELLED"))
            {
                watch.terminal = true;
            }
            if let Some(seq) = number_after(text, "\"seq\":") {
                if seq <= watch.last_seq {
                    watch.duplicates += 1;
                } else {
                    if seq != watch.last_seq + 1 {
                        watch.gaps += 1;
                    }
                    watch.last_seq = seq;
                }
                received += 1;
                if received >= drop_after {
                    watch.reconnects += 1;
                    continue 'connections;
                }
            }
        }
    }
    Ok((execution, watch))
}

async fn footprint(server: &Server) -> Result<Footprint> {
    let pid = server.pid();
    let metrics = reqwest::get(format!("http://{}/metrics", server.addr)).await?.text().await?;
    let gauge = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads =
        status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    Ok(Footprint {
        rss_kib: proc::rss(pid) / 1024,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0),
        threads,
        ws_connections: gauge("claude_graphql_websocket_connections"),
        live_subscriptions: gauge("claude_graphql_subscriptions_live"),
        running: gauge("claude_graphql_executions_running"),
    })
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}
