//! Who is calling: a bearer JWT (HS256) when a secret is configured, the
//! single local user otherwise.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{config::Config, graphql::types::Viewer};

/// The owner of everything in single-user local mode.
pub const LOCAL_USER: &str = "local";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
}

/// Checks credentials once per request or WebSocket connection.
#[derive(Clone)]
pub struct Authenticator {
    key: Option<DecodingKey>,
    validation: Validation,
}

impl Authenticator {
    pub fn new(config: &Config) -> Self {
        // Only HS256: `alg: none` and every other algorithm are refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(issuer) = &config.jwt_issuer {
            validation.set_issuer(&[issuer]);
        }
        match &config.jwt_audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
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

/// A token for `sub`, valid for `ttl`, with the configured issuer and
/// audience (what `claude-graphql token` prints).
pub fn mint(config: &Config, sub: &str, ttl: Duration) -> Result<String, String> {
    let secret: &SecretString =
        config.jwt_secret.as_ref().ok_or("--jwt-secret (or JWT_SECRET) is required to sign a token")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?;
    let claims = Claims {
        sub: sub.to_owned(),
        exp: (now + ttl).as_secs(),
        iss: config.jwt_issuer.clone(),
        aud: config.jwt_audience.clone(),
    };
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.expose_secret().as_bytes()))
        .map_err(|e| e.to_string())
}
