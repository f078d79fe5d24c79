//! The HTTP surface: the route table, shared state and cross-cutting layers.
//!
//! Handlers are grouped by who calls them: operators ([`admin`]), origins at
//! publish time ([`ingest`]), discovery agents ([`reports`]), edges
//! ([`routing`], [`viewers`]), recordings for all of them ([`recordings`]), monitoring ([`health`]) and the operators'
//! web page ([`dashboard`]).

pub mod admin;
pub mod dashboard;
pub mod health;
pub mod ingest;
pub mod recordings;
pub mod reports;
pub mod routing;
pub mod viewers;

use crate::auth::Tokens;
use crate::error::ApiError;
use crate::metrics::{self, Metrics};
use crate::store::Store;
use crate::webhooks::Webhooks;
use api_types::playback::PlaybackKeys;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router, middleware};
use std::sync::Arc;

/// Largest request body accepted; every legitimate body is far smaller.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest viewer report: [`api_types::MAX_VIEWER_STREAMS`] entries of the
/// longest names fit.
pub const MAX_VIEWER_BODY_BYTES: usize = 128 * 1024;
/// Largest total size of request headers accepted. hyper itself stops reading
/// at about 400 KiB; this refuses anything that no client of ours would send.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refuses requests whose headers add up to more than [`MAX_HEADER_BYTES`]
/// with 431 and a JSON error.
async fn limit_headers(req: Request, next: Next) -> Response {
    let size: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if size > MAX_HEADER_BYTES {
        return ApiError::Rejected(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers too large".into(),
        )
        .into_response();
    }
    next.run(req).await
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub tokens: Arc<Tokens>,
    pub metrics: Arc<Metrics>,
    pub playback_keys: Arc<PlaybackKeys>,
    pub webhooks: Webhooks,
    pub dashboard: Arc<dashboard::Config>,
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(s: &AppState) -> Self {
        s.metrics.clone()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/admin/streams", post(admin::create).get(admin::list))
        .route(
            "/admin/streams/{name}",
            get(admin::show).patch(admin::update).delete(admin::delete),
        )
        .route("/admin/streams/{name}/key", post(admin::rotate_key))
        .route("/admin/streams/{name}/playback-tokens", post(admin::mint_token))
        .route(
            "/viewers/{edge}",
            put(viewers::put).layer(DefaultBodyLimit::max(MAX_VIEWER_BODY_BYTES)),
        )
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/", get(dashboard::page))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/app.css", get(dashboard::style))
        .route("/dashboard/config.json", get(dashboard::config))
        .route("/authorize", post(ingest::authorize))
        .route("/claims/{name}", put(ingest::renew).delete(ingest::release))
        .route(
            "/origins/{origin}/streams/{name}",
            put(reports::put).delete(reports::delete),
        )
        .route(
            "/origins/{origin}/recordings/{name}/{session}",
            put(recordings::put).delete(recordings::delete),
        )
        .route("/streams/{name}/recordings", get(recordings::list))
        .route("/recordings/{name}/{session}", get(recordings::route))
        .route("/streams", get(routing::list))
        .route("/streams/{name}", get(routing::show))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::handler))
        .route("/openapi.json", get(|| async { Json(crate::openapi::document()) }))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(limit_headers))
        .layer(middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .with_state(state)
}
