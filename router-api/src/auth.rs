//! Bearer-token checks for the operator and agent routes.
//!
//! Tokens are compared in constant time (on their SHA-256, so the comparison
//! does not leak the token's length either). The checks are extractors, so a
//! handler cannot forget them and they run before the body is read.

use crate::api::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The two tokens the API accepts, stored as digests.
pub struct Tokens {
    admin: [u8; 32],
    agent: [u8; 32],
}

impl Tokens {
    pub fn new(admin: &str, agent: &str) -> Tokens {
        Tokens {
            admin: digest(admin),
            agent: digest(agent),
        }
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// The `Bearer` token of a request, digested; `None` when absent or malformed.
fn presented(parts: &Parts) -> Option<[u8; 32]> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(digest(token.trim()))
}

fn check(parts: &Parts, expected: &[u8; 32]) -> Result<(), ApiError> {
    match presented(parts) {
        Some(d) if bool::from(d.ct_eq(expected)) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

/// Proof that the request carried the operator token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check(parts, &state.tokens.admin).map(|_| Admin)
    }
}

/// Proof that the request carried the agent token (origins, discovery agents).
pub struct Agent;

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check(parts, &state.tokens.agent).map(|_| Agent)
    }
}
