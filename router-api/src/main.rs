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
mod webhooks;

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
        settings.viewer_ttl,
        metrics.redis_errors.clone(),
    )
    .context("invalid --redis URL or --redis-sentinel address")?
    .with_recording_ttl(settings.recording_ttl);
    // Not fatal: the API answers 503 until Redis is reachable.
    if let Err(e) = store.ping().await {
        tracing::warn!(error = %e, redis = ?target, "Redis is not reachable yet; answering 503 until it is");
    }

    let store = Arc::new(store);
    let hooks = webhooks::Webhooks::start(settings.webhooks(), metrics.webhook_deliveries.clone());
    // Always swept, so expired claims never linger in Redis (the events go
    // nowhere without --webhook-url).
    // The task ends with the runtime.
    tokio::spawn(webhooks::sweep(store.clone(), hooks.clone(), std::future::pending()));
    if hooks.enabled() {
        tracing::info!(urls = settings.webhook_urls.len(), "webhooks on");
    }
    let playback_keys = settings.playback_keys()?;
    if playback_keys.is_empty() {
        tracing::info!("no --playback-key: playback tokens cannot be minted");
    }
    let state_metrics = metrics.clone();
    let state = api::AppState {
        store,
        tokens: Arc::new(auth::Tokens::new(&settings.admin_token, &settings.agent_token)),
        metrics,
        playback_keys: Arc::new(playback_keys),
        webhooks: hooks,
        dashboard: Arc::new(api::dashboard::Config::new(
            settings.public_edge_url.clone(),
            settings.public_rtmp_url.clone(),
        )),
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
