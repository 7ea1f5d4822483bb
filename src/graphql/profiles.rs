//! Mutations that manage agent profiles (the `agentProfiles` query is on
//! the root).

use async_graphql::{Context, InputObject, Object, ID};

use super::management::{checked_name, owned_workspace_id, DeletePayload};
use super::mutation::RunOptionsInput;
use super::types::{parse_id, profile::AgentProfile, state, viewer};
use crate::{
    db,
    error::{AppError, Gql},
};

/// Agent profiles one user may have.
const MAX_PROFILES: u64 = 100;

/// A named set of start options.
#[derive(InputObject)]
pub struct CreateAgentProfileInput {
    /// What starts name it by: 1 to 200 bytes.
    pub name: String,
    /// Only in this workspace; in all of yours when not given.
    pub workspace_id: Option<ID>,
    #[graphql(flatten)]
    pub options: RunOptionsInput,
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
        let name = checked_name("name", &input.name).gql()?.to_owned();
        let workspace_id = owned_workspace_id(&state.db, owner, input.workspace_id.as_ref()).await.gql()?;
        // The options, checked as startExecution checks a start's (of
        // some prompt, in some workspace: only the options are kept).
        let start = input.options.start(state.executor.policy(), ID(uuid::Uuid::nil().to_string()), name.clone());
        let options = start.gql()?.options;
        let options = serde_json::to_value(&options).map_err(|e| AppError::Internal(e.to_string())).gql()?;
        if db::profiles::count(&state.db, owner).await.gql()? >= MAX_PROFILES {
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
