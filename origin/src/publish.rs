//! One publish, from authorization to EXT-X-ENDLIST: the glue between an
//! ingest protocol (RTMP, SRT) and the transcoder and packager.
//!
//! [`Publish::begin`] asks the router API (which claims the stream for this
//! origin: one origin per stream at a time), claims the stream name on this
//! origin (a second publisher for a live name is refused), opens a new
//! session folder, starts the pipeline and a lifecycle task.
//!
//! The lifecycle task owns the end of the publish, whoever asks for it: the
//! ingest loop ([`Publish::end`], or dropping the [`Publish`]), a refused
//! claim renewal (the key was disabled, deleted or rotated, or another origin
//! holds the stream), a router that has not confirmed the claim for
//! `claim_grace`, or the origin's shutdown. It drains the pipeline, writes
//! EXT-X-ENDLIST, frees the name and gives the claim back. Once a publish is
//! stopped, [`Publish::push`] fails with [`PublishError::Stopped`], so even an
//! ingest loop that does not watch [`Publish::stopped`] drops its publisher.

use crate::metrics::Metrics;
use crate::package::live::Live;
use crate::package::session::{LowLatency, Observer, SessionWriter};
use crate::profiles::Profiles;
use crate::router::{AuthorizeError, Renewal, RouterClient};
use crate::transcode::thumbnail::Thumbnails;
use crate::transcode::{Container, Counters, TranscodeError, Transcoder};
use rand::Rng;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long the end of a publish may take to flush its last fragments.
const DRAIN: Duration = Duration::from_millis(700);
/// How often a live publish renews its claim with the router API (the
/// router's claim lives 6 s, and another origin may take it over after
/// 1.6 s without a renewal).
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How long a publish waits for a stream claimed by another origin: longer
/// than the router's claim lifetime, so a publisher that moves from an origin
/// that died gets in as soon as the router lets it take the dead origin's
/// claim over (1.6 s after its last renewal), while one racing a live origin
/// (which renews) is refused.
pub const CLAIM_WAIT: Duration = Duration::from_secs(7);
/// How often a waiting publish asks again: the claim is taken over within
/// this of the moment the router allows it.
const CLAIM_RETRY: Duration = Duration::from_millis(250);

#[derive(Debug, Error)]
pub enum PublishError {
    #[error(transparent)]
    Authorize(#[from] AuthorizeError),
    #[error("stream {0} is already being published on this origin")]
    AlreadyLive(String),
    #[error("the output folder is over --max-disk")]
    DiskFull,
    #[error("the origin is shutting down")]
    ShuttingDown,
    #[error("the publish has been stopped")]
    Stopped,
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Transcode(#[from] TranscodeError),
}

impl PublishError {
    /// Label for `origin_publishers_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            PublishError::Authorize(AuthorizeError::Refused) => "key_refused",
            PublishError::Authorize(AuthorizeError::ClaimedElsewhere) => "claimed_elsewhere",
            PublishError::Authorize(AuthorizeError::Unavailable(_)) => "router_unavailable",
            PublishError::AlreadyLive(_) => "already_live",
            PublishError::DiskFull => "disk_full",
            PublishError::ShuttingDown => "shutting_down",
            PublishError::Stopped => "stopped",
            PublishError::Io(_) => "io",
            PublishError::Transcode(_) => "pipeline",
        }
    }
}

/// Everything a publish needs from the origin.
pub struct OriginContext {
    pub output_dir: PathBuf,
    pub profiles: Profiles,
    pub router: RouterClient,
    pub metrics: Arc<Metrics>,
    pub segment_grace: Duration,
    /// How long a live publish goes on while the router API gives no
    /// definitive answer to its claim renewals (unreachable, 5xx).
    pub claim_grace: Duration,
    /// Cancelled when the origin shuts down; every publish's stop token is a
    /// child of it.
    pub shutdown: CancellationToken,
    /// Every publish's lifecycle task; shutdown waits for them (each ends
    /// its playlists).
    pub tasks: TaskTracker,
    /// Set by the janitor while the output folder is over `--max-disk` with
    /// nothing left to remove: new publishes are refused.
    disk_full: AtomicBool,
    /// Stream name -> session, for the publishes live here now.
    live: Mutex<HashMap<String, String>>,
    /// Every live rendition's playlist state, for the HTTP server's
    /// blocking requests (LL-HLS).
    pub playlists: Arc<Live>,
    /// Live thumbnails (`--thumbnails`), and their max-age per stream.
    pub thumbnails: Arc<Thumbnails>,
}

impl OriginContext {
    pub fn new(
        output_dir: PathBuf,
        profiles: Profiles,
        router: RouterClient,
        metrics: Arc<Metrics>,
        segment_grace: Duration,
    ) -> OriginContext {
        OriginContext {
            output_dir,
            profiles,
            router,
            metrics: metrics.clone(),
            segment_grace,
            claim_grace: Duration::from_secs(30),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            disk_full: AtomicBool::new(false),
            live: Mutex::default(),
            playlists: Live::new(),
            thumbnails: Arc::new(Thumbnails::new(true, metrics.clone(), Duration::from_secs(2))),
        }
    }

    /// Names of the streams being published here now.
    pub fn live_streams(&self) -> Vec<String> {
        self.live.lock().expect("live lock").keys().cloned().collect()
    }

    /// (stream, session) of every publish live here now.
    pub fn live_sessions(&self) -> Vec<(String, String)> {
        self.live
            .lock()
            .expect("live lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether new publishes are refused for lack of disk (see the janitor).
    pub fn disk_full(&self) -> bool {
        self.disk_full.load(Ordering::Relaxed)
    }

    pub fn set_disk_full(&self, full: bool) {
        self.disk_full.store(full, Ordering::Relaxed);
    }
}

/// A new session id: milliseconds since the epoch in hex (so sessions sort
/// by start) and 32 random bits (so two origins never collide).
pub fn new_session_id() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{ms:x}{:08x}", rand::rng().random::<u32>())
}

/// Per-stream counters, fed from GStreamer threads.
struct StreamCounters {
    stream: String,
    metrics: Arc<Metrics>,
    started: SystemTime,
}

impl Counters for StreamCounters {
    fn frame_in(&self) {
        self.metrics.frames_in.with_label_values(&[&self.stream]).inc();
    }
    fn frame_out(&self, rendition: &str) {
        self.metrics
            .frames_out
            .with_label_values(&[&self.stream, rendition])
            .inc();
    }
}

impl Observer for StreamCounters {
    fn segment_written(&self, rendition: &str, _duration: Duration, end: Duration) {
        self.metrics
            .segments_written
            .with_label_values(&[&self.stream, rendition])
            .inc();
        let wall = self.started.elapsed().unwrap_or_default();
        self.metrics
            .encoder_lag
            .with_label_values(&[&self.stream])
            .set(wall.saturating_sub(end).as_secs_f64());
    }
}

/// What the [`Publish`] handle and its lifecycle task share.
struct Shared {
    ctx: Arc<OriginContext>,
    stream: String,
    session: String,
    writer: Arc<SessionWriter>,
    /// Taken (and drained) once, when the publish ends.
    transcoder: Mutex<Option<Transcoder>>,
    /// Cancelled when this publish must end.
    stop: CancellationToken,
}

pub struct Publish {
    shared: Arc<Shared>,
    lifecycle: Option<JoinHandle<()>>,
}

impl Publish {
    /// Authorizes `key` and starts a session. The key is never logged.
    pub async fn begin(ctx: &Arc<OriginContext>, key: &str, container: Container) -> Result<Publish, PublishError> {
        if ctx.shutdown.is_cancelled() {
            return Err(PublishError::ShuttingDown);
        }
        if ctx.disk_full() {
            tracing::warn!("publish refused: the output folder is over --max-disk");
            return Err(PublishError::DiskFull);
        }
        let session = new_session_id();
        let auth = authorize(ctx, key, &session).await?;
        let stream = auth.name;
        let profile = match ctx.profiles.get(&auth.profile.name) {
            Some(p) => p.clone(),
            None => {
                tracing::warn!(%stream, profile = %auth.profile.name, "unknown profile; using default");
                ctx.profiles
                    .get("default")
                    .cloned()
                    .unwrap_or_else(|| crate::profiles::Profiles::builtin().profiles["default"].clone())
            }
        };
        {
            let mut live = ctx.live.lock().expect("live lock");
            if live.contains_key(&stream) {
                // The claim stays with the publish live here (authorizing
                // again kept its session): it renews and releases it.
                return Err(PublishError::AlreadyLive(stream));
            }
            // Checked under the lock shutdown's drain starts from: a publish
            // authorized while the origin began shutting down never starts.
            if ctx.shutdown.is_cancelled() {
                drop(live);
                release_later(ctx, &stream, &session);
                return Err(PublishError::ShuttingDown);
            }
            live.insert(stream.clone(), session.clone());
        }
        // From here on the name and the claim must be released on every path.
        let result = (|| {
            // Passthrough cuts at the source's keyframes: allow for longer GOPs.
            let target = if profile.passthrough {
                profile.segment_duration * 3
            } else {
                profile.segment_duration
            };
            let counters = Arc::new(StreamCounters {
                stream: stream.clone(),
                metrics: ctx.metrics.clone(),
                started: SystemTime::now(),
            });
            let writer = Arc::new(
                SessionWriter::new(
                    &ctx.output_dir,
                    &stream,
                    &session,
                    target,
                    profile.part_target.map(|part_target| LowLatency {
                        part_target,
                        segment: profile.segment_duration,
                    }),
                    ctx.segment_grace,
                    counters.clone(),
                    ctx.playlists.clone(),
                )?
                .with_dvr_window(profile.dvr_window)
                .recording(auth.record)?,
            );
            let thumbnails = ctx
                .thumbnails
                .writer(&ctx.output_dir, &stream, profile.segment_duration);
            let transcoder = Transcoder::start(container, &profile, writer.clone(), counters, thumbnails)?;
            Ok::<_, PublishError>((writer, transcoder))
        })();
        let (writer, transcoder) = match result {
            Ok(r) => r,
            Err(e) => {
                ctx.live.lock().expect("live lock").remove(&stream);
                release_later(ctx, &stream, &session);
                return Err(e);
            }
        };
        ctx.metrics.streams_live.inc();
        tracing::info!(%stream, %session, profile = %auth.profile.name, record = auth.record, "publish started");
        let shared = Arc::new(Shared {
            ctx: ctx.clone(),
            stream,
            session,
            writer,
            transcoder: Mutex::new(Some(transcoder)),
            stop: ctx.shutdown.child_token(),
        });
        let lifecycle = ctx.tasks.spawn(lifecycle(shared.clone(), key.to_string()));
        Ok(Publish {
            shared,
            lifecycle: Some(lifecycle),
        })
    }

    pub fn stream(&self) -> &str {
        &self.shared.stream
    }

    pub fn session(&self) -> &str {
        &self.shared.session
    }

    /// Resolves when this publish must end although its publisher is still
    /// sending: the origin is shutting down, or the stream's key was revoked.
    /// Ingest loops select on it and then call [`Publish::end`].
    pub async fn stopped(&self) {
        self.shared.stop.cancelled().await
    }

    /// Whether [`Publish::stopped`] has resolved (for ingest loops that poll).
    pub fn is_stopped(&self) -> bool {
        self.shared.stop.is_cancelled()
    }

    /// Ends this publish (its lifecycle task drains it and writes
    /// EXT-X-ENDLIST); the ingest loop holding it should close its publisher.
    pub fn stop(&self) {
        self.shared.stop.cancel()
    }

    /// Feeds container bytes (FLV or MPEG-TS). Fails with
    /// [`PublishError::Stopped`] once the publish has been stopped.
    pub fn push(&self, data: &[u8]) -> Result<(), PublishError> {
        match self.shared.transcoder.lock().expect("transcoder lock").as_ref() {
            Some(t) => Ok(t.push(data)?),
            None => Err(PublishError::Stopped),
        }
    }

    /// Ends the publish and waits until its playlists carry EXT-X-ENDLIST.
    pub async fn end(mut self) {
        self.shared.stop.cancel();
        if let Some(h) = self.lifecycle.take()
            && let Err(e) = h.await
        {
            tracing::error!(stream = %self.shared.stream, error = %e, "publish end task failed");
        }
    }
}

impl Drop for Publish {
    fn drop(&mut self) {
        // Dropped without end(): the lifecycle task ends it in the background.
        self.shared.stop.cancel();
    }
}

/// Gives the claim back in the background (shutdown waits for it).
fn release_later(ctx: &OriginContext, stream: &str, session: &str) {
    let (router, stream, session) = (ctx.router.clone(), stream.to_string(), session.to_string());
    ctx.tasks.spawn(async move { router.release(&stream, &session).await });
}

/// Authorizes `key`, waiting up to [`CLAIM_WAIT`] while another origin
/// holds the stream's claim (it may have died; its claim then expires).
async fn authorize(
    ctx: &OriginContext,
    key: &str,
    session: &str,
) -> Result<api_types::AuthorizeResponse, PublishError> {
    let deadline = Instant::now() + CLAIM_WAIT;
    let mut logged = false;
    loop {
        match ctx.router.authorize(key, session).await {
            Err(AuthorizeError::ClaimedElsewhere) if Instant::now() < deadline => {
                if !logged {
                    tracing::info!(%session, "stream claimed by another origin; waiting for the claim to expire");
                    logged = true;
                }
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => return Err(PublishError::ShuttingDown),
                    // A retry interval, not a readiness wait.
                    _ = tokio::time::sleep(CLAIM_RETRY) => {}
                }
            }
            r => return Ok(r?),
        }
    }
}

/// Renews the claim every [`RENEW_EVERY`] until the publish is stopped or the
/// router refuses the claim; then ends the publish.
async fn lifecycle(sh: Arc<Shared>, key: String) {
    let ctx = &sh.ctx;
    let mut last_held = Instant::now();
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; authorize just claimed
    loop {
        let answer = tokio::select! {
            _ = sh.stop.cancelled() => break,
            _ = tick.tick() => tokio::select! {
                _ = sh.stop.cancelled() => break,
                a = ctx.router.renew(&sh.stream, &key, &sh.session) => a,
            },
        };
        let reason = match answer {
            Ok(Renewal::Held) => {
                last_held = Instant::now();
                continue;
            }
            Ok(Renewal::Revoked) => {
                tracing::warn!(stream = %sh.stream, session = %sh.session,
                    "ending publish: the stream's key was disabled, deleted or rotated");
                "revoked"
            }
            Ok(Renewal::ClaimedElsewhere) => {
                tracing::warn!(stream = %sh.stream, session = %sh.session,
                    "ending publish: another origin holds the stream");
                "claimed_elsewhere"
            }
            Err(e) if last_held.elapsed() >= ctx.claim_grace => {
                tracing::warn!(stream = %sh.stream, session = %sh.session, error = %e,
                    grace = ?ctx.claim_grace, "ending publish: the router API has not confirmed the claim within the grace");
                "router_unavailable"
            }
            Err(e) => {
                tracing::warn!(stream = %sh.stream, error = %e, "claim renewal failed; publishing on");
                continue;
            }
        };
        ctx.metrics.publishers_refused.with_label_values(&[reason]).inc();
        break;
    }
    sh.stop.cancel();
    let transcoder = sh.transcoder.lock().expect("transcoder lock").take();
    let (writer, stream) = (sh.writer.clone(), sh.stream.clone());
    let done = tokio::task::spawn_blocking(move || {
        if let Some(t) = transcoder {
            if let Some(e) = t.error() {
                tracing::warn!(%stream, error = %e, "pipeline had failed");
            }
            t.finish(DRAIN);
        }
        writer.finish()
    })
    .await;
    match done {
        Ok(Ok(())) => tracing::info!(stream = %sh.stream, session = %sh.session, "publish ended"),
        Ok(Err(e)) => tracing::error!(stream = %sh.stream, error = %e, "cannot end playlists"),
        Err(e) => tracing::error!(stream = %sh.stream, error = %e, "end task failed"),
    }
    {
        let mut live = ctx.live.lock().expect("live lock");
        if live.get(&sh.stream) == Some(&sh.session) {
            live.remove(&sh.stream);
        }
    }
    ctx.metrics.streams_live.dec();
    ctx.metrics.forget_stream(&sh.stream, &sh.writer.rendition_names());
    if let Err(e) = ctx.router.release(&sh.stream, &sh.session).await {
        tracing::info!(stream = %sh.stream, error = %e, "cannot release the claim; it expires by itself");
    }
}
