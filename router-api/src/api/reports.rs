//! Discovery reports (`/origins/{origin}/streams/{name}`, agent token).
//!
//! A report for a disabled stream is refused with 409, so a discovery agent
//! whose next heartbeat comes before it sees EXT-X-ENDLIST cannot bring back
//! the routes that disabling the stream dropped (the agent treats a 4xx as
//! final for that report). Reports for streams the router does not know are
//! accepted (an agent may run without stream management, and tests report
//! static folders), so after a delete or a key rotation a heartbeat may
//! re-add the route until the agent sees the ended playlist: a few seconds,
//! as the origin ends the publish at its next claim renewal.

use super::AppState;
use crate::auth::Agent;
use crate::error::{ApiError, ApiJson, ApiPath};
use api_types::{
    ErrorBody, MAX_RENDITIONS, OriginReport, ReportAccepted, validate_host_port, validate_manifest_path, validate_name,
    validate_session,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

fn validate(origin: &str, name: &str, r: &OriginReport) -> Result<(), ApiError> {
    validate_name("origin id", origin)?;
    validate_name("stream name", name)?;
    validate_host_port(&r.host)?;
    validate_manifest_path(&r.manifest)?;
    validate_session(&r.session)?;
    if r.renditions.len() > MAX_RENDITIONS {
        return Err(ApiError::BadRequest(format!("at most {MAX_RENDITIONS} renditions")));
    }
    for rend in &r.renditions {
        validate_name("rendition name", &rend.name)?;
        let too_long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.len() > 128);
        if too_long(&rend.resolution) || too_long(&rend.codecs) {
            return Err(ApiError::BadRequest(
                "rendition fields are limited to 128 characters".into(),
            ));
        }
    }
    Ok(())
}

/// Report (or heartbeat) that an origin holds a live stream.
#[utoipa::path(put, path = "/origins/{origin}/streams/{name}", tag = "discovery", security(("agent" = [])),
    params(("origin" = String, Path), ("name" = String, Path)), request_body = OriginReport,
    responses((status = 200, body = ReportAccepted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the stream is disabled"),
        (status = 503, body = ErrorBody)))]
pub async fn put(
    _: Agent,
    State(st): State<AppState>,
    ApiPath((origin, name)): ApiPath<(String, String)>,
    ApiJson(report): ApiJson<OriginReport>,
) -> Result<Json<ReportAccepted>, ApiError> {
    validate(&origin, &name, &report)?;
    if st.store.get_stream(&name).await?.is_some_and(|r| !r.enabled) {
        tracing::info!(%origin, stream = %name, "report refused: stream disabled");
        return Err(ApiError::Conflict(format!("stream {name} is disabled")));
    }
    let ttl = st.store.put_report(&origin, &name, &report).await?;
    tracing::debug!(%origin, stream = %name, session = %report.session, "report accepted");
    Ok(Json(ReportAccepted {
        ttl_ms: ttl.as_millis() as u64,
    }))
}

/// Withdraw a report at once (the stream ended on that origin).
#[utoipa::path(delete, path = "/origins/{origin}/streams/{name}", tag = "discovery", security(("agent" = [])),
    params(("origin" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such report"), (status = 503, body = ErrorBody)))]
pub async fn delete(
    _: Agent,
    State(st): State<AppState>,
    ApiPath((origin, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    validate_name("origin id", &origin)?;
    validate_name("stream name", &name)?;
    if st.store.delete_report(&origin, &name).await? {
        tracing::info!(%origin, stream = %name, "report withdrawn");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("origin {origin} has no report for {name}")))
    }
}
