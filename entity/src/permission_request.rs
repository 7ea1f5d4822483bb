//! A tool-permission prompt of a run (`can_use_tool`), and its answer.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "permission_request")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub execution_id: Uuid,
    /// The CLI's own id for the request (answers must carry it).
    pub request_id: String,
    pub tool_name: String,
    pub tool_use_id: Option<String>,
    pub input: Json,
    pub description: Option<String>,
    pub blocked_path: Option<String>,
    pub suggestions: Option<Json>,
    /// `PENDING`, `ALLOWED`, `DENIED`, `EXPIRED` or `CANCELLED`.
    pub status: String,
    /// What was sent back to the CLI.
    pub decision: Option<Json>,
    pub answered_by: Option<String>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub answered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::execution::Entity",
        from = "Column::ExecutionId",
        to = "super::execution::Column::Id",
        on_delete = "Cascade"
    )]
    Execution,
}

impl Related<super::execution::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Execution.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
