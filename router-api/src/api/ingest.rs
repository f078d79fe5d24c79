//! `POST /authorize`: origins ask whether a publisher's stream key may publish.

use super::AppState;
use crate::auth::Agent;
use crate::error::{ApiError, ApiJson};
use crate::keys;
use api_types::{AuthorizeRequest, AuthorizeResponse, ErrorBody, ProfileRef, validate_name};
use axum::Json;
use axum::extract::State;
use subtle::ConstantTimeEq;

/// Authorize a publisher. Unknown, disabled and malformed keys all get the
/// same 403, so a caller learns nothing about which keys exist.
#[utoipa::path(post, path = "/authorize", tag = "ingest", security(("agent" = [])),
    request_body = AuthorizeRequest,
    responses((status = 200, body = AuthorizeResponse), (status = 400, body = ErrorBody, description = "bad origin id"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "key refused"),
        (status = 503, body = ErrorBody)))]
pub async fn authorize(
    _: Agent,
    State(st): State<AppState>,
    ApiJson(req): ApiJson<AuthorizeRequest>,
) -> Result<Json<AuthorizeResponse>, ApiError> {
    validate_name("origin id", &req.origin)?;
    if req.key.is_empty() || req.key.len() > keys::MAX_KEY_LEN {
        tracing::info!(origin = %req.origin, "publish refused: malformed key");
        return Err(ApiError::KeyRefused);
    }
    let presented = keys::hash(&req.key);
    let rec = st.store.stream_by_key_hash(&presented).await?;
    match rec {
        Some(r) if bool::from(r.key_hash.as_bytes().ct_eq(presented.as_bytes())) && r.enabled => {
            tracing::info!(origin = %req.origin, stream = %r.name, "publish authorized");
            Ok(Json(AuthorizeResponse {
                name: r.name,
                profile: ProfileRef { name: r.profile },
            }))
        }
        Some(r) => {
            tracing::info!(origin = %req.origin, stream = %r.name, "publish refused: stream disabled");
            Err(ApiError::KeyRefused)
        }
        None => {
            tracing::info!(origin = %req.origin, "publish refused: unknown key");
            Err(ApiError::KeyRefused)
        }
    }
}
