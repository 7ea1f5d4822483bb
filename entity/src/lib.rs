//! SeaORM entities for claude-graphql: plain data, no queries (those live in
//! the server's `db` module).

pub mod account_hold;
pub mod agent_profile;
pub mod attachment;
pub mod execution;
pub mod execution_attachment;
pub mod idempotency_key;
pub mod message_block;
pub mod permission_request;
pub mod replica;
pub mod schedule;
pub mod session;
pub mod webhook;
pub mod webhook_delivery;
pub mod workspace;
