//! One line `claude` wrote (stdout JSON, or a captured stderr line), stored
//! before anyone sees it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub execution_id: Uuid,
    pub session_id: Uuid,
    /// 1, 2, 3, ... within the execution, in the order `claude` wrote them.
    pub seq: i64,
    /// 1, 2, 3, ... across the whole session (executions of a session never
    /// overlap, so this is gap-free too); `sessionLogs` pages on it.
    pub session_seq: i64,
    pub r#type: String,
    pub subtype: Option<String>,
    /// The line's own `uuid`, when it has one.
    pub uuid: Option<String>,
    /// The line exactly as `claude` wrote it (JSON text).
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    pub created_at: DateTimeUtc,
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
