//! Command-line settings, each with an environment-variable fallback.

use api_types::{validate_host_port, validate_name};
use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the output folder is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchMode {
    /// inotify, falling back to polling if it cannot be set up.
    Auto,
    /// inotify only (fail if unavailable).
    Inotify,
    /// Poll the folder (for filesystems without change events, e.g. NFS).
    Poll,
}

/// Dionysia discovery agent: watches an origin's HLS output folder and keeps
/// the router API told which streams are live on that origin.
///
/// Every setting can be given as a flag or as the environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "discovery", version)]
pub struct Settings {
    /// The origin's id, as the router API knows it ([a-z0-9][a-z0-9_-]{0,63}).
    #[arg(long, env = "DISCOVERY_ORIGIN_ID")]
    pub origin_id: String,

    /// The origin's HLS output folder (the origin's --output-dir).
    #[arg(long, env = "DISCOVERY_OUTPUT_DIR")]
    pub output_dir: PathBuf,

    /// `host:port` at which edges reach this origin's HTTP server.
    #[arg(long, env = "DISCOVERY_ADVERTISE")]
    pub advertise: String,

    /// Router API base URL.
    #[arg(long, env = "DISCOVERY_ROUTER", default_value = "http://127.0.0.1:8090")]
    pub router: reqwest::Url,

    /// Agent token presented to the router API.
    #[arg(long, env = "ROUTER_AGENT_TOKEN", hide_env_values = true)]
    pub agent_token: String,

    /// Address for /healthz and /metrics.
    #[arg(long, env = "DISCOVERY_LISTEN", default_value = "127.0.0.1:9102")]
    pub listen: SocketAddr,

    /// Interval between re-reports of a live stream. The agent uses at most a
    /// third of the router's report TTL, whatever is set here.
    #[arg(long, env = "DISCOVERY_HEARTBEAT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,

    /// A stream whose playlists have not changed for this long is considered
    /// over. Default: 1.5 target durations, read from its media playlists.
    #[arg(long, env = "DISCOVERY_STALE_AFTER", value_parser = humantime::parse_duration)]
    pub stale_after: Option<Duration>,

    /// How to watch the output folder.
    #[arg(long, env = "DISCOVERY_WATCH", value_enum, default_value = "auto")]
    pub watch: WatchMode,

    /// Polling interval when polling (--watch poll, or auto without inotify).
    #[arg(long, env = "DISCOVERY_POLL_INTERVAL", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,

    /// Interval of a full re-scan of the folder, a safety net for missed events.
    #[arg(long, env = "DISCOVERY_RESCAN", default_value = "5s", value_parser = humantime::parse_duration)]
    pub rescan: Duration,

    /// Most recordings (`{stream}/{session}/recording.json`) this agent
    /// tracks and reports; past it, more are counted in the metric
    /// `discovery_recordings_untracked` and not reported.
    #[arg(long, env = "DISCOVERY_MAX_RECORDINGS", default_value_t = 2000)]
    pub max_recordings: usize,

    /// Time limit of one request to the router API.
    #[arg(long, env = "DISCOVERY_REQUEST_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    #[command(flatten)]
    pub http: ops::http::HttpLimits,

    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "DISCOVERY_LOG", default_value = "info")]
    pub log: String,
}

impl Settings {
    pub fn check(&self) -> anyhow::Result<()> {
        validate_name("origin id", &self.origin_id)?;
        validate_host_port(&self.advertise).map_err(|e| anyhow::anyhow!("--advertise: {e}"))?;
        anyhow::ensure!(
            self.output_dir.is_dir(),
            "--output-dir {} is not a folder",
            self.output_dir.display()
        );
        anyhow::ensure!(
            !self.agent_token.is_empty(),
            "the agent token (ROUTER_AGENT_TOKEN) is empty"
        );
        anyhow::ensure!(
            self.heartbeat >= Duration::from_millis(100),
            "--heartbeat must be at least 100ms"
        );
        anyhow::ensure!(
            matches!(self.router.scheme(), "http" | "https"),
            "--router must be an http(s) URL"
        );
        Ok(())
    }
}
