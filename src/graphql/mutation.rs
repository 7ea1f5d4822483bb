//! Mutation root: creating workspaces, starting and stopping runs.

use async_graphql::{Context, InputObject, MergedObject, Object, SimpleObject, ID};

use super::types::{parse_id, permission::QuestionAnswer, state, viewer, Execution, Json, PermissionRequest, Session};
use crate::{
    claude::{mcp::McpServer, policy::ToolPolicy, RunOptions},
    db,
    error::{AppError, AppResult, Gql},
    executor::{PermissionAnswer, StartRequest},
};

/// Limits on what a client may send.
pub const MAX_NAME: usize = 200;
pub const MAX_PROMPT: usize = 1024 * 1024;
const MAX_SYSTEM_PROMPT: usize = 256 * 1024;
const MAX_METADATA: usize = 64 * 1024;
const MAX_OUTPUT_SCHEMA: usize = 64 * 1024;

/// What to run, where, and how.
#[derive(InputObject)]
pub struct StartExecutionInput {
    pub workspace_id: ID,
    /// Continue this session (Claude is started with `--resume`); without
    /// it a new session is created.
    pub session_id: Option<ID>,
    /// Fork this session: a new session continues a copy of its
    /// conversation so far (`--resume … --fork-session`), and the original
    /// stays as it is. In the same workspace; not with `sessionId`.
    pub fork_session_id: Option<ID>,
    /// Give the new session a git worktree and branch of its own
    /// (`claude/…`, from `baseRef`), so that parallel sessions in one
    /// repository do not clobber each other; see `Session.worktree`,
    /// `mergeSessionWorktree` and `discardSessionWorktree`. Default: the
    /// workspace's `useWorktrees`. Only for a new session, in a workspace
    /// at the top of a git repository.
    pub worktree: Option<bool>,
    /// The branch, tag or commit the worktree starts from (default HEAD).
    pub base_ref: Option<String>,
    /// What to ask. Give `prompt`, `content`, or both (the prompt then
    /// comes first, as a text block).
    pub prompt: Option<String>,
    /// Content blocks: text, images and documents (see `FileInput` for the
    /// ways to send a file). At most 20.
    pub content: Option<Vec<super::attachments::ContentBlockInput>>,
    #[graphql(flatten)]
    pub options: RunOptionsInput,
    /// Also stream partial-token events (live only, no `seq`).
    pub include_partial_messages: Option<bool>,
    /// Anything of yours, kept with the execution.
    pub metadata: Option<Json>,
    /// Makes retrying the start safe: a start with a key you used before
    /// (within IDEMPOTENCY_KEY_TTL, default 24 h) returns the execution the
    /// first one made, and starts nothing; with other input, the key is
    /// refused (BAD_USER_INPUT). Racing starts with one key make one
    /// execution. A start that failed records no key. 1 to 255 printable
    /// ASCII characters, e.g. a UUID made by the client. The
    /// `Idempotency-Key` HTTP header does the same.
    pub idempotency_key: Option<String>,
    /// What happens when `sessionId` names a session that runs another
    /// execution. Default QUEUE.
    pub if_busy: Option<IfSessionBusy>,
    /// An agent profile's name (the workspace's, else yours): its options
    /// apply where this input gives none.
    pub profile: Option<String>,
}

/// What a start does when its session runs another execution.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::executor::IfBusy")]
pub enum IfSessionBusy {
    /// Wait in the session's queue (PENDING, with `queuePosition`), and
    /// run (resuming the session) when the executions before it ended.
    /// Queued executions survive a restart and can be cancelled.
    Queue,
    /// Refuse the start with SESSION_BUSY.
    Reject,
    /// Interrupt the running turn (as `interruptExecution`), and queue.
    Interrupt,
}

/// The options of a start (part of StartExecutionInput), which a schedule
/// or an agent profile can hold too.
#[derive(InputObject)]
pub struct RunOptionsInput {
    pub system_prompt: Option<String>,
    pub append_system_prompt: Option<String>,
    /// At least 1.
    pub max_turns: Option<i32>,
    pub allowed_tools: Option<Vec<String>>,
    pub model: Option<String>,
    /// default, acceptEdits, plan, dontAsk or auto.
    pub permission_mode: Option<String>,
    /// Stop the run once it has cost this much (US dollars; BUDGET_EXCEEDED).
    pub max_budget_usd: Option<f64>,
    /// Claude asks before using a tool: each request shows up as a
    /// PermissionRequestEvent and in `pendingPermissionRequests`, and waits
    /// for `answerPermissionRequest` (denied when unanswered in time).
    /// Default: the workspace's `requireApproval`.
    pub require_approval: Option<bool>,
    /// A JSON Schema (an object, at most 64 KiB) that the run's final
    /// answer must match (the CLI's `--json-schema`): the answer is then
    /// `Execution.structuredOutput`, and a run that ends without one fails
    /// with NO_STRUCTURED_OUTPUT.
    pub output_schema: Option<Json>,
    /// MCP servers for this run, besides the workspace's (one of the same
    /// name replaces the workspace's). Passed as `--mcp-config` with
    /// `--strict-mcp-config`: no other MCP server is loaded.
    pub mcp_servers: Option<Vec<super::mcp::McpServerInput>>,
}

impl RunOptionsInput {
    /// A start in `workspace_id` of `prompt` with these options, checked as
    /// startExecution checks one.
    pub fn start(self, policy: &ToolPolicy, workspace_id: ID, prompt: String) -> AppResult<StartRequest> {
        let input = StartExecutionInput {
            workspace_id,
            session_id: None,
            fork_session_id: None,
            worktree: None,
            base_ref: None,
            prompt: Some(prompt),
            content: None,
            options: self,
            include_partial_messages: None,
            metadata: None,
            idempotency_key: None,
            if_busy: None,
            profile: None,
        };
        start_request(policy, input, None, false)
    }
}

/// The new execution and its session.
#[derive(SimpleObject)]
pub struct StartExecutionPayload {
    pub execution: Execution,
    pub session: Session,
    /// True when the idempotency key had started this execution before:
    /// this call started nothing.
    pub replayed: bool,
}

/// The `Idempotency-Key` header of an HTTP request: the key of its
/// `startExecution` when the input names none.
pub struct IdempotencyKeyHeader(pub String);

/// The longest idempotency key.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// An answer to a permission request.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PermissionDecision {
    Allow,
    Deny,
}

/// When a follow-up message is taken up.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum MessagePriority {
    /// After the running turn (or within it, when Claude gets to it).
    Next,
    /// At once, replacing the running turn.
    Now,
}

/// The execution a message was added to, and the message's id.
#[derive(SimpleObject)]
pub struct SendMessagePayload {
    pub execution: Execution,
    /// Our uuid for the message: `command_uuid` in its `command_lifecycle`
    /// lines, and listed in `user_message_uuids` of the result that ends its
    /// turn.
    pub message_id: ID,
}

/// The mutations: runs (here), workspaces and sessions (`management`),
/// webhooks (`webhooks`), schedules (`schedules`), agent profiles
/// (`profiles`).
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    super::management::ManagementMutation,
    RunMutation,
    super::webhooks::WebhookMutation,
    super::schedules::ScheduleMutation,
    super::profiles::ProfileMutation,
    super::attachments::AttachmentMutation,
);

#[derive(Default)]
pub struct RunMutation;

#[Object]
impl RunMutation {
    /// Starts Claude on a prompt. Returns at once; the execution is PENDING
    /// until a slot is free, then RUNNING. Watch it with `executionEvents`.
    /// A session runs one execution at a time: a start on a session that
    /// runs one waits in the session's queue (see `ifBusy`).
    async fn start_execution(
        &self,
        ctx: &Context<'_>,
        mut input: StartExecutionInput,
    ) -> async_graphql::Result<StartExecutionPayload> {
        let state = state(ctx)?;
        let header = ctx.data_opt::<IdempotencyKeyHeader>().map(|h| h.0.as_str());
        let profile = input.profile.clone();
        let content = input.content.take();
        let mut request = start_request(state.executor.policy(), input, header, content.is_some()).gql()?;
        if content.is_some() {
            let text = Some(request.prompt.text()).filter(|t| !t.is_empty());
            request.prompt = super::attachments::prompt_of(ctx, &viewer(ctx)?.sub, text, content).await.gql()?;
        }
        if let Some(name) = profile {
            request.options = with_profile(state, &viewer(ctx)?.sub, &request, &name).await.gql()?;
        }
        let started = state.executor.start(&viewer(ctx)?.sub, request).await.gql()?;
        Ok(StartExecutionPayload {
            execution: Execution(started.execution),
            session: Session(started.session),
            replayed: started.replayed,
        })
    }

    /// Stops a run: Claude is interrupted, then its stdin closed, then it
    /// is sent SIGTERM and SIGKILL if it lingers. A finished execution is
    /// returned unchanged.
    async fn cancel_execution(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Execution> {
        let id = parse_id(&id, "id").gql()?;
        let execution = state(ctx)?.executor.cancel(&viewer(ctx)?.sub, id).await.gql()?;
        Ok(Execution(execution))
    }

    /// Ends the running turn cleanly (Claude's `interrupt` control request):
    /// what it wrote so far is stored and the session stays resumable. The
    /// execution then ends CANCELLED, unless a follow-up message (see
    /// `sendMessage`) keeps it going. Unlike `cancelExecution`, no signal is
    /// sent to the process.
    async fn interrupt_execution(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Execution> {
        let id = parse_id(&id, "id").gql()?;
        let execution = state(ctx)?.executor.interrupt(&viewer(ctx)?.sub, id).await.gql()?;
        Ok(Execution(execution))
    }

    /// Adds a message to a running execution. With `priority: NEXT` it is
    /// queued (Claude may also take it into the running turn); with `NOW` it
    /// replaces the running turn. The stream shows `command_lifecycle` lines
    /// for it (`command_uuid` = the returned `messageId`), and the `result`
    /// that ends its turn lists it in `user_message_uuids`.
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        execution_id: ID,
        #[graphql(desc = "The message; give `text`, `content`, or both (the text first)")] text: Option<String>,
        #[graphql(desc = "Content blocks: text, images, documents (at most 20)")] content: Option<
            Vec<super::attachments::ContentBlockInput>,
        >,
        #[graphql(desc = "NEXT when not given")] priority: Option<MessagePriority>,
    ) -> async_graphql::Result<SendMessagePayload> {
        let id = parse_id(&execution_id, "executionId").gql()?;
        if let Some(text) = &text {
            no_nul("text", text).gql()?;
            if text.trim().is_empty() || text.len() > MAX_PROMPT {
                return Err(AppError::bad_input("text", format!("`text` must be 1 to {MAX_PROMPT} bytes"))).gql();
            }
        } else if content.is_none() {
            return Err(AppError::bad_input("text", "give `text`, `content`, or both")).gql();
        }
        let state = state(ctx)?;
        let owner = &viewer(ctx)?.sub;
        let prompt = super::attachments::prompt_of(ctx, owner, text, content).await.gql()?;
        let now = priority == Some(MessagePriority::Now);
        let message_id = state.executor.send_message(owner, id, prompt, now).await.gql()?;
        let execution =
            db::executions::get(&state.db, owner, id).await.gql()?.ok_or(AppError::NotFound("execution")).gql()?;
        Ok(SendMessagePayload { execution: Execution(execution), message_id: ID(message_id.to_string()) })
    }

    /// Answers a pending permission request, exactly once (a second answer,
    /// or one after it expired, is refused). ALLOW runs the tool, with
    /// `updatedInput` instead of the requested input when given, and
    /// `applySuggestion` (an index into `suggestions`) applied; DENY refuses
    /// it, with `message` for Claude. A QUESTION is answered with ALLOW and
    /// `answers` (one for each of its questions).
    #[allow(clippy::too_many_arguments)]
    async fn answer_permission_request(
        &self,
        ctx: &Context<'_>,
        id: ID,
        decision: PermissionDecision,
        updated_input: Option<Json>,
        message: Option<String>,
        apply_suggestion: Option<i32>,
        answers: Option<Vec<QuestionAnswer>>,
    ) -> async_graphql::Result<PermissionRequest> {
        let id = parse_id(&id, "id").gql()?;
        let updated_input = match answers {
            Some(answers) => {
                if updated_input.is_some() || decision != PermissionDecision::Allow {
                    let why = "`answers` goes with ALLOW and without `updatedInput`";
                    return Err(AppError::bad_input("answers", why)).gql();
                }
                let request = db::permissions::get(&state(ctx)?.db, &viewer(ctx)?.sub, id).await.gql()?;
                let request = PermissionRequest(request.ok_or(AppError::NotFound("permission request")).gql()?);
                Some(Json(request.answered_with(&answers).gql()?))
            }
            None => updated_input,
        };
        if let Some(message) = &message {
            no_nul("message", message).gql()?;
        }
        if let Some(input) = &updated_input {
            json_no_nul("updatedInput", &input.0).gql()?;
        }
        if message.as_ref().is_some_and(|m| m.len() > MAX_SYSTEM_PROMPT) {
            return Err(AppError::bad_input("message", "`message` is too long")).gql();
        }
        let apply_suggestion = match apply_suggestion {
            Some(i) if i < 0 => return Err(AppError::bad_input("applySuggestion", "must not be negative")).gql(),
            other => other.map(|i| i as usize),
        };
        let answer = PermissionAnswer {
            allow: decision == PermissionDecision::Allow,
            updated_input: updated_input.map(|j| j.0),
            message,
            apply_suggestion,
        };
        let request = state(ctx)?.executor.answer_permission(&viewer(ctx)?.sub, id, answer).await.gql()?;
        Ok(PermissionRequest(request))
    }
}

/// Checks every field of a start request.
/// With `blocks_follow`, content blocks (that the resolver checks) come
/// after the prompt, which may then be absent.
fn start_request(
    policy: &ToolPolicy,
    input: StartExecutionInput,
    header: Option<&str>,
    blocks_follow: bool,
) -> AppResult<StartRequest> {
    let workspace_id = parse_id(&input.workspace_id, "workspaceId")?;
    let idempotency_key = idempotency_key(input.idempotency_key.as_deref(), header)?;
    let session_id = input.session_id.as_ref().map(|id| parse_id(id, "sessionId")).transpose()?;
    let fork_session_id = input.fork_session_id.as_ref().map(|id| parse_id(id, "forkSessionId")).transpose()?;
    if session_id.is_some() && fork_session_id.is_some() {
        return Err(AppError::bad_input("forkSessionId", "give `sessionId` or `forkSessionId`, not both"));
    }
    let prompt_given = input.prompt.is_some();
    let prompt = input.prompt.unwrap_or_default();
    // NUL cannot be stored (PostgreSQL text) nor passed in argv.
    no_nul("prompt", &prompt)?;
    for (field, value) in [
        ("systemPrompt", &input.options.system_prompt),
        ("appendSystemPrompt", &input.options.append_system_prompt),
        ("model", &input.options.model),
        ("permissionMode", &input.options.permission_mode),
    ] {
        if let Some(value) = value {
            no_nul(field, value)?;
        }
    }
    if let Some(metadata) = &input.metadata {
        json_no_nul("metadata", &metadata.0)?;
    }
    if let Some(base) = &input.base_ref {
        no_nul("baseRef", base)?;
        if base.is_empty() || base.len() > 255 {
            return Err(AppError::bad_input("baseRef", "`baseRef` is 1 to 255 bytes"));
        }
    }
    if prompt.trim().is_empty() && (prompt_given || !blocks_follow) {
        return Err(AppError::bad_input("prompt", "`prompt` must not be empty"));
    }
    if prompt.len() > MAX_PROMPT {
        return Err(AppError::bad_input("prompt", format!("`prompt` is longer than {MAX_PROMPT} bytes")));
    }
    for (field, value) in
        [("systemPrompt", &input.options.system_prompt), ("appendSystemPrompt", &input.options.append_system_prompt)]
    {
        if value.as_ref().is_some_and(|v| v.len() > MAX_SYSTEM_PROMPT) {
            return Err(AppError::bad_input(field, format!("`{field}` is longer than {MAX_SYSTEM_PROMPT} bytes")));
        }
    }
    if input.options.max_turns.is_some_and(|n| n < 1) {
        return Err(AppError::bad_input("maxTurns", "`maxTurns` must be at least 1"));
    }
    if let Some(tools) = &input.options.allowed_tools {
        policy.check_allowed_tools(tools).map_err(|why| AppError::bad_input("allowedTools", why))?;
    }
    if input.options.max_budget_usd.is_some_and(|usd| !(usd > 0.0 && usd.is_finite())) {
        return Err(AppError::bad_input("maxBudgetUsd", "`maxBudgetUsd` must be a positive amount"));
    }
    if let Some(model) = &input.options.model {
        // Never one that reads as an option of the CLI.
        let ok = !model.is_empty()
            && !model.starts_with('-')
            && model.len() <= 100
            && model.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:[]@/".contains(c));
        if !ok {
            return Err(AppError::bad_input("model", format!("`{model}` is not a model name")));
        }
    }
    if let Some(mode) = &input.options.permission_mode {
        policy.check_mode(mode).map_err(|why| AppError::bad_input("permissionMode", why))?;
    }
    if let Some(schema) = &input.options.output_schema {
        json_no_nul("outputSchema", &schema.0)?;
        if !schema.0.is_object() || schema.0.to_string().len() > MAX_OUTPUT_SCHEMA {
            let why = format!("`outputSchema` is a JSON Schema object of at most {MAX_OUTPUT_SCHEMA} bytes");
            return Err(AppError::bad_input("outputSchema", why));
        }
    }
    let mcp_servers: Option<Vec<McpServer>> =
        input.options.mcp_servers.map(|s| s.into_iter().map(Into::into).collect());
    if let Some(servers) = &mcp_servers {
        check_mcp(policy, servers)?;
    }
    if let Some(metadata) = &input.metadata {
        if metadata.0.to_string().len() > MAX_METADATA {
            return Err(AppError::bad_input("metadata", format!("`metadata` is larger than {MAX_METADATA} bytes")));
        }
    }
    Ok(StartRequest {
        workspace_id,
        session_id,
        prompt: crate::attachments::Prompt::Text(prompt),
        options: RunOptions {
            system_prompt: input.options.system_prompt,
            append_system_prompt: input.options.append_system_prompt,
            max_turns: input.options.max_turns,
            allowed_tools: input.options.allowed_tools,
            model: input.options.model,
            permission_mode: input.options.permission_mode,
            max_budget_usd: input.options.max_budget_usd,
            require_approval: input.options.require_approval,
            output_schema: input.options.output_schema.map(|s| s.0),
            mcp_servers,
            include_partial_messages: input.include_partial_messages.unwrap_or(false),
        },
        metadata: input.metadata.map(|m| m.0),
        idempotency_key,
        if_busy: input.if_busy.map(Into::into).unwrap_or_default(),
        fork_session_id,
        worktree: input.worktree,
        base_ref: input.base_ref,
    })
}

/// Checks MCP servers against the operator's allow-list; the error names
/// the offending field (`mcpServers.0.command`).
pub fn check_mcp(policy: &ToolPolicy, servers: &[McpServer]) -> AppResult<()> {
    policy.mcp.check(servers).map_err(|(field, why)| AppError::bad_input(&field, why))
}

/// The start's options over those of the agent profile `name`, checked
/// against what the server lets clients grant (now, not when the profile
/// was made).
async fn with_profile(
    state: &crate::state::AppState,
    owner: &str,
    request: &StartRequest,
    name: &str,
) -> AppResult<RunOptions> {
    let profile = db::profiles::named(&state.db, owner, request.workspace_id, name)
        .await?
        .ok_or_else(|| AppError::bad_input("profile", format!("you have no agent profile named `{name}` here")))?;
    let defaults: RunOptions = serde_json::from_value(profile.options)
        .map_err(|e| AppError::Internal(format!("the stored profile options: {e}")))?;
    let options = request.options.clone().or(defaults);
    state.executor.policy().check_options(&options).map_err(|why| AppError::bad_input("profile", why))?;
    Ok(options)
}

/// The start's idempotency key: the input's, or the header's; both may be
/// given only when they agree.
fn idempotency_key(input: Option<&str>, header: Option<&str>) -> AppResult<Option<String>> {
    const FIELD: &str = "idempotencyKey";
    let key = match (input, header) {
        (Some(input), Some(header)) if input != header => {
            return Err(AppError::bad_input(FIELD, "`idempotencyKey` differs from the Idempotency-Key header"));
        }
        (Some(key), _) | (None, Some(key)) => key,
        (None, None) => return Ok(None),
    };
    let printable = key.bytes().all(|b| (b' '..=b'~').contains(&b));
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !printable {
        let why = format!("an idempotency key is 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters");
        return Err(AppError::bad_input(FIELD, why));
    }
    Ok(Some(key.to_owned()))
}

/// Refuses a NUL character, which no store or argv can carry.
pub fn no_nul(field: &str, value: &str) -> AppResult<()> {
    if value.contains('\0') {
        return Err(AppError::bad_input(field, format!("`{field}` must not contain NUL characters")));
    }
    Ok(())
}

/// Refuses a NUL character in any key or string of a JSON value.
fn json_no_nul(field: &str, value: &serde_json::Value) -> AppResult<()> {
    use serde_json::Value;
    let bad = match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => return items.iter().try_for_each(|item| json_no_nul(field, item)),
        Value::Object(map) => {
            for (key, item) in map {
                no_nul(field, key)?;
                json_no_nul(field, item)?;
            }
            false
        }
        _ => false,
    };
    if bad {
        return no_nul(field, "\0");
    }
    Ok(())
}
