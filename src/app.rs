//! `App`: the wired-up server, bound to its address and ready to run.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use secrecy::ExposeSecret;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{
    claude::Runner,
    config::Config,
    db,
    events::Broker,
    executor::{Executor, ExecutorConfig},
    graphql::build_schema,
    http,
    state::AppState,
};

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum StartupError {
    #[error("refusing to listen on {0} without --jwt-secret: single-user local mode is for loopback addresses only")]
    UnsafeBind(SocketAddr),
    #[error("with --jwt-secret, --workspace-root is required: users may only register directories under it")]
    NoWorkspaceRoots,
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    WeakSecret(String),
    #[error("database: {0}")]
    Database(#[from] db::DbError),
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("recovering unfinished runs: {0}")]
    Recovery(String),
}

/// A bound, ready server.
pub struct App {
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    /// SQLite's log checkpointer, from the first write (migrations,
    /// recovery) to the last.
    checkpointer: Option<db::checkpointer::Checkpointer>,
}

impl App {
    /// Connects and migrates the database, recovers what a previous server
    /// left unfinished, and binds the listener.
    pub async fn build(mut config: Config) -> Result<App, StartupError> {
        crate::claude::sandbox::harden_server();
        config.load_secret_files()?;
        let mcp = crate::claude::mcp::McpPolicy::new(&config.mcp_stdio_commands, &config.mcp_allowed_urls)
            .map_err(crate::config::ConfigError)?;
        if let Some(secret) = &config.jwt_secret {
            crate::http::auth::check_secret(secret).map_err(StartupError::WeakSecret)?;
        }
        if config.jwt_secret.is_none() && !config.bind.ip().is_loopback() {
            return Err(StartupError::UnsafeBind(config.bind));
        }
        if config.jwt_secret.is_some() && config.workspace_roots.is_empty() {
            return Err(StartupError::NoWorkspaceRoots);
        }
        // Resolved once, here: spawned with the workspace as its working
        // directory, a relative path would mean something else per run.
        match crate::claude::command::resolve_bin(&config.claude_bin) {
            Some(bin) => config.claude_bin = bin,
            None => tracing::warn!(
                claude_bin = %config.claude_bin.display(),
                "claude was not found or is not executable: every run will fail with SPAWN_FAILED (see /readyz)"
            ),
        }
        let db = db::connect(config.database_url.expose_secret()).await?;
        let checkpointer = db::checkpointer::Checkpointer::start(&db, db::checkpointer::EVERY);
        // Subscriptions may use half of the pool to read the store; the
        // other half stays for everything else.
        let broker = Broker::new(db::pool_size(&db) / 2, 2);
        let shutdown = CancellationToken::new();
        let executor = Executor::new(
            db.clone(),
            broker.clone(),
            ExecutorConfig {
                claude_bin: config.claude_bin.clone(),
                replica_id: config.replica_id.clone().unwrap_or_else(host_name),
                max_concurrent: config.max_concurrent_executions as usize,
                starts_per_minute: std::num::NonZeroU32::new(config.max_starts_per_minute)
                    .unwrap_or(std::num::NonZeroU32::MIN),
                max_active_per_user: config.max_active_executions_per_user,
                permission_timeout: config.permission_timeout,
                policy: crate::claude::policy::ToolPolicy::from_config(&config, mcp),
                roots: crate::paths::WorkspaceRoots::new(config.workspace_roots.clone()),
                stall_after: config.stall_after,
                idempotency_ttl: config.idempotency_key_ttl,
                parking: crate::executor::Parking {
                    enabled: config.park_rate_limited,
                    fallback_wait: config.rate_limit_wait,
                    resume_prompt: config.resume_prompt.clone(),
                    zone: config.limit_timezone,
                },
                user_daily_budget_usd: config.user_daily_budget_usd,
                track_changes: config.track_changes,
                runner: Runner {
                    max_line_bytes: config.max_line_bytes,
                    grace: config.cancel_grace,
                    timeout: config.execution_timeout,
                },
            },
            shutdown.clone(),
        );
        executor.renew_lease(config.replica_lease).await.map_err(|e| StartupError::Recovery(e.to_string()))?;
        executor.recover().await.map_err(|e| StartupError::Recovery(e.to_string()))?;
        executor.finish_orphans().await.map_err(|e| StartupError::Recovery(e.to_string()))?;
        let listener =
            TcpListener::bind(config.bind).await.map_err(|source| StartupError::Bind { addr: config.bind, source })?;
        let state = AppState { db, broker, executor, config: Arc::new(config), registrations: Default::default() };
        Ok(App { listener, state, shutdown, checkpointer })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until `stop` resolves or the shutdown token is cancelled;
    /// then stops accepting, stops every run (they end FAILED /
    /// INTERRUPTED with their output stored), and returns.
    pub async fn run_until_stopped(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let App { listener, state, shutdown, checkpointer } = self;
        info!(address = %listener.local_addr()?, "listening");
        let schema = build_schema(Some(state.clone()));
        let ws_closing = http::WsClosing::default();
        let router = http::router(state.clone(), schema, ws_closing.clone());
        let token = shutdown.clone();
        tokio::spawn(async move {
            stop.await;
            token.cancel();
        });
        // Signals from other replicas (PostgreSQL only); ends at shutdown.
        let executor = state.executor.clone();
        let replicas = tokio::spawn(crate::events::replicas::listen(
            state.db.clone(),
            state.broker.wakeups().clone(),
            move |request| match request {
                crate::events::replicas::Request::Cancel(id) => executor.stop_local(id),
                crate::events::replicas::Request::Interrupt(id) => {
                    executor.interrupt_local(id);
                }
                crate::events::replicas::Request::Answer(id) => {
                    let this = executor.clone();
                    executor.spawn_owned(async move {
                        this.deliver_answer(id).await;
                    });
                }
                crate::events::replicas::Request::Message(crate::db::signals::ForwardedMessage {
                    execution_id,
                    message_id,
                    text,
                    now,
                }) => {
                    let this = executor.clone();
                    executor
                        .spawn_owned(async move { this.deliver_message(execution_id, message_id, text, now).await });
                }
            },
            shutdown.clone(),
        ));
        // This server's lease, and the runs of servers that lost theirs.
        let leases_stop = CancellationToken::new();
        let leases = {
            let (executor, stop) = (state.executor.clone(), leases_stop.clone());
            let lease = state.config.replica_lease;
            tokio::spawn(async move { executor.keep_lease(lease, stop).await })
        };
        // Webhook deliveries, until the runs' last events are announced.
        let webhooks = {
            let config = &state.config;
            let sender = crate::webhooks::Sender::new(
                state.db.clone(),
                crate::webhooks::SenderConfig {
                    allow: crate::webhooks::AllowList::new(&config.webhook_allowed_hosts),
                    retry_base: config.webhook_retry_base,
                    retry_for: config.webhook_retry_for,
                    timeout: config.webhook_timeout,
                },
            );
            tokio::spawn(sender.run(leases_stop.clone()))
        };
        // Schedules fire until the server stops.
        let scheduler = {
            let scheduler = crate::schedules::Scheduler { db: state.db.clone(), executor: state.executor.clone() };
            tokio::spawn(scheduler.run(shutdown.clone()))
        };
        let serve_token = shutdown.clone();
        // Events are small writes that must leave at once: without
        // TCP_NODELAY, Nagle's algorithm holds one back until the previous
        // one is acknowledged (a delayed ACK: tens of milliseconds).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let served =
            axum::serve(listener, router).with_graceful_shutdown(async move { serve_token.cancelled().await }).await;
        // Runs are children of the shutdown token: they are stopping now.
        shutdown.cancel();
        let patience = state.config.cancel_grace * 2 + Duration::from_secs(5);
        state.executor.wait_stopped(patience).await;
        // The lease was kept while the runs stopped; now it can go.
        leases_stop.cancel();
        // The runs have published their final events: WebSocket clients
        // get them (and whatever else is still on its way), then a 1001.
        ws_closing.token.cancel();
        ws_closing.tracker.close();
        if tokio::time::timeout(Duration::from_secs(5), ws_closing.tracker.wait()).await.is_err() {
            tracing::warn!("some WebSocket connections did not close in time");
        }
        let _ = replicas.await;
        let _ = leases.await;
        let _ = webhooks.await;
        let _ = scheduler.await;
        state.executor.release_lease().await;
        // Nothing writes any more: the log goes back into the file.
        if let Some(checkpointer) = checkpointer {
            checkpointer.stop().await;
        }
        info!("stopped");
        served
    }
}

/// This machine's name, the default replica id.
fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}
