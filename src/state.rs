//! `AppState`: what every request handler and resolver can reach.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{config::Config, events::Broker, executor::Executor};

/// Shared by axum (`with_state`) and the schema (`.data`); cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub broker: Broker,
    pub executor: Executor,
    pub config: Arc<Config>,
    /// Serialises workspace registrations of this server (SQLite has no
    /// advisory locks; see `db::lock_for`).
    pub registrations: Arc<tokio::sync::Mutex<()>>,
}
