//! The scenarios, and the report they fill.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{stream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::{
    ceiling::{Ceiling, CeilingArgs},
    client::{self, Seen},
    proc::{cpu_time, percentile, rss},
    server::{sibling, Server},
};

/// Cores: the server (or the ceiling) on one, this load generator on the other.
const SERVER_CORE: usize = 0;
/// Connections opened at once while setting up.
const CONNECT_CONCURRENCY: usize = 200;

/// Every measurement, for the closing table.
#[derive(Default)]
pub struct Report {
    rows: Vec<[String; 5]>,
}

/// A figure of claude-graphql, and the same figure of the peer and of the
/// ceiling where they were measured.
#[derive(Clone, Copy)]
struct Figure {
    value: f64,
    peer: Option<f64>,
    ceiling: Option<f64>,
}

impl Figure {
    fn alone(value: f64) -> Figure {
        Figure { value, peer: None, ceiling: None }
    }
}

impl Report {
    /// Records one figure (with the peer's and the ceiling's, if any) and
    /// prints its JSON line.
    fn add(&mut self, scenario: &str, figure: &str, f: Figure, unit: &str) {
        let ratio = |other: Option<f64>| other.map(|o| f.value / o);
        println!(
            "{}",
            json!({ "scenario": scenario, "figure": figure, "value": f.value, "unit": unit,
                    "peer": f.peer, "peer_ratio": ratio(f.peer), "ceiling": f.ceiling, "ratio": ratio(f.ceiling) })
        );
        let beside = |other: Option<f64>| match (other, ratio(other)) {
            (Some(o), Some(r)) => format!("{} ({:.2}x)", format_value(o), r),
            _ => "-".into(),
        };
        self.rows.push([
            scenario.to_owned(),
            format!("{figure} ({unit})"),
            format_value(f.value),
            beside(f.peer),
            beside(f.ceiling),
        ]);
    }

    pub fn print_table(&self) {
        println!();
        println!("| scenario | figure | claude-graphql | Node peer (ratio) | ceiling (ratio) |");
        println!("|---|---|---|---|---|");
        for [scenario, figure, value, peer, ceiling] in &self.rows {
            println!("| {scenario} | {figure} | {value} | {peer} | {ceiling} |");
        }
    }
}

fn format_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// What one fan-out measurement saw.
struct Delivery {
    deliveries: u64,
    elapsed: Duration,
    cpu: Duration,
    latencies: Vec<f64>,
    gaps: u64,
    duplicates: u64,
    incomplete: usize,
}

impl Delivery {
    fn from(seen: Vec<Seen>, elapsed: Duration, cpu: Duration) -> Delivery {
        let mut latencies: Vec<f64> = seen.iter().flat_map(|s| s.latencies_ms.iter().copied()).collect();
        latencies.sort_by(f64::total_cmp);
        Delivery {
            deliveries: seen.iter().map(|s| s.messages).sum(),
            elapsed,
            cpu,
            latencies,
            gaps: seen.iter().map(|s| s.gaps).sum(),
            duplicates: seen.iter().map(|s| s.duplicates).sum(),
            incomplete: seen.iter().filter(|s| !s.completed).count(),
        }
    }

    fn per_cpu_second(&self) -> f64 {
        self.deliveries as f64 / self.cpu.as_secs_f64().max(1e-3)
    }

    fn per_second(&self) -> f64 {
        self.deliveries as f64 / self.elapsed.as_secs_f64().max(1e-6)
    }
}

/// Connects `n` subscribers to `url`, subscribes each to `execution`, and
/// waits until each has seen `ready_seq` (0: nothing to wait for).
async fn subscribers(url: &str, n: usize, execution: &str, ready_seq: u64) -> Result<Vec<client::Socket>> {
    let sockets: Vec<Result<client::Socket>> = stream::iter(0..n)
        .map(|_| async move {
            let mut socket = client::connect(url).await?;
            client::subscribe(&mut socket, execution).await?;
            if ready_seq > 0 {
                client::read_until_seq(&mut socket, ready_seq).await?;
            }
            Ok(socket)
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    sockets.into_iter().collect()
}

/// Drains every socket to the end; returns what each saw and the time.
async fn drain_all(
    sockets: Vec<client::Socket>,
    after_seq: u64,
    go: impl FnOnce() -> Result<()>,
) -> Result<(Vec<Seen>, Duration)> {
    let (start_tx, start_rx) = watch::channel(false);
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            let mut start = start_rx.clone();
            tokio::spawn(async move {
                let _ = start.wait_for(|s| *s).await;
                client::drain(&mut socket, after_seq, Duration::from_secs(600)).await
            })
        })
        .collect();
    let started = Instant::now();
    let _ = start_tx.send(true);
    go()?;
    let mut seen = Vec::with_capacity(tasks.len());
    for task in tasks {
        seen.push(task.await??);
    }
    Ok((seen, started.elapsed()))
}

/// How the load is shaped: `runs` executions at once, each with
/// `subscribers` subscribers, each run writing `messages` lines of `size`
/// bytes, `delay_ms` apart.
#[derive(Clone, Copy)]
struct Load {
    runs: usize,
    subscribers: usize,
    messages: u64,
    size: usize,
    delay_ms: u64,
}

impl Load {
    fn deliveries(&self) -> usize {
        self.runs * self.subscribers
    }
}

/// One measurement against the real server (or the peer, None when it is
/// not installed).
async fn measure(peer: bool, load: Load) -> Result<Option<Delivery>> {
    let dir = tempdir()?;
    let server = match peer {
        false => Server::start(SERVER_CORE, None, &dir)?,
        true => match Server::start_peer(SERVER_CORE, &dir)? {
            Some(server) => server,
            None => return Ok(None),
        },
    };
    let workspace = server.workspace().await?;
    let go_file = dir.join("go");
    let Load { messages, size, delay_ms, .. } = load;
    let prompt = format!("fake: messages={messages} size={size} delay_ms={delay_ms} wait_for={}", go_file.display());
    let mut sockets = Vec::new();
    for _ in 0..load.runs {
        let (execution, _) = server.start_run(&workspace, &prompt).await?;
        // The stand-in writes 2 lifecycle lines and init, then waits.
        sockets.extend(subscribers(&server.ws_url(), load.subscribers, &execution, 3).await?);
    }
    let cpu_before = cpu_time(server.pid());
    let (seen, elapsed) = drain_all(sockets, 3, || Ok(std::fs::write(&go_file, b"go")?)).await?;
    let cpu = cpu_time(server.pid()) - cpu_before;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Some(Delivery::from(seen, elapsed, cpu)))
}

/// A scenario, burst and paced (50 messages/s, at most 250), against the
/// server, the peer and the ceiling (the same frames to as many
/// subscribers: for many runs, an optimistic bound).
async fn burst_and_paced(report: &mut Report, name: &str, load: Load) -> Result<()> {
    let modes = [("burst", 0, load.messages), ("paced 50/s", 20, load.messages.min(250))];
    for (mode, delay_ms, messages) in modes {
        let load = Load { delay_ms, messages, ..load };
        let scenario = format!("{name}, {mode}");
        eprintln!("running {scenario}");
        // The assistant messages, the result and the last lifecycle line.
        let expected = load.deliveries() as u64 * (messages + 2);
        let server = measure(false, load).await?.context("the server")?;
        check(&server, expected, &scenario)?;
        let peer = measure(true, load).await?;
        if let Some(peer) = &peer {
            check(peer, expected, &format!("{scenario} (peer)"))?;
        }
        let ceiling = fanout_ceiling(load.deliveries(), messages, load.size, delay_ms).await?;
        check(&ceiling, load.deliveries() as u64 * messages, &format!("{scenario} (ceiling)"))?;
        compare(report, &scenario, &server, peer.as_ref(), &ceiling);
    }
    Ok(())
}

/// The same measurement against the ceiling.
async fn fanout_ceiling(n: usize, messages: u64, size: usize, delay_ms: u64) -> Result<Delivery> {
    let mut ceiling = Ceiling::start(SERVER_CORE, CeilingArgs { subscribers: n, messages, size, delay_ms })?;
    let url = format!("ws://127.0.0.1:{}/", ceiling.port);
    let sockets = subscribers(&url, n, "ceiling", 0).await?;
    let pid = ceiling.child.id();
    let cpu_before = cpu_time(pid);
    let (seen, elapsed) = drain_all(sockets, 0, || ceiling.go()).await?;
    let cpu = cpu_time(pid) - cpu_before;
    let _ = ceiling.child.wait();
    Ok(Delivery::from(seen, elapsed, cpu))
}

fn check(delivery: &Delivery, expected: u64, what: &str) -> Result<()> {
    if delivery.gaps + delivery.duplicates > 0 || delivery.incomplete > 0 || delivery.deliveries != expected {
        bail!(
            "{what}: {} deliveries of {expected}, {} gaps, {} duplicates, {} incomplete",
            delivery.deliveries,
            delivery.gaps,
            delivery.duplicates,
            delivery.incomplete
        );
    }
    Ok(())
}

pub async fn fanout(report: &mut Report, counts: &[usize], messages: u64, size: usize) -> Result<()> {
    for &n in counts {
        let load = Load { runs: 1, subscribers: n, messages, size, delay_ms: 0 };
        burst_and_paced(report, &format!("fan-out {n} subscribers"), load).await?;
    }
    Ok(())
}

/// The figures of one scenario, beside the peer's and the ceiling's.
fn compare(report: &mut Report, scenario: &str, server: &Delivery, peer: Option<&Delivery>, ceiling: &Delivery) {
    let figure =
        |f: &dyn Fn(&Delivery) -> f64| Figure { value: f(server), peer: peer.map(f), ceiling: Some(f(ceiling)) };
    report.add(scenario, "deliveries per server CPU-second", figure(&Delivery::per_cpu_second), "1/s");
    report.add(scenario, "deliveries per second", figure(&Delivery::per_second), "1/s");
    for (p, name) in [(50.0, "p50"), (99.0, "p99"), (100.0, "max")] {
        report.add(scenario, &format!("latency {name}"), figure(&|d: &Delivery| percentile(&d.latencies, p)), "ms");
    }
    let mistakes = (server.gaps + server.duplicates) as f64;
    report.add(scenario, "seq gaps + duplicates", Figure::alone(mistakes), "count");
}

pub async fn runs(report: &mut Report, counts: &[usize], messages: u64) -> Result<()> {
    for &n in counts {
        let load = Load { runs: n, subscribers: 1, messages, size: 200, delay_ms: 0 };
        burst_and_paced(report, &format!("{n} concurrent runs, 1 subscriber each"), load).await?;
    }
    Ok(())
}

pub async fn idle(report: &mut Report, counts: &[usize]) -> Result<()> {
    for &n in counts {
        let scenario = format!("{n} idle subscriptions");
        eprintln!("running {scenario}");
        let dir = tempdir()?;
        let server = Server::start(SERVER_CORE, None, &dir)?;
        let workspace = server.workspace().await?;
        let (execution, _) = server.start_run(&workspace, "fake: hang").await?;
        // Let the run settle, so only subscriptions are counted.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_before = rss(server.pid());
        let started = Instant::now();
        let sockets = subscribers(&server.ws_url(), n, &execution, 3).await?;
        let connect = started.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_after = rss(server.pid());
        let cpu_before = cpu_time(server.pid());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle_cpu = cpu_time(server.pid()) - cpu_before;
        let per_subscription = (rss_after.saturating_sub(rss_before)) as f64 / n as f64 / 1024.0;
        report.add(&scenario, "server RSS per subscription", Figure::alone(per_subscription), "KiB");
        report.add(&scenario, "connect + subscribe + replay, all", Figure::alone(connect.as_secs_f64() * 1000.0), "ms");
        report.add(
            &scenario,
            "server CPU while idle",
            Figure::alone(idle_cpu.as_secs_f64() / 3.0 * 100.0),
            "% of a core",
        );
        drop(sockets);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Seconds between two RFC 3339 stamps of the API.
fn seconds_between(from: &Value, to: &Value) -> Result<f64> {
    let parse = |v: &Value| -> Result<f64> {
        let text = v.as_str().context("a timestamp")?;
        // 2026-11-25T01:23:45.678901Z -> seconds of the day is enough here.
        let time = text.split('T').nth(1).context("time")?.trim_end_matches('Z');
        let time = time.split('+').next().unwrap_or(time);
        let mut parts = time.split(':');
        let h: f64 = parts.next().context("h")?.parse()?;
        let m: f64 = parts.next().context("m")?.parse()?;
        let s: f64 = parts.next().context("s")?.parse()?;
        Ok(h * 3600.0 + m * 60.0 + s)
    };
    Ok(parse(to)? - parse(from)?)
}

pub async fn store(report: &mut Report, messages: u64, postgres: Option<&str>) -> Result<()> {
    let mut targets = vec![("SQLite", None)];
    if let Some(url) = postgres {
        targets.push(("PostgreSQL", Some(url)));
    }
    for (name, url) in targets {
        let scenario = format!("store, {name}");
        eprintln!("running {scenario}");
        let dir = tempdir()?;
        let server = Server::start(SERVER_CORE, url, &dir)?;
        let workspace = server.workspace().await?;
        let (execution, _) = server.start_run(&workspace, &format!("fake: messages={messages} size=200")).await?;
        let done = server.wait_finished(&execution, Duration::from_secs(600)).await?;
        let stored = done["messageCount"].as_f64().context("messageCount")?;
        let seconds = seconds_between(&done["startedAt"], &done["finishedAt"])?;
        report.add(
            &scenario,
            "messages stored per second (durable before delivery)",
            Figure::alone(stored / seconds),
            "1/s",
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

pub async fn logs(report: &mut Report, messages: u64, queries: usize) -> Result<()> {
    let scenario = format!("sessionLogs over {messages} messages");
    eprintln!("running {scenario} (storing them first)");
    let dir = tempdir()?;
    let server = Server::start(SERVER_CORE, None, &dir)?;
    let workspace = server.workspace().await?;
    let (execution, session) = server.start_run(&workspace, &format!("fake: messages={messages} size=100")).await?;
    let done = server.wait_finished(&execution, Duration::from_secs(3600)).await?;
    let total = done["messageCount"].as_u64().context("messageCount")?;
    let mut latencies = Vec::with_capacity(queries);
    let mut state = 0x2545F4914F6CDD1Du64;
    for _ in 0..queries {
        // xorshift: spread the pages over the whole session.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let after = state % total;
        let started = Instant::now();
        let data = server
            .gql(
                "query($s: ID!, $a: Int!) { sessionLogs(sessionId: $s, afterSeq: $a, limit: 100) { seq } }",
                json!({ "s": session, "a": after }),
            )
            .await?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        if data["sessionLogs"][0]["seq"].as_u64() != Some(after + 1) {
            bail!("sessionLogs after {after} did not start at {}", after + 1);
        }
    }
    latencies.sort_by(f64::total_cmp);
    report.add(&scenario, "sessionLogs(limit: 100) p50", Figure::alone(percentile(&latencies, 50.0)), "ms");
    report.add(&scenario, "sessionLogs(limit: 100) p99", Figure::alone(percentile(&latencies, 99.0)), "ms");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Spawn to first stdout line of the stand-in alone.
fn stand_in_startup() -> Result<Duration> {
    use std::io::{BufRead, Write};
    let started = Instant::now();
    let mut child = std::process::Command::new(sibling("fake-claude")?)
        .args(["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(b"{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"hi\"},\"uuid\":\"u\"}\n")?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let elapsed = started.elapsed();
    drop(stdin);
    let _ = child.wait();
    Ok(elapsed)
}

pub async fn start(report: &mut Report, samples: usize) -> Result<()> {
    let scenario = "startExecution -> first event".to_owned();
    eprintln!("running {scenario}");
    let dir = tempdir()?;
    let server = Server::start(SERVER_CORE, None, &dir)?;
    let workspace = server.workspace().await?;
    let mut end_to_end = Vec::new();
    let mut stand_in = Vec::new();
    for _ in 0..samples {
        let mut socket = client::connect(&server.ws_url()).await?;
        let started = Instant::now();
        let (execution, _) = server.start_run(&workspace, "fake: messages=1").await?;
        client::subscribe(&mut socket, &execution).await?;
        client::read_until_seq(&mut socket, 1).await?;
        end_to_end.push(started.elapsed().as_secs_f64() * 1000.0);
        stand_in.push(stand_in_startup()?.as_secs_f64() * 1000.0);
        server.wait_finished(&execution, Duration::from_secs(10)).await?;
    }
    end_to_end.sort_by(f64::total_cmp);
    stand_in.sort_by(f64::total_cmp);
    let (e2e, alone) = (percentile(&end_to_end, 50.0), percentile(&stand_in, 50.0));
    report.add(&scenario, "p50 end to end", Figure::alone(e2e), "ms");
    report.add(&scenario, "p50 stand-in start-up alone", Figure::alone(alone), "ms");
    report.add(&scenario, "p50 server overhead", Figure::alone(e2e - alone), "ms");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

pub fn tempdir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("claude-graphql-bench-{}-{}", std::process::id(), client::now_ns()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.canonicalize()?)
}
