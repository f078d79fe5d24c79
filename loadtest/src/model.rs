//! The `report.json` schema: what a run measured, typed, versioned.
//!
//! One place defines the file CI pipelines gate on, the HTML report renders
//! and the comparison page reads back, so the three cannot drift. The
//! schema is documented field by field in `docs/loadtest.md`; a change that
//! removes or renames a field, or changes a unit, bumps [`SCHEMA_VERSION`]
//! (adding a field does not).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `schema` field of every report.
pub const SCHEMA: &str = "dionysia-loadtest-report";
/// The `schema_version` field; see the module doc for when it changes.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub schema_version: u32,
    /// `--label`, e.g. the cache under test in a comparison.
    pub label: Option<String>,
    /// The command line that produced the report, one argument per item.
    pub command: Vec<String>,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    pub url: String,
    pub viewers: u32,
    pub ramp_s: f64,
    pub duration_s: f64,
    /// Wall-clock length of the run, from the first viewer to the last stop.
    pub elapsed_s: f64,
    /// Requests sent (answered or failed), all kinds.
    pub requests: u64,
    pub errors: u64,
    /// errors / requests (0 when there were no requests).
    pub error_rate: f64,
    pub stalls: u64,
    /// Viewers that stalled at least once.
    pub stalled_viewers: u64,
    pub stall_seconds: f64,
    pub stalls_per_viewer: f64,
    /// Sum over viewers of the time each one was in the run.
    pub watch_seconds: f64,
    /// stall_seconds / watch_seconds.
    pub stall_ratio: f64,
    /// Body bytes received.
    pub bytes: u64,
    /// bytes * 8 / elapsed_s / 10^6.
    pub throughput_mbps: f64,
    /// HIT / (all cache statuses but PASS), from the X-Cache-Status viewers saw.
    pub hit_ratio: Option<f64>,
    /// The same from the edge's own counters (`--metrics-url`), when read.
    pub edge_hit_ratio: Option<f64>,
    /// Requests the origin served (or the edge sent to it) during the run.
    pub origin_requests: Option<f64>,
    /// 1 - origin_requests / requests.
    pub origin_offload: Option<f64>,
    /// Origin segment requests per distinct segment viewers fetched.
    pub origin_requests_per_segment: Option<f64>,
    pub distinct_segments: u64,
    /// Origin part requests answered 200 per distinct part viewers fetched
    /// (LL-HLS; null without parts or a metrics page).
    #[serde(default)]
    pub origin_requests_per_part: Option<f64>,
    #[serde(default)]
    pub distinct_parts: u64,
    /// Rendition switches of adaptive viewers (`--pick adaptive`).
    #[serde(default)]
    pub rendition_switches: u64,
    /// What LL-HLS viewers did; null when no viewer played LL.
    #[serde(default)]
    pub ll: Option<LlReport>,
    /// Live latency over all viewers and samples; null when never playing.
    pub latency: Option<Latency>,
    /// X-Cache-Status counts, all kinds.
    pub cache_statuses: BTreeMap<String, u64>,
    /// Per object kind: `multivariant`, `playlist`, `init`, `segment` (and
    /// `part` once LL-HLS parts exist). Readers must accept unknown kinds.
    pub by_kind: BTreeMap<String, KindReport>,
    /// One sample a second.
    pub timeline: Vec<Sample>,
    /// Each stall, in order of its end (at most [`MAX_STALL_EVENTS`]).
    pub stall_events: Vec<StallEvent>,
    /// Stalls past [`MAX_STALL_EVENTS`], counted but not listed.
    pub stall_events_dropped: u64,
    pub verdict: Verdict,
    /// The `--fail-on` outcome, when it was given.
    pub fail_on: Option<FailOn>,
}

/// The LL-HLS side of a run (`ll` in `report.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlReport {
    /// Viewers that played LL-HLS (parts, blocking reloads).
    pub viewers: u64,
    /// Playlist requests with `_HLS_msn` (blocking reloads).
    pub blocking_reloads: u64,
    /// Delta updates (`EXT-X-SKIP`) applied to a viewer's copy.
    pub delta_updates: u64,
    /// Delta updates the copy could not take (a full reload followed).
    pub delta_failures: u64,
    /// Requests for the part a `EXT-X-PRELOAD-HINT` named.
    pub preload_hints: u64,
    /// Hinted parts that never came (404; not errors).
    pub preload_hint_misses: u64,
    /// Origin part requests answered 200 during the run (from the metrics
    /// page); null when not read.
    pub origin_part_requests: Option<f64>,
    /// Origin part requests answered otherwise (404 for a hint that never
    /// came, 503 past the hold); null when not read.
    pub origin_part_requests_failed: Option<f64>,
}

/// Stall events kept in a report (the rest are only counted).
pub const MAX_STALL_EVENTS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50_s: f64,
    pub p90_s: f64,
    /// Absent from reports before LL-HLS viewers (read back as null).
    #[serde(default)]
    pub p95_s: Option<f64>,
    pub p99_s: f64,
    pub max_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KindReport {
    pub requests: u64,
    pub bytes: u64,
    /// HIT / cache lookups of this kind; null without X-Cache-Status.
    pub hit_ratio: Option<f64>,
    pub cache_statuses: BTreeMap<String, u64>,
    /// Failed requests by cause: `connect`, `timeout`, `request`, `body`,
    /// `http NNN`, `unparsable`, `too long` (a body past its kind's bound:
    /// 1 MiB for playlists, 64 MiB for media), `not LL-HLS` (`--ll on`).
    pub errors: BTreeMap<String, u64>,
    /// Time to the response head.
    pub ttfb: Distribution,
    /// Time to the end of the body.
    pub download: Distribution,
}

/// A distribution of times in milliseconds (over successful requests).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Distribution {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The cumulative distribution: `[ms, fraction of requests <= ms]`
    /// at fixed quantiles; empty when count is 0.
    pub cdf: Vec<[f64; 2]>,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the start.
    pub t: f64,
    pub viewers: u64,
    /// Requests sent in this interval, per second.
    pub requests_per_s: f64,
    pub errors: u64,
    /// Stalls that ended in this interval.
    pub stalls: u64,
    /// Megabit per second received in this interval.
    pub mbps: f64,
    /// Hit ratio of the responses in this interval.
    pub hit_ratio: Option<f64>,
    /// Origin requests per second in this interval (from `--metrics-url`).
    pub origin_requests_per_s: Option<f64>,
    /// Live latency percentiles of this interval's samples.
    pub latency_p50_s: Option<f64>,
    pub latency_p90_s: Option<f64>,
    pub latency_p99_s: Option<f64>,
}

/// One stall: which viewer, from when, for how long.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct StallEvent {
    /// The viewer's number, 0 to viewers-1 in join order.
    pub viewer: u32,
    /// Seconds since the start of the run when playback stopped.
    pub start_s: f64,
    pub duration_s: f64,
}

/// What an operator reads first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No errors, no stalls.
    Clean,
    /// Stalls, no errors.
    Stalls,
    /// Errors (with or without stalls).
    Errors,
}

impl Verdict {
    pub fn of(errors: u64, stalls: u64) -> Verdict {
        if errors > 0 {
            Verdict::Errors
        } else if stalls > 0 {
            Verdict::Stalls
        } else {
            Verdict::Clean
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Stalls => "stalls",
            Verdict::Errors => "errors",
        }
    }
}

/// The `--fail-on` outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailOn {
    /// The conditions as given.
    pub conditions: String,
    /// Those that held, each with the value that made it hold.
    pub held: Vec<String>,
    pub failed: bool,
}
