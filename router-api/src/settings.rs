//! Command-line settings, each with an environment-variable fallback.

use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

/// Dionysia router API: stream keys, ingest authorization, discovery reports
/// and routing, stored in Redis.
///
/// Every setting can be given as a flag or as the environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "router-api", version)]
pub struct Settings {
    /// Address and port to serve HTTP on.
    #[arg(long, env = "ROUTER_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,

    /// Redis URL (redis://[user:password@]host:port[/db]), when Redis is one
    /// fixed server. Not with --redis-sentinel.
    #[arg(
        long,
        env = "ROUTER_REDIS",
        default_value = "redis://127.0.0.1:6379",
        conflicts_with = "redis_sentinel"
    )]
    pub redis: String,

    /// Redis Sentinels to ask for the master (HOST:PORT, comma-separated),
    /// instead of --redis: the router follows a failover without a restart.
    /// Needs --redis-master.
    #[arg(
        long,
        env = "ROUTER_REDIS_SENTINEL",
        value_delimiter = ',',
        requires = "redis_master"
    )]
    pub redis_sentinel: Vec<String>,

    /// Name of the master the Sentinels monitor (`sentinel monitor NAME ...`).
    #[arg(long, env = "ROUTER_REDIS_MASTER", requires = "redis_sentinel")]
    pub redis_master: Option<String>,

    /// Prefix of every Redis key this service writes, so one Redis can be
    /// shared. On Redis Cluster give it a hash tag (e.g. `{dionysia}:`), so
    /// that the keys every script touches share one slot.
    #[arg(long, env = "ROUTER_REDIS_PREFIX", default_value = "dionysia:")]
    pub redis_prefix: String,

    /// Time limit for connecting to Redis and for each Redis command; past it
    /// the request is answered 503.
    #[arg(long, env = "ROUTER_REDIS_TIMEOUT", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub redis_timeout: Duration,

    /// How long a discovery report stays live without a fresh one. Agents
    /// heartbeat well inside it (the PUT answer tells them this value).
    #[arg(long, env = "ROUTER_REPORT_TTL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub report_ttl: Duration,

    /// How long a recording report (`PUT /origins/{origin}/recordings/...`)
    /// stays listed without a fresh one. Agents heartbeat recordings within
    /// a third of it; a recording whose origin stops reporting it (the
    /// retention removed it, the origin is gone) leaves the list this long after.
    #[arg(long, env = "ROUTER_RECORDING_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub recording_ttl: Duration,

    /// Operator token for /admin/* (sent as `Authorization: Bearer ...`).
    /// Prefer the environment variable: flags are visible in `ps`.
    #[arg(long, env = "ROUTER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,

    /// Token that origins (POST /authorize) and discovery agents
    /// (PUT/DELETE /origins/...) present as `Authorization: Bearer ...`.
    #[arg(long, env = "ROUTER_AGENT_TOKEN", hide_env_values = true)]
    pub agent_token: String,

    /// How long an edge's viewer report (PUT /viewers/{edge}) counts without
    /// a fresh one. Edges report every few seconds.
    #[arg(long, env = "ROUTER_VIEWER_TTL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub viewer_ttl: Duration,

    /// Playback token signing key, `KID:SECRET` (KID `[a-z0-9]{1,16}`, SECRET
    /// at least 32 bytes). Repeatable; the first signs new tokens, all
    /// verify (rotation). The env variable takes a comma-separated list.
    /// Edges must be given the same keys. Without any, minting tokens is
    /// refused (409).
    #[arg(
        long = "playback-key",
        env = "PLAYBACK_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub playback_keys: Vec<String>,

    /// URL that receives `stream.live`/`stream.ended` webhooks (POST, JSON).
    /// Repeatable; the env variable takes a comma-separated list. Only
    /// `http://` (put a TLS relay in front for an `https` receiver).
    #[arg(long = "webhook-url", env = "ROUTER_WEBHOOK_URLS", value_delimiter = ',')]
    pub webhook_urls: Vec<String>,

    /// Secret that signs webhook bodies (`X-Dionysia-Signature`); required
    /// with --webhook-url, at least 16 characters.
    #[arg(long, env = "ROUTER_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Attempts per webhook delivery, the first included (1..=20).
    #[arg(long, env = "ROUTER_WEBHOOK_ATTEMPTS", default_value_t = 6)]
    pub webhook_attempts: u32,

    /// Events waiting for delivery at most; past it new events are dropped
    /// (and counted in router_webhook_deliveries_total{outcome="dropped"}).
    #[arg(long, env = "ROUTER_WEBHOOK_QUEUE", default_value_t = 1024)]
    pub webhook_queue: usize,

    /// Time limit of one webhook attempt.
    #[arg(long, env = "ROUTER_WEBHOOK_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub webhook_timeout: Duration,

    /// Wait before the first webhook retry; doubled at each retry (with
    /// jitter) up to --webhook-max-backoff.
    #[arg(long, env = "ROUTER_WEBHOOK_BACKOFF", default_value = "1s", value_parser = humantime::parse_duration)]
    pub webhook_backoff: Duration,

    /// Longest wait between two webhook attempts.
    #[arg(long, env = "ROUTER_WEBHOOK_MAX_BACKOFF", default_value = "60s", value_parser = humantime::parse_duration)]
    pub webhook_max_backoff: Duration,

    /// Base URL of an edge as viewers reach it (e.g. `https://live.example.com`):
    /// the dashboard's preview player and playback links use it. Without
    /// it the dashboard shows paths only.
    #[arg(long, env = "ROUTER_PUBLIC_EDGE_URL")]
    pub public_edge_url: Option<String>,

    /// RTMP ingest URL publishers use (e.g. `rtmp://ingest.example.com/live`),
    /// shown by the dashboard as the OBS server. Default: `rtmp://{the
    /// dashboard's host name}/live`.
    #[arg(long, env = "ROUTER_PUBLIC_RTMP_URL")]
    pub public_rtmp_url: Option<String>,

    #[command(flatten)]
    pub http: ops::http::HttpLimits,

    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `router_api=debug`.
    #[arg(long, env = "ROUTER_LOG", default_value = "info")]
    pub log: String,
}

/// Shortest token accepted: a guessable token would make the API open.
const MIN_TOKEN_LEN: usize = 16;

impl Settings {
    /// Refuses settings that would make the service insecure or useless.
    pub fn check(&self) -> anyhow::Result<()> {
        for (flag, token) in [("admin token", &self.admin_token), ("agent token", &self.agent_token)] {
            anyhow::ensure!(
                token.len() >= MIN_TOKEN_LEN,
                "the {flag} must be at least {MIN_TOKEN_LEN} characters"
            );
        }
        anyhow::ensure!(
            self.admin_token != self.agent_token,
            "the admin and agent tokens must differ"
        );
        anyhow::ensure!(
            self.report_ttl >= Duration::from_secs(1),
            "--report-ttl must be at least 1s"
        );
        anyhow::ensure!(
            self.recording_ttl >= Duration::from_secs(1),
            "--recording-ttl must be at least 1s"
        );
        anyhow::ensure!(
            self.viewer_ttl >= Duration::from_secs(1),
            "--viewer-ttl must be at least 1s"
        );
        self.playback_keys()?;
        if !self.webhook_urls.is_empty() {
            let secret = self.webhook_secret.as_deref().unwrap_or("");
            anyhow::ensure!(
                secret.len() >= MIN_TOKEN_LEN,
                "--webhook-url needs a --webhook-secret of at least {MIN_TOKEN_LEN} characters"
            );
            for url in &self.webhook_urls {
                let rest = url.strip_prefix("http://");
                anyhow::ensure!(
                    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/')),
                    "--webhook-url {url:?} must be an http:// URL (this build has no TLS client)"
                );
            }
            anyhow::ensure!(
                (1..=20).contains(&self.webhook_attempts),
                "--webhook-attempts must be 1..=20"
            );
            anyhow::ensure!(
                (1..=100_000).contains(&self.webhook_queue),
                "--webhook-queue must be 1..=100000"
            );
        }
        for (flag, url) in [
            ("--public-edge-url", &self.public_edge_url),
            ("--public-rtmp-url", &self.public_rtmp_url),
        ] {
            if let Some(u) = url {
                anyhow::ensure!(
                    u.len() <= 512 && !u.chars().any(|c| c.is_control() || c == '"' || c == '<' || c == '>'),
                    "{flag} is not a plain URL"
                );
            }
        }
        for s in &self.redis_sentinel {
            api_types::ident::validate_host_port(s).map_err(|e| anyhow::anyhow!("--redis-sentinel {s:?}: {e}"))?;
        }
        Ok(())
    }

    /// The playback keys, checked.
    pub fn playback_keys(&self) -> anyhow::Result<api_types::playback::PlaybackKeys> {
        Ok(api_types::playback::PlaybackKeys::parse(&self.playback_keys)?)
    }

    pub fn webhooks(&self) -> crate::webhooks::Config {
        crate::webhooks::Config {
            urls: self.webhook_urls.clone(),
            secret: self.webhook_secret.clone().unwrap_or_default(),
            attempts: self.webhook_attempts,
            queue: self.webhook_queue,
            timeout: self.webhook_timeout,
            backoff: self.webhook_backoff,
            max_backoff: self.webhook_max_backoff,
        }
    }

    /// Where the Redis master is: the Sentinels' master, or `--redis`.
    pub fn redis_target(&self) -> crate::redis_conn::Target {
        match &self.redis_master {
            Some(master) if !self.redis_sentinel.is_empty() => crate::redis_conn::Target::Sentinel {
                sentinels: self.redis_sentinel.clone(),
                master: master.clone(),
            },
            _ => crate::redis_conn::Target::Direct(self.redis.clone()),
        }
    }
}
