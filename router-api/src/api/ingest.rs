//! What origins call while publishing: `POST /authorize` when a publisher
//! connects, then `PUT /claims/{name}` every few seconds while it publishes
//! and `DELETE /claims/{name}` when it ends.
//!
//! A stream is live on one origin at a time: authorization takes the
//! stream's claim (see [`crate::store`]), and a second origin is refused with
//! 409 while the first renews it. A renewal carries the key the publish was
//! authorized with, so disabling, deleting or rotating the key makes the next
//! renewal fail (403) and the origin ends the publish.

use super::AppState;
use crate::auth::Agent;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::keys;
use crate::store::{CLAIM_TTL, Claim, ClaimBy, EndedClaim};
use api_types::{
    AuthorizeRequest, AuthorizeResponse, ClaimRelease, ClaimRenewal, ClaimRenewed, ErrorBody, ProfileRef,
    validate_name, validate_session,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use subtle::ConstantTimeEq;

/// Webhooks for a claim taken where none was: the expired claim it replaced
/// (not swept yet) ends first.
fn went_live(st: &AppState, replaced: Option<EndedClaim>, name: &str, origin: &str, session: &str) {
    if let Some(old) = replaced {
        st.webhooks.ended(&old);
    }
    st.webhooks.live(name, origin, session);
}

fn held_elsewhere(name: &str) -> ApiError {
    ApiError::Conflict(format!("stream {name} is being published on another origin"))
}

/// Authorize a publisher and claim its stream for the asking origin. Unknown,
/// disabled and malformed keys all get the same 403, so a caller learns
/// nothing about which keys exist; a stream another origin is publishing
/// gets 409.
#[utoipa::path(post, path = "/authorize", tag = "ingest", security(("agent" = [])),
    request_body = AuthorizeRequest,
    responses((status = 200, body = AuthorizeResponse), (status = 400, body = ErrorBody, description = "bad origin id or session"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "key refused"),
        (status = 409, body = ErrorBody, description = "another origin holds the stream's claim"),
        (status = 503, body = ErrorBody)))]
pub async fn authorize(
    _: Agent,
    State(st): State<AppState>,
    ApiJson(req): ApiJson<AuthorizeRequest>,
) -> Result<Json<AuthorizeResponse>, ApiError> {
    validate_name("origin id", &req.origin)?;
    validate_session(&req.session)?;
    if req.key.is_empty() || req.key.len() > keys::MAX_KEY_LEN {
        tracing::info!(origin = %req.origin, "publish refused: malformed key");
        return Err(ApiError::KeyRefused);
    }
    let presented = keys::hash(&req.key);
    let rec = st.store.stream_by_key_hash(&presented).await?;
    match rec {
        Some(r) if bool::from(r.key_hash.as_bytes().ct_eq(presented.as_bytes())) && r.enabled => {
            match st
                .store
                .claim(&r.name, &presented, &req.origin, &req.session, ClaimBy::Authorize)
                .await?
            {
                claim @ (Claim::Held | Claim::Taken { .. }) => {
                    if let Claim::Taken { replaced } = claim {
                        went_live(&st, replaced, &r.name, &req.origin, &req.session);
                    }
                    tracing::info!(origin = %req.origin, stream = %r.name, session = %req.session, "publish authorized");
                    Ok(Json(AuthorizeResponse {
                        name: r.name,
                        profile: ProfileRef { name: r.profile },
                        record: r.record,
                    }))
                }
                Claim::HeldBy(holder) => {
                    tracing::info!(origin = %req.origin, stream = %r.name, %holder, "publish refused: live on another origin");
                    Err(held_elsewhere(&r.name))
                }
                Claim::Revoked => {
                    tracing::info!(origin = %req.origin, stream = %r.name, "publish refused: key revoked meanwhile");
                    Err(ApiError::KeyRefused)
                }
            }
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

/// Renew an origin's claim on a live stream, with the key its publish was
/// authorized with. 403 when the key no longer maps to the stream (rotated,
/// deleted) or the stream is disabled; 409 when another origin holds the
/// claim. Either way the origin must end the publish.
#[utoipa::path(put, path = "/claims/{name}", tag = "ingest", security(("agent" = [])),
    params(("name" = String, Path)), request_body = ClaimRenewal,
    responses((status = 200, body = ClaimRenewed), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "key revoked or stream disabled"),
        (status = 409, body = ErrorBody, description = "another origin holds the claim"),
        (status = 503, body = ErrorBody)))]
pub async fn renew(
    _: Agent,
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<ClaimRenewal>,
) -> Result<Json<ClaimRenewed>, ApiError> {
    validate_name("stream name", &name)?;
    validate_name("origin id", &req.origin)?;
    validate_session(&req.session)?;
    if req.key.is_empty() || req.key.len() > keys::MAX_KEY_LEN {
        return Err(ApiError::KeyRefused);
    }
    let presented = keys::hash(&req.key);
    match st
        .store
        .claim(&name, &presented, &req.origin, &req.session, ClaimBy::Renewal)
        .await?
    {
        claim @ (Claim::Held | Claim::Taken { .. }) => {
            if let Claim::Taken { replaced } = claim {
                // The claim had expired (a renewal came too late): live again.
                went_live(&st, replaced, &name, &req.origin, &req.session);
            }
            Ok(Json(ClaimRenewed {
                ttl_ms: CLAIM_TTL.as_millis() as u64,
            }))
        }
        Claim::HeldBy(holder) => {
            tracing::info!(origin = %req.origin, stream = %name, %holder, "claim renewal refused: held by another origin");
            Err(held_elsewhere(&name))
        }
        Claim::Revoked => {
            tracing::info!(origin = %req.origin, stream = %name, "claim renewal refused: key revoked or stream disabled");
            Err(ApiError::KeyRefused)
        }
    }
}

/// Give a claim back when a publish ends. 204 whether or not the claim was
/// still held by this origin and session (it may have expired or moved).
#[utoipa::path(delete, path = "/claims/{name}", tag = "ingest", security(("agent" = [])),
    params(("name" = String, Path)), request_body = ClaimRelease,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn release(
    _: Agent,
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<ClaimRelease>,
) -> Result<StatusCode, ApiError> {
    validate_name("stream name", &name)?;
    validate_name("origin id", &req.origin)?;
    validate_session(&req.session)?;
    if st.store.release_claim(&name, &req.origin, &req.session).await? {
        tracing::info!(origin = %req.origin, stream = %name, "claim released");
        st.webhooks.ended(&EndedClaim {
            stream: name,
            origin: req.origin,
            session: req.session,
        });
    }
    Ok(StatusCode::NO_CONTENT)
}
