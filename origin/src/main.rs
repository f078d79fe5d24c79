//! `origin`: the binary. Wires ingest (RTMP, SRT), the shared publish
//! context, the HTTP server and the janitor; stops on SIGTERM/SIGINT.

use anyhow::Context;
use clap::Parser;
use origin::metrics::Metrics;
use origin::profiles::Profiles;
use origin::publish::OriginContext;
use origin::router::RouterClient;
use origin::settings::Settings;
use origin::{ingest, janitor, serve, transcode};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = Settings::parse();
    ops::init_logging(&s.log);
    s.check()?;
    transcode::init()?;
    let profiles = Profiles::load(s.profiles.as_deref())?;
    std::fs::create_dir_all(&s.output_dir)
        .with_context(|| format!("cannot create --output-dir {}", s.output_dir.display()))?;
    let metrics = Arc::new(Metrics::new());
    let router = RouterClient::new(&s.router, &s.agent_token, &s.origin_id, s.router_timeout)?;
    let target = profiles
        .get("default")
        .map_or(2, |p| p.segment_duration.as_secs().max(1));
    let ctx = Arc::new(OriginContext::new(
        s.output_dir.clone(),
        profiles,
        router,
        metrics.clone(),
        s.segment_grace,
    ));

    let rtmp = tokio::net::TcpListener::bind(s.rtmp_listen)
        .await
        .with_context(|| format!("cannot listen for RTMP on {}", s.rtmp_listen))?;
    tokio::spawn(ingest::rtmp::serve(rtmp, ctx.clone()));
    if let Some(addr) = s.srt_listen {
        ingest::srt::start(addr, ctx.clone()).context("cannot start the SRT listener")?;
    }
    tokio::spawn(janitor::run(ctx.clone(), s.retain_ended));

    let http = tokio::net::TcpListener::bind(s.http_listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", s.http_listen))?;
    let state = serve::ServeState {
        output_dir: Arc::new(s.output_dir.clone()),
        metrics,
        // Half a target duration, in whole seconds (at least 1).
        playlist_max_age: (target / 2).max(1),
    };
    tracing::info!(
        origin = %s.origin_id, rtmp = %s.rtmp_listen, srt = ?s.srt_listen, http = %s.http_listen,
        output = %s.output_dir.display(), "origin running"
    );
    serve::run(http, state, &s.http, ops::shutdown_signal()).await?;
    Ok(())
}
