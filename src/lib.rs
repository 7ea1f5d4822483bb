//! claude-graphql: run the Claude Code CLI in named workspaces behind a
//! GraphQL API, and stream everything it does, persisted.

pub mod app;
pub mod attachments;
pub mod changes;
pub mod claude;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod executor;
pub mod git;
pub mod graphql;
pub mod http;
pub mod paths;
pub mod schedules;
pub mod state;
pub mod telemetry;
pub mod webhooks;
pub mod worktrees;

pub use app::App;
pub use config::Config;
