//! Recordings: discovery agents report the recorded sessions their origin
//! holds (`/origins/{origin}/recordings/{name}/{session}`, agent token),
//! operators and sites list a stream's recordings
//! (`GET /streams/{name}/recordings`), and edges ask which origin holds one
//! (`GET /recordings/{name}/{session}`).
//!
//! The two reads need no token, like `GET /streams` and `GET /streams/{name}`:
//! they say which sessions exist and where, nothing secret; playing a
//! recording of a `token` stream still needs a playback token at the edge
//! (the route carries the policy). The dashboard reads the list the same way.

use super::AppState;
use crate::auth::Agent;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::store::{MAX_RECORDINGS_PER_STREAM, PutRecording};
use api_types::layout::VOD_PLAYLIST;
use api_types::{
    ErrorBody, MAX_RENDITIONS, Recording, RecordingReport, RecordingRoute, ReportAccepted, validate_host_port,
    validate_name, validate_session,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

/// Longest recording accepted, in seconds (a week: far past any retention).
const MAX_DURATION_S: f64 = 7.0 * 24.0 * 3600.0;

fn validate_ids(origin: &str, name: &str, session: &str) -> Result<(), ApiError> {
    validate_name("origin id", origin)?;
    validate_name("stream name", name)?;
    validate_session(session)?;
    Ok(())
}

fn validate(r: &RecordingReport) -> Result<(), ApiError> {
    validate_host_port(&r.host)?;
    if r.ended_at_ms < r.started_at_ms {
        return Err(ApiError::BadRequest("ended_at_ms is before started_at_ms".into()));
    }
    if !r.duration_s.is_finite() || r.duration_s < 0.0 || r.duration_s > MAX_DURATION_S {
        return Err(ApiError::BadRequest(format!(
            "duration_s must be between 0 and {MAX_DURATION_S}"
        )));
    }
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

/// Report (or heartbeat) that an origin holds a complete recording.
#[utoipa::path(put, path = "/origins/{origin}/recordings/{name}/{session}", tag = "discovery",
    security(("agent" = [])),
    params(("origin" = String, Path), ("name" = String, Path), ("session" = String, Path)),
    request_body = RecordingReport,
    responses((status = 200, body = ReportAccepted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such stream"),
        (status = 409, body = ErrorBody,
            description = "the recording ended before the stream was created, or the stream has too many recordings"),
        (status = 503, body = ErrorBody)))]
pub async fn put(
    _: Agent,
    State(st): State<AppState>,
    ApiPath((origin, name, session)): ApiPath<(String, String, String)>,
    ApiJson(report): ApiJson<RecordingReport>,
) -> Result<Json<ReportAccepted>, ApiError> {
    validate_ids(&origin, &name, &session)?;
    validate(&report)?;
    match st.store.put_recording(&origin, &name, &session, &report).await? {
        PutRecording::Stored => {}
        PutRecording::NoStream => return Err(ApiError::NotFound(format!("no stream named {name}"))),
        PutRecording::OlderThanStream => {
            return Err(ApiError::Conflict(format!(
                "the recording ended before stream {name} was created"
            )));
        }
        PutRecording::Full => {
            return Err(ApiError::Conflict(format!(
                "stream {name} has {MAX_RECORDINGS_PER_STREAM} recordings"
            )));
        }
    }
    tracing::debug!(%origin, stream = %name, %session, "recording report accepted");
    Ok(Json(ReportAccepted {
        ttl_ms: st.store.recording_ttl().as_millis() as u64,
    }))
}

/// Withdraw a recording (its origin removed it).
#[utoipa::path(delete, path = "/origins/{origin}/recordings/{name}/{session}", tag = "discovery",
    security(("agent" = [])),
    params(("origin" = String, Path), ("name" = String, Path), ("session" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "that origin reports no such recording"),
        (status = 503, body = ErrorBody)))]
pub async fn delete(
    _: Agent,
    State(st): State<AppState>,
    ApiPath((origin, name, session)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    validate_ids(&origin, &name, &session)?;
    if st.store.delete_recording(&origin, &name, &session).await? {
        tracing::info!(%origin, stream = %name, %session, "recording withdrawn");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "origin {origin} reports no recording {session} of {name}"
        )))
    }
}

/// A stream's recordings, newest first (at most 1000), each with the path
/// of its VOD playlist, playable through any edge.
#[utoipa::path(get, path = "/streams/{name}/recordings", tag = "routing",
    params(("name" = String, Path)),
    responses((status = 200, body = Vec<Recording>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<Recording>>, ApiError> {
    validate_name("stream name", &name)?;
    let recs = st.store.recordings(&name).await?;
    Ok(Json(
        recs.into_iter()
            .map(|(session, r)| Recording {
                url: format!("/{name}/{session}/{VOD_PLAYLIST}"),
                session,
                started_at_ms: r.started_at_ms,
                ended_at_ms: r.ended_at_ms,
                duration_s: r.duration_s,
            })
            .collect(),
    ))
}

/// Which origin holds a recording, and the stream's playback policy (for edges).
#[utoipa::path(get, path = "/recordings/{name}/{session}", tag = "routing",
    params(("name" = String, Path), ("session" = String, Path)),
    responses((status = 200, body = RecordingRoute), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no origin reports that recording"),
        (status = 503, body = ErrorBody)))]
pub async fn route(
    State(st): State<AppState>,
    ApiPath((name, session)): ApiPath<(String, String)>,
) -> Result<Json<RecordingRoute>, ApiError> {
    validate_name("stream name", &name)?;
    validate_session(&session)?;
    let at = st
        .store
        .recording(&name, &session)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no recording {session} of {name}")))?;
    Ok(Json(RecordingRoute {
        name,
        session,
        origin: at.recording.origin,
        host: at.recording.host,
        playback: at.playback,
    }))
}
