//! The origin as a library call, in mini-redis's shape:
//! [`run`]`(settings, listeners, shutdown)` serves until `shutdown`
//! resolves, then ends every publish with EXT-X-ENDLIST and returns. The
//! binary is a thin wrapper around it; tests can run it in-process.
//!
//! Shutdown order: the context's shutdown token is cancelled (new publishes
//! are refused, every publish's stop token fires, the RTMP server and the
//! SRT listener stop accepting); the publishes' lifecycle tasks drain their
//! pipelines and write EXT-X-ENDLIST; then the RTMP server (which returns
//! once its connections have ended), the SRT listener thread and the janitor
//! are waited for; HTTP goes last, so the last playlists can still be read.
//! Every wait is bounded by [`SHUTDOWN_TIMEOUT`]. A pipeline drain still
//! running on a blocking thread after that is not waited for here: the
//! binary drops its runtime with `shutdown_timeout`, so nothing wedged in
//! GStreamer or libsrt can stop the process exiting.

use crate::janitor::{self, DiskMetrics};
use crate::metrics::Metrics;
use crate::profiles::Profiles;
use crate::publish::OriginContext;
use crate::router::RouterClient;
use crate::settings::Settings;
use crate::transcode::thumbnail::Thumbnails;
use crate::{ingest, serve, transcode};
use anyhow::Context;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

/// The longest a shutdown waits for publishes and servers to end.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the RTMP server gets to return once the publishes have ended.
const RTMP_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// The TCP listeners, bound before [`run`] (tests bind port 0). SRT binds
/// its own UDP socket inside `srtsrc`, from `--srt-listen`.
pub struct Listeners {
    pub rtmp: TcpListener,
    pub http: TcpListener,
}

impl Listeners {
    /// Binds `--rtmp-listen` and `--http-listen`.
    pub async fn bind(s: &Settings) -> anyhow::Result<Listeners> {
        let rtmp = TcpListener::bind(s.rtmp_listen)
            .await
            .with_context(|| format!("cannot listen for RTMP on {}", s.rtmp_listen))?;
        let http = TcpListener::bind(s.http_listen)
            .await
            .with_context(|| format!("cannot listen for HTTP on {}", s.http_listen))?;
        Ok(Listeners { rtmp, http })
    }
}

/// Runs the origin until `shutdown` resolves; see the module doc.
pub async fn run(s: Settings, listeners: Listeners, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    transcode::init()?;
    if s.thumbnails {
        transcode::thumbnail::check_elements()?;
    }
    let profiles = Profiles::load(s.profiles.as_deref())?
        .with_default_dvr_window(s.dvr_window)
        .context("--dvr-window")?;
    std::fs::create_dir_all(&s.output_dir)
        .with_context(|| format!("cannot create --output-dir {}", s.output_dir.display()))?;
    // Recordings cut short by a crash, finalized before any publish starts.
    let out = s.output_dir.clone();
    let recovered = tokio::task::spawn_blocking(move || crate::package::vod::recover(&out)).await?;
    if recovered > 0 {
        tracing::info!(recovered, "recordings cut short finalized");
    }
    let metrics = Arc::new(Metrics::new());
    let disk = DiskMetrics::register(&metrics.registry)?;
    let router = RouterClient::new(&s.router, &s.agent_token, &s.origin_id, s.router_timeout)?;
    let target = profiles
        .get("default")
        .map_or(2, |p| p.segment_duration.as_secs().max(1));
    let mut ctx = OriginContext::new(s.output_dir.clone(), profiles, router, metrics.clone(), s.segment_grace);
    ctx.claim_grace = s.claim_grace;
    ctx.thumbnails = Arc::new(Thumbnails::new(
        s.thumbnails,
        metrics.clone(),
        Duration::from_secs(target),
    ));
    let ctx = Arc::new(ctx);

    let (rtmp_addr, http_addr) = (listeners.rtmp.local_addr()?, listeners.http.local_addr()?);
    let rtmp = tokio::spawn(ingest::rtmp::serve(listeners.rtmp, ctx.clone(), s.rtmp_limits.clone()));
    let srt = match s.srt_listen {
        Some(addr) => Some(ingest::srt::start(addr, ctx.clone()).context("cannot start the SRT listener")?),
        None => None,
    };
    let retention = janitor::Retention {
        ended: s.retain_ended,
        recordings: s.recording_retention,
    };
    let janitor = tokio::spawn(janitor::run(ctx.clone(), retention, s.max_disk, disk));
    let mut state = serve::ServeState::new(
        s.output_dir.clone(),
        metrics,
        // Half a target duration, in whole seconds (at least 1).
        (target / 2).max(1),
        ctx.playlists.clone(),
        s.max_held_requests,
    );
    state.thumbnails = ctx.thumbnails.clone();
    let http_stop = CancellationToken::new();
    let (limits, stop) = (s.http.clone(), http_stop.clone());
    let http = tokio::spawn(async move { serve::run(listeners.http, state, &limits, stop.cancelled_owned()).await });
    tracing::info!(
        origin = %s.origin_id, rtmp = %rtmp_addr, srt = ?s.srt_listen, http = %http_addr,
        output = %s.output_dir.display(), max_disk = ?s.max_disk, "origin running"
    );

    shutdown.await;
    tracing::info!(live = ctx.live_streams().len(), "shutting down: ending every publish");
    let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
    ctx.shutdown.cancel();
    ctx.tasks.close();
    if timeout_at(deadline, ctx.tasks.wait()).await.is_err() {
        tracing::warn!("publishes did not end within {SHUTDOWN_TIMEOUT:?}");
    }
    let rtmp_abort = rtmp.abort_handle();
    if timeout_at(deadline.min(Instant::now() + RTMP_STOP_TIMEOUT), rtmp)
        .await
        .is_err()
    {
        tracing::warn!("the RTMP server did not return in time; closing it");
        rtmp_abort.abort();
    }
    if let Some(thread) = srt {
        // Polled, not joined on a blocking task: a join that outlived the
        // timeout would hold the runtime's shutdown for ever.
        while !thread.is_finished() && Instant::now() < deadline {
            // A poll interval, bounded by the deadline.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !thread.is_finished() || thread.join().is_err() {
            tracing::warn!("the SRT listener did not stop cleanly");
        }
    }
    let _ = timeout_at(deadline, janitor).await;
    http_stop.cancel();
    match timeout_at(deadline, http).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e).context("HTTP server failed"),
        _ => tracing::warn!("the HTTP server did not stop in time"),
    }
    tracing::info!("origin stopped");
    Ok(())
}
