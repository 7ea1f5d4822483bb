//! A prompt that a cron pattern starts in a workspace.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "schedule")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner: String,
    pub workspace_id: Uuid,
    pub name: String,
    /// Five fields (minute to weekday), or six with seconds first.
    pub cron: String,
    /// The IANA zone the pattern is read in.
    pub timezone: String,
    #[sea_orm(column_type = "Text")]
    pub prompt: String,
    /// The start options, as `startExecution` stores them.
    pub options: Json,
    /// Every occurrence continues one session (else each starts a new one).
    pub same_session: bool,
    /// That session, once the first occurrence made it.
    pub session_id: Option<Uuid>,
    pub enabled: bool,
    /// The next occurrence; None while disabled.
    pub next_run_at: Option<DateTimeUtc>,
    pub last_run_at: Option<DateTimeUtc>,
    pub last_execution_id: Option<Uuid>,
    /// Why the last occurrence started nothing.
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
