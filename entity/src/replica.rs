//! A server sharing the database, and the lease that says it is alive: it
//! renews `expires_at` while it runs; once that has passed, another server
//! finishes the runs it left.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "replica")]
pub struct Model {
    /// The `--replica-id` (executions name it in `replica_id`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub started_at: DateTimeUtc,
    pub renewed_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
