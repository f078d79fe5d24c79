//! Command-line settings, each with an environment-variable fallback.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Dionysia origin: takes RTMP and SRT publishers, checks their stream key
/// with the router API, transcodes an ABR ladder with GStreamer, writes CMAF
/// HLS to --output-dir and serves it over HTTP.
///
/// Publish with OBS to server `rtmp://HOST:1935/live` with the stream key, or
/// `ffmpeg ... -f flv rtmp://HOST:1935/live/KEY`; over SRT with
/// `srt://HOST:PORT?streamid=KEY` (MPEG-TS). Playback:
/// `http://HOST:HTTP_PORT/{stream}/index.m3u8`.
///
/// Every setting can be given as a flag or as the environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "origin", version)]
pub struct Settings {
    /// This origin's id, as the router API and discovery agent know it.
    #[arg(long, env = "ORIGIN_ID")]
    pub origin_id: String,

    /// RTMP listen address.
    #[arg(long, env = "ORIGIN_RTMP_LISTEN", default_value = "0.0.0.0:1935")]
    pub rtmp_listen: SocketAddr,

    /// SRT listen address (MPEG-TS inside, stream key in the streamid). Off
    /// when not set.
    #[arg(long, env = "ORIGIN_SRT_LISTEN")]
    pub srt_listen: Option<SocketAddr>,

    /// HTTP listen address: HLS output, /healthz, /metrics.
    #[arg(long, env = "ORIGIN_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,

    /// Folder the HLS output is written to (created if missing).
    #[arg(long, env = "ORIGIN_OUTPUT_DIR")]
    pub output_dir: PathBuf,

    /// Router API base URL.
    #[arg(long, env = "ORIGIN_ROUTER", default_value = "http://127.0.0.1:8090")]
    pub router: reqwest::Url,

    /// Agent token presented to the router API.
    #[arg(long, env = "ROUTER_AGENT_TOKEN", hide_env_values = true)]
    pub agent_token: String,

    /// TOML file of transcoding ladders (built-in when absent: `default`,
    /// `low` and `passthrough` with low-latency HLS parts, `plain`: the
    /// source as plain HLS).
    #[arg(long, env = "ORIGIN_PROFILES")]
    pub profiles: Option<PathBuf>,

    /// How long a segment stays on disk after leaving the playlist window.
    #[arg(long, env = "ORIGIN_SEGMENT_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub segment_grace: Duration,

    /// Most requests held open at once (LL-HLS blocking playlist reloads and
    /// requests for parts not written yet); past it, such requests are
    /// answered 503 with Retry-After at once. Each also holds a connection
    /// (see --http-max-connections).
    #[arg(long, env = "ORIGIN_MAX_HELD_REQUESTS", default_value_t = 4096)]
    pub max_held_requests: usize,

    /// How long an ended stream's output stays on disk (sessions not
    /// recorded; see --recording-retention).
    #[arg(long, env = "ORIGIN_RETAIN_ENDED", default_value = "60s", value_parser = humantime::parse_duration)]
    pub retain_ended: Duration,

    /// How long a recording (a session of a stream with `record` set: its
    /// segments, VOD playlists and recording.json) stays on disk, counted
    /// from the session's end. --max-disk counts recordings and removes the
    /// oldest after every ended session that is not one.
    #[arg(long, env = "ORIGIN_RECORDING_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub recording_retention: Duration,

    /// DVR (time-shift) window of every profile that sets no `dvr_window`
    /// of its own (the built-in ones included), e.g. `2h`: media playlists
    /// list that much media and segments stay on disk that long. At most
    /// 24h; 0 or absent: the live window.
    #[arg(long, env = "ORIGIN_DVR_WINDOW", value_parser = humantime::parse_duration)]
    pub dvr_window: Option<Duration>,

    /// Bound on the bytes under --output-dir, e.g. `20GiB` or `500MB` (off
    /// when not set). When a sweep finds more, ended sessions are removed
    /// before their retention, the one that ended longest ago first; if the
    /// live sessions alone are over it, new publishes are refused (live ones
    /// go on) until the folder is under it again.
    #[arg(long, env = "ORIGIN_MAX_DISK", value_parser = parse_bytes)]
    pub max_disk: Option<u64>,

    /// How long a live publish goes on while the router API does not answer
    /// its claim renewals (unreachable, 5xx). A renewal the router refuses
    /// (key disabled, deleted or rotated; stream live on another origin) ends
    /// the publish at once.
    #[arg(long, env = "ORIGIN_CLAIM_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub claim_grace: Duration,

    /// Time limit of an authorization request to the router API.
    #[arg(long, env = "ORIGIN_ROUTER_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub router_timeout: Duration,

    /// Make live thumbnails (`{stream}/thumbnail.jpg`, 640 px wide, and
    /// `thumbnail-small.jpg`, 160 px) from the keyframe starting each segment
    /// of the first video rendition (the source for passthrough): `true` or
    /// `false`.
    #[arg(long, env = "ORIGIN_THUMBNAILS", default_value_t = true, action = clap::ArgAction::Set)]
    pub thumbnails: bool,

    #[command(flatten)]
    pub rtmp_limits: crate::ingest::rtmp::RtmpLimits,

    #[command(flatten)]
    pub http: ops::http::HttpLimits,

    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "ORIGIN_LOG", default_value = "info")]
    pub log: String,
}

/// Parses a byte count with an optional unit (`20GiB`, `500MB`, `4096`).
fn parse_bytes(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>().map(|b| b.as_u64())
}

impl Settings {
    pub fn check(&self) -> anyhow::Result<()> {
        api_types::validate_name("origin id", &self.origin_id)?;
        anyhow::ensure!(
            !self.agent_token.is_empty(),
            "the agent token (ROUTER_AGENT_TOKEN) is empty"
        );
        anyhow::ensure!(
            matches!(self.router.scheme(), "http" | "https"),
            "--router must be an http(s) URL"
        );
        Ok(())
    }
}
