//! GraphQL over HTTP, as the GraphQL-over-HTTP specification says it.
//!
//! - The response media type follows `Accept`: `application/graphql-response+json`
//!   when asked for, `application/json` for `application/json`, `*/*` or no
//!   header, 406 otherwise.
//! - POST takes `application/json` (415 otherwise), or a GraphQL multipart
//!   request with files, which must carry a header no cross-site form can
//!   send (`Authorization`, `GraphQL-Require-Preflight`, …); GET takes the
//!   parameters from the query string and never runs a mutation (405 with
//!   `Allow: POST`). Together these keep a cross-site form post or an image
//!   GET from ever starting an execution.
//! - A request that is not well-formed (bad JSON, a parameter of the wrong
//!   type, no query) is 400 without `data`. Under
//!   `application/graphql-response+json` so is one whose document does not
//!   parse or validate; under `application/json` that is 200 with errors.

use async_graphql::{
    http::MultipartOptions, parser::types::OperationType, ParseRequestError, Response, ServerError, UploadValue,
};
use axum::{
    body::{Body, HttpBody},
    extract::{RawQuery, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response as HttpResponse},
};
use serde_json::{Map, Value};

use super::{router::HttpState, trace_id};
use crate::graphql::{
    documents::{Params, Prepared},
    errors::{is_request_error, set_trace_id, shape, too_large},
    loaders::Loaders,
    mutation::IdempotencyKeyHeader,
    types::Unauthenticated,
};

const JSON: &str = "application/json; charset=utf-8";
const GRAPHQL_RESPONSE: &str = "application/graphql-response+json; charset=utf-8";

/// The response media type a client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaType {
    Json,
    GraphqlResponse,
}

impl MediaType {
    fn content_type(self) -> &'static str {
        match self {
            MediaType::Json => JSON,
            MediaType::GraphqlResponse => GRAPHQL_RESPONSE,
        }
    }
}

/// Picks the response media type from `Accept`; None means 406.
fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = headers.get(header::ACCEPT) else { return Some(MediaType::Json) };
    let accept = accept.to_str().ok()?;
    if accept.trim().is_empty() {
        return Some(MediaType::Json);
    }
    let mut best: Option<(f32, MediaType)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let range = parts.next().unwrap_or_default().to_ascii_lowercase();
        let q = parts.filter_map(|p| p.strip_prefix("q=")).find_map(|q| q.parse::<f32>().ok()).unwrap_or(1.0);
        let media = match range.as_str() {
            "application/graphql-response+json" => MediaType::GraphqlResponse,
            "application/json" | "application/*" | "*/*" => MediaType::Json,
            _ => continue,
        };
        // Higher q wins; on a tie the GraphQL media type is preferred.
        let better = match best {
            None => true,
            Some((bq, bm)) => q > bq || (q == bq && media == MediaType::GraphqlResponse && bm == MediaType::Json),
        };
        if q > 0.0 && better {
            best = Some((q, media));
        }
    }
    best.map(|(_, m)| m)
}

/// A request that is not a well-formed GraphQL-over-HTTP request.
struct Rejection(StatusCode, String);

fn bad_request(message: impl Into<String>) -> Rejection {
    Rejection(StatusCode::BAD_REQUEST, message.into())
}

/// Reads the parameters of a POST body (a JSON object).
fn post_params(headers: &HeaderMap, body: &[u8]) -> Result<Params, Rejection> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut parts = content_type.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default().to_ascii_lowercase();
    if essence != "application/json" {
        return Err(Rejection(StatusCode::UNSUPPORTED_MEDIA_TYPE, "POST requests must be application/json".into()));
    }
    let charset_ok =
        parts.filter_map(|p| p.strip_prefix("charset=")).all(|c| c.trim_matches('"').eq_ignore_ascii_case("utf-8"));
    if !charset_ok {
        return Err(Rejection(StatusCode::UNSUPPORTED_MEDIA_TYPE, "only utf-8 is accepted".into()));
    }
    let body: Value =
        serde_json::from_slice(body).map_err(|e| bad_request(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(mut body) = body else {
        return Err(bad_request("the body must be a JSON object"));
    };
    let string = |v: Option<Value>, name: &str| match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad_request(format!("`{name}` must be a string"))),
    };
    let object = |v: Option<Value>, name: &str| match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(bad_request(format!("`{name}` must be an object"))),
    };
    Ok(Params {
        query: string(body.remove("query"), "query")?,
        operation_name: string(body.remove("operationName"), "operationName")?,
        variables: object(body.remove("variables"), "variables")?,
        extensions: object(body.remove("extensions"), "extensions")?,
        uploads: 0,
    })
}

/// Headers that a cross-site form cannot set: a multipart request (which,
/// unlike JSON, a browser sends cross-site without asking) must carry one.
const PREFLIGHT_HEADERS: [&str; 4] =
    ["authorization", "graphql-require-preflight", "apollo-require-preflight", "x-apollo-operation-name"];

fn credentials(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

fn is_multipart(headers: &HeaderMap) -> bool {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    content_type.trim_start().to_ascii_lowercase().starts_with("multipart/form-data")
}

/// Reads a GraphQL multipart request (graphql-multipart-request-spec):
/// its parameters, and its files, streamed to temporary files.
async fn multipart_params(
    config: &crate::config::Config,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Params, Vec<UploadValue>), Rejection> {
    use futures_util::TryStreamExt;
    use tokio_util::compat::TokioAsyncReadCompatExt;
    if !PREFLIGHT_HEADERS.iter().any(|name| headers.get(*name).is_some_and(|v| !v.is_empty())) {
        return Err(bad_request(
            "a multipart request needs an Authorization, GraphQL-Require-Preflight or Apollo-Require-Preflight header",
        ));
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream).compat();
    let options = MultipartOptions::default()
        .max_file_size(config.attachment_max_bytes.max(config.max_body_bytes))
        .max_num_files(crate::attachments::MAX_BLOCKS);
    let mut request = match async_graphql::http::receive_body(content_type, reader, options).await {
        Ok(request) => request,
        Err(ParseRequestError::PayloadTooLarge) => {
            let why = format!("a file is larger than {} bytes, or there are too many", config.attachment_max_bytes);
            return Err(Rejection(StatusCode::PAYLOAD_TOO_LARGE, why));
        }
        Err(e) => return Err(bad_request(format!("not a GraphQL multipart request: {e}"))),
    };
    let uploads = std::mem::take(&mut request.uploads);
    let object = |value: Result<Value, serde_json::Error>| match value {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    let params = Params {
        query: Some(request.query).filter(|q| !q.is_empty()),
        operation_name: request.operation_name,
        variables: object(serde_json::to_value(&request.variables)),
        extensions: object(serde_json::to_value(&request.extensions)).filter(|e| !e.is_empty()),
        uploads: uploads.len(),
    };
    Ok((params, uploads))
}

/// Reads the parameters of a GET query string; `variables` and
/// `extensions` are JSON-encoded.
fn get_params(raw: Option<&str>) -> Result<Params, Rejection> {
    let mut params = Params::default();
    let decoded: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|_| bad_request("the query string is not valid"))?;
    for (key, value) in decoded {
        let json_object = |name: &str| match serde_json::from_str::<Value>(&value) {
            Ok(Value::Object(o)) => Ok(Some(o)),
            Ok(Value::Null) => Ok(None),
            _ => Err(bad_request(format!("`{name}` must be a JSON-encoded object"))),
        };
        match key.as_str() {
            "query" => params.query = Some(value),
            "operationName" => params.operation_name = Some(value),
            "variables" => params.variables = json_object("variables")?,
            "extensions" => params.extensions = json_object("extensions")?,
            _ => {}
        }
    }
    Ok(params)
}

/// Whether a request names a persisted query (and so needs no `query`).
fn names_persisted_query(extensions: Option<&Map<String, Value>>) -> bool {
    extensions.is_some_and(|e| e.contains_key("persistedQuery"))
}

/// Whether the operation a GET would run is a mutation (or a subscription:
/// neither belongs on a safe method). Unparseable documents are left to the
/// engine, which reports them as GraphQL errors.
fn is_unsafe_on_get(prepared: &Prepared) -> bool {
    let Some(document) = &prepared.document else { return false };
    crate::graphql::selected_operation(document, prepared.request.operation_name.as_deref())
        .is_some_and(|op| op.node.ty != OperationType::Query)
}

pub async fn graphql_http(
    State(http): State<HttpState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
    body: Body,
) -> HttpResponse {
    let trace = trace_id(&headers);
    let Some(media) = negotiate(&headers) else {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "accepted media types: application/graphql-response+json, application/json",
        )
            .into_response();
    };
    let config = &http.state.config;
    let mut files = Vec::new();
    let params = match method {
        // Files are read only for a caller the server knows.
        Method::POST if is_multipart(&headers) && http.auth.authenticate(credentials(&headers)).is_err() => {
            Err(Rejection(StatusCode::UNAUTHORIZED, "a multipart request needs a valid token".into()))
        }
        Method::POST if is_multipart(&headers) => {
            multipart_params(config, &headers, body).await.map(|(params, uploads)| {
                files = uploads;
                params
            })
        }
        Method::POST => match axum::body::to_bytes(body, config.max_body_bytes).await {
            Ok(bytes) => post_params(&headers, &bytes),
            Err(_) => Err(Rejection(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {} bytes", config.max_body_bytes),
            )),
        },
        _ => get_params(raw_query.as_deref()),
    };
    let params = match params {
        Ok(p) => p,
        Err(Rejection(status, message)) => return request_error(status, media, &message, &trace.0),
    };
    if params.query.is_none() && !names_persisted_query(params.extensions.as_ref()) {
        return request_error(StatusCode::BAD_REQUEST, media, "`query` is required", &trace.0);
    }
    let mut prepared = match http.documents.prepare(params).await {
        Ok(prepared) => prepared,
        Err(error) => return graphql_response(media, Response::from_errors(vec![error]), &trace.0),
    };
    if method == Method::GET && is_unsafe_on_get(&prepared) {
        let mut response = request_error(
            StatusCode::METHOD_NOT_ALLOWED,
            media,
            "only queries may be sent with GET; use POST",
            &trace.0,
        );
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let remember = prepared.take_remember();
    let mut request = prepared.into_request().data(trace.clone());
    request.uploads = files;
    if let Some(key) = headers.get("idempotency-key") {
        // Not UTF-8: the replacement characters make it an invalid key.
        request = request.data(IdempotencyKeyHeader(String::from_utf8_lossy(key.as_bytes()).into_owned()));
    }
    request = match http.auth.authenticate(credentials(&headers)) {
        Ok(viewer) => request.data(Loaders::new(http.state.db.clone(), &viewer.sub)).data(viewer),
        Err(why) => request.data(Unauthenticated(why)),
    };
    let response = http.schema.execute(request).await;
    http.documents.settle(remember, !is_request_error(&response));
    let mut http_response = graphql_response(media, response, &trace.0);
    if http_response.body().size_hint().exact().is_some_and(|n| n > http.max_response_bytes as u64) {
        http_response = json_response(StatusCode::OK, media, &too_large(http.max_response_bytes, &trace.0));
    }
    http_response
}

/// The HTTP response for a GraphQL response.
fn graphql_response(media: MediaType, mut response: Response, trace: &str) -> HttpResponse {
    shape(&mut response.errors, Some(trace.to_owned()));
    set_trace_id(&mut response.errors, trace);
    // A request that never began executing (it did not parse or validate)
    // is a request error: no data, and 400 under the GraphQL media type.
    let request_error = is_request_error(&response);
    let status =
        if media == MediaType::GraphqlResponse && request_error { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let mut body = Map::new();
    if !request_error {
        body.insert("data".into(), serde_json::to_value(&response.data).unwrap_or(Value::Null));
    }
    if !response.errors.is_empty() {
        body.insert("errors".into(), serde_json::to_value(&response.errors).unwrap_or(Value::Null));
    }
    if !response.extensions.is_empty() {
        body.insert("extensions".into(), serde_json::to_value(&response.extensions).unwrap_or(Value::Null));
    }
    json_response(status, media, &body)
}

fn request_error(status: StatusCode, media: MediaType, message: &str, trace: &str) -> HttpResponse {
    let mut errors = vec![ServerError::new(message, None)];
    shape(&mut errors, Some(trace.to_owned()));
    json_response(status, media, &serde_json::json!({ "errors": errors }))
}

fn json_response(status: StatusCode, media: MediaType, body: &impl serde::Serialize) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, media.content_type())], bytes).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
