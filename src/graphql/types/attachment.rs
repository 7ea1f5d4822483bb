//! `Attachment`, and the content blocks of a prompt.

use async_graphql::{Enum, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::db::attachments::Info;

/// A file (an image or a document) you uploaded for prompts.
pub struct Attachment(pub Info);

#[Object]
impl Attachment {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The file name it was uploaded with (the model sees a document's as
    /// its title).
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// What the file is, as the server found by its bytes: image/png,
    /// image/jpeg, image/gif, image/webp, application/pdf or text/plain.
    async fn media_type(&self) -> &str {
        &self.0.media_type
    }

    /// In bytes.
    async fn size(&self) -> i64 {
        self.0.size
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the server deletes it (later, while an execution that has not
    /// started yet uses it). Uploading the same bytes again extends it.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
}

/// What a content block holds.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PromptBlockType {
    Text,
    Image,
    Document,
}

/// One content block of a prompt or message.
#[derive(SimpleObject)]
pub struct PromptBlock {
    #[graphql(name = "type")]
    pub kind: PromptBlockType,
    /// A TEXT block's text.
    pub text: Option<String>,
    /// An IMAGE or DOCUMENT block's file; null once it was deleted.
    pub attachment: Option<Attachment>,
}
