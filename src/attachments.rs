//! Files in prompts: images and documents that users upload (or send
//! inline), stored by the server, and the content blocks of a prompt that
//! refer to them.
//!
//! A prompt is stored as plain text, or as blocks that name attachments by
//! id; the bytes go to `claude` (base64, as stream-json content blocks)
//! only when the message is written to it, so a queued run or a message
//! forwarded to another replica carries ids, not files.

use std::{collections::HashMap, time::Duration};

use base64::{engine::general_purpose::STANDARD, Engine};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    claude::UserContent,
    db::{self, attachments::Info},
    error::{AppError, AppResult},
};

/// Content blocks in one message, at most.
pub const MAX_BLOCKS: usize = 20;

/// Image types the model reads.
const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// What the server accepts, from its configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest file.
    pub max_bytes: usize,
    /// All of one user's attachments together.
    pub quota_bytes: u64,
    /// How long an attachment is kept (longer while a run that has not
    /// started yet uses it).
    pub ttl: Duration,
}

/// One content block of a stored prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", rename_all_fields = "camelCase")]
pub enum Block {
    Text { text: String },
    Image { attachment_id: Uuid },
    Document { attachment_id: Uuid },
}

impl Block {
    pub fn attachment_id(&self) -> Option<Uuid> {
        match self {
            Block::Text { .. } => None,
            Block::Image { attachment_id } | Block::Document { attachment_id } => Some(*attachment_id),
        }
    }
}

/// A message as stored and forwarded: text, or content blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Blocks(Vec<Block>),
}

impl Prompt {
    /// The message's text (its text blocks, a blank line between them).
    pub fn text(&self) -> String {
        match self {
            Prompt::Text(text) => text.clone(),
            Prompt::Blocks(blocks) => blocks
                .iter()
                .filter_map(|b| match b {
                    Block::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n\n"),
        }
    }

    /// The attachments it names, each once.
    pub fn attachment_ids(&self) -> Vec<Uuid> {
        let Prompt::Blocks(blocks) = self else { return Vec::new() };
        let mut ids: Vec<Uuid> = blocks.iter().filter_map(Block::attachment_id).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The blocks as stored with an execution (None for plain text).
    pub fn stored_blocks(&self) -> Option<Value> {
        match self {
            Prompt::Text(_) => None,
            Prompt::Blocks(blocks) => serde_json::to_value(blocks).ok(),
        }
    }

    /// An execution's prompt, from its two columns.
    pub fn of_execution(prompt: &str, content: Option<&Value>) -> AppResult<Prompt> {
        match content {
            None => Ok(Prompt::Text(prompt.to_owned())),
            Some(blocks) => serde_json::from_value(blocks.clone())
                .map(Prompt::Blocks)
                .map_err(|e| AppError::Internal(format!("the stored content blocks: {e}"))),
        }
    }
}

/// What the bytes are, by their first bytes (what a client says a file is
/// is not trusted); None for anything the model cannot read.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    const SIGNATURES: [(&[u8], &str); 5] = [
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
    ];
    if let Some((_, media)) = SIGNATURES.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return Some(media);
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    // Plain text: UTF-8, without NUL (which PostgreSQL text cannot hold).
    let text = std::str::from_utf8(bytes).ok()?;
    (!text.is_empty() && !text.contains('\0')).then_some("text/plain")
}

/// Whether a file of this type can be an image block (else a document).
pub fn is_image(media_type: &str) -> bool {
    IMAGE_TYPES.contains(&media_type)
}

/// What a file must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Any,
    Image,
    Document,
}

/// Checks and stores a file for `owner`; `field` names the input for errors.
pub async fn store(
    db: &DatabaseConnection,
    limits: &Limits,
    owner: &str,
    field: &str,
    want: Want,
    name: Option<String>,
    bytes: Vec<u8>,
) -> AppResult<Info> {
    if bytes.is_empty() {
        return Err(AppError::bad_input(field, "the file is empty"));
    }
    if bytes.len() > limits.max_bytes {
        return Err(AppError::bad_input(field, format!("the file is larger than {} bytes", limits.max_bytes)));
    }
    let media_type = sniff(&bytes).ok_or_else(|| {
        AppError::bad_input(field, "only PNG, JPEG, GIF and WebP images, PDF and UTF-8 text files are accepted")
    })?;
    match want {
        Want::Image if !is_image(media_type) => {
            let why = format!("the file is {media_type}, not an image (PNG, JPEG, GIF, WebP)");
            return Err(AppError::bad_input(field, why));
        }
        Want::Document if is_image(media_type) => {
            return Err(AppError::bad_input(field, format!("the file is {media_type}: send it as `image`")));
        }
        _ => {}
    }
    let name = name.unwrap_or_else(|| "file".into());
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(AppError::bad_input(field, "a file name is 1 to 255 characters, without control characters"));
    }
    let ttl = chrono::TimeDelta::from_std(limits.ttl).unwrap_or(chrono::TimeDelta::MAX);
    let new = db::attachments::NewAttachment {
        name,
        media_type: media_type.to_owned(),
        sha256: format!("{:x}", Sha256::digest(&bytes)),
        data: bytes,
        expires_at: chrono::Utc::now().checked_add_signed(ttl).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
    };
    let quota = i64::try_from(limits.quota_bytes).unwrap_or(i64::MAX);
    match db::attachments::store(db, owner, new, quota).await? {
        Ok(info) => Ok(info),
        Err(db::attachments::Refused::OverQuota { used }) => Err(AppError::bad_input(
            field,
            format!(
                "your attachments would take more than {quota} bytes ({used} used); delete some (deleteAttachment) \
                 or wait for them to expire"
            ),
        )),
    }
}

/// Checks that the owner has the attachments blocks name, of a kind that
/// fits each block.
pub async fn check(db: &DatabaseConnection, owner: &str, prompt: &Prompt) -> AppResult<()> {
    let Prompt::Blocks(blocks) = prompt else { return Ok(()) };
    let ids = prompt.attachment_ids();
    let found: HashMap<Uuid, Info> =
        db::attachments::infos(db, Some(owner), &ids).await?.into_iter().map(|i| (i.id, i)).collect();
    for (i, block) in blocks.iter().enumerate() {
        let field = format!("content.{i}");
        let Some(id) = block.attachment_id() else { continue };
        let info = found.get(&id).ok_or(AppError::NotFound("attachment"))?;
        match block {
            Block::Image { .. } if !is_image(&info.media_type) => {
                return Err(AppError::bad_input(
                    &field,
                    format!("attachment {id} is {}, not an image", info.media_type),
                ))
            }
            Block::Document { .. } if is_image(&info.media_type) => {
                return Err(AppError::bad_input(&field, format!("attachment {id} is an image; send it as `image`")))
            }
            _ => {}
        }
    }
    Ok(())
}

/// What `claude` is sent for a prompt: its attachments read (those of
/// `owner`, when given) and written out as content blocks.
pub async fn resolve(db: &DatabaseConnection, owner: Option<&str>, prompt: &Prompt) -> AppResult<UserContent> {
    let blocks = match prompt {
        Prompt::Text(text) => return Ok(UserContent::Text(text.clone())),
        Prompt::Blocks(blocks) => blocks,
    };
    let files: HashMap<Uuid, entity::attachment::Model> =
        db::attachments::load(db, owner, &prompt.attachment_ids()).await?.into_iter().map(|a| (a.id, a)).collect();
    let gone = |id: Uuid| AppError::bad_input("content", format!("attachment {id} was deleted"));
    let mut out = Vec::with_capacity(blocks.len());
    for block in blocks {
        out.push(match block {
            Block::Text { text } => json!({"type": "text", "text": text}),
            Block::Image { attachment_id } => {
                let file = files.get(attachment_id).ok_or_else(|| gone(*attachment_id))?;
                json!({"type": "image", "source": base64_source(file)})
            }
            Block::Document { attachment_id } => {
                let file = files.get(attachment_id).ok_or_else(|| gone(*attachment_id))?;
                let source = if file.media_type == "text/plain" {
                    json!({"type": "text", "media_type": "text/plain", "data": String::from_utf8_lossy(&file.data)})
                } else {
                    base64_source(file)
                };
                json!({"type": "document", "source": source, "title": file.name})
            }
        });
    }
    Ok(UserContent::Blocks(out))
}

fn base64_source(file: &entity::attachment::Model) -> Value {
    json!({"type": "base64", "media_type": file.media_type, "data": STANDARD.encode(&file.data)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_known_by_their_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0"), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a.."), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"%PDF-1.7"), Some("application/pdf"));
        assert_eq!(sniff("notes, with ü".as_bytes()), Some("text/plain"));
        assert_eq!(sniff(b"MZ\x90\0\x03\0\0\0\x04\0"), None, "a program is neither");
        assert_eq!(sniff(b"\xc3\x28 not utf-8"), None);
        assert_eq!(sniff(b"a\0b"), None);
    }

    #[test]
    fn stored_blocks_round_trip_and_plain_text_stays_a_string() {
        let id = Uuid::nil();
        let prompt = Prompt::Blocks(vec![Block::Text { text: "look".into() }, Block::Image { attachment_id: id }]);
        let stored = prompt.stored_blocks().unwrap();
        assert_eq!(stored[1], json!({"type": "image", "attachmentId": id}));
        assert_eq!(Prompt::of_execution("look", Some(&stored)).unwrap(), prompt);
        assert_eq!(serde_json::from_value::<Prompt>(json!("hi")).unwrap(), Prompt::Text("hi".into()));
        assert_eq!(prompt.text(), "look");
    }
}
