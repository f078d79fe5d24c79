//! Stream management for operators (`/admin/streams...`, operator token):
//! streams, keys, playback policy and playback tokens.

use super::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::keys;
use crate::store::{Live, StreamRecord, now_ms};
use api_types::playback::{self, valid_viewer};
use api_types::{
    CreatePlaybackToken, CreateStream, DEFAULT_PROFILE, DEFAULT_TOKEN_TTL_S, ErrorBody, MAX_TOKEN_TTL_S,
    MIN_TOKEN_TTL_S, PlaybackToken, StreamCreated, StreamInfo, UpdateStream, validate_name, validate_new_stream_name,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;

fn info(r: StreamRecord, live: Live) -> StreamInfo {
    StreamInfo {
        name: r.name,
        profile: r.profile,
        enabled: r.enabled,
        created_at_ms: r.created_at_ms,
        live: !live.origins.is_empty(),
        origins: live.origins,
        playback: r.playback,
        viewers: live.viewers,
        record: r.record,
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("no stream named {name}"))
}

/// Create a stream; the answer carries its key, shown only this once.
#[utoipa::path(post, path = "/admin/streams", tag = "admin", security(("admin" = [])),
    request_body = CreateStream,
    responses(
        (status = 201, body = StreamCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "name taken"), (status = 503, body = ErrorBody)))]
pub async fn create(
    _: Admin,
    State(st): State<AppState>,
    ApiJson(req): ApiJson<CreateStream>,
) -> Result<(StatusCode, Json<StreamCreated>), ApiError> {
    validate_new_stream_name(&req.name)?;
    let profile = req.profile.unwrap_or_else(|| DEFAULT_PROFILE.to_string());
    validate_name("profile", &profile)?;
    let key = keys::generate();
    if !st.store.create_stream(&req.name, &profile, &keys::hash(&key)).await? {
        return Err(ApiError::Conflict(format!("a stream named {} exists", req.name)));
    }
    tracing::info!(stream = %req.name, %profile, "stream created");
    Ok((
        StatusCode::CREATED,
        Json(StreamCreated {
            name: req.name,
            key,
            profile,
        }),
    ))
}

/// List every stream with its live status.
#[utoipa::path(get, path = "/admin/streams", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = Vec<StreamInfo>), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(_: Admin, State(st): State<AppState>) -> Result<Json<Vec<StreamInfo>>, ApiError> {
    let streams = st.store.list_streams().await?;
    let names: Vec<String> = streams.iter().map(|s| s.name.clone()).collect();
    let live = st.store.live_many(&names).await?;
    Ok(Json(streams.into_iter().zip(live).map(|(s, l)| info(s, l)).collect()))
}

/// One stream with its live status.
#[utoipa::path(get, path = "/admin/streams/{name}", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = StreamInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn show(
    _: Admin,
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<StreamInfo>, ApiError> {
    validate_name("stream name", &name)?;
    let rec = st.store.get_stream(&name).await?.ok_or_else(|| not_found(&name))?;
    let live = st.store.live(&name).await?;
    Ok(Json(info(rec, live)))
}

/// Enable/disable a stream, change its profile or its playback policy
/// (`public`, `token`). Disabling ends a live publish within a few seconds;
/// edges apply a policy change within about a second (their route refresh).
#[utoipa::path(patch, path = "/admin/streams/{name}", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path)), request_body = UpdateStream,
    responses((status = 200, body = StreamInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn update(
    _: Admin,
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateStream>,
) -> Result<Json<StreamInfo>, ApiError> {
    validate_name("stream name", &name)?;
    if let Some(p) = &req.profile {
        validate_name("profile", p)?;
    }
    let (rec, ended) = st
        .store
        .update_stream(&name, req.enabled, req.profile.as_deref(), req.playback, req.record)
        .await?
        .ok_or_else(|| not_found(&name))?;
    if let Some(c) = ended {
        st.webhooks.ended(&c);
    }
    tracing::info!(stream = %name, enabled = rec.enabled, profile = %rec.profile,
        playback = rec.playback.as_str(), "stream updated");
    let live = st.store.live(&name).await?;
    Ok(Json(info(rec, live)))
}

/// Delete a stream and its key. A live publish ends within a few seconds
/// (its origin's next claim renewal is refused) and its routes go at once.
#[utoipa::path(delete, path = "/admin/streams/{name}", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn delete(
    _: Admin,
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    validate_name("stream name", &name)?;
    let ended = st.store.delete_stream(&name).await?.ok_or_else(|| not_found(&name))?;
    if let Some(c) = ended {
        st.webhooks.ended(&c);
    }
    tracing::info!(stream = %name, "stream deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Replace a stream's key; the old key stops working at once, and a publish
/// live with it ends within a few seconds.
#[utoipa::path(post, path = "/admin/streams/{name}/key", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = StreamCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn rotate_key(
    _: Admin,
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<StreamCreated>, ApiError> {
    validate_name("stream name", &name)?;
    let key = keys::generate();
    let ended = st
        .store
        .rotate_key(&name, &keys::hash(&key))
        .await?
        .ok_or_else(|| not_found(&name))?;
    if let Some(c) = ended {
        st.webhooks.ended(&c);
    }
    let rec = st.store.get_stream(&name).await?.ok_or_else(|| not_found(&name))?;
    tracing::info!(stream = %name, "stream key rotated");
    Ok(Json(StreamCreated {
        name,
        key,
        profile: rec.profile,
    }))
}

/// Mint a playback token for a stream (any policy: a `public` stream simply
/// does not ask for one). The body is optional (`{}` or empty). Tokens are
/// signed with the first `--playback-key`; edges verify them on their own.
#[utoipa::path(post, path = "/admin/streams/{name}/playback-tokens", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path)), request_body(content = CreatePlaybackToken, description = "optional"),
    responses((status = 201, body = PlaybackToken),
        (status = 400, body = ErrorBody, description = "bad ttl_s, viewer or body"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "no --playback-key configured"),
        (status = 503, body = ErrorBody)))]
pub async fn mint_token(
    _: Admin,
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<PlaybackToken>), ApiError> {
    validate_name("stream name", &name)?;
    let req: CreatePlaybackToken = if body.iter().all(u8::is_ascii_whitespace) {
        CreatePlaybackToken::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let ttl_s = req.ttl_s.unwrap_or(DEFAULT_TOKEN_TTL_S);
    if !(MIN_TOKEN_TTL_S..=MAX_TOKEN_TTL_S).contains(&ttl_s) {
        return Err(ApiError::BadRequest(format!(
            "ttl_s must be {MIN_TOKEN_TTL_S}..={MAX_TOKEN_TTL_S}"
        )));
    }
    if let Some(v) = &req.viewer
        && !valid_viewer(v)
    {
        return Err(ApiError::BadRequest("viewer must be [A-Za-z0-9_-]{0,64}".into()));
    }
    let key = st
        .playback_keys
        .signing()
        .ok_or_else(|| ApiError::Conflict("no playback key is configured (--playback-key)".into()))?;
    st.store.get_stream(&name).await?.ok_or_else(|| not_found(&name))?;
    let expires_at_ms = now_ms() + ttl_s * 1000;
    let token = playback::mint(key, &name, expires_at_ms, req.viewer.as_deref())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    tracing::info!(stream = %name, kid = key.kid(), ttl_s, "playback token minted");
    Ok((
        StatusCode::CREATED,
        Json(PlaybackToken {
            url: playback::token_url(&token, &name),
            token,
            expires_at_ms,
        }),
    ))
}
