//! Viewer counts from edges (`PUT /viewers/{edge}`, agent token).
//!
//! Each edge reports its concurrent viewers per stream every few seconds;
//! a report replaces the edge's previous one and counts for
//! `--viewer-ttl`, so an edge that stops reporting drops out of the sums by
//! itself. The sums appear as `viewers` in `GET /streams/{name}` and
//! `GET /admin/streams[/{name}]`.

use super::AppState;
use crate::auth::Agent;
use crate::error::{ApiError, ApiJson, ApiPath};
use api_types::{ErrorBody, MAX_VIEWER_STREAMS, MAX_VIEWERS_PER_STREAM, ViewerReport, ViewersAccepted, validate_name};
use axum::Json;
use axum::extract::State;
use std::collections::BTreeMap;

/// Replace an edge's viewer counts. At most 1000 streams; counts above
/// 1000000 are capped; streams with no viewers may be left out.
#[utoipa::path(put, path = "/viewers/{edge}", tag = "viewers", security(("agent" = [])),
    params(("edge" = String, Path, description = "the edge's id, `[a-z0-9][a-z0-9_-]{0,63}`")),
    request_body = ViewerReport,
    responses((status = 200, body = ViewersAccepted),
        (status = 400, body = ErrorBody, description = "bad edge id, stream name, or too many streams"),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn put(
    _: Agent,
    State(st): State<AppState>,
    ApiPath(edge): ApiPath<String>,
    ApiJson(report): ApiJson<ViewerReport>,
) -> Result<Json<ViewersAccepted>, ApiError> {
    validate_name("edge id", &edge)?;
    if report.streams.len() > MAX_VIEWER_STREAMS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_VIEWER_STREAMS} streams per report"
        )));
    }
    let mut counts = BTreeMap::new();
    for (name, count) in report.streams {
        validate_name("stream name", &name)?;
        if count > 0 {
            counts.insert(name, count.min(MAX_VIEWERS_PER_STREAM));
        }
    }
    let ttl = st.store.put_viewers(&edge, &counts).await?;
    tracing::debug!(%edge, streams = counts.len(), "viewer report accepted");
    Ok(Json(ViewersAccepted {
        ttl_ms: ttl.as_millis() as u64,
    }))
}
