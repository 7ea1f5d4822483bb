//! An endpoint that is told about a user's runs (all of them, or one
//! workspace's).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner: String,
    /// Only this workspace's runs; all of the owner's when None.
    pub workspace_id: Option<Uuid>,
    pub url: String,
    /// `whsec_` and the base64 of the signing key (Standard Webhooks).
    pub secret: String,
    /// The event types it wants, e.g. `["execution.completed"]`.
    pub events: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::webhook_delivery::Entity")]
    Delivery,
}

impl Related<super::webhook_delivery::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Delivery.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
