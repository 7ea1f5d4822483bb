//! Mutation root: creating workspaces, starting and stopping runs.

use std::path::{Path, PathBuf};

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};

use super::types::{parse_id, state, viewer, Execution, Json, PermissionRequest, Session, Workspace};
use crate::{
    claude::RunOptions,
    config::Config,
    db,
    error::{AppError, AppResult, Gql},
    executor::{PermissionAnswer, StartRequest},
};

/// Limits on what a client may send.
const MAX_NAME: usize = 200;
const MAX_PROMPT: usize = 1024 * 1024;
const MAX_SYSTEM_PROMPT: usize = 256 * 1024;
const MAX_METADATA: usize = 64 * 1024;
/// Permission modes a client may ask for; `bypassPermissions` only with
/// `--allow-bypass-permissions`.
const PERMISSION_MODES: &[&str] = &["default", "acceptEdits", "plan", "dontAsk", "auto"];

#[derive(InputObject)]
pub struct CreateWorkspaceInput {
    /// A name for people.
    pub name: String,
    /// An existing directory on the server (under a WORKSPACE_ROOTS entry
    /// when those are set). Stored canonicalised.
    pub path: String,
    /// Runs here ask before using a tool, unless startExecution says
    /// otherwise (default false).
    pub require_approval: Option<bool>,
}

#[derive(InputObject)]
pub struct StartExecutionInput {
    pub workspace_id: ID,
    /// Continue this session (Claude is started with `--resume`); without
    /// it a new session is created.
    pub session_id: Option<ID>,
    pub prompt: String,
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
    /// Also stream partial-token events (live only, no `seq`).
    pub include_partial_messages: Option<bool>,
    /// Anything of yours, kept with the execution.
    pub metadata: Option<Json>,
}

#[derive(SimpleObject)]
pub struct StartExecutionPayload {
    pub execution: Execution,
    pub session: Session,
}

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

#[derive(SimpleObject)]
pub struct SendMessagePayload {
    pub execution: Execution,
    /// Our uuid for the message: `command_uuid` in its `command_lifecycle`
    /// lines, and listed in `user_message_uuids` of the result that ends its
    /// turn.
    pub message_id: ID,
}

#[derive(Default)]
pub struct MutationRoot;

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Registers a directory as a workspace.
    async fn create_workspace(
        &self,
        ctx: &Context<'_>,
        input: CreateWorkspaceInput,
    ) -> async_graphql::Result<Workspace> {
        let state = state(ctx)?;
        let owner = &viewer(ctx)?.sub;
        let name = input.name.trim();
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(AppError::bad_input("name", format!("`name` must be 1 to {MAX_NAME} characters"))).gql();
        }
        let path = workspace_path(&state.config, &input.path, owner).gql()?;
        if db::workspaces::overlapping_foreign(&state.db, owner, &path).await.gql()? {
            return Err(AppError::bad_input("path", "this directory is not available")).gql();
        }
        let require_approval = input.require_approval.unwrap_or(false);
        let workspace = db::workspaces::create(&state.db, owner, name, &path, require_approval).await.gql()?;
        Ok(Workspace(workspace))
    }

    /// Starts Claude on a prompt. Returns at once; the execution is PENDING
    /// until a slot is free, then RUNNING. Watch it with `executionEvents`.
    /// A session runs one execution at a time: while one is pending or
    /// running, another is refused with SESSION_BUSY.
    async fn start_execution(
        &self,
        ctx: &Context<'_>,
        input: StartExecutionInput,
    ) -> async_graphql::Result<StartExecutionPayload> {
        let state = state(ctx)?;
        let request = start_request(&state.config, input).gql()?;
        let (execution, session) = state.executor.start(&viewer(ctx)?.sub, request).await.gql()?;
        Ok(StartExecutionPayload { execution: Execution(execution), session: Session(session) })
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
        text: String,
        #[graphql(desc = "NEXT when not given")] priority: Option<MessagePriority>,
    ) -> async_graphql::Result<SendMessagePayload> {
        let id = parse_id(&execution_id, "executionId").gql()?;
        if text.trim().is_empty() || text.len() > MAX_PROMPT {
            return Err(AppError::bad_input("text", format!("`text` must be 1 to {MAX_PROMPT} bytes"))).gql();
        }
        let state = state(ctx)?;
        let owner = &viewer(ctx)?.sub;
        let now = priority == Some(MessagePriority::Now);
        let message_id = state.executor.send_message(owner, id, text, now).await.gql()?;
        let execution =
            db::executions::get(&state.db, owner, id).await.gql()?.ok_or(AppError::NotFound("execution")).gql()?;
        Ok(SendMessagePayload { execution: Execution(execution), message_id: ID(message_id.to_string()) })
    }

    /// Answers a pending permission request, exactly once (a second answer,
    /// or one after it expired, is refused). ALLOW runs the tool, with
    /// `updatedInput` instead of the requested input when given, and
    /// `applySuggestion` (an index into `suggestions`) applied; DENY refuses
    /// it, with `message` for Claude.
    async fn answer_permission_request(
        &self,
        ctx: &Context<'_>,
        id: ID,
        decision: PermissionDecision,
        updated_input: Option<Json>,
        message: Option<String>,
        apply_suggestion: Option<i32>,
    ) -> async_graphql::Result<PermissionRequest> {
        let id = parse_id(&id, "id").gql()?;
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

    /// Closes a session: what runs in it is cancelled, and new executions
    /// are refused with SESSION_CLOSED.
    async fn close_session(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Session> {
        let id = parse_id(&id, "id").gql()?;
        let session = state(ctx)?.executor.close_session(&viewer(ctx)?.sub, id).await.gql()?;
        Ok(Session(session))
    }
}

/// The canonical form of a requested workspace path, if it is acceptable
/// for `owner`.
fn workspace_path(config: &Config, raw: &str, owner: &str) -> AppResult<String> {
    if raw.trim().is_empty() {
        return Err(AppError::bad_input("path", "`path` must not be empty"));
    }
    let path = Path::new(raw);
    if !path.is_absolute() {
        return Err(AppError::bad_input("path", "`path` must be absolute"));
    }
    let roots: Vec<PathBuf> = config.workspace_roots.iter().filter_map(|root| user_root(root, owner)).collect();
    let outside = || AppError::bad_input("path", "`path` is not under an allowed workspace root");
    // First without touching the file system, so that nothing is learnt
    // about paths outside the roots (whether they exist, what they are).
    if !config.workspace_roots.is_empty() && !roots.iter().any(|root| lexically_normal(path).starts_with(root)) {
        return Err(outside());
    }
    // Canonical: no `..`, no symlinks, so the root check below is real.
    let canonical = path.canonicalize().map_err(|_| AppError::bad_input("path", format!("`{raw}` does not exist")))?;
    if !canonical.is_dir() {
        return Err(AppError::bad_input("path", format!("`{raw}` is not a directory")));
    }
    // Then for real: a symlink may lead out of the root.
    if !config.workspace_roots.is_empty()
        && !roots.iter().filter_map(|root| root.canonicalize().ok()).any(|root| canonical.starts_with(root))
    {
        return Err(outside());
    }
    canonical.into_os_string().into_string().map_err(|_| AppError::bad_input("path", "`path` must be valid UTF-8"))
}

/// `path` with `.` and `..` resolved by name alone (no symlinks followed).
fn lexically_normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

/// A root with `{sub}` replaced by the user; None when the user's name
/// cannot be a single path component.
fn user_root(root: &Path, owner: &str) -> Option<PathBuf> {
    let text = root.to_str()?;
    if !text.contains("{sub}") {
        return Some(root.to_owned());
    }
    let safe = !owner.is_empty() && owner != "." && owner != ".." && !owner.contains(['/', '\\', '\0']);
    safe.then(|| PathBuf::from(text.replace("{sub}", owner)))
}

/// Checks every field of a start request.
fn start_request(config: &Config, input: StartExecutionInput) -> AppResult<StartRequest> {
    let workspace_id = parse_id(&input.workspace_id, "workspaceId")?;
    let session_id = input.session_id.as_ref().map(|id| parse_id(id, "sessionId")).transpose()?;
    if input.prompt.trim().is_empty() {
        return Err(AppError::bad_input("prompt", "`prompt` must not be empty"));
    }
    if input.prompt.len() > MAX_PROMPT {
        return Err(AppError::bad_input("prompt", format!("`prompt` is longer than {MAX_PROMPT} bytes")));
    }
    for (field, value) in [("systemPrompt", &input.system_prompt), ("appendSystemPrompt", &input.append_system_prompt)]
    {
        if value.as_ref().is_some_and(|v| v.len() > MAX_SYSTEM_PROMPT) {
            return Err(AppError::bad_input(field, format!("`{field}` is longer than {MAX_SYSTEM_PROMPT} bytes")));
        }
    }
    if input.max_turns.is_some_and(|n| n < 1) {
        return Err(AppError::bad_input("maxTurns", "`maxTurns` must be at least 1"));
    }
    if let Some(tools) = &input.allowed_tools {
        if let Some(bad) = tools.iter().find(|t| !is_tool_name(t)) {
            return Err(AppError::bad_input("allowedTools", format!("`{bad}` is not a tool name")));
        }
        let grantable = |tool: &String| {
            let name = tool.split('(').next().unwrap_or_default();
            config.grantable_tools.is_empty() || config.grantable_tools.iter().any(|g| g == name)
        };
        if let Some(bad) = tools.iter().find(|t| !grantable(t)) {
            return Err(AppError::bad_input("allowedTools", format!("`{bad}` may not be pre-approved on this server")));
        }
    }
    if input.max_budget_usd.is_some_and(|usd| !(usd > 0.0 && usd.is_finite())) {
        return Err(AppError::bad_input("maxBudgetUsd", "`maxBudgetUsd` must be a positive amount"));
    }
    if let Some(model) = &input.model {
        let ok = !model.is_empty()
            && model.len() <= 100
            && model.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:[]@/".contains(c));
        if !ok {
            return Err(AppError::bad_input("model", format!("`{model}` is not a model name")));
        }
    }
    if let Some(mode) = &input.permission_mode {
        let allowed = PERMISSION_MODES.contains(&mode.as_str())
            || (mode == "bypassPermissions" && config.allow_bypass_permissions);
        if !allowed {
            return Err(AppError::bad_input("permissionMode", format!("`{mode}` is not an allowed permission mode")));
        }
    }
    if let Some(metadata) = &input.metadata {
        if metadata.0.to_string().len() > MAX_METADATA {
            return Err(AppError::bad_input("metadata", format!("`metadata` is larger than {MAX_METADATA} bytes")));
        }
    }
    Ok(StartRequest {
        workspace_id,
        session_id,
        prompt: input.prompt,
        options: RunOptions {
            system_prompt: input.system_prompt,
            append_system_prompt: input.append_system_prompt,
            max_turns: input.max_turns,
            allowed_tools: input.allowed_tools,
            model: input.model,
            permission_mode: input.permission_mode,
            max_budget_usd: input.max_budget_usd,
            require_approval: input.require_approval,
            include_partial_messages: input.include_partial_messages.unwrap_or(false),
        },
        metadata: input.metadata.map(|m| m.0),
    })
}

/// A tool name, or a tool with a rule such as `Bash(git log:*)`; never a
/// comma, which would split it on the command line.
fn is_tool_name(tool: &str) -> bool {
    let name = tool.split('(').next().unwrap_or_default();
    !name.is_empty()
        && tool.len() <= 200
        && !tool.contains(',')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && (!tool.contains('(') || tool.ends_with(')'))
}
