//! Who is calling: a bearer JWT (HS256) when a secret is configured, the
//! single local user otherwise.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::{config::Config, graphql::types::Viewer};

/// The owner of everything in single-user local mode.
pub const LOCAL_USER: &str = "local";

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
}

/// Checks credentials once per request or WebSocket connection.
#[derive(Clone)]
pub struct Authenticator {
    key: Option<DecodingKey>,
    validation: Validation,
}

impl Authenticator {
    pub fn new(config: &Config) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            key: config.jwt_secret.as_ref().map(|s| DecodingKey::from_secret(s.expose_secret().as_bytes())),
            validation,
        }
    }

    /// The viewer for an `Authorization` value (`Bearer <jwt>`) or a bare
    /// token; None when a token is required and missing or invalid.
    pub fn viewer(&self, credentials: Option<&str>) -> Option<Viewer> {
        let Some(key) = &self.key else {
            return Some(Viewer { sub: LOCAL_USER.into() });
        };
        let raw = credentials?.trim();
        let token = raw.strip_prefix("Bearer ").or_else(|| raw.strip_prefix("bearer ")).unwrap_or(raw).trim();
        let claims = decode::<Claims>(token, key, &self.validation).ok()?.claims;
        (!claims.sub.is_empty()).then_some(Viewer { sub: claims.sub })
    }
}
