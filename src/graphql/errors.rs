//! Every GraphQL error leaves with `extensions { code traceId timestamp }`.
//!
//! Resolvers set `code` (see `AppError`); errors raised by the engine
//! itself (syntax, validation, argument coercion) get BAD_USER_INPUT, and
//! anything else uncoded becomes INTERNAL_ERROR with its text withheld.

use std::sync::Arc;

use async_graphql::{
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest, NextSubscribe},
    futures_util::stream::BoxStream,
    Response, ServerError, Value,
};
use futures_util::StreamExt;
use tracing::error;

/// The request's trace id (the `x-request-id` header).
#[derive(Debug, Clone)]
pub struct TraceId(pub String);

pub struct ErrorShape;

impl ExtensionFactory for ErrorShape {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorShape)
    }
}

#[async_trait::async_trait]
impl Extension for ErrorShape {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        shape(&mut response.errors, trace_id(ctx));
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let trace = trace_id(ctx);
        next.run(ctx, stream)
            .map(move |mut response| {
                shape(&mut response.errors, trace.clone());
                response
            })
            .boxed()
    }
}

/// The trace id from the connection's data (WebSocket). For HTTP it is set
/// by the handler with [`set_trace_id`]: request data is not visible here.
fn trace_id(ctx: &ExtensionContext<'_>) -> Option<String> {
    ctx.data_opt::<TraceId>().map(|t| t.0.clone())
}

/// An error with its `code` set (the codes of SPEC's list).
pub fn coded(message: impl Into<String>, code: &'static str) -> ServerError {
    let mut error = ServerError::new(message, None);
    error.extensions.get_or_insert_with(Default::default).set("code", code);
    error
}

/// The body that replaces a response larger than `max` bytes, shaped.
pub fn too_large(max: usize, trace_id: &str) -> serde_json::Value {
    let mut errors = vec![coded(
        format!("the response is larger than the {max} bytes allowed; ask for fewer fields or smaller pages"),
        "BAD_USER_INPUT",
    )];
    shape(&mut errors, Some(trace_id.to_owned()));
    serde_json::json!({ "data": null, "errors": errors })
}

/// Sets `traceId` on every error.
pub fn set_trace_id(errors: &mut [ServerError], trace_id: &str) {
    for e in errors {
        e.extensions.get_or_insert_with(Default::default).set("traceId", Value::from(trace_id));
    }
}

/// Fills in code, traceId and timestamp on every error.
pub fn shape(errors: &mut [ServerError], trace_id: Option<String>) {
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for e in errors {
        let extensions = e.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            let engine_error = e.path.is_empty()
                || e.message.starts_with("Failed to parse")
                || e.message.starts_with("Invalid value for argument")
                || e.message.starts_with("Internal: Failed to parse");
            if engine_error {
                extensions.set("code", "BAD_USER_INPUT");
            } else {
                error!(message = %e.message, "uncoded error from a resolver");
                e.message = "internal error".into();
                extensions.set("code", "INTERNAL_ERROR");
            }
        }
        if let Some(trace_id) = &trace_id {
            extensions.set("traceId", Value::from(trace_id.clone()));
        }
        extensions.set("timestamp", Value::from(timestamp.clone()));
    }
}

/// Whether a response is to a request that never began executing: it did
/// not parse or validate, so there is no data and no error has a path.
pub fn is_request_error(response: &Response) -> bool {
    response.data == Value::Null && !response.errors.is_empty() && response.errors.iter().all(|e| e.path.is_empty())
}
