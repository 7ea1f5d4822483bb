//! The real server, started as its own process (pinned to its own core),
//! and the few API calls the scenarios make.

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// A running server.
pub struct Server {
    child: Child,
    pub addr: String,
    http: reqwest::Client,
    pub dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// The directory the bench binary runs from holds the other binaries.
pub fn sibling(name: &str) -> Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    if !path.exists() {
        bail!("{} is missing: build it first (cargo build --release)", path.display());
    }
    Ok(path)
}

impl Server {
    /// Starts `claude-graphql` on port 0 with the fast stand-in, pinned to
    /// `core`, on `database_url` (a fresh SQLite file when None).
    pub fn start(core: usize, database_url: Option<&str>, dir: &Path) -> Result<Server> {
        let sqlite = format!("sqlite://{}/bench.db?mode=rwc", dir.display());
        let mut command = Command::new(sibling("claude-graphql")?);
        command
            .args(["--bind", "127.0.0.1:0", "--log-format", "json", "--max-concurrent-executions", "64"])
            .args(["--ws-keep-alive", "1h", "--workspace-root", &dir.display().to_string()])
            // The load is one user's: lift the per-user limits.
            .args(["--max-connections-per-user", "1000000", "--max-starts-per-minute", "1000000"])
            .args(["--max-active-executions-per-user", "1000000"])
            .arg("--database-url")
            .arg(database_url.unwrap_or(&sqlite))
            .arg("--claude-bin")
            .arg(sibling("fake-claude")?)
            .env("RUST_LOG", "warn,claude_graphql::app=info");
        Self::launch(command, core, dir)
    }

    /// Starts the peer (`bench/peer`: Node, graphql-js, graphql-ws) with
    /// the same stand-in, pinned to `core`; None when its packages are not
    /// installed (`npm ci --prefix bench/peer`).
    pub fn start_peer(core: usize, dir: &Path) -> Result<Option<Server>> {
        let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("peer");
        if !peer.join("node_modules/graphql-ws").is_dir() {
            eprintln!("no peer: run `npm ci --prefix bench/peer` to measure it");
            return Ok(None);
        }
        let mut command = Command::new("node");
        command.arg(peer.join("server.mjs")).env("FAKE_CLAUDE", sibling("fake-claude")?);
        Self::launch(command, core, dir).map(Some)
    }

    /// Runs `command` pinned to `core` and waits for the address it logs.
    fn launch(mut command: Command, core: usize, dir: &Path) -> Result<Server> {
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                crate::proc::pin_self(core);
                crate::proc::raise_fd_limit();
                Ok(())
            });
        }
        let mut child = command.spawn().context("starting the server")?;
        let stderr = child.stderr.take().context("stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines.next().context("the server exited before listening")??;
            if let Some(addr) = serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|v| v["fields"]["address"].as_str().map(str::to_owned))
            {
                break addr;
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server { child, addr, http: reqwest::Client::new(), dir: dir.to_owned() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/graphql/ws", self.addr)
    }

    pub async fn gql(&self, query: &str, variables: Value) -> Result<Value> {
        let response: Value = self
            .http
            .post(format!("http://{}/graphql", self.addr))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?
            .json()
            .await?;
        if let Some(errors) = response.get("errors") {
            bail!("GraphQL errors: {errors}");
        }
        Ok(response["data"].clone())
    }

    pub async fn workspace(&self) -> Result<String> {
        let data = self
            .gql(
                "mutation($p: String!) { createWorkspace(input: {name: \"bench\", path: $p}) { id } }",
                json!({ "p": self.dir }),
            )
            .await?;
        Ok(data["createWorkspace"]["id"].as_str().context("workspace id")?.to_owned())
    }

    /// Starts a run; returns (execution id, session id).
    pub async fn start_run(&self, workspace: &str, prompt: &str) -> Result<(String, String)> {
        let data = self
            .gql(
                "mutation($w: ID!, $p: String!) { startExecution(input: {workspaceId: $w, prompt: $p}) { execution { id } session { id } } }",
                json!({ "w": workspace, "p": prompt }),
            )
            .await?;
        let payload = &data["startExecution"];
        Ok((
            payload["execution"]["id"].as_str().context("id")?.to_owned(),
            payload["session"]["id"].as_str().context("id")?.to_owned(),
        ))
    }

    pub async fn execution(&self, id: &str) -> Result<Value> {
        let data = self
            .gql(
                "query($id: ID!) { execution(id: $id) { status messageCount startedAt finishedAt } }",
                json!({ "id": id }),
            )
            .await?;
        Ok(data["execution"].clone())
    }

    pub async fn wait_finished(&self, id: &str, limit: Duration) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let execution = self.execution(id).await?;
            if ["COMPLETED", "FAILED", "CANCELLED"].contains(&execution["status"].as_str().unwrap_or_default()) {
                return Ok(execution);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("execution {id} did not finish");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
