//! Relay connections over UUIDv7 ids: newest first, the cursor is the id.

use async_graphql::{
    connection::{Connection, Edge, EmptyFields},
    OutputType,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use uuid::Uuid;

use crate::error::AppError;

/// Page size when `first` is not given.
pub const DEFAULT_PAGE: i32 = 20;
/// The largest `first` accepted.
pub const MAX_PAGE: i32 = 100;

/// What a page of `first` items costs in query complexity: each item
/// costs what is asked of it, so nested pages multiply.
pub fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    let items = first.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize;
    items.saturating_mul(child_complexity).saturating_add(1)
}

/// A validated `first` / `after` pair.
#[derive(Debug, Clone, Copy)]
pub struct PageArgs {
    pub limit: u64,
    pub before: Option<Uuid>,
}

impl PageArgs {
    /// The batch-load form of this page.
    pub fn page(self, status: Option<&'static str>) -> crate::db::batch::Page {
        crate::db::batch::Page { limit: self.limit, before: self.before, status }
    }

    pub fn parse(first: Option<i32>, after: Option<&str>) -> Result<Self, AppError> {
        let first = first.unwrap_or(DEFAULT_PAGE);
        if !(0..=MAX_PAGE).contains(&first) {
            return Err(AppError::bad_input("first", format!("`first` must be between 0 and {MAX_PAGE}")));
        }
        let before = after.map(decode_cursor).transpose()?;
        Ok(PageArgs { limit: first as u64, before })
    }
}

pub fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

pub fn decode_cursor(cursor: &str) -> Result<Uuid, AppError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| AppError::bad_input("after", "`after` is not a cursor this server issued"))
}

/// Builds a connection from `limit + 1` rows read newest first.
pub fn page<M, N: OutputType>(
    mut rows: Vec<M>,
    args: PageArgs,
    id: impl Fn(&M) -> Uuid,
    node: impl Fn(M) -> N,
) -> Connection<String, N, EmptyFields, EmptyFields> {
    let has_next = rows.len() as u64 > args.limit;
    rows.truncate(args.limit as usize);
    let mut connection = Connection::new(args.before.is_some(), has_next);
    connection.edges.extend(rows.into_iter().map(|row| Edge::new(encode_cursor(id(&row)), node(row))));
    connection
}
