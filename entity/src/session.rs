//! A conversation with Claude: one or more executions that share a Claude
//! session id (continued with `--resume`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "session")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// `ACTIVE` or `CLOSED`.
    pub status: String,
    /// Reported by the first run's `system`/`init` line.
    pub claude_session_id: Option<String>,
    /// The execution that is PENDING or RUNNING in this session, if any; it
    /// is how "one execution at a time per session" is enforced atomically.
    pub active_execution_id: Option<Uuid>,
    pub message_count: i64,
    pub total_cost_usd: f64,
    pub created_at: DateTimeUtc,
    pub last_activity_at: DateTimeUtc,
    /// A title the user gave it (`renameSession`); without one, the
    /// session is titled by its first prompt.
    pub title: Option<String>,
    /// The session this one was forked from (its conversation so far).
    pub forked_from_id: Option<Uuid>,
    /// Its git worktree (see `worktrees`): directory, branch, base commit,
    /// and `ACTIVE`, `MERGED` or `DISCARDED`.
    pub worktree_path: Option<String>,
    pub worktree_branch: Option<String>,
    pub worktree_base: Option<String>,
    pub worktree_state: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::workspace::Entity",
        from = "Column::WorkspaceId",
        to = "super::workspace::Column::Id",
        on_delete = "Cascade"
    )]
    Workspace,
    #[sea_orm(has_many = "super::execution::Entity")]
    Execution,
}

impl Related<super::workspace::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Workspace.def()
    }
}

impl Related<super::execution::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Execution.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
