//! One run of the `claude` program for one prompt.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "execution")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub session_id: Uuid,
    pub workspace_id: Uuid,
    pub status: ExecutionStatus,
    pub prompt: String,
    /// The prompt's content blocks (text, and images or documents by
    /// attachment id) when it was given as blocks; None for plain text.
    pub content: Option<Json>,
    /// The start options (system prompt, model, max turns, ...) as given.
    pub options: Json,
    pub metadata: Option<Json>,
    /// Claude's own session id, as its `init` line reported it.
    pub claude_session_id: Option<String>,
    /// The `--resume` id this run was started with.
    pub resumed_from: Option<String>,
    pub message_count: i64,
    pub num_turns: Option<i32>,
    pub cost_usd: Option<f64>,
    pub usage: Option<Json>,
    /// The final `result` line, verbatim.
    pub result: Option<Json>,
    pub exit_code: Option<i32>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The server process that runs (or ran) it; see startup recovery.
    pub replica_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// Since when `claude` has written nothing (while it runs), if it has
    /// been quiet for longer than the server's stall threshold.
    pub stalled_since: Option<DateTimeUtc>,
    /// The model the run used, as its `init` line reported it.
    pub model: Option<String>,
    /// Its owner's change counter at its latest change (see `db::clock`).
    pub change_seq: Option<i64>,
    /// While SCHEDULED: when it resumes.
    pub resume_at: Option<DateTimeUtc>,
    /// How often it was parked for a usage or rate limit.
    pub park_count: i32,
    /// The MCP servers' status, as its first `init` line reported it.
    pub mcp_servers: Option<Json>,
    /// What it changed in its workspace (`changes::Changes`).
    pub changes: Option<Json>,
}

/// Where a run is; stored as its name (`PENDING`, ...).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum ExecutionStatus {
    /// Waiting for a free slot.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "RUNNING")]
    Running,
    #[sea_orm(string_value = "COMPLETED")]
    Completed,
    /// (A run's end that says nothing else failed.)
    #[default]
    #[sea_orm(string_value = "FAILED")]
    Failed,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
    /// Parked until a usage or rate limit resets; resumes by itself.
    #[sea_orm(string_value = "SCHEDULED")]
    Scheduled,
}

impl ExecutionStatus {
    /// Pending or running: a server has it (or it waits in a queue).
    pub const ACTIVE: [ExecutionStatus; 2] = [ExecutionStatus::Pending, ExecutionStatus::Running];

    /// Not ended yet: active, or parked until a limit resets.
    pub const UNFINISHED: [ExecutionStatus; 3] =
        [ExecutionStatus::Pending, ExecutionStatus::Running, ExecutionStatus::Scheduled];

    /// Whether it is final.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// Its name, as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
            Self::Scheduled => "SCHEDULED",
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::session::Entity",
        from = "Column::SessionId",
        to = "super::session::Column::Id",
        on_delete = "Cascade"
    )]
    Session,
    #[sea_orm(has_many = "super::message_block::Entity")]
    MessageBlock,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl Related<super::message_block::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::MessageBlock.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
