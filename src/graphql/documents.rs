//! GraphQL documents on their way in: the one place a query text becomes a
//! parsed document, for HTTP and WebSocket alike.
//!
//! - Automatic persisted queries (Apollo's APQ): a hash names a query text
//!   sent earlier. Only texts whose request validated are remembered, and
//!   the store is budgeted in bytes (texts, not parsed trees, which are
//!   many times larger).
//! - Tokens are counted before anything is parsed: a document of a million
//!   fields is refused in microseconds, before authentication, instead of
//!   costing seconds of CPU and hundreds of megabytes.
//! - A large text is parsed on the blocking pool, never on an async worker.
//! - The parse happens once; the engine, the GET-safety check and the
//!   WebSocket renderer all use the same document.

use std::sync::{Arc, Mutex};

use async_graphql::{parser::types::ExecutableDocument, Request, ServerError};
use lru::LruCache;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Texts at least this long are parsed on the blocking pool.
const PARSE_INLINE_BELOW: usize = 16 * 1024;
/// Bytes of persisted query texts kept in all.
const PERSISTED_BUDGET: usize = 8 * 1024 * 1024;
/// Longest text that is remembered as a persisted query.
const PERSISTED_MAX_TEXT: usize = 256 * 1024;

/// Reads documents for a server; cheap to clone.
#[derive(Clone)]
pub struct Documents {
    max_tokens: usize,
    persisted: Arc<Mutex<Persisted>>,
}

/// The persisted query texts by hash, least recently used first out.
struct Persisted {
    texts: LruCache<String, Arc<str>>,
    bytes: usize,
}

/// A request ready for the engine.
pub struct Prepared {
    /// The request, without its document (see `into_request`).
    pub request: Request,
    /// The document, when it parsed. A text that does not parse is left to
    /// the engine, which says why.
    pub document: Option<ExecutableDocument>,
    /// A persisted query to remember once the request has validated.
    remember: Option<Remember>,
}

/// A persisted query (hash, text) to remember once its request validated.
pub type Remember = (String, Arc<str>);

/// The four request parameters of GraphQL over HTTP (and of graphql-ws).
#[derive(Debug, Default, Clone)]
pub struct Params {
    pub query: Option<String>,
    pub operation_name: Option<String>,
    pub variables: Option<Map<String, Value>>,
    pub extensions: Option<Map<String, Value>>,
    /// Files of a multipart request, that its variables refer to by
    /// [`UPLOAD_MARKER`] and index.
    pub uploads: usize,
}

/// What async-graphql writes in a variable where a multipart request's
/// file goes. Its `Upload` takes any string of this form as an index into
/// the request's files (and panics on one that is not), so a client must
/// never be able to send one itself.
const UPLOAD_MARKER: &str = "#__graphql_file__:";

/// Whether every file marker in `value` names one of `uploads` files.
fn markers_fill_files(value: &Value, uploads: usize) -> bool {
    match value {
        Value::String(s) => match s.strip_prefix(UPLOAD_MARKER) {
            None => true,
            Some(index) => index.parse::<usize>().is_ok_and(|i| i < uploads && index == i.to_string()),
        },
        Value::Array(items) => items.iter().all(|v| markers_fill_files(v, uploads)),
        Value::Object(fields) => fields.values().all(|v| markers_fill_files(v, uploads)),
        _ => true,
    }
}

impl Documents {
    pub fn new(max_tokens: usize) -> Self {
        let persisted = Persisted { texts: LruCache::unbounded(), bytes: 0 };
        Self { max_tokens, persisted: Arc::new(Mutex::new(persisted)) }
    }

    /// Resolves a persisted query, checks the size, parses, and builds the
    /// engine's request. An error means the request never reaches the
    /// engine (it is a request error: no data).
    pub async fn prepare(&self, params: Params) -> Result<Prepared, ServerError> {
        let Params { query, operation_name, variables, mut extensions, uploads } = params;
        if let Some(variables) = &variables {
            if !variables.values().all(|v| markers_fill_files(v, uploads)) {
                return Err(bad_input(format!(
                    "a variable starts with `{UPLOAD_MARKER}` but names no file of the request"
                )));
            }
        }
        let persisted = extensions.as_mut().and_then(|e| e.remove("persistedQuery"));
        let (text, remember) = match persisted {
            None => (query.unwrap_or_default(), None),
            Some(persisted) => self.resolve_persisted(&persisted, query)?,
        };
        // A file marker written into the document itself would reach
        // `Upload` unchecked (files are only ever variables).
        if text.contains(UPLOAD_MARKER) {
            return Err(bad_input(format!(
                "the document contains `{UPLOAD_MARKER}`, which names no file of the request"
            )));
        }
        let tokens = count_tokens(&text, self.max_tokens);
        if tokens > self.max_tokens {
            return Err(bad_input(format!("the document has more than {} tokens", self.max_tokens)));
        }
        let document = parse(&text).await;
        let request = super::request(Some(text), operation_name, variables, extensions);
        Ok(Prepared { request, document, remember })
    }

    /// The text a persisted-query extension names, and what to remember.
    fn resolve_persisted(
        &self,
        persisted: &Value,
        query: Option<String>,
    ) -> Result<(String, Option<Remember>), ServerError> {
        if persisted.get("version").and_then(Value::as_i64) != Some(1) {
            return Err(bad_input("only version 1 of the persistedQuery extension is supported"));
        }
        let hash = persisted
            .get("sha256Hash")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_input("persistedQuery.sha256Hash is required"))?
            .to_ascii_lowercase();
        match query.filter(|q| !q.is_empty()) {
            None => {
                let found = self.lock().texts.get(&hash).cloned();
                let text = found.ok_or_else(|| bad_input("PersistedQueryNotFound"))?;
                Ok((text.to_string(), None))
            }
            Some(query) => {
                if format!("{:x}", Sha256::digest(query.as_bytes())) != hash {
                    return Err(bad_input("provided sha does not match query"));
                }
                let remember = (query.len() <= PERSISTED_MAX_TEXT).then(|| (hash, Arc::from(query.as_str())));
                Ok((query, remember))
            }
        }
    }

    /// Remembers the prepared request's persisted query if `validated`.
    pub fn settle(&self, prepared_remember: Option<Remember>, validated: bool) {
        let Some((hash, text)) = prepared_remember.filter(|_| validated) else { return };
        let mut persisted = self.lock();
        persisted.bytes += text.len() + hash.len();
        if let Some(old) = persisted.texts.put(hash.clone(), text) {
            persisted.bytes -= old.len() + hash.len();
        }
        while persisted.bytes > PERSISTED_BUDGET {
            let Some((hash, text)) = persisted.texts.pop_lru() else { break };
            persisted.bytes -= text.len() + hash.len();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Persisted> {
        self.persisted.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Prepared {
    /// The request for the engine, carrying the parsed document (moved,
    /// not parsed again).
    pub fn into_request(self) -> Request {
        let mut request = self.request;
        if let Some(document) = self.document {
            request.set_parsed_query(document);
        }
        request
    }

    /// The persisted query to hand to [`Documents::settle`] after the run.
    pub fn take_remember(&mut self) -> Option<Remember> {
        self.remember.take()
    }
}

/// Parses `text`, on the blocking pool when it is large; None when it does
/// not parse (the engine then reports the syntax error itself).
async fn parse(text: &str) -> Option<ExecutableDocument> {
    if text.len() < PARSE_INLINE_BELOW {
        return async_graphql::parser::parse_query(text).ok();
    }
    let owned = text.to_owned();
    tokio::task::spawn_blocking(move || async_graphql::parser::parse_query(owned).ok()).await.ok().flatten()
}

fn bad_input(message: impl Into<String>) -> ServerError {
    super::errors::coded(message, "BAD_USER_INPUT")
}

/// The number of lexical tokens in `text` (names, numbers, strings,
/// punctuators), counting no further than `max + 1`. Comments, commas and
/// white space are not tokens.
pub fn count_tokens(text: &str, max: usize) -> usize {
    let bytes = text.as_bytes();
    let mut count = 0;
    let mut i = 0;
    while i < bytes.len() && count <= max {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' => {
                count += 1;
                i = skip_string(bytes, i);
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                count += 1;
                i += 3;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                count += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == b'-' => {
                // A number: digits, one `.`, an exponent; never `...`.
                count += 1;
                i += 1;
                while i < bytes.len() {
                    let more = bytes[i].is_ascii_digit()
                        || matches!(bytes[i], b'e' | b'E')
                        || (matches!(bytes[i], b'+' | b'-') && matches!(bytes[i - 1], b'e' | b'E'))
                        || (bytes[i] == b'.' && !bytes[i..].starts_with(b".."));
                    if !more {
                        break;
                    }
                    i += 1;
                }
            }
            _ => {
                count += 1;
                i += 1;
            }
        }
    }
    count
}

/// The index just past the string (or block string) starting at `start`.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    if bytes[start..].starts_with(b"\"\"\"") {
        let mut i = start + 3;
        while i < bytes.len() {
            if bytes[i..].starts_with(b"\\\"\"\"") {
                i += 4;
            } else if bytes[i..].starts_with(b"\"\"\"") {
                return i + 3;
            } else {
                i += 1;
            }
        }
        return i;
    }
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' | b'\n' | b'\r' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tokens_not_bytes() {
        assert_eq!(count_tokens("{ a b }", 100), 4);
        assert_eq!(count_tokens("query Q($x: Int = 5) { f(s: \"a, b { c }\") }", 100), 18);
        assert_eq!(count_tokens("# { { {\n{ a }", 100), 3);
        assert_eq!(count_tokens("{ ...F } fragment F on Q { a }", 100), 11);
        assert_eq!(count_tokens("\"\"\" a \\\"\"\" { \"\"\" { x }", 100), 4);
        assert_eq!(count_tokens("{a...F...F...F}", 100), 9, "spreads are tokens, not part of a name");
        assert_eq!(count_tokens("{ f(x: -1.5e+3) }", 100), 8);
        let huge = format!("{{ {} }}", "a ".repeat(1_000_000));
        assert_eq!(count_tokens(&huge, 10_000), 10_001, "stops counting past the limit");
    }
}
