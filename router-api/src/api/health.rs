//! Liveness and readiness probes.

use super::AppState;
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

/// The process is up (says nothing about Redis).
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Redis answers: the API can do its work.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200), (status = 503)))]
pub async fn readyz(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    st.store.ping().await?;
    Ok(Json(json!({"status": "ready"})))
}
