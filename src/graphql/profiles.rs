//! Mutations that manage agent profiles (the `agentProfiles` query is on
//! the root).

use async_graphql::{Context, InputObject, Object, ID};

use super::management::DeletePayload;
use super::mutation::{start_request, StartExecutionInput, MAX_NAME};
use super::types::{parse_id, profile::AgentProfile, state, viewer};
use crate::{
    db,
    error::{AppError, Gql},
};

/// Agent profiles one user may have.
const MAX_PROFILES: usize = 100;

/// A named set of start options.
#[derive(InputObject)]
pub struct CreateAgentProfileInput {
    /// What starts name it by: 1 to 200 bytes.
    pub name: String,
    /// Only in this workspace; in all of yours when not given.
    pub workspace_id: Option<ID>,
    pub system_prompt: Option<String>,
    pub append_system_prompt: Option<String>,
    pub max_turns: Option<i32>,
    pub allowed_tools: Option<Vec<String>>,
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub max_budget_usd: Option<f64>,
    pub require_approval: Option<bool>,
}

#[derive(Default)]
pub struct ProfileMutation;

#[Object]
impl ProfileMutation {
    /// Creates an agent profile; a name is used once per workspace and
    /// once among your workspace-wide ones (BAD_USER_INPUT otherwise).
    async fn create_agent_profile(
        &self,
        ctx: &Context<'_>,
        input: CreateAgentProfileInput,
    ) -> async_graphql::Result<AgentProfile> {
        let state = state(ctx)?;
        let owner = &viewer(ctx)?.sub;
        let name = input.name.trim().to_owned();
        if name.is_empty() || name.len() > MAX_NAME || name.contains('\0') {
            return Err(AppError::bad_input("name", format!("`name` must be 1 to {MAX_NAME} bytes"))).gql();
        }
        let workspace_id = match &input.workspace_id {
            Some(id) => {
                let id = parse_id(id, "workspaceId").gql()?;
                db::workspaces::get(&state.db, owner, id).await.gql()?.ok_or(AppError::NotFound("workspace")).gql()?;
                Some(id)
            }
            None => None,
        };
        // The options, checked as startExecution checks a start's.
        let start = StartExecutionInput {
            workspace_id: ID(uuid::Uuid::nil().to_string()),
            session_id: None,
            fork_session_id: None,
            prompt: name.clone(),
            system_prompt: input.system_prompt,
            append_system_prompt: input.append_system_prompt,
            max_turns: input.max_turns,
            allowed_tools: input.allowed_tools,
            model: input.model,
            permission_mode: input.permission_mode,
            max_budget_usd: input.max_budget_usd,
            require_approval: input.require_approval,
            include_partial_messages: None,
            metadata: None,
            idempotency_key: None,
            if_busy: None,
            profile: None,
        };
        let options = start_request(state.executor.policy(), start, None).gql()?.options;
        let options = serde_json::to_value(&options).map_err(|e| AppError::Internal(e.to_string())).gql()?;
        if db::profiles::list(&state.db, owner, None).await.gql()?.len() >= MAX_PROFILES {
            let message = format!("at most {MAX_PROFILES} agent profiles per user");
            return Err(AppError::RateLimited { message, retry_after_ms: 0 }).gql();
        }
        let created = db::profiles::create(&state.db, owner, workspace_id, &name, options).await.gql()?;
        let created =
            created.ok_or(AppError::bad_input("name", format!("you have an agent profile named `{name}` there")));
        Ok(AgentProfile(created.gql()?))
    }

    /// Deletes an agent profile of yours.
    async fn delete_agent_profile(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<DeletePayload> {
        let parsed = parse_id(&id, "id").gql()?;
        if !db::profiles::delete(&state(ctx)?.db, &viewer(ctx)?.sub, parsed).await.gql()? {
            return Err(AppError::NotFound("agent profile")).gql();
        }
        Ok(DeletePayload { deleted_id: id })
    }
}
