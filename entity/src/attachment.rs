//! A file (an image or a document) a user uploaded for prompts.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "attachment")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner: String,
    /// The file name the client gave (for the model, as a document's title).
    pub name: String,
    /// What the bytes are, as the server found it (not as the client said).
    pub media_type: String,
    pub size: i64,
    /// Of `data`, in hex: the same bytes uploaded again are this attachment.
    pub sha256: String,
    pub data: Vec<u8>,
    pub created_at: DateTimeUtc,
    /// Removed after this, unless an execution that has not run yet uses it.
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
