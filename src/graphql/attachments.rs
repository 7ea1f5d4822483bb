//! Files in prompts: the inputs that carry them (an upload of the GraphQL
//! multipart request, base64, or an attachment uploaded before), and the
//! mutations that manage attachments (the `attachments` query is on the
//! root).

use async_graphql::{Context, InputObject, Object, OneofObject, Upload, ID};
use base64::{engine::general_purpose::STANDARD, Engine};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::management::DeletePayload;
use super::mutation::MAX_PROMPT;
use super::types::{attachment::Attachment, parse_id, state, viewer};
use crate::{
    attachments::{self, Block, Prompt, Want, MAX_BLOCKS},
    db,
    error::{AppError, AppResult, Gql},
};

/// A file: exactly one of `file`, `base64` and `attachmentId`.
#[derive(InputObject)]
pub struct FileInput {
    /// The file itself, in a GraphQL multipart request (the
    /// graphql-multipart-request-spec). The request needs an `Authorization`,
    /// `GraphQL-Require-Preflight` or `Apollo-Require-Preflight` header.
    pub file: Option<Upload>,
    /// The file's bytes, base64-encoded, in an ordinary JSON request (up
    /// to the server's request size, MAX_BODY_BYTES).
    pub base64: Option<String>,
    /// An attachment of yours, uploaded before (`uploadAttachment`).
    pub attachment_id: Option<ID>,
    /// Its name (with `file`, the upload's file name by default).
    pub name: Option<String>,
}

/// One content block of a prompt.
#[derive(OneofObject)]
pub enum ContentBlockInput {
    Text(String),
    /// PNG, JPEG, GIF or WebP.
    Image(FileInput),
    /// PDF, or UTF-8 text.
    Document(FileInput),
}

/// What a user message says, from `prompt`/`text` and `content`: text
/// alone, or blocks (the text first) whose files are stored as
/// attachments of `owner`.
pub async fn prompt_of(
    ctx: &Context<'_>,
    owner: &str,
    text: Option<String>,
    content: Option<Vec<ContentBlockInput>>,
) -> AppResult<Prompt> {
    let Some(content) = content else { return Ok(Prompt::Text(text.unwrap_or_default())) };
    if content.is_empty() || content.len() > MAX_BLOCKS {
        return Err(AppError::bad_input("content", format!("`content` has 1 to {MAX_BLOCKS} blocks")));
    }
    let mut blocks = Vec::with_capacity(content.len() + 1);
    blocks.extend(text.map(|text| Block::Text { text }));
    for (i, block) in content.into_iter().enumerate() {
        let field = format!("content.{i}");
        blocks.push(match block {
            ContentBlockInput::Text(text) => {
                if text.trim().is_empty() || text.contains('\0') || text.len() > MAX_PROMPT {
                    let why = format!("a text block has 1 to {MAX_PROMPT} bytes, and no NUL");
                    return Err(AppError::bad_input(&field, why));
                }
                Block::Text { text }
            }
            ContentBlockInput::Image(file) => {
                Block::Image { attachment_id: attachment_of(ctx, owner, &field, file, Want::Image).await? }
            }
            ContentBlockInput::Document(file) => {
                Block::Document { attachment_id: attachment_of(ctx, owner, &field, file, Want::Document).await? }
            }
        });
    }
    Ok(Prompt::Blocks(blocks))
}

/// The attachment a block's file is: the one named (checked when the
/// message is sent), or the file stored now.
async fn attachment_of(
    ctx: &Context<'_>,
    owner: &str,
    field: &str,
    file: FileInput,
    want: Want,
) -> AppResult<uuid::Uuid> {
    match file.attachment_id {
        Some(id) if file.file.is_none() && file.base64.is_none() => parse_id(&id, &format!("{field}.attachmentId")),
        _ => Ok(store(ctx, owner, field, want, file).await?.id),
    }
}

/// Stores the file of a `FileInput` given as an upload or as base64.
async fn store(
    ctx: &Context<'_>,
    owner: &str,
    field: &str,
    want: Want,
    file: FileInput,
) -> AppResult<db::attachments::Info> {
    let state = state(ctx).map_err(|e| AppError::Internal(e.message))?;
    let limits = state.config.attachment_limits();
    let (bytes, uploaded_name) = match (file.file, file.base64, file.attachment_id) {
        (Some(upload), None, None) => {
            let value = upload.value(ctx).map_err(|e| AppError::bad_input(field, e.to_string()))?;
            let mut bytes = Vec::new();
            // One byte more than allowed tells a file that is too large.
            // One file named by several blocks: its handles share an offset.
            let mut file = tokio::fs::File::from_std(value.content);
            file.seek(std::io::SeekFrom::Start(0)).await.map_err(|e| AppError::Internal(format!("an upload: {e}")))?;
            let mut content = file.take(limits.max_bytes as u64 + 1);
            content.read_to_end(&mut bytes).await.map_err(|e| AppError::Internal(format!("an upload: {e}")))?;
            (bytes, Some(value.filename))
        }
        (None, Some(base64), None) => {
            if base64.len() > limits.max_bytes.div_ceil(3) * 4 + 4 {
                return Err(AppError::bad_input(field, format!("the file is larger than {} bytes", limits.max_bytes)));
            }
            let bytes = STANDARD
                .decode(base64.trim())
                .map_err(|_| AppError::bad_input(&format!("{field}.base64"), "not valid base64"))?;
            (bytes, None)
        }
        _ => return Err(AppError::bad_input(field, "give exactly one of `file`, `base64` and `attachmentId`")),
    };
    let name = file.name.or(uploaded_name.filter(|n| !n.is_empty()));
    attachments::store(&state.db, &limits, owner, field, want, name, bytes).await
}

#[derive(Default)]
pub struct AttachmentMutation;

#[Object]
impl AttachmentMutation {
    /// Stores a file for later prompts (name it with `attachmentId` in an
    /// IMAGE or DOCUMENT content block). Kept for ATTACHMENT_TTL (default
    /// 24 h); the same bytes uploaded again are the same attachment. At
    /// most ATTACHMENT_MAX_BYTES each (default 10 MiB), and
    /// ATTACHMENT_QUOTA_BYTES for all of yours (default 100 MiB).
    async fn upload_attachment(&self, ctx: &Context<'_>, input: FileInput) -> async_graphql::Result<Attachment> {
        let owner = &viewer(ctx)?.sub;
        if input.attachment_id.is_some() {
            return Err(AppError::bad_input("attachmentId", "upload a `file` or `base64`")).gql();
        }
        Ok(Attachment(store(ctx, owner, "input", Want::Any, input).await.gql()?))
    }

    /// Deletes an attachment of yours. An execution that has not started
    /// yet and uses it fails (SPAWN_FAILED) when its turn comes.
    async fn delete_attachment(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<DeletePayload> {
        let uuid = parse_id(&id, "id").gql()?;
        if !db::attachments::delete(&state(ctx)?.db, &viewer(ctx)?.sub, uuid).await.gql()? {
            return Err(AppError::NotFound("attachment")).gql();
        }
        Ok(DeletePayload { deleted_id: id })
    }
}
