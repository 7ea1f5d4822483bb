//! `spawn_app()`: the real server on port 0 with a fresh database and the
//! stand-in `claude`, plus typed helpers that talk to it over real sockets.

use std::{path::PathBuf, time::Duration};

use anyhow::{anyhow, Context, Result};
use claude_graphql::{App, Config};
use futures_util::StreamExt;
use graphql_ws_client::{graphql::GraphqlOperation, Client};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};
use tokio_util::sync::CancellationToken;

pub const FAKE_CLAUDE: &str = env!("CARGO_BIN_EXE_fake-claude");

/// The secret of the tests' JWT-mode servers.
pub const JWT_SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    /// A directory registered as nothing yet; `workspace()` makes one.
    pub dir: TempDir,
    pub database_url: String,
    pub config: Config,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The PostgreSQL server to test against, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
}

/// A fresh, empty PostgreSQL database on the test server.
async fn fresh_postgres(base: &str) -> Result<String> {
    use sea_orm::ConnectionTrait;
    let name = format!("cg_test_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(base).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
    admin.close().await?;
    let (server, _) = base.rsplit_once('/').context("TEST_POSTGRES_URL has no database part")?;
    Ok(format!("{server}/{name}"))
}

fn test_config(dir: &TempDir, database_url: String) -> Config {
    let mut config = Config::defaults();
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.database_url = SecretString::from(database_url);
    config.claude_bin = PathBuf::from(FAKE_CLAUDE);
    config.cancel_grace = Duration::from_millis(500);
    config.jwt_secret = None;
    config.workspace_roots = vec![dir.path().to_path_buf()];
    config
}

/// Starts the server on `db`; None (and a note) when PostgreSQL is asked
/// for but TEST_POSTGRES_URL is not set.
pub async fn spawn_app_on(db: Db) -> Option<TestApp> {
    spawn_with(db, |_| {}).await
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(Db::Sqlite).await.unwrap()
}

/// Starts the server with `tweak` applied to its config.
pub async fn spawn_with(db: Db, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    if std::env::var_os("TEST_LOG").is_some() {
        claude_graphql::telemetry::init(claude_graphql::config::LogFormat::Text);
    }
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database(db, &dir).await?;
    let mut config = test_config(&dir, database_url.clone());
    tweak(&mut config);
    Some(TestApp::launch(dir, database_url, config).await)
}

/// The URL of a new, empty database (SQLite in `dir`); None (and a note)
/// when PostgreSQL is asked for but TEST_POSTGRES_URL is not set.
pub async fn fresh_database(db: Db, dir: &TempDir) -> Option<String> {
    match db {
        Db::Sqlite => Some(format!("sqlite://{}/test.db?mode=rwc", dir.path().display())),
        Db::Postgres => match postgres_url() {
            Some(base) => Some(fresh_postgres(&base).await.expect("a fresh PostgreSQL database")),
            None => {
                eprintln!("skipped: TEST_POSTGRES_URL is not set");
                None
            }
        },
    }
}

/// Starts the server on a database made beforehand (in `dir`, for SQLite).
pub async fn spawn_on_database(dir: TempDir, database_url: String) -> TestApp {
    let config = test_config(&dir, database_url.clone());
    TestApp::launch(dir, database_url, config).await
}

impl TestApp {
    async fn launch(dir: TempDir, database_url: String, config: Config) -> TestApp {
        let app = App::build(config.clone()).await.expect("the server starts");
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
        TestApp { addr, http: reqwest::Client::new(), dir, database_url, config, shutdown, server: Some(server) }
    }

    /// Stops the server gracefully and waits until it has.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    /// A new server on the same database and directory (after `stop`).
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        TestApp::launch(dir, self.database_url.clone(), self.config.clone()).await
    }

    /// Another server (replica) on the same database and directory.
    pub async fn replica(&self, replica_id: &str) -> TestApp {
        let mut config = self.config.clone();
        config.replica_id = Some(replica_id.to_owned());
        TestApp::launch(tempfile::tempdir().unwrap(), self.database_url.clone(), config).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a GraphQL request; returns the whole response body.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_as(None, query, variables).await
    }

    /// Like `gql`, with `Authorization: Bearer <token>` when given.
    pub async fn gql_as(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self.http.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// Like `gql`, but the request must succeed; returns `data`.
    pub async fn ok(&self, query: &str, variables: Value) -> Value {
        let response = self.gql(query, variables).await;
        assert!(response.get("errors").is_none(), "unexpected errors: {response}");
        response["data"].clone()
    }

    /// A workspace on a fresh subdirectory that has a `.fake-claude/` log.
    pub async fn workspace(&self) -> (String, PathBuf) {
        let path = self.dir.path().join(format!("ws-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(path.join(".fake-claude")).unwrap();
        let data = self
            .ok(
                "mutation($path: String!) { createWorkspace(input: {name: \"test\", path: $path}) { id } }",
                json!({ "path": path }),
            )
            .await;
        (data["createWorkspace"]["id"].as_str().unwrap().to_owned(), path)
    }

    /// Starts an execution; returns (execution id, session id).
    pub async fn start(&self, input: Value) -> (String, String) {
        let data = self
            .ok(
                "mutation($input: StartExecutionInput!) { startExecution(input: $input) { execution { id status } session { id } } }",
                json!({ "input": input }),
            )
            .await;
        let payload = &data["startExecution"];
        (payload["execution"]["id"].as_str().unwrap().to_owned(), payload["session"]["id"].as_str().unwrap().to_owned())
    }

    pub async fn execution(&self, id: &str) -> Value {
        let data = self
            .ok(
                "query($id: ID!) { execution(id: $id) { id status messageCount numTurns costUsd exitCode result \
                 claudeSessionId error { code message } startedAt finishedAt session { id status claudeSessionId messageCount } } }",
                json!({ "id": id }),
            )
            .await;
        data["execution"].clone()
    }

    /// Polls until the execution is finished; returns it.
    pub async fn wait_finished(&self, id: &str) -> Value {
        for _ in 0..400 {
            let execution = self.execution(id).await;
            if ["COMPLETED", "FAILED", "CANCELLED"].contains(&execution["status"].as_str().unwrap_or_default()) {
                return execution;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("execution {id} did not finish");
    }

    /// Polls until the execution has reached `status`.
    pub async fn wait_status(&self, id: &str, status: &str) {
        for _ in 0..400 {
            if self.execution(id).await["status"] == status {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("execution {id} never became {status}");
    }

    /// Subscribes over graphql-transport-ws with a real client and collects
    /// every event until the server completes the subscription.
    pub async fn events(&self, execution_id: &str, after_seq: i64) -> Result<Vec<Value>> {
        let stream = self.subscribe(execution_id, after_seq).await?;
        let events: Vec<_> = tokio::time::timeout(Duration::from_secs(30), stream.collect::<Vec<_>>())
            .await
            .context("the subscription did not complete")?;
        events.into_iter().map(|e| e.map_err(|e| anyhow!("{e}"))).collect()
    }

    /// An open subscription; each item is one `executionEvents` event.
    pub async fn subscribe(
        &self,
        execution_id: &str,
        after_seq: i64,
    ) -> Result<impl futures_util::Stream<Item = Result<Value>>> {
        let variables = json!({ "id": execution_id, "after": after_seq });
        self.subscription(EVENTS_SUBSCRIPTION, variables, "executionEvents").await
    }

    /// Any subscription over graphql-transport-ws; each item is the value of
    /// its root `field`.
    pub async fn subscription(
        &self,
        query: &str,
        variables: Value,
        field: &'static str,
    ) -> Result<impl futures_util::Stream<Item = Result<Value>>> {
        let mut request = format!("ws://{}/graphql/ws", self.addr).into_client_request()?;
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
        let (connection, _) = tokio_tungstenite::connect_async(request).await?;
        let operation = Operation { query: query.to_owned(), variables };
        let stream = Client::build(connection).subscribe(operation).await?;
        Ok(stream.map(move |item| {
            let payload = item.map_err(|e| anyhow!("{e}"))?;
            if let Some(errors) = payload.get("errors") {
                return Err(anyhow!("subscription error: {errors}"));
            }
            Ok(payload["data"][field].clone())
        }))
    }

    /// The prompts and messages the stand-in in `workspace` was given, in
    /// order.
    pub fn fake_prompts(&self, workspace: &std::path::Path) -> Vec<String> {
        self.fake_log(workspace)
            .iter()
            .filter(|e| e["event"] == "stdin")
            .filter_map(|e| serde_json::from_str::<Value>(e["line"].as_str()?).ok())
            .filter(|l| l["type"] == "user")
            .filter_map(|l| l["message"]["content"].as_str().map(str::to_owned))
            .collect()
    }

    /// A workspace of the user with `token`, on a fresh directory `name`
    /// (with a `.fake-claude/` log).
    pub async fn workspace_of(&self, token: &str, name: &str) -> (String, PathBuf) {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(dir.join(".fake-claude")).unwrap();
        let created = self
            .gql_as(
                Some(token),
                "mutation($p: String!) { createWorkspace(input: {name: \"w\", path: $p}) { id } }",
                json!({ "p": dir }),
            )
            .await;
        (created["data"]["createWorkspace"]["id"].as_str().expect("a workspace").to_owned(), dir)
    }

    /// What the stand-in `claude` logged in a workspace directory.
    pub fn fake_log(&self, workspace: &std::path::Path) -> Vec<Value> {
        std::fs::read_to_string(workspace.join(".fake-claude/log.jsonl"))
            .unwrap_or_default()
            .lines()
            // A line being written right now is not whole yet.
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

pub const EVENTS_SUBSCRIPTION: &str =
    "subscription($id: ID!, $after: Int!) { executionEvents(executionId: $id, afterSeq: $after) {
    __typename
    ... on MessageEvent { seq executionId type subtype message }
    ... on ProgressEvent { executionId progress messageCount numTurns costUsd elapsedMs stalledSince }
    ... on StatusEvent { executionId status error { code message } }
    ... on PermissionRequestEvent { executionId request { id toolName status input description blockedPath } }
} }";

#[derive(Serialize)]
struct Operation {
    query: String,
    variables: Value,
}

impl GraphqlOperation for Operation {
    type Response = Value;
    type Error = serde_json::Error;

    fn decode(&self, data: Value) -> Result<Value, serde_json::Error> {
        Ok(data)
    }
}

/// The `seq`s of the stored messages among `events`.
pub fn seqs(events: &[Value]) -> Vec<i64> {
    events.iter().filter_map(|e| e["seq"].as_i64()).collect()
}

/// The last event, which must be the terminal status.
pub fn final_status(events: &[Value]) -> &Value {
    let last = events.last().expect("at least one event");
    assert_eq!(last["__typename"], "StatusEvent", "the last event is a status: {last}");
    last
}

/// Whether a process with this pid still exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or_default().trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// The real server binary, with its secrets in its environment as an
/// operator would pass them; stopped when dropped.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: String,
    /// Its workspace root (and where its database is).
    pub root: PathBuf,
}

impl ServerProcess {
    pub fn start(dir: &std::path::Path) -> ServerProcess {
        Self::start_with(dir, &[])
    }

    /// With more environment (e.g. `REPLICA_ID`).
    pub fn start_with(dir: &std::path::Path, env: &[(&str, &str)]) -> ServerProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_claude-graphql"))
            .envs(env.iter().copied())
            .env("JWT_SECRET", JWT_SECRET)
            .env("JWT_AUDIENCE", "claude-graphql")
            .env("DATABASE_URL", format!("sqlite://{}/server.db?mode=rwc", dir.display()))
            .env("WORKSPACE_ROOTS", dir)
            .env("CLAUDE_BIN", FAKE_CLAUDE)
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut lines = stderr.lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let v: Value = serde_json::from_str(&line).ok()?;
                (v["fields"]["message"] == "listening").then(|| v["fields"]["address"].as_str().unwrap().to_owned())
            })
            .expect("the server logs its address");
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        ServerProcess { child, addr, root: dir.to_owned() }
    }
}

impl ServerProcess {
    /// A workspace of `token`'s user on a new directory `name` (with a
    /// stand-in log) under `dir`, the server's root: (id, path).
    pub async fn workspace(&self, token: &str, name: &str) -> (String, PathBuf) {
        let path = self.root.join(name);
        std::fs::create_dir_all(path.join(".fake-claude")).unwrap();
        let query = "mutation($p: String!) { createWorkspace(input: {name: \"w\", path: $p}) { id } }";
        let created = self.gql(token, query, json!({ "p": path })).await;
        let id = created["data"]["createWorkspace"]["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
        (id, path)
    }

    /// A GraphQL request as `token`'s user.
    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> Value {
        reqwest::Client::new()
            .post(format!("http://{}/graphql", self.addr))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::SIGTERM);
        let _ = self.child.wait();
    }
}
