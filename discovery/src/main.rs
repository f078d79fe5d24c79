//! `discovery`: the agent that runs beside each origin.
//!
//! Data flow, one way: the filesystem watcher ([`watch`]) marks stream
//! folders dirty; the tracker ([`tracker`]) re-reads them ([`inspect`]) and
//! records what the router *should* know ([`desired`]); the reporter
//! ([`reporter`]) makes the router API know it, retrying with backoff. The
//! watcher and tracker never touch the network, so a dead router cannot slow
//! them down. Complete recordings in the folder ([`recordings`]) take the
//! same path: the tracker finds them, the reporter reports them.

mod desired;
mod inspect;
mod metrics;
mod recordings;
mod reporter;
mod settings;
mod tracker;
mod watch;

use anyhow::Context;
use clap::Parser;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = settings::Settings::parse();
    ops::init_logging(&settings.log);
    settings.check()?;

    let metrics = Arc::new(metrics::Metrics::new());
    let desired = Arc::new(desired::Desired::default());
    let dirty = Arc::new(watch::DirtySet::default());

    // Keep the watcher alive for the life of the process.
    let _watcher = watch::start(
        &settings.output_dir,
        settings.watch,
        settings.poll_interval,
        dirty.clone(),
    )
    .context("cannot watch the output folder")?;

    let tracker = tracker::Tracker::new(&settings, desired.clone(), metrics.clone());
    let tracker_dirty = dirty.clone();
    std::thread::Builder::new()
        .name("tracker".into())
        .spawn(move || tracker.run(tracker_dirty))
        .context("cannot start the tracker thread")?;

    let reporter = reporter::Reporter::new(&settings, desired, metrics.clone())?;
    tokio::spawn(reporter.run());

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    tracing::info!(
        listen = %settings.listen,
        output_dir = %settings.output_dir.display(),
        origin = %settings.origin_id,
        "discovery agent running"
    );
    let conns = metrics.connections();
    ops::http::serve(
        listener,
        metrics::router(metrics),
        &settings.http,
        Some(conns),
        ops::shutdown_signal(),
    )
    .await
    .context("HTTP server failed")?;
    Ok(())
}
