//! The HTTP edge: routes, GraphQL over HTTP and WebSocket, auth, health.

pub mod auth;
pub mod graphql;
pub mod health;
pub mod router;

pub use router::router;
