//! The GraphQL API: schema, resolvers, and the shape of its errors.

pub mod errors;
pub mod mutation;
pub mod query;
pub mod subscription;
pub mod types;

use async_graphql::Schema;

pub use errors::TraceId;
use mutation::MutationRoot;
use query::QueryRoot;
use subscription::SubscriptionRoot;

use crate::state::AppState;

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema, with the server state reachable from every resolver.
pub fn build_schema(state: Option<AppState>) -> AppSchema {
    let mut builder = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot).extension(errors::ErrorShape);
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// The SDL, as checked in as `schema.graphql`.
pub fn sdl() -> String {
    build_schema(None).sdl()
}
