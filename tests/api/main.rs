//! Integration tests: the real server on port 0, real HTTP and graphql-ws
//! clients, the stand-in `claude`, SQLite always and PostgreSQL when
//! TEST_POSTGRES_URL is set.

mod helpers;

mod approvals;
mod attachments;
mod auth;
mod blocks;
mod browser;
mod budgets;
mod changes;
mod client_ts;
mod dashboard;
mod failures;
mod forks;
mod fuzz;
mod http;
mod idempotency;
mod inputs;
mod interactive;
mod lifecycle;
mod mcp;
mod parking;
mod pipeline;
mod profiles;
mod queue;
mod reliability;
mod replicas;
mod runs;
mod schedules;
mod security;
mod structured;
mod transport;
mod typed;
mod webhooks;
mod worktrees;
mod ws;

/// Generates, for each scenario `fn name(app: TestApp)`, a test on SQLite
/// and one on PostgreSQL (which says it was skipped without
/// TEST_POSTGRES_URL).
#[macro_export]
macro_rules! on_every_db {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::helpers::{spawn_app_on, Db};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(spawn_app_on(Db::Sqlite).await.unwrap()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = spawn_app_on(Db::Postgres).await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}
