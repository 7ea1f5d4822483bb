//! Everything about the `claude` program: how it is started, what its
//! stream-json lines mean, and the task that owns one running process.

pub mod command;
pub mod error;
pub mod limits;
pub mod mcp;
pub mod policy;
pub mod runner;
pub mod sandbox;
pub mod stream;

pub use command::{ClaudeCommand, RunOptions, UserContent};
pub use error::ClaudeError;
pub use runner::{Outcome, RunCommand, RunEnd, Runner, StopReason};
pub use stream::{Line, LineKind, ResultLine};
