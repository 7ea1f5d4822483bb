//! The GraphQL API: schema, resolvers, and the shape of its errors.

pub mod attachments;
pub mod documents;
pub mod errors;
pub mod limits;
pub mod loaders;
pub mod management;
pub mod mcp;
pub mod mutation;
pub mod profiles;
pub mod query;
pub mod schedules;
pub mod subscription;
pub mod types;
pub mod webhooks;

use async_graphql::Schema;

pub use errors::TraceId;
use mutation::MutationRoot;
use query::QueryRoot;
use subscription::SubscriptionRoot;

use crate::state::AppState;

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema, with the server state reachable from every resolver.
pub fn build_schema(state: Option<AppState>) -> AppSchema {
    let mut builder = Schema::build(QueryRoot, MutationRoot::default(), SubscriptionRoot).extension(errors::ErrorShape);
    if let Some(state) = state {
        let config = &state.config;
        builder = builder
            .limit_depth(config.max_query_depth)
            .limit_complexity(config.max_query_complexity)
            .extension(limits::AliasLimit { max: config.max_aliases })
            .extension(limits::UnwrappedDescriptions)
            .data(state);
    }
    builder.finish()
}

/// A request from the four GraphQL-over-HTTP / graphql-ws parameters.
pub fn request(
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    extensions: Option<serde_json::Map<String, serde_json::Value>>,
) -> async_graphql::Request {
    let mut request = async_graphql::Request::new(query.unwrap_or_default());
    request.operation_name = operation_name;
    request.variables = async_graphql::Variables::from_json(serde_json::Value::Object(variables.unwrap_or_default()));
    request.extensions = async_graphql::Extensions(
        extensions
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| async_graphql::Value::from_json(v).ok().map(|v| (k, v)))
            .collect(),
    );
    request
}

/// The operation a request runs: the one named, or the only one.
pub fn selected_operation<'a>(
    document: &'a async_graphql::parser::types::ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a async_graphql::Positioned<async_graphql::parser::types::OperationDefinition>> {
    match name {
        Some(name) => document.operations.iter().find(|(n, _)| n.map(|n| n.as_str()) == Some(name)).map(|(_, op)| op),
        None => document.operations.iter().next().map(|(_, op)| op),
    }
}

/// The SDL, as checked in as `schema.graphql`.
pub fn sdl() -> String {
    build_schema(None).sdl()
}
