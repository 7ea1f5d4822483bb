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
    /// Print a bearer token signed with --jwt-secret, for local use.
    Token {
        /// The user the token is for (owner of what it creates).
        #[arg(long)]
        sub: String,
        /// How long it is valid, e.g. `24h`.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The signing settings may also follow the subcommand.
        #[command(flatten)]
        signing: TokenSigning,
    },
}

/// `--jwt-secret` and friends, accepted after `token` too (they override
/// the ones before it).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TokenSigning {
    /// The HS256 secret (as the server's `--jwt-secret`).
    #[arg(long = "jwt-secret", hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,
    /// A file holding the secret (as the server's `--jwt-secret-file`).
    #[arg(long = "jwt-secret-file")]
    pub jwt_secret_file: Option<PathBuf>,
    /// `iss` of the token.
    #[arg(long = "jwt-issuer")]
    pub jwt_issuer: Option<String>,
    /// `aud` of the token.
    #[arg(long = "jwt-audience")]
    pub jwt_audience: Option<String>,
}

impl TokenSigning {
    /// Puts the settings given after `token` into `config`.
    pub fn apply(self, config: &mut Config) {
        if let Some(secret) = self.jwt_secret {
            config.jwt_secret = Some(secret);
        }
        if let Some(file) = self.jwt_secret_file {
            config.jwt_secret_file = Some(file);
        }
        config.jwt_issuer = self.jwt_issuer.or(config.jwt_issuer.take());
        config.jwt_audience = self.jwt_audience.or(config.jwt_audience.take());
    }
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

    /// Reads the JWT secret from this file instead (e.g. a mounted secret),
    /// so that it is in no environment or command line.
    #[arg(long = "jwt-secret-file", env = "JWT_SECRET_FILE", conflicts_with = "jwt_secret")]
    pub jwt_secret_file: Option<PathBuf>,

    /// Reads the database URL from this file instead (it may hold a
    /// password); it wins over `--database-url`.
    #[arg(long = "database-url-file", env = "DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,

    /// When set, tokens valid for longer than this from now are refused
    /// (and `token --ttl` may not exceed it).
    #[arg(long = "max-token-lifetime", env = "MAX_TOKEN_LIFETIME", value_parser = humantime::parse_duration)]
    pub max_token_lifetime: Option<Duration>,

    /// When set, tokens must carry this `iss`.
    #[arg(long = "jwt-issuer", env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// When set, tokens must carry this `aud`.
    #[arg(long = "jwt-audience", env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

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

    /// Workspace paths must lie under one of these (comma-separated); `{sub}`
    /// in a root stands for the user, e.g. `/srv/workspaces/{sub}`.
    /// Required when a JWT secret is set.
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
    /// Default: this machine's host name. Replicas on one host need their own.
    #[arg(long = "replica-id", env = "REPLICA_ID")]
    pub replica_id: Option<String>,

    /// A run that writes nothing for this long is marked stalled
    /// (`Execution.stalledSince`, and a progress event), until it writes
    /// again.
    #[arg(long = "stall-after", env = "STALL_AFTER", default_value = "2m", value_parser = humantime::parse_duration)]
    pub stall_after: Duration,

    /// How long this server's lease lasts without renewal (it renews it a
    /// few times per period). Once another server sees it expired, it
    /// finishes this server's runs as FAILED / INTERRUPTED.
    #[arg(long = "replica-lease", env = "REPLICA_LEASE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub replica_lease: Duration,

    /// When set, the only tools a client may pre-approve with
    /// `allowedTools` (comma-separated base names, e.g. `Read,Grep,Edit`).
    #[arg(long = "grantable-tools", env = "GRANTABLE_TOOLS", value_delimiter = ',')]
    pub grantable_tools: Vec<String>,

    /// A WebSocket client must send `connection_init` within this (else the
    /// connection closes with 4408).
    #[arg(long = "ws-init-timeout", env = "WS_INIT_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub ws_init_timeout: Duration,

    /// How often the server pings WebSocket clients (legacy clients get
    /// `ka`); a client that misses a whole interval is disconnected.
    #[arg(long = "ws-keep-alive", env = "WS_KEEP_ALIVE", default_value = "15s", value_parser = humantime::parse_duration)]
    pub ws_keep_alive: Duration,

    /// Largest accepted request body.
    #[arg(long = "max-body-bytes", env = "MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Deepest accepted query.
    #[arg(long = "max-query-depth", env = "MAX_QUERY_DEPTH", default_value_t = 24)]
    pub max_query_depth: usize,

    /// Largest accepted query complexity (fields counted).
    #[arg(long = "max-query-complexity", env = "MAX_QUERY_COMPLEXITY", default_value_t = 2000)]
    pub max_query_complexity: usize,

    /// Most tokens (names, punctuation, values) accepted in one document;
    /// counted before the document is parsed.
    #[arg(long = "max-query-tokens", env = "MAX_QUERY_TOKENS", default_value_t = 10_000)]
    pub max_query_tokens: usize,

    /// Largest response body a query may produce (larger ones are replaced
    /// by an error asking for smaller pages or fewer fields).
    #[arg(long = "max-response-bytes", env = "MAX_RESPONSE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_response_bytes: usize,

    /// Workspaces one user may register.
    #[arg(long = "max-workspaces-per-user", env = "MAX_WORKSPACES_PER_USER", default_value_t = 200)]
    pub max_workspaces_per_user: u64,

    /// Most aliases accepted in one document.
    #[arg(long = "max-aliases", env = "MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,

    /// Most operations running at once on one WebSocket connection.
    #[arg(long = "max-subscriptions-per-connection", env = "MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = 100)]
    pub max_subscriptions_per_connection: usize,

    /// Most WebSocket connections one user may hold open.
    #[arg(long = "max-connections-per-user", env = "MAX_CONNECTIONS_PER_USER", default_value_t = 200)]
    pub max_connections_per_user: usize,

    /// startExecution calls one user may make per minute (a token bucket).
    #[arg(long = "max-starts-per-minute", env = "MAX_STARTS_PER_MINUTE", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_starts_per_minute: u32,

    /// PENDING plus RUNNING executions one user may have at once.
    #[arg(long = "max-active-executions-per-user", env = "MAX_ACTIVE_EXECUTIONS_PER_USER", default_value_t = 16)]
    pub max_active_executions_per_user: u64,

    /// How long a start's idempotency key is remembered: a retry with the
    /// same key within this time returns the execution the first start made.
    #[arg(long = "idempotency-key-ttl", env = "IDEMPOTENCY_KEY_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub idempotency_key_ttl: Duration,

    /// Largest attachment (image or document in a prompt).
    #[arg(long = "attachment-max-bytes", env = "ATTACHMENT_MAX_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub attachment_max_bytes: usize,

    /// All of one user's attachments together.
    #[arg(long = "attachment-quota-bytes", env = "ATTACHMENT_QUOTA_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub attachment_quota_bytes: u64,

    /// How long an attachment is kept after its upload (or its last upload
    /// of the same bytes); longer while a run that has not started uses it.
    #[arg(long = "attachment-ttl", env = "ATTACHMENT_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub attachment_ttl: Duration,

    /// Park a run that hits a usage or rate limit (SCHEDULED) and resume
    /// it when the limit resets, instead of failing it (RATE_LIMITED).
    #[arg(long = "park-rate-limited", env = "PARK_RATE_LIMITED", default_value_t = true, action = clap::ArgAction::Set)]
    pub park_rate_limited: bool,

    /// How long a parked run waits when the CLI did not say when the limit
    /// resets.
    #[arg(long = "rate-limit-wait", env = "RATE_LIMIT_WAIT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub rate_limit_wait: Duration,

    /// The message a parked run resumes with.
    #[arg(long = "resume-prompt", env = "RESUME_PROMPT", default_value = "continue")]
    pub resume_prompt: String,

    /// The time zone of a reset the CLI names without one ("resets 5pm").
    #[arg(long = "limit-timezone", env = "LIMIT_TIMEZONE", default_value = "UTC")]
    pub limit_timezone: chrono_tz::Tz,

    /// What one user's runs may cost per day (UTC, US dollars, by the CLI's
    /// estimates); no cap when not set.
    #[arg(long = "user-daily-budget-usd", env = "USER_DAILY_BUDGET_USD", value_parser = positive_usd)]
    pub user_daily_budget_usd: Option<f64>,

    /// Hosts webhooks may be sent to (`host`, `host:port` or `*.domain`,
    /// comma-separated; these may be private or loopback). When empty, any
    /// host that resolves to public addresses only.
    #[arg(long = "webhook-allowed-hosts", env = "WEBHOOK_ALLOWED_HOSTS", value_delimiter = ',')]
    pub webhook_allowed_hosts: Vec<String>,

    /// The wait after a webhook delivery's first failed attempt; each next
    /// wait is 5 times longer (at most an hour).
    #[arg(long = "webhook-retry-base", env = "WEBHOOK_RETRY_BASE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub webhook_retry_base: Duration,

    /// How long after its event a webhook delivery is still tried.
    #[arg(long = "webhook-retry-for", env = "WEBHOOK_RETRY_FOR", default_value = "24h", value_parser = humantime::parse_duration)]
    pub webhook_retry_for: Duration,

    /// One webhook attempt's time limit.
    #[arg(long = "webhook-timeout", env = "WEBHOOK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub webhook_timeout: Duration,

    /// The shortest time between two occurrences of a schedule.
    #[arg(long = "min-schedule-interval", env = "MIN_SCHEDULE_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub min_schedule_interval: Duration,

    /// A tool-permission request not answered within this is denied.
    #[arg(long = "permission-timeout", env = "PERMISSION_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub permission_timeout: Duration,

    /// Record what each run changed in its workspace (`Execution.changes`):
    /// by git snapshots in a repository, else from its Write and Edit calls.
    #[arg(long = "track-changes", env = "TRACK_CHANGES", default_value_t = true, action = clap::ArgAction::Set)]
    pub track_changes: bool,

    /// Programs that may run as stdio MCP servers (absolute paths,
    /// comma-separated); none when not set.
    #[arg(long = "mcp-stdio-commands", env = "MCP_STDIO_COMMANDS", value_delimiter = ',')]
    pub mcp_stdio_commands: Vec<String>,

    /// URL patterns remote MCP servers must match (comma-separated, e.g.
    /// `https://mcp.example.com/,https://*.corp.example/`): scheme, host
    /// (`*.` for subdomains), port and path prefix; none when not set.
    #[arg(long = "mcp-allowed-urls", env = "MCP_ALLOWED_URLS", value_delimiter = ',')]
    pub mcp_allowed_urls: Vec<String>,

    /// Lets clients ask for `permissionMode: "bypassPermissions"`.
    #[arg(long = "allow-bypass-permissions", env = "ALLOW_BYPASS_PERMISSIONS")]
    pub allow_bypass_permissions: bool,

    /// `text` for people, `json` for log collectors.
    #[arg(long = "log-format", env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// What the API accepts as attachments.
    pub fn attachment_limits(&self) -> crate::attachments::Limits {
        crate::attachments::Limits {
            max_bytes: self.attachment_max_bytes,
            quota_bytes: self.attachment_quota_bytes,
            ttl: self.attachment_ttl,
        }
    }

    /// Replaces the secrets given as files (`--jwt-secret-file`,
    /// `--database-url-file`) by their contents, without the final newline.
    pub fn load_secret_files(&mut self) -> Result<(), ConfigError> {
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path)
                .map(|text| SecretString::from(text.trim_end_matches(['\n', '\r']).to_owned()))
                .map_err(|e| ConfigError(format!("reading {}: {e}", path.display())))
        };
        if let Some(path) = self.jwt_secret_file.take() {
            self.jwt_secret = Some(read(&path)?);
        }
        if let Some(path) = self.database_url_file.take() {
            self.database_url = read(&path)?;
        }
        Ok(())
    }

    /// The configuration a test or an embedding program starts from: the
    /// flag defaults, with nothing read from the environment.
    pub fn defaults() -> Self {
        Cli::parse_from(["claude-graphql"]).config
    }
}

/// An amount of US dollars above zero.
fn positive_usd(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(usd) if usd > 0.0 && usd.is_finite() => Ok(usd),
        _ => Err(format!("`{s}` is not a positive amount of US dollars")),
    }
}
