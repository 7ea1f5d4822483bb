//! `AppError`: what a client is told when a request fails. Lower layers'
//! errors become one of these once, here; internals are logged, never sent.

use async_graphql::ErrorExtensions;
use serde_json::json;
use thiserror::Error;
use tracing::error;

use crate::db::DbError;

/// A failed request, with the code of SPEC's list it maps to.
#[derive(Debug, Error)]
pub enum AppError {
    /// The input is wrong; `field` names the offending input field.
    #[error("{message}")]
    BadUserInput { message: String, field: Option<String> },
    /// It does not exist, or it is not the caller's to see.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("session {0} is closed")]
    SessionClosed(String),
    #[error("session {0} already has a pending or running execution; wait for it or cancel it")]
    SessionBusy(String),
    #[error("{message}")]
    RateLimited { message: String, retry_after_ms: u64 },
    /// A spending cap is used up for today.
    #[error("{0}")]
    BudgetExceeded(String),
    #[error("{0}")]
    ClaudeUnavailable(String),
    /// The change conflicts with the state it would change (a merge).
    #[error("{0}")]
    Conflict(String),
    /// Something broke on our side; the text is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    pub fn bad_input(field: &str, message: impl Into<String>) -> Self {
        AppError::BadUserInput { message: message.into(), field: Some(field.to_owned()) }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadUserInput { .. } => "BAD_USER_INPUT",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::SessionClosed(_) => "SESSION_CLOSED",
            AppError::SessionBusy(_) => "SESSION_BUSY",
            AppError::BudgetExceeded(_) => "BUDGET_EXCEEDED",
            AppError::RateLimited { .. } => "RATE_LIMITED",
            AppError::ClaudeUnavailable(_) => "CLAUDE_UNAVAILABLE",
            AppError::Conflict(_) => "CONFLICT",
            AppError::Internal(_) => "INTERNAL_ERROR",
        }
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        if let AppError::Internal(detail) = self {
            // Logged once here, inside the request's span.
            error!(detail = %detail, "internal error");
        }
        async_graphql::Error::new(self.to_string()).extend_with(|_, e| {
            e.set("code", self.code());
            match self {
                AppError::BadUserInput { field: Some(field), .. } => {
                    e.set("details", async_graphql::Value::from_json(json!({ "field": field })).unwrap_or_default())
                }
                AppError::RateLimited { retry_after_ms, .. } => e.set(
                    "details",
                    async_graphql::Value::from_json(json!({ "retryAfterMs": retry_after_ms })).unwrap_or_default(),
                ),
                _ => {}
            }
        })
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// Turns any layer's result into a GraphQL result with its code set.
pub trait Gql<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T, E: Into<AppError>> Gql<T> for Result<T, E> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| e.into().extend())
    }
}
