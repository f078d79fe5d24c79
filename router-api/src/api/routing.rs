//! Routing for edges: which origins hold a live stream.

use super::AppState;
use crate::error::{ApiError, ApiPath};
use crate::store::Live;
use api_types::{ErrorBody, Route, validate_name};
use axum::Json;
use axum::extract::State;

fn route(name: String, live: Live) -> Option<Route> {
    let preferred = live.origins.first()?;
    Some(Route {
        manifest: preferred.manifest.clone(),
        host: preferred.host.clone(),
        name,
        origins: live.origins,
        playback: live.playback,
        viewers: live.viewers,
    })
}

/// Where to play a live stream from: the preferred origin (`host`,
/// `manifest`: the newest session) and every live origin holding it, the
/// stream's playback policy (edges check tokens when it is `token`) and its
/// viewers over all edges.
#[utoipa::path(get, path = "/streams/{name}", tag = "routing",
    params(("name" = String, Path)),
    responses((status = 200, body = Route), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not live anywhere"), (status = 503, body = ErrorBody)))]
pub async fn show(State(st): State<AppState>, ApiPath(name): ApiPath<String>) -> Result<Json<Route>, ApiError> {
    validate_name("stream name", &name)?;
    let live = st.store.live(&name).await?;
    route(name.clone(), live)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("stream {name} is not live")))
}

/// Every live stream with its routes.
#[utoipa::path(get, path = "/streams", tag = "routing",
    responses((status = 200, body = Vec<Route>), (status = 503, body = ErrorBody)))]
pub async fn list(State(st): State<AppState>) -> Result<Json<Vec<Route>>, ApiError> {
    let names = st.store.live_stream_names().await?;
    let routes = st.store.live_many(&names).await?;
    Ok(Json(
        names.into_iter().zip(routes).filter_map(|(n, o)| route(n, o)).collect(),
    ))
}
