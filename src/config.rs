//! Typed configuration: command-line flags with environment fallbacks,
//! parsed once in `main` and passed down.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

/// Runs the Claude Code CLI in named workspaces behind a GraphQL API.
#[derive(Debug, Clone, Parser)]
#[command(name = "claude-graphql", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print the GraphQL schema (SDL) and exit.
    Schema,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything the server can be told.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Listen address; port 0 picks a free port (printed on startup).
    #[arg(long = "bind", env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// SQLite (`sqlite://file.db?mode=rwc`) or PostgreSQL (`postgres://...`).
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "sqlite://claude-graphql.db?mode=rwc",
        hide_env_values = true
    )]
    pub database_url: SecretString,

    /// The program spawned for an execution.
    #[arg(long = "claude-bin", env = "CLAUDE_BIN", default_value = "claude")]
    pub claude_bin: PathBuf,

    /// HS256 secret for bearer tokens; without it the server runs in
    /// single-user local mode (loopback only).
    #[arg(long = "jwt-secret", env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,

    /// Runs beyond this many wait as PENDING and start in order.
    #[arg(
        long = "max-concurrent-executions",
        env = "MAX_CONCURRENT_EXECUTIONS",
        default_value_t = 4,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_concurrent_executions: u32,

    /// A run past this is stopped and fails with TIMEOUT (e.g. `30m`, `1h`).
    #[arg(long = "execution-timeout", env = "EXECUTION_TIMEOUT", default_value = "1h", value_parser = humantime::parse_duration)]
    pub execution_timeout: Duration,

    /// Workspace paths must lie under one of these (comma-separated).
    #[arg(long = "workspace-root", env = "WORKSPACE_ROOTS", value_delimiter = ',')]
    pub workspace_roots: Vec<PathBuf>,

    /// A stdout line longer than this fails the run instead of eating memory.
    #[arg(long = "max-line-bytes", env = "MAX_LINE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_line_bytes: usize,

    /// How long a cancelled `claude` gets after the interrupt and EOF, and
    /// again after SIGTERM, before the next, harder step.
    #[arg(long = "cancel-grace", env = "CANCEL_GRACE", default_value = "3s", value_parser = humantime::parse_duration)]
    pub cancel_grace: Duration,

    /// Identifies this server process's runs in a shared database; on
    /// startup its unfinished runs are marked FAILED / INTERRUPTED.
    #[arg(long = "replica-id", env = "REPLICA_ID", default_value = "local")]
    pub replica_id: String,

    /// A WebSocket client must send `connection_init` within this (else the
    /// connection closes with 4408).
    #[arg(long = "ws-init-timeout", env = "WS_INIT_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub ws_init_timeout: Duration,

    /// How often the server pings WebSocket clients (legacy clients get
    /// `ka`); a client that misses a whole interval is disconnected.
    #[arg(long = "ws-keep-alive", env = "WS_KEEP_ALIVE", default_value = "15s", value_parser = humantime::parse_duration)]
    pub ws_keep_alive: Duration,

    /// Lets clients ask for `permissionMode: "bypassPermissions"`.
    #[arg(long = "allow-bypass-permissions", env = "ALLOW_BYPASS_PERMISSIONS")]
    pub allow_bypass_permissions: bool,

    /// `text` for people, `json` for log collectors.
    #[arg(long = "log-format", env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Config {
    /// The configuration a test or an embedding program starts from: the
    /// flag defaults, with nothing read from the environment.
    pub fn defaults() -> Self {
        Cli::parse_from(["claude-graphql"]).config
    }
}
