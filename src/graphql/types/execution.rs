//! `Execution`.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::execution;

use super::attachment::{Attachment, PromptBlock, PromptBlockType};
use super::{state, viewer, Json, PermissionRequest, Session, Workspace};
use crate::graphql::loaders::{load_error, loaders};
use crate::{
    attachments::{Block, Prompt},
    db,
    error::{AppError, Gql},
};

/// Where a run is: PENDING, RUNNING, then one of COMPLETED, FAILED or
/// CANCELLED.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ExecutionStatus {
    /// Waiting for a free slot (MAX_CONCURRENT_EXECUTIONS), or in its
    /// session's queue (see `queuePosition`).
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
    /// Parked: it hit a usage or rate limit, and resumes by itself at
    /// `resumeAt` (the session stays its own meanwhile).
    Scheduled,
}

impl From<db::executions::Status> for ExecutionStatus {
    fn from(status: db::executions::Status) -> Self {
        use db::executions::Status;
        match status {
            Status::Pending => Self::Pending,
            Status::Running => Self::Running,
            Status::Completed => Self::Completed,
            Status::Failed => Self::Failed,
            Status::Cancelled => Self::Cancelled,
            Status::Scheduled => Self::Scheduled,
        }
    }
}

impl From<ExecutionStatus> for db::executions::Status {
    fn from(status: ExecutionStatus) -> Self {
        match status {
            ExecutionStatus::Pending => Self::Pending,
            ExecutionStatus::Running => Self::Running,
            ExecutionStatus::Completed => Self::Completed,
            ExecutionStatus::Failed => Self::Failed,
            ExecutionStatus::Cancelled => Self::Cancelled,
            ExecutionStatus::Scheduled => Self::Scheduled,
        }
    }
}

/// Why a run failed: CLAUDE_EXITED, CLAUDE_ERROR, MAX_TURNS,
/// BUDGET_EXCEEDED, RATE_LIMITED, TIMEOUT, CANCELLED, SPAWN_FAILED,
/// INTERRUPTED or LINE_TOO_LONG.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "ExecutionError")]
pub struct RunErrorInfo {
    pub code: String,
    pub message: String,
}

impl From<crate::events::RunError> for RunErrorInfo {
    fn from(e: crate::events::RunError) -> Self {
        RunErrorInfo { code: e.code, message: e.message }
    }
}

pub struct Execution(pub execution::Model);

impl Execution {
    fn max_turns(&self) -> Option<i32> {
        self.0.options.get("maxTurns").and_then(|v| v.as_i64()).map(|v| v as i32)
    }
}

/// One run of `claude` for one prompt (and the follow-up messages it
/// took up).
#[Object]
impl Execution {
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn status(&self) -> ExecutionStatus {
        self.0.status.into()
    }

    /// While it waits in its session's queue (PENDING behind another run
    /// of the session): how many wait before it, plus one (1 = next). Null
    /// otherwise.
    async fn queue_position(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i32>> {
        if !db::queue::is_queued(&self.0) {
            return Ok(None);
        }
        let position = db::queue::position(&state(ctx)?.db, &self.0).await.gql()?;
        Ok(position.map(|p| p.min(i32::MAX as u64) as i32))
    }

    /// See `ProgressEvent.progress`.
    async fn progress(&self) -> f64 {
        crate::events::progress(self.0.status, self.0.num_turns.unwrap_or(0), self.max_turns())
    }

    /// Messages stored so far (the highest `seq`).
    async fn message_count(&self) -> i64 {
        self.0.message_count
    }

    async fn num_turns(&self) -> Option<i32> {
        self.0.num_turns
    }

    /// From the final `result` line.
    async fn cost_usd(&self) -> Option<f64> {
        self.0.cost_usd
    }

    /// Token usage from the final `result` line.
    async fn usage(&self) -> Option<Json> {
        self.0.usage.clone().map(Json)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }

    /// While SCHEDULED: when it resumes (when the usage or rate limit it
    /// hit resets, as the CLI said, or after RATE_LIMIT_WAIT).
    async fn resume_at(&self) -> Option<DateTime<Utc>> {
        self.0.resume_at.filter(|_| self.0.status == db::executions::Status::Scheduled)
    }

    /// How often it was parked for a usage or rate limit.
    async fn park_count(&self) -> i32 {
        self.0.park_count
    }

    /// Since when the run has written nothing, if it has been quiet for
    /// longer than the server's stall threshold (`--stall-after`); null
    /// while it writes, and once it has ended.
    async fn stalled_since(&self) -> Option<DateTime<Utc>> {
        self.0.stalled_since.filter(|_| !self.0.status.is_terminal())
    }

    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }

    /// Informative only: the outcome comes from the `result` line.
    async fn exit_code(&self) -> Option<i32> {
        self.0.exit_code
    }

    async fn error(&self) -> Option<RunErrorInfo> {
        self.0
            .error_code
            .clone()
            .map(|code| RunErrorInfo { code, message: self.0.error_message.clone().unwrap_or_default() })
    }

    /// Claude's final answer (the `result` text of a successful run).
    async fn result(&self) -> Option<String> {
        self.0.result.as_ref().and_then(|r| r.get("result")).and_then(|t| t.as_str()).map(str::to_owned)
    }

    /// The final `result` line, as Claude wrote it.
    async fn result_message(&self) -> Option<Json> {
        self.0.result.clone().map(Json)
    }

    /// What it changed in its workspace, once it has ended: from git
    /// snapshots before and after it in a repository, else from its Write
    /// and Edit calls. Null when nothing was changed or TRACK_CHANGES is off.
    async fn changes(&self) -> Option<super::changes::Changes> {
        super::changes::stored(self.0.changes.as_ref()).map(Into::into)
    }

    /// The answer that matched the start's `outputSchema` (the result's
    /// `structured_output`); null without a schema, or before the end.
    async fn structured_output(&self) -> Option<Json> {
        let output = self.0.result.as_ref()?.get("structured_output")?;
        (!output.is_null()).then(|| Json(output.clone()))
    }

    /// The MCP servers it had and their status (`connected`, `failed`,
    /// ...), as Claude reported them when it started; empty without any.
    async fn mcp_servers(&self) -> Vec<super::message::McpServerStatus> {
        let servers = self.0.mcp_servers.as_ref().and_then(|v| v.as_array());
        let status = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let servers = servers.into_iter().flatten();
        servers
            .map(|v| super::message::McpServerStatus { name: status(v, "name"), status: status(v, "status") })
            .collect()
    }

    /// The prompt's text (of its text blocks, when it was sent as
    /// `content`).
    async fn prompt(&self) -> &str {
        &self.0.prompt
    }

    /// The prompt's content blocks, when it was sent as `content` (the
    /// `prompt` first, as a text block); null for a plain prompt.
    async fn content(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Vec<PromptBlock>>> {
        let Some(stored) = &self.0.content else { return Ok(None) };
        let prompt = Prompt::of_execution(&self.0.prompt, Some(stored)).gql()?;
        let ids = prompt.attachment_ids();
        let Prompt::Blocks(blocks) = prompt else { return Ok(None) };
        let files = db::attachments::infos(&state(ctx)?.db, Some(&viewer(ctx)?.sub), &ids).await.gql()?;
        let file = |id: &uuid::Uuid| files.iter().find(|f| f.id == *id).cloned().map(Attachment);
        let blocks = blocks.iter().map(|block| match block {
            Block::Text { text } => {
                PromptBlock { kind: PromptBlockType::Text, text: Some(text.clone()), attachment: None }
            }
            Block::Image { attachment_id } => {
                PromptBlock { kind: PromptBlockType::Image, text: None, attachment: file(attachment_id) }
            }
            Block::Document { attachment_id } => {
                PromptBlock { kind: PromptBlockType::Document, text: None, attachment: file(attachment_id) }
            }
        });
        Ok(Some(blocks.collect()))
    }

    /// The options it was started with.
    async fn options(&self) -> Json {
        Json(crate::claude::mcp::redacted_options(&self.0.options))
    }

    /// The client's own metadata, as given to startExecution.
    async fn metadata(&self) -> Option<Json> {
        self.0.metadata.clone().map(Json)
    }

    /// The model the run uses: as its `init` line reports it (an alias such
    /// as `sonnet` resolved), or as requested until that line came.
    async fn model(&self) -> Option<String> {
        let requested = self.0.options.get("model").and_then(|m| m.as_str());
        self.0.model.clone().or_else(|| requested.map(str::to_owned))
    }

    /// Claude's session id for this run.
    async fn claude_session_id(&self) -> Option<&str> {
        self.0.claude_session_id.as_deref()
    }

    /// Every tool-permission request of the run and how it was settled
    /// (the audit trail), oldest first.
    #[graphql(complexity = "10 * child_complexity")]
    async fn permission_requests(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<PermissionRequest>> {
        let rows = db::permissions::of_execution(&state(ctx)?.db, self.0.id, false).await.gql()?;
        Ok(rows.into_iter().map(PermissionRequest).collect())
    }

    async fn session(&self, ctx: &Context<'_>) -> async_graphql::Result<Session> {
        let found = loaders(ctx)?.sessions.load_one(self.0.session_id).await.map_err(load_error).gql()?;
        found.map(Session).ok_or(AppError::NotFound("session")).gql()
    }

    async fn workspace(&self, ctx: &Context<'_>) -> async_graphql::Result<Workspace> {
        let found = loaders(ctx)?.workspaces.load_one(self.0.workspace_id).await.map_err(load_error).gql()?;
        found.map(Workspace).ok_or(AppError::NotFound("workspace")).gql()
    }
}

/// Which executions a listing or a total covers (all of yours by default).
#[derive(InputObject, Default)]
pub struct ExecutionFilter {
    /// Only these statuses.
    pub status: Option<Vec<ExecutionStatus>>,
    pub workspace_id: Option<ID>,
    pub session_id: Option<ID>,
    /// Created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Created before this time.
    pub until: Option<DateTime<Utc>>,
}

impl ExecutionFilter {
    pub fn to_db(&self) -> Result<db::executions::Filter, AppError> {
        let statuses = self.status.iter().flatten().map(|s| (*s).into()).collect();
        let workspace_id = self.workspace_id.as_ref().map(|id| super::parse_id(id, "workspaceId")).transpose()?;
        let session_id = self.session_id.as_ref().map(|id| super::parse_id(id, "sessionId")).transpose()?;
        Ok(db::executions::Filter { statuses, workspace_id, session_id, since: self.since, until: self.until })
    }
}

/// What a set of executions added up to.
#[derive(SimpleObject)]
pub struct Usage {
    pub execution_count: i64,
    /// The sum of their `costUsd` (runs still going count once they end).
    pub total_cost_usd: f64,
    pub num_turns: i64,
    pub message_count: i64,
}

impl From<db::executions::Totals> for Usage {
    fn from(t: db::executions::Totals) -> Self {
        Usage {
            execution_count: t.executions,
            total_cost_usd: t.cost_usd,
            num_turns: t.turns,
            message_count: t.messages,
        }
    }
}
