//! Named start options (model, prompts, tools, limits) a start can name.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_profile")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner: String,
    /// Only in this workspace (where it shadows the user's profile of the
    /// same name); all of the owner's when None.
    pub workspace_id: Option<Uuid>,
    pub name: String,
    /// The start options, as `startExecution` stores them.
    pub options: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
