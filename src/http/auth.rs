//! Who is calling: a bearer JWT (HS256) when a secret is configured, the
//! single local user otherwise.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{config::Config, graphql::types::Viewer};

/// The owner of everything in single-user local mode.
pub const LOCAL_USER: &str = "local";

/// Shortest accepted HS256 secret: a guessable key makes every token
/// forgeable, and an empty one (`JWT_SECRET=` from an unset shell
/// variable) must never switch JWT mode on.
pub const MIN_SECRET_BYTES: usize = 32;

/// Seconds of clock skew tolerated on `exp` and `nbf`.
const LEEWAY: u64 = 5;

/// The claims we read. Typed, so that a claim of the wrong type (a string
/// `nbf`, say) makes the token invalid instead of being ignored.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    /// A string or an array of strings; the library checks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<serde_json::Value>,
}

/// Why a request is not authenticated; the text is for the client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token is valid for longer than this server accepts ({0})")]
    TooLongLived(String),
    #[error("the token was issued for another issuer or audience")]
    WrongParty,
    #[error("the token is malformed or its claims are invalid")]
    Malformed,
}

/// Checks credentials once per request or WebSocket connection.
#[derive(Clone)]
pub struct Authenticator {
    key: Option<DecodingKey>,
    validation: Validation,
    max_lifetime: Option<Duration>,
}

/// Whether a configured secret is strong enough to use.
pub fn check_secret(secret: &SecretString) -> Result<(), String> {
    let len = secret.expose_secret().len();
    if len < MIN_SECRET_BYTES {
        return Err(format!(
            "the JWT secret is {len} bytes long; at least {MIN_SECRET_BYTES} are required \
             (e.g. `openssl rand -hex 32`)"
        ));
    }
    Ok(())
}

impl Authenticator {
    pub fn new(config: &Config) -> Self {
        // Only HS256: `alg: none` and every other algorithm are refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY;
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
            max_lifetime: config.max_token_lifetime,
        }
    }

    /// The viewer for an `Authorization` value (`Bearer <jwt>`) or a bare
    /// token, or why there is none.
    pub fn authenticate(&self, credentials: Option<&str>) -> Result<Viewer, AuthError> {
        let Some(key) = &self.key else {
            return Ok(Viewer { sub: LOCAL_USER.into(), expires_at: None });
        };
        let raw = credentials.map(str::trim).filter(|c| !c.is_empty()).ok_or(AuthError::Missing)?;
        let token = raw.strip_prefix("Bearer ").or_else(|| raw.strip_prefix("bearer ")).unwrap_or(raw).trim();
        let claims = decode::<Claims>(token, key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer => AuthError::WrongParty,
                _ => AuthError::Malformed,
            })?
            .claims;
        if claims.sub.is_empty() {
            return Err(AuthError::Malformed);
        }
        if let Some(max) = self.max_lifetime {
            if claims.exp > unix_now() + max.as_secs() + LEEWAY {
                return Err(AuthError::TooLongLived(humantime::format_duration(max).to_string()));
            }
        }
        let expires_at = UNIX_EPOCH + Duration::from_secs(claims.exp + LEEWAY);
        Ok(Viewer { sub: claims.sub, expires_at: Some(expires_at) })
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A token for `sub`, valid for `ttl`, with the configured issuer and
/// audience (what `claude-graphql token` prints).
pub fn mint(config: &Config, sub: &str, ttl: Duration) -> Result<String, String> {
    let secret: &SecretString =
        config.jwt_secret.as_ref().ok_or("--jwt-secret (or JWT_SECRET) is required to sign a token")?;
    check_secret(secret)?;
    if sub.is_empty() {
        return Err("--sub must not be empty".into());
    }
    if let Some(max) = config.max_token_lifetime {
        if ttl > max {
            return Err(format!("--ttl is longer than --max-token-lifetime ({})", humantime::format_duration(max)));
        }
    }
    let now = unix_now();
    let claims = Claims {
        sub: sub.to_owned(),
        exp: now + ttl.as_secs(),
        nbf: None,
        iat: Some(now),
        iss: config.jwt_issuer.clone(),
        aud: config.jwt_audience.clone().map(serde_json::Value::String),
    };
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.expose_secret().as_bytes()))
        .map_err(|e| e.to_string())
}
