//! Command-line settings and the safety rules on them.

use clap::{Parser, ValueEnum};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How a viewer picks its rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Pick {
    /// The highest bandwidth.
    Highest,
    /// The lowest bandwidth.
    Lowest,
    /// One at random per viewer.
    Random,
    /// Start lowest; move up or down with the measured throughput.
    Adaptive,
}

/// Whether viewers play LL-HLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ll {
    /// LL-HLS when the media playlist has EXT-X-PART-INF, plain HLS
    /// otherwise (what hls.js does with lowLatencyMode, its default).
    Auto,
    /// LL-HLS only: a media playlist without EXT-X-PART-INF is an error.
    On,
    /// Plain HLS (whole segments, timed reloads) even on an LL stream: the
    /// control to compare LL latency with.
    Off,
}

/// Dionysia load tester: simulated HLS viewers against an edge (or any HLS
/// server), reporting what operators care about: cache hit ratio, origin
/// offload, time to first byte, stalls, live latency and errors.
///
/// Each viewer behaves like a player: it loads the multivariant playlist,
/// picks a rendition, starts HOLD-BACK (three target durations) from the
/// live edge once the playlist is that long, reloads the live media
/// playlists as RFC 8216bis says (the last segment's duration after a changed
/// reload, half a target duration after an unchanged one, from the start of
/// the reload), downloads new segments in order (video and audio), keeps a
/// play-out buffer per track and counts a stall whenever one runs dry.
///
/// On an LL-HLS stream (EXT-X-PART-INF; see --ll) it plays as an LL player
/// does instead: it joins PART-HOLD-BACK from the live edge at an
/// independent part, loads parts, reloads with blocking requests for the
/// next part (_HLS_msn/_HLS_part, with _HLS_skip=YES delta updates when the
/// playlist allows them), asks for the EXT-X-PRELOAD-HINT part ahead (see
/// --no-preload-hints), and joins another rendition where its
/// EXT-X-RENDITION-REPORT says it is.
///
/// It only targets loopback addresses unless --allow-target names the host.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version)]
pub struct Settings {
    /// Multivariant playlist URL on the edge.
    #[arg(long, env = "LOADTEST_URL")]
    pub url: reqwest::Url,

    /// Number of simulated viewers (at most 20000).
    #[arg(long, env = "LOADTEST_VIEWERS", default_value_t = 10)]
    pub viewers: u32,

    /// Time over which viewers join, spread evenly.
    #[arg(long, env = "LOADTEST_RAMP", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ramp: Duration,

    /// Length of the test (at most 1h).
    #[arg(long, env = "LOADTEST_DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Where report.json and report.html are written (docs/loadtest.md
    /// describes both).
    #[arg(long, env = "LOADTEST_REPORT_DIR", default_value = "loadtest-report")]
    pub report_dir: PathBuf,

    /// How viewers pick a rendition.
    #[arg(long, env = "LOADTEST_PICK", value_enum, default_value = "random")]
    pub pick: Pick,

    /// LL-HLS: auto (the default) plays LL-HLS when the media playlist has
    /// EXT-X-PART-INF, as hls.js does (lowLatencyMode is on by default), so
    /// one command measures what real players get from either kind of
    /// stream; on fails a viewer whose stream is not LL (an error); off
    /// plays whole segments even on an LL stream (the plain figures).
    #[arg(long, env = "LOADTEST_LL", value_enum, default_value = "auto")]
    pub ll: Ll,

    /// LL-HLS viewers do not request the EXT-X-PRELOAD-HINT part before it
    /// is listed (hls.js does not); each part is then loaded after the
    /// blocking reload that lists it.
    #[arg(long, env = "LOADTEST_NO_PRELOAD_HINTS")]
    pub no_preload_hints: bool,

    /// Prometheus endpoint read before and after the run for origin offload:
    /// the edge's (default: /metrics on the URL's host), or an origin's, which
    /// counts the segment and part requests it served (use that for other
    /// caches). Origin requests per segment and per part come from it.
    #[arg(long, env = "LOADTEST_METRICS_URL")]
    pub metrics_url: Option<reqwest::Url>,

    /// A non-loopback host the operator allows as a target (repeatable).
    #[arg(long = "allow-target", env = "LOADTEST_ALLOW_TARGET", value_delimiter = ',')]
    pub allow_targets: Vec<String>,

    /// Time limit of one request.
    #[arg(long, env = "LOADTEST_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// No live progress line on stderr.
    #[arg(long, env = "LOADTEST_QUIET")]
    pub quiet: bool,

    /// A name for this run, shown in the reports and used by the comparison
    /// page to group runs (e.g. the cache under test: edge, nginx, varnish).
    #[arg(long, env = "LOADTEST_LABEL")]
    pub label: Option<String>,

    /// Exit with status 3 when any of these conditions holds on the report,
    /// e.g. `stalls>0,hit_ratio<0.99` (comma-separated METRIC OP NUMBER, OP
    /// one of > >= < <= == !=, NUMBER may end in %). Metrics: errors,
    /// error_rate, stalls, stalled_viewers, stall_seconds, stall_ratio,
    /// stalls_per_viewer, requests, hit_ratio, edge_hit_ratio,
    /// origin_offload, origin_requests_per_segment, origin_requests_per_part,
    /// throughput_mbps, latency_p50_s, latency_p90_s, latency_p95_s,
    /// latency_p99_s, latency_max_s, rendition_switches, ll_viewers, and per
    /// object kind
    /// {kind}_errors, {kind}_ttfb_p50_ms, _p90_ms, _p99_ms. A metric the run
    /// could not measure makes its condition hold. Both reports are written
    /// either way.
    #[arg(long, env = "LOADTEST_FAIL_ON", value_parser = crate::gate::parse)]
    pub fail_on: Option<crate::gate::Conditions>,
}

pub const MAX_VIEWERS: u32 = 20_000;
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

impl Settings {
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=MAX_VIEWERS).contains(&self.viewers),
            "--viewers must be in 1..={MAX_VIEWERS}"
        );
        anyhow::ensure!(
            self.duration > Duration::ZERO && self.duration <= MAX_DURATION,
            "--duration must be in (0, 1h]"
        );
        anyhow::ensure!(self.ramp <= self.duration, "--ramp cannot exceed --duration");
        for url in std::iter::once(&self.url).chain(self.metrics_url.as_ref()) {
            check_target(url, &self.allow_targets)?;
        }
        Ok(())
    }

    pub fn metrics_url(&self) -> reqwest::Url {
        self.metrics_url.clone().unwrap_or_else(|| {
            let mut u = self.url.clone();
            u.set_path("/metrics");
            u.set_query(None);
            u
        })
    }
}

/// Loopback, or a host the operator named.
fn check_target(url: &reqwest::Url, allowed: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(matches!(url.scheme(), "http" | "https"), "{url}: only http(s) URLs");
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        loopback || allowed.iter().any(|a| a == host),
        "{url}: refusing a non-loopback target; name it with --allow-target {host} if you mean it"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let ok = |u: &str, allow: &[&str]| {
            let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
            check_target(&u.parse().unwrap(), &allow).is_ok()
        };
        assert!(ok("http://127.0.0.1:8081/a/index.m3u8", &[]));
        assert!(ok("http://127.5.5.5/a", &[]));
        assert!(ok("http://[::1]:8081/a", &[]));
        assert!(ok("http://localhost/a", &[]));
        assert!(!ok("http://10.0.0.1/a", &[]));
        assert!(!ok("http://example.com/a", &[]));
        assert!(ok("http://cdn.example/a", &["cdn.example"]));
        assert!(!ok("ftp://127.0.0.1/a", &[]));
    }
}
