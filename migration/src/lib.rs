//! Database migrations, applied by the server on startup.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_tables;
mod m20261125_000002_permission_requests;
mod m20261201_000003_workspace_path_index;
mod m20261201_000004_replica_leases;
mod m20261201_000005_execution_stalled_since;
mod m20261201_000006_model_and_title;
mod m20261201_000007_change_clock;
mod m20261201_000008_idempotency_keys;
mod m20261201_000009_one_running_per_session;
mod m20261201_000010_parked_runs;
mod m20261201_000011_workspace_budget;
mod m20261201_000012_webhooks;
mod m20261201_000013_schedules;
mod m20261201_000014_session_forks;
mod m20261201_000015_agent_profiles;
mod m20261201_000016_attachments;
mod m20261201_000017_mcp_servers;
mod m20261201_000018_execution_changes;
mod m20261201_000019_session_worktrees;
mod m20261201_000020_message_blocks;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_tables::Migration),
            Box::new(m20261125_000002_permission_requests::Migration),
            Box::new(m20261201_000003_workspace_path_index::Migration),
            Box::new(m20261201_000004_replica_leases::Migration),
            Box::new(m20261201_000005_execution_stalled_since::Migration),
            Box::new(m20261201_000006_model_and_title::Migration),
            Box::new(m20261201_000007_change_clock::Migration),
            Box::new(m20261201_000008_idempotency_keys::Migration),
            Box::new(m20261201_000009_one_running_per_session::Migration),
            Box::new(m20261201_000010_parked_runs::Migration),
            Box::new(m20261201_000011_workspace_budget::Migration),
            Box::new(m20261201_000012_webhooks::Migration),
            Box::new(m20261201_000013_schedules::Migration),
            Box::new(m20261201_000014_session_forks::Migration),
            Box::new(m20261201_000015_agent_profiles::Migration),
            Box::new(m20261201_000016_attachments::Migration),
            Box::new(m20261201_000017_mcp_servers::Migration),
            Box::new(m20261201_000018_execution_changes::Migration),
            Box::new(m20261201_000019_session_worktrees::Migration),
            Box::new(m20261201_000020_message_blocks::Migration),
        ]
    }
}
