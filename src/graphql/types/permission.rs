//! `PermissionRequest`: Claude asks before using a tool.

use async_graphql::{Enum, Object, ID};
use chrono::{DateTime, Utc};
use entity::permission_request;

use super::Json;
use crate::db::permissions as p;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PermissionStatus {
    /// Waiting for an answer.
    Pending,
    Allowed,
    Denied,
    /// Not answered in time: denied.
    Expired,
    /// Claude withdrew it (the turn was interrupted).
    Cancelled,
}

/// A tool-permission request of a run (`can_use_tool`), and its answer.
pub struct PermissionRequest(pub permission_request::Model);

#[Object]
impl PermissionRequest {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn execution_id(&self) -> ID {
        ID(self.0.execution_id.to_string())
    }

    async fn tool_name(&self) -> &str {
        &self.0.tool_name
    }

    /// Links the request to the `tool_use` block of the assistant message.
    async fn tool_use_id(&self) -> Option<&str> {
        self.0.tool_use_id.as_deref()
    }

    /// The input Claude wants to run the tool with.
    async fn input(&self) -> Json {
        Json(self.0.input.clone())
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// The path that needs the permission, when there is one.
    async fn blocked_path(&self) -> Option<&str> {
        self.0.blocked_path.as_deref()
    }

    /// Permission changes Claude suggests (see `applySuggestion`).
    async fn suggestions(&self) -> Option<Json> {
        self.0.suggestions.clone().map(Json)
    }

    async fn status(&self) -> PermissionStatus {
        match self.0.status.as_str() {
            p::ALLOWED => PermissionStatus::Allowed,
            p::DENIED => PermissionStatus::Denied,
            p::EXPIRED => PermissionStatus::Expired,
            p::CANCELLED => PermissionStatus::Cancelled,
            _ => PermissionStatus::Pending,
        }
    }

    /// What was sent back to Claude.
    async fn decision(&self) -> Option<Json> {
        self.0.decision.clone().map(Json)
    }

    /// The user who answered (none when it expired or was cancelled).
    async fn answered_by(&self) -> Option<&str> {
        self.0.answered_by.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }

    async fn answered_at(&self) -> Option<DateTime<Utc>> {
        self.0.answered_at
    }
}
