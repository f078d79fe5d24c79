//! Command-line settings, each with an environment-variable fallback.

use clap::Parser;
use std::time::Duration;

/// Dionysia edge: a caching HLS proxy. Viewers ask it for
/// `/{stream}/index.m3u8` and what that lists; it asks the router API which
/// origins hold the stream, keeps each viewer on one origin, and caches
/// segments (immutable) and playlists (briefly).
///
/// Every setting can be given as a flag or as the environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "edge", version)]
pub struct Settings {
    /// Address viewers connect to.
    #[arg(long, env = "EDGE_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: String,

    /// Address viewers connect to over HTTPS (HTTP/2 or HTTP/1.1, chosen by
    /// ALPN). Off unless given; needs --tls-cert and --tls-key. The plain
    /// --listen stays open beside it (tests, internal use, a TLS-terminating
    /// load balancer).
    #[arg(long, env = "EDGE_TLS_LISTEN", requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<String>,

    /// PEM file of the HTTPS certificate, then any intermediate certificates.
    /// Re-read on SIGHUP and when it changes (see --tls-watch-interval); a
    /// pair that does not load keeps the previous one (logged as an error).
    #[arg(long, env = "EDGE_TLS_CERT", requires = "tls_listen")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM file of the private key of --tls-cert (reloaded with it).
    #[arg(long, env = "EDGE_TLS_KEY", requires = "tls_listen")]
    pub tls_key: Option<std::path::PathBuf>,

    /// How often the certificate and key files are checked for changes
    /// (modification time, size, inode). A change is loaded once both
    /// files have stayed the same for one interval, so a renewal that
    /// writes them one after the other is not loaded half-done.
    #[arg(long, env = "EDGE_TLS_WATCH_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub tls_watch_interval: Duration,

    /// Router API base URL.
    #[arg(long, env = "EDGE_ROUTER", default_value = "http://127.0.0.1:8090")]
    pub router: reqwest::Url,

    /// A shield edge to fetch through instead of the origins
    /// (http://HOST:PORT; repeat the flag, or comma-separate in the env, for
    /// several). Each stream goes to one shield (its name hashed over
    /// them), so the shield's cache collapses the fetches of every edge
    /// below it; a shield that refuses connections is passed over for 5 s,
    /// for the next one, then the origin itself.
    #[arg(long = "shield", env = "EDGE_SHIELD", value_delimiter = ',')]
    pub shields: Vec<reqwest::Url>,

    /// Cache size in bytes; suffixes such as 512MiB or 2GB are accepted.
    #[arg(long, env = "EDGE_CACHE_SIZE", default_value = "512MiB", value_parser = parse_size)]
    pub cache_size: u64,

    /// How long a media playlist (and a live DASH MPD) is fresh in the cache
    /// (sub-second values allowed; keep it at most half the shortest target
    /// duration).
    #[arg(long, env = "EDGE_PLAYLIST_TTL", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub playlist_ttl: Duration,

    /// How long a multivariant playlist is fresh in the cache.
    #[arg(long, env = "EDGE_MULTIVARIANT_TTL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub multivariant_ttl: Duration,

    /// How long init and media segments (and a recording's DASH MPD) are
    /// kept fresh (they never change).
    #[arg(long, env = "EDGE_SEGMENT_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub segment_ttl: Duration,

    /// How long a route answer is reused before asking the router API again.
    #[arg(long, env = "EDGE_ROUTE_TTL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub route_ttl: Duration,

    /// How long the last good route answer is used while the router API fails.
    #[arg(long, env = "EDGE_ROUTE_STALE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub route_stale: Duration,

    /// Time limit of a router API request.
    #[arg(long, env = "EDGE_ROUTER_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub router_timeout: Duration,

    /// Time limit for connecting to an origin.
    #[arg(long, env = "EDGE_CONNECT_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// Time limit for each read from an origin.
    #[arg(long, env = "EDGE_READ_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub read_timeout: Duration,

    /// How long requests wait for another request already fetching the same
    /// object (collapsed forwarding) before going to the origin themselves.
    #[arg(long, env = "EDGE_CACHE_LOCK_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub cache_lock_timeout: Duration,

    /// On SIGTERM: seconds to keep accepting while load balancers notice,
    /// then seconds to let in-flight requests finish.
    #[arg(long, env = "EDGE_SHUTDOWN_GRACE", default_value_t = 0)]
    pub shutdown_grace: u64,

    /// See --shutdown-grace.
    #[arg(long, env = "EDGE_SHUTDOWN_TIMEOUT", default_value_t = 10)]
    pub shutdown_timeout: u64,

    /// Per-connection write buffer toward viewers. A response whose header
    /// and body fit in it leaves in one send (one TCP segment train instead
    /// of two): playlists should fit. Costs this much memory per connection.
    #[arg(long, env = "EDGE_WRITE_BUFFER", default_value = "16KiB", value_parser = parse_size)]
    pub write_buffer: u64,

    /// Kernel send buffer (SO_SNDBUF) of each viewer connection, or `auto`
    /// for the kernel's autotuning. A bounded buffer keeps the edge from
    /// queueing megabytes per viewer ahead of the viewer: less kernel memory
    /// per connection, and a segment's bytes are read by the receiver while
    /// still in the CPU's caches. It also caps one connection at roughly this
    /// much data per round trip (256KiB: about 20 Mbit/s at 100 ms, several
    /// times an HLS rendition's bitrate); raise it for far-away viewers of
    /// high bitrates.
    #[arg(long, env = "EDGE_SEND_BUFFER", default_value = "256KiB", value_parser = parse_send_buffer)]
    pub send_buffer: SendBuffer,

    /// Longest time from the first byte of a viewer's request head to its
    /// end; a slower viewer is disconnected. Only the head: a request held
    /// open after its head (a blocking playlist reload) is not cut by it.
    #[arg(long = "http-head-timeout", env = "EDGE_HTTP_HEAD_TIMEOUT", default_value = "10s",
          value_parser = humantime::parse_duration)]
    pub head_timeout: Duration,

    /// How long an idle viewer connection is kept open for its next request.
    #[arg(long = "http-idle-timeout", env = "EDGE_HTTP_IDLE_TIMEOUT", default_value = "60s",
          value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Longest time a write to a viewer may make no progress (a viewer that
    /// stopped reading) before its connection is closed.
    #[arg(long = "http-write-timeout", env = "EDGE_HTTP_WRITE_TIMEOUT", default_value = "30s",
          value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// Most viewer connections open at once; more are answered 503 and
    /// closed. Keep it below the process's file descriptor limit.
    #[arg(
        long = "http-max-connections",
        env = "EDGE_HTTP_MAX_CONNECTIONS",
        default_value_t = 10_000
    )]
    pub max_connections: usize,

    /// Longest time a held request (an LL-HLS blocking playlist reload, or
    /// a part not written yet) waits for the origin: the cache-lock timeout
    /// of playlists and parts and the origin read timeout of held requests.
    /// Keep it above 3 target durations plus a margin (the origin answers
    /// 503 at 3 target durations); shorter, requests waiting on one fetch
    /// give up and each go to the origin (a stampede).
    #[arg(long, env = "EDGE_HOLD_TIMEOUT", default_value = "8s", value_parser = humantime::parse_duration)]
    pub hold_timeout: Duration,

    /// How long a media playlist request whose session's origin is gone
    /// (refuses connections, or no longer holds the session) waits for the
    /// publisher's new session on another origin, before the edge answers
    /// the error. A publisher that HAProxy moves after its origin died is
    /// live again a few seconds later (reconnect, the router's claim
    /// take-over, the first segment, the report): waiting, counted as a
    /// held request, turns that gap into one slow reload and a redirect
    /// instead of errors. 0 turns it off.
    #[arg(long, env = "EDGE_FAILOVER_WAIT", default_value = "4s", value_parser = humantime::parse_duration)]
    pub failover_wait: Duration,

    /// Most requests held at once (LL-HLS blocking reloads and parts not
    /// written yet); more are answered 503 with Retry-After. Each also
    /// holds a connection (--http-max-connections).
    #[arg(long, env = "EDGE_MAX_HELD_REQUESTS", default_value_t = 4096)]
    pub max_held_requests: usize,

    /// How long an origin host name's address (or its failure to resolve)
    /// is reused before resolving it again.
    #[arg(long, env = "EDGE_RESOLVE_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub resolve_ttl: Duration,

    /// A key that playback tokens are signed with, `KID:SECRET` (repeatable;
    /// the env variable takes a comma-separated list): the same keys as the
    /// router API's `--playback-key`. Tokens of streams whose policy is
    /// `token` are checked here with them, never by calling the router;
    /// without keys every object of a token stream is refused (403).
    #[arg(
        long = "playback-key",
        env = "PLAYBACK_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub playback_keys: Vec<String>,

    /// This edge's id in its viewer reports (`PUT /viewers/{edge_id}`),
    /// `[a-z0-9][a-z0-9_-]{0,63}`, unique among the edges. Default: the host
    /// name and the --listen port (`{hostname}-{port}`).
    #[arg(long, env = "EDGE_ID")]
    pub edge_id: Option<String>,

    /// Bearer token of the router API's agent endpoints, for the viewer
    /// reports. Without it the edge reports no viewers (it still counts them
    /// in `edge_viewers`).
    #[arg(long, env = "ROUTER_AGENT_TOKEN", hide_env_values = true)]
    pub agent_token: Option<String>,

    /// How often the viewer counts are reported to the router API.
    #[arg(long, env = "EDGE_VIEWER_REPORT_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub viewer_report_interval: Duration,

    /// A viewer counts while it asked for a playlist within this window
    /// (keep it about two or three target durations).
    #[arg(long, env = "EDGE_VIEWER_WINDOW", default_value = "6s", value_parser = humantime::parse_duration)]
    pub viewer_window: Duration,

    /// Worker threads.
    #[arg(long, env = "EDGE_THREADS", default_value_t = 2)]
    pub threads: usize,

    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "EDGE_LOG", default_value = "info")]
    pub log: String,
}

impl Settings {
    /// `--edge-id`, or `{hostname}-{port of --listen}` folded into an id's
    /// characters.
    pub fn edge_id(&self) -> String {
        if let Some(id) = &self.edge_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "edge".into());
        let port = self.listen.rsplit(':').next().unwrap_or_default();
        let raw = format!("{}-{port}", host.trim()).to_ascii_lowercase();
        let mut id: String = raw
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' })
            .skip_while(|c| !c.is_ascii_alphanumeric())
            .collect();
        id.truncate(64);
        if id.is_empty() { "edge".into() } else { id }
    }
}

/// A socket buffer size, or the kernel's autotuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendBuffer {
    Auto,
    Bytes(u64),
}

/// Parses `auto` or a size (see [`parse_size`]).
pub fn parse_send_buffer(s: &str) -> Result<SendBuffer, String> {
    if s.trim().eq_ignore_ascii_case("auto") {
        Ok(SendBuffer::Auto)
    } else {
        parse_size(s).map(SendBuffer::Bytes)
    }
}

/// Parses `512MiB`, `2GB`, `1048576` into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size (e.g. 512MiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::{SendBuffer, parse_send_buffer, parse_size};

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        for bad in ["", "MiB", "12XB", "0", "99999999999999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn send_buffers() {
        assert_eq!(parse_send_buffer("auto"), Ok(SendBuffer::Auto));
        assert_eq!(parse_send_buffer("256KiB"), Ok(SendBuffer::Bytes(256 << 10)));
        assert!(parse_send_buffer("0").is_err());
        assert!(parse_send_buffer("automatic").is_err());
    }
}
