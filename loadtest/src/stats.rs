//! What the viewers measure, shared by all of them.
//!
//! Histograms are HDR histograms (microseconds, 3 significant digits); the
//! time series is one sample per second, taken by the progress task. What
//! is kept is bounded whatever the run: histograms are fixed-size, the
//! timeline has one sample a second of a run of at most an hour, stall
//! events stop being listed (only counted) past `MAX_STALL_EVENTS`.

use crate::model::{Distribution, KindReport, Latency, MAX_STALL_EVENTS, Sample, StallEvent};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Object kinds a player requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Multivariant,
    Playlist,
    Init,
    Segment,
    /// An LL-HLS part (`EXT-X-PART`).
    Part,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Multivariant,
        Kind::Playlist,
        Kind::Init,
        Kind::Segment,
        Kind::Part,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Kind::Multivariant => "multivariant",
            Kind::Playlist => "playlist",
            Kind::Init => "init",
            Kind::Segment => "segment",
            Kind::Part => "part",
        }
    }
}

/// What LL-HLS viewers did, beyond requests (counters).
#[derive(Debug, Default)]
pub struct LlCounters {
    /// Viewers that played a rendition in LL mode.
    pub viewers: AtomicU64,
    /// Playlist requests with `_HLS_msn` (blocking reloads).
    pub blocking_reloads: AtomicU64,
    /// Delta updates (`_HLS_skip=YES` answered with `EXT-X-SKIP`) applied.
    pub delta_updates: AtomicU64,
    /// Delta updates that could not be applied to the viewer's copy (a full
    /// reload followed).
    pub delta_failures: AtomicU64,
    /// Requests for a part named by `EXT-X-PRELOAD-HINT` before it was listed.
    pub preload_hints: AtomicU64,
    /// Of those, hinted parts that never came (404: the segment ended
    /// with fewer parts); neither an error nor a part.
    pub preload_hint_misses: AtomicU64,
}

#[derive(Default)]
struct PerKind {
    requests: u64,
    bytes: u64,
    errors: BTreeMap<String, u64>,
    /// X-Cache-Status counts of this kind.
    cache: BTreeMap<String, u64>,
}

/// Running totals the timeline samples difference.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    t: f64,
    hits: u64,
    lookups: u64,
    requests: u64,
    errors: u64,
    stalls: u64,
    bytes: u64,
}

pub struct Stats {
    started: Instant,
    kinds: Mutex<BTreeMap<Kind, PerKind>>,
    ttfb: Mutex<BTreeMap<Kind, Histogram<u64>>>,
    download: Mutex<BTreeMap<Kind, Histogram<u64>>>,
    latency: Mutex<Histogram<u64>>,
    /// Latency samples since the last timeline sample.
    interval_latency: Mutex<Histogram<u64>>,
    segments_seen: Mutex<HashSet<String>>,
    parts_seen: Mutex<HashSet<String>>,
    /// Rendition switches (adaptive viewers, plain and LL).
    pub rendition_switches: AtomicU64,
    pub ll: LlCounters,
    pub stalls: AtomicU64,
    stall_micros: AtomicU64,
    stall_events: Mutex<(Vec<StallEvent>, u64)>,
    stalled_viewers: Mutex<HashSet<u32>>,
    watch_micros: AtomicU64,
    pub active_viewers: AtomicU64,
    pub timeline: Mutex<Vec<Sample>>,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, 3_600_000_000)
}

/// Quantiles at which a distribution's CDF is reported: dense in the tail,
/// where caches and origins differ.
const CDF_QUANTILES: [f64; 19] = [
    0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 0.9999, 1.0,
];

fn distribution(h: &Histogram<u64>) -> Distribution {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Distribution {
        count: h.len(),
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        max_ms: h.max() as f64 / 1000.0,
        cdf: if h.is_empty() {
            Vec::new()
        } else {
            CDF_QUANTILES.iter().map(|&q| [ms(q), q]).collect()
        },
    }
}

fn hit_ratio(cache: &BTreeMap<String, u64>) -> Option<f64> {
    let hits = cache.get("HIT").copied().unwrap_or(0);
    let lookups: u64 = cache
        .iter()
        .filter(|(k, _)| k.as_str() != "PASS")
        .map(|(_, v)| *v)
        .sum();
    (lookups > 0).then(|| hits as f64 / lookups as f64)
}

impl Stats {
    pub fn new(started: Instant) -> Stats {
        Stats {
            started,
            kinds: Mutex::default(),
            ttfb: Mutex::new(Kind::ALL.iter().map(|k| (*k, hist())).collect()),
            download: Mutex::new(Kind::ALL.iter().map(|k| (*k, hist())).collect()),
            latency: Mutex::new(hist()),
            interval_latency: Mutex::new(hist()),
            segments_seen: Mutex::default(),
            parts_seen: Mutex::default(),
            rendition_switches: AtomicU64::new(0),
            ll: LlCounters::default(),
            stalls: AtomicU64::new(0),
            stall_micros: AtomicU64::new(0),
            stall_events: Mutex::default(),
            stalled_viewers: Mutex::default(),
            watch_micros: AtomicU64::new(0),
            active_viewers: AtomicU64::new(0),
            timeline: Mutex::default(),
        }
    }

    pub fn response(&self, kind: Kind, url: &str, ttfb: Duration, total: Duration, bytes: u64, cache: Option<&str>) {
        {
            let mut k = self.kinds.lock().unwrap();
            let e = k.entry(kind).or_default();
            e.requests += 1;
            e.bytes += bytes;
            if let Some(c) = cache {
                *e.cache.entry(c.to_ascii_uppercase()).or_default() += 1;
            }
        }
        let _ = self.ttfb.lock().unwrap().get_mut(&kind).map(|h| h.record(micros(ttfb)));
        let _ = self
            .download
            .lock()
            .unwrap()
            .get_mut(&kind)
            .map(|h| h.record(micros(total)));
        match kind {
            Kind::Segment => {
                self.segments_seen.lock().unwrap().insert(object_of(url).to_string());
            }
            Kind::Part => {
                self.parts_seen.lock().unwrap().insert(object_of(url).to_string());
            }
            _ => {}
        }
    }

    pub fn error(&self, kind: Kind, what: String) {
        let mut k = self.kinds.lock().unwrap();
        let e = k.entry(kind).or_default();
        e.requests += 1;
        *e.errors.entry(what).or_default() += 1;
    }

    /// A stall of `viewer` that began at `since` and ended now.
    pub fn stall(&self, viewer: u32, since: Instant) {
        let lasted = since.elapsed();
        self.stalls.fetch_add(1, Ordering::Relaxed);
        self.stall_micros.fetch_add(micros(lasted), Ordering::Relaxed);
        self.stalled_viewers.lock().unwrap().insert(viewer);
        let mut ev = self.stall_events.lock().unwrap();
        if ev.0.len() < MAX_STALL_EVENTS {
            ev.0.push(StallEvent {
                viewer,
                start_s: since.saturating_duration_since(self.started).as_secs_f64(),
                duration_s: lasted.as_secs_f64(),
            });
        } else {
            ev.1 += 1;
        }
    }

    /// A viewer took part for `d`.
    pub fn watched(&self, d: Duration) {
        self.watch_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn latency(&self, d: Duration) {
        let _ = self.latency.lock().unwrap().record(micros(d));
        let _ = self.interval_latency.lock().unwrap().record(micros(d));
    }

    pub fn hits_and_lookups(&self) -> (u64, u64) {
        let k = self.kinds.lock().unwrap();
        let mut all = BTreeMap::new();
        for p in k.values() {
            for (s, n) in &p.cache {
                *all.entry(s.clone()).or_default() += n;
            }
        }
        let hits = all.get("HIT").copied().unwrap_or(0);
        let lookups: u64 = all.iter().filter(|(k, _)| k.as_str() != "PASS").map(|(_, v)| *v).sum();
        (hits, lookups)
    }

    pub fn total_requests(&self) -> u64 {
        self.kinds.lock().unwrap().values().map(|k| k.requests).sum()
    }

    pub fn total_errors(&self) -> u64 {
        self.kinds
            .lock()
            .unwrap()
            .values()
            .map(|k| k.errors.values().sum::<u64>())
            .sum()
    }

    /// Takes one timeline sample (called once a second) at `t` seconds
    /// since the start; `origin_requests_per_s` comes from the metrics page.
    pub fn sample(&self, t: f64, prev: &mut Totals, origin_requests_per_s: Option<f64>) {
        let (hits, lookups) = self.hits_and_lookups();
        let now = Totals {
            t,
            hits,
            lookups,
            requests: self.total_requests(),
            errors: self.total_errors(),
            stalls: self.stalls.load(Ordering::Relaxed),
            bytes: self.total_bytes(),
        };
        let dt = (t - prev.t).max(1e-3);
        let d_lookups = now.lookups - prev.lookups;
        let lat = std::mem::replace(&mut *self.interval_latency.lock().unwrap(), hist());
        let q = |q: f64| (!lat.is_empty()).then(|| lat.value_at_quantile(q) as f64 / 1e6);
        self.timeline.lock().unwrap().push(Sample {
            t,
            viewers: self.active_viewers.load(Ordering::Relaxed),
            requests_per_s: (now.requests - prev.requests) as f64 / dt,
            errors: now.errors - prev.errors,
            stalls: now.stalls - prev.stalls,
            mbps: (now.bytes - prev.bytes) as f64 * 8.0 / dt / 1e6,
            hit_ratio: (d_lookups > 0).then(|| (now.hits - prev.hits) as f64 / d_lookups as f64),
            origin_requests_per_s,
            latency_p50_s: q(0.5),
            latency_p90_s: q(0.9),
            latency_p99_s: q(0.99),
        });
        *prev = now;
    }

    pub fn distinct_segments(&self) -> u64 {
        self.segments_seen.lock().unwrap().len() as u64
    }

    pub fn distinct_parts(&self) -> u64 {
        self.parts_seen.lock().unwrap().len() as u64
    }

    /// A request that got an answer but counts neither as a response nor
    /// as an error (a preload hint that never came).
    pub fn unanswered(&self, kind: Kind) {
        self.kinds.lock().unwrap().entry(kind).or_default().requests += 1;
    }

    pub fn stall_seconds(&self) -> f64 {
        self.stall_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    pub fn watch_seconds(&self) -> f64 {
        self.watch_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    pub fn stalled_viewers(&self) -> u64 {
        self.stalled_viewers.lock().unwrap().len() as u64
    }

    /// The stall events kept, and how many more there were.
    pub fn stall_events(&self) -> (Vec<StallEvent>, u64) {
        self.stall_events.lock().unwrap().clone()
    }

    pub fn cache_statuses(&self) -> BTreeMap<String, u64> {
        let mut all = BTreeMap::new();
        for p in self.kinds.lock().unwrap().values() {
            for (s, n) in &p.cache {
                *all.entry(s.clone()).or_default() += n;
            }
        }
        all
    }

    pub fn per_kind(&self) -> BTreeMap<String, KindReport> {
        let kinds = self.kinds.lock().unwrap();
        let ttfb = self.ttfb.lock().unwrap();
        let download = self.download.lock().unwrap();
        Kind::ALL
            .iter()
            // Parts only when there were any: a plain HLS run has none.
            .filter(|k| **k != Kind::Part || kinds.contains_key(k))
            .map(|k| {
                let pk = kinds.get(k);
                let cache = pk.map(|p| p.cache.clone()).unwrap_or_default();
                (
                    k.label().to_string(),
                    KindReport {
                        requests: pk.map_or(0, |p| p.requests),
                        bytes: pk.map_or(0, |p| p.bytes),
                        hit_ratio: hit_ratio(&cache),
                        cache_statuses: cache,
                        errors: pk.map(|p| p.errors.clone()).unwrap_or_default(),
                        ttfb: distribution(&ttfb[k]),
                        download: distribution(&download[k]),
                    },
                )
            })
            .collect()
    }

    pub fn latency_summary(&self) -> Option<Latency> {
        let h = self.latency.lock().unwrap();
        (!h.is_empty()).then(|| Latency {
            p50_s: h.value_at_quantile(0.5) as f64 / 1e6,
            p90_s: h.value_at_quantile(0.9) as f64 / 1e6,
            p95_s: Some(h.value_at_quantile(0.95) as f64 / 1e6),
            p99_s: h.value_at_quantile(0.99) as f64 / 1e6,
            max_s: h.max() as f64 / 1e6,
        })
    }

    pub fn total_bytes(&self) -> u64 {
        self.kinds.lock().unwrap().values().map(|k| k.bytes).sum()
    }
}

/// The object a URL names, without an edge's per-viewer path prefixes (the
/// playback session `/_v/{sid}` and the token `/t/{token}`): viewers with
/// different sessions fetch one object under different URLs.
fn object_of(url: &str) -> &str {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url;
    };
    let Some(path_at) = url[start..].find('/').map(|i| start + i) else {
        return url;
    };
    let mut path = &url[path_at..];
    for prefix in ["/_v/", "/t/"] {
        if let Some(rest) = path.strip_prefix(prefix)
            && let Some(i) = rest.find('/')
        {
            path = &rest[i..];
        }
    }
    path
}

#[cfg(test)]
mod tests {
    #[test]
    fn objects_are_counted_without_the_edges_viewer_prefixes() {
        let a = super::object_of("http://127.0.0.1:1/_v/0123456789abcdef/t/k1.5..sig/s/a1/720p/3.m4s");
        assert_eq!(a, "/s/a1/720p/3.m4s");
        assert_eq!(
            super::object_of("http://127.0.0.1:1/s/a1/720p/3.m4s"),
            "/s/a1/720p/3.m4s"
        );
    }
}
