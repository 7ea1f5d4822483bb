//! `AgentProfile`.

use async_graphql::{Context, Object, ID};
use chrono::{DateTime, Utc};
use entity::agent_profile;

use super::{state, Json, Workspace};
use crate::{db, error::Gql};

pub struct AgentProfile(pub agent_profile::Model);

/// Named start options (model, prompts, tools, permission mode, limits)
/// that `startExecution(input: {profile})` applies where the input gives
/// none.
#[Object]
impl AgentProfile {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Only in this workspace (where it shadows your profile of the same
    /// name); in all of yours when null.
    async fn workspace(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Workspace>> {
        let Some(id) = self.0.workspace_id else { return Ok(None) };
        Ok(db::workspaces::get(&state(ctx)?.db, &self.0.owner, id).await.gql()?.map(Workspace))
    }

    /// The options, as `startExecution` stores them (`model`, `maxTurns`,
    /// `systemPrompt`, ...).
    async fn options(&self) -> Json {
        Json(crate::claude::mcp::redacted_options(&self.0.options))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
