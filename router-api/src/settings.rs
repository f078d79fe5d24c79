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

    /// Operator token for /admin/* (sent as `Authorization: Bearer ...`).
    /// Prefer the environment variable: flags are visible in `ps`.
    #[arg(long, env = "ROUTER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,

    /// Token that origins (POST /authorize) and discovery agents
    /// (PUT/DELETE /origins/...) present as `Authorization: Bearer ...`.
    #[arg(long, env = "ROUTER_AGENT_TOKEN", hide_env_values = true)]
    pub agent_token: String,

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
        for s in &self.redis_sentinel {
            api_types::ident::validate_host_port(s).map_err(|e| anyhow::anyhow!("--redis-sentinel {s:?}: {e}"))?;
        }
        Ok(())
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
