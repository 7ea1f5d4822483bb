//! Consecutive lines `claude` wrote (stdout JSON, or captured stderr lines)
//! in one execution, committed together and stored before anyone sees
//! them. The server's store splits a block into its lines.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message_block")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub execution_id: Uuid,
    pub session_id: Uuid,
    /// The `seq` of the first and the last line: 1, 2, 3, ... within the
    /// execution, in the order `claude` wrote them.
    pub first_seq: i64,
    pub last_seq: i64,
    /// The same lines numbered across the whole session (executions of a
    /// session never overlap); `sessionLogs` pages on it.
    pub first_session_seq: i64,
    pub last_session_seq: i64,
    /// A JSON array with each line's `[type, subtype, uuid, length]`, the
    /// length in bytes of its text in `payload`.
    #[sea_orm(column_type = "Text")]
    pub headers: String,
    /// The lines exactly as `claude` wrote them (JSON texts), joined by
    /// newlines.
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
