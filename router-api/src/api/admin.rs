//! Stream management for operators (`/admin/streams...`, operator token).

use super::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::keys;
use crate::store::StreamRecord;
use api_types::{
    CreateStream, DEFAULT_PROFILE, ErrorBody, RouteOrigin, StreamCreated, StreamInfo, UpdateStream, validate_name,
    validate_new_stream_name,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

fn info(r: StreamRecord, origins: Vec<RouteOrigin>) -> StreamInfo {
    StreamInfo {
        name: r.name,
        profile: r.profile,
        enabled: r.enabled,
        created_at_ms: r.created_at_ms,
        live: !origins.is_empty(),
        origins,
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
    let routes = st.store.routes_many(&names).await?;
    Ok(Json(streams.into_iter().zip(routes).map(|(s, r)| info(s, r)).collect()))
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
    let routes = st.store.routes(&name).await?;
    Ok(Json(info(rec, routes)))
}

/// Enable/disable a stream or change its profile. Disabling ends a live
/// publish within a few seconds.
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
    let rec = st
        .store
        .update_stream(&name, req.enabled, req.profile.as_deref())
        .await?
        .ok_or_else(|| not_found(&name))?;
    tracing::info!(stream = %name, enabled = rec.enabled, profile = %rec.profile, "stream updated");
    let routes = st.store.routes(&name).await?;
    Ok(Json(info(rec, routes)))
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
    if !st.store.delete_stream(&name).await? {
        return Err(not_found(&name));
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
    if !st.store.rotate_key(&name, &keys::hash(&key)).await? {
        return Err(not_found(&name));
    }
    let rec = st.store.get_stream(&name).await?.ok_or_else(|| not_found(&name))?;
    tracing::info!(stream = %name, "stream key rotated");
    Ok(Json(StreamCreated {
        name,
        key,
        profile: rec.profile,
    }))
}
