//! `router-api`: the binary. Parses settings, connects the pieces, serves
//! HTTP until SIGTERM/SIGINT, then drains in-flight requests.

mod api;
mod auth;
mod error;
mod keys;
mod metrics;
mod openapi;
mod redis_conn;
mod settings;
mod store;

use anyhow::Context;
use clap::Parser;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = settings::Settings::parse();
    ops::init_logging(&settings.log);
    settings.check()?;

    let metrics = Arc::new(metrics::Metrics::new());
    let target = settings.redis_target();
    let store = store::Store::new(
        &target,
        &settings.redis_prefix,
        settings.redis_timeout,
        settings.report_ttl,
        metrics.redis_errors.clone(),
    )
    .context("invalid --redis URL or --redis-sentinel address")?;
    // Not fatal: the API answers 503 until Redis is reachable.
    if let Err(e) = store.ping().await {
        tracing::warn!(error = %e, redis = ?target, "Redis is not reachable yet; answering 503 until it is");
    }

    let state_metrics = metrics.clone();
    let state = api::AppState {
        store: Arc::new(store),
        tokens: Arc::new(auth::Tokens::new(&settings.admin_token, &settings.agent_token)),
        metrics,
    };
    let app = api::router(state);

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "router-api listening");
    let conns = state_metrics.connections();
    ops::http::serve(listener, app, &settings.http, Some(conns), ops::shutdown_signal())
        .await
        .context("HTTP server failed")?;
    tracing::info!("router-api stopped");
    Ok(())
}
