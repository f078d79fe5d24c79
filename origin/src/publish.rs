//! One publish, from authorization to EXT-X-ENDLIST: the glue between an
//! ingest protocol (RTMP, SRT) and the transcoder and packager.
//!
//! [`Publish::begin`] asks the router API, claims the stream name on this
//! origin (a second publisher for a live name is refused), opens a new
//! session folder and starts the pipeline. [`Publish::end`] drains the
//! pipeline and writes EXT-X-ENDLIST.

use crate::metrics::Metrics;
use crate::package::session::{Observer, SessionWriter};
use crate::profiles::Profiles;
use crate::router::{AuthorizeError, RouterClient};
use crate::transcode::{Container, Counters, TranscodeError, Transcoder};
use rand::Rng;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

/// How long the end of a publish may take to flush its last fragments.
const DRAIN: Duration = Duration::from_millis(700);

#[derive(Debug, Error)]
pub enum PublishError {
    #[error(transparent)]
    Authorize(#[from] AuthorizeError),
    #[error("stream {0} is already being published on this origin")]
    AlreadyLive(String),
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
            PublishError::Authorize(AuthorizeError::Unavailable(_)) => "router_unavailable",
            PublishError::AlreadyLive(_) => "already_live",
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
    /// Cancelled when the origin shuts down; every publish's stop token is a
    /// child of it.
    pub shutdown: CancellationToken,
    live: Mutex<HashSet<String>>,
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
            metrics,
            segment_grace,
            shutdown: CancellationToken::new(),
            live: Mutex::default(),
        }
    }

    /// Names of the streams being published here now.
    pub fn live_streams(&self) -> Vec<String> {
        self.live.lock().expect("live lock").iter().cloned().collect()
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

pub struct Publish {
    ctx: Arc<OriginContext>,
    stream: String,
    writer: Arc<SessionWriter>,
    transcoder: Option<Transcoder>,
    /// Cancelled when this publish must end before its publisher leaves.
    stop: CancellationToken,
}

impl Publish {
    /// Authorizes `key` and starts a session. The key is never logged.
    pub async fn begin(ctx: &Arc<OriginContext>, key: &str, container: Container) -> Result<Publish, PublishError> {
        let auth = ctx.router.authorize(key).await?;
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
        if !ctx.live.lock().expect("live lock").insert(stream.clone()) {
            return Err(PublishError::AlreadyLive(stream));
        }
        // From here on the claim must be released on every path.
        let session = new_session_id();
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
            let writer = Arc::new(SessionWriter::new(
                &ctx.output_dir,
                &stream,
                &session,
                target,
                ctx.segment_grace,
                counters.clone(),
            )?);
            let transcoder = Transcoder::start(container, &profile, writer.clone(), counters)?;
            Ok::<_, PublishError>((writer, transcoder))
        })();
        match result {
            Ok((writer, transcoder)) => {
                ctx.metrics.streams_live.inc();
                tracing::info!(%stream, %session, profile = %auth.profile.name, "publish started");
                Ok(Publish {
                    ctx: ctx.clone(),
                    stream,
                    writer,
                    transcoder: Some(transcoder),
                    stop: ctx.shutdown.child_token(),
                })
            }
            Err(e) => {
                ctx.live.lock().expect("live lock").remove(&stream);
                Err(e)
            }
        }
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    pub fn session(&self) -> &str {
        self.writer.session()
    }

    /// Resolves when this publish must end although its publisher is still
    /// sending: the origin is shutting down, or the stream's key was revoked.
    /// Ingest loops select on it and then call [`Publish::end`].
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }

    /// Asks the ingest loop holding this publish to end it.
    pub fn stop(&self) {
        self.stop.cancel()
    }

    /// Feeds container bytes (FLV or MPEG-TS).
    pub fn push(&self, data: &[u8]) -> Result<(), PublishError> {
        match &self.transcoder {
            Some(t) => Ok(t.push(data)?),
            None => Ok(()),
        }
    }

    /// Drains the pipeline and ends every playlist (EXT-X-ENDLIST).
    pub async fn end(mut self) {
        let transcoder = self.transcoder.take();
        let writer = self.writer.clone();
        let stream = self.stream.clone();
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
            Ok(Ok(())) => tracing::info!(stream = %self.stream, session = %self.session(), "publish ended"),
            Ok(Err(e)) => tracing::error!(stream = %self.stream, error = %e, "cannot end playlists"),
            Err(e) => tracing::error!(stream = %self.stream, error = %e, "end task failed"),
        }
    }
}

impl Drop for Publish {
    fn drop(&mut self) {
        if let Some(t) = self.transcoder.take() {
            // Dropped without end(): stop the pipeline and end the playlists.
            drop(t);
            let _ = self.writer.finish();
        }
        self.ctx.live.lock().expect("live lock").remove(&self.stream);
        self.ctx.metrics.streams_live.dec();
        self.ctx
            .metrics
            .forget_stream(&self.stream, &self.writer.rendition_names());
    }
}
