//! Why a run failed, as the codes `Execution.error.code` reports.

use thiserror::Error;

/// A failed run. `code()` is the stable string clients see.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum ClaudeError {
    #[error("could not start `{bin}`: {reason}")]
    SpawnFailed { bin: String, reason: String },
    #[error("claude exited without a result (exit code {exit_code:?}){stderr}")]
    Exited { exit_code: Option<i32>, stderr: String },
    #[error("{0}")]
    Error(String),
    #[error("{0}")]
    MaxTurns(String),
    #[error("{0}")]
    BudgetExceeded(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("the run exceeded its time limit of {0}")]
    Timeout(String),
    #[error("the run was cancelled")]
    Cancelled,
    #[error("the server stopped while the run was going")]
    Interrupted,
    #[error("claude wrote a line longer than {limit} bytes")]
    LineTooLong { limit: usize },
    /// The server could not store what the run wrote (a full disk, a lost
    /// database): the run is stopped rather than go on unrecorded.
    #[error("{0}")]
    StorageFailed(String),
    /// The start asked for output matching a schema, and the run ended
    /// without any (Claude never gave output that matched).
    #[error("the run ended without output that matches its outputSchema")]
    NoStructuredOutput,
}

impl ClaudeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::SpawnFailed { .. } => "SPAWN_FAILED",
            Self::Exited { .. } => "CLAUDE_EXITED",
            Self::Error(_) => "CLAUDE_ERROR",
            Self::MaxTurns(_) => "MAX_TURNS",
            Self::BudgetExceeded(_) => "BUDGET_EXCEEDED",
            Self::RateLimited(_) => "RATE_LIMITED",
            Self::Timeout(_) => "TIMEOUT",
            Self::Cancelled => "CANCELLED",
            Self::Interrupted => "INTERRUPTED",
            Self::LineTooLong { .. } => "LINE_TOO_LONG",
            Self::StorageFailed(_) => "STORAGE_FAILED",
            Self::NoStructuredOutput => "NO_STRUCTURED_OUTPUT",
        }
    }
}
