//! A named directory in which Claude runs.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "workspace")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The `sub` of the user who created it ("local" in single-user mode).
    pub owner: String,
    pub name: String,
    /// Canonical absolute path of the directory.
    pub path: String,
    pub created_at: DateTimeUtc,
    /// Runs here ask before using tools unless startExecution says otherwise.
    pub require_approval: bool,
    /// What its runs may cost per day (UTC), by the CLI's estimates.
    pub daily_budget_usd: Option<f64>,
    /// The MCP servers its runs get (a list, as `RunOptions` holds them).
    pub mcp_servers: Option<Json>,
    /// New sessions here get a git worktree of their own by default.
    pub use_worktrees: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::session::Entity")]
    Session,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
