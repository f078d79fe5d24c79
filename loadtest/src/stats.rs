//! What the viewers measure, shared by all of them.
//!
//! Histograms are HDR histograms (microseconds, 3 significant digits); the
//! time series is one sample per second, taken by the progress task.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Object kinds a player requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Multivariant,
    Playlist,
    Init,
    Segment,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Multivariant, Kind::Playlist, Kind::Init, Kind::Segment];
    pub fn label(self) -> &'static str {
        match self {
            Kind::Multivariant => "multivariant",
            Kind::Playlist => "playlist",
            Kind::Init => "init",
            Kind::Segment => "segment",
        }
    }
}

#[derive(Default)]
struct PerKind {
    requests: u64,
    bytes: u64,
    errors: BTreeMap<String, u64>,
}

pub struct Stats {
    kinds: Mutex<BTreeMap<Kind, PerKind>>,
    ttfb: Mutex<BTreeMap<Kind, Histogram<u64>>>,
    download: Mutex<BTreeMap<Kind, Histogram<u64>>>,
    latency: Mutex<Histogram<u64>>,
    /// X-Cache-Status counts.
    cache: Mutex<BTreeMap<String, u64>>,
    segments_seen: Mutex<HashSet<String>>,
    pub stalls: AtomicU64,
    stall_micros: AtomicU64,
    pub active_viewers: AtomicU64,
    /// Latency samples since the last timeline sample (sum µs, count).
    interval_latency: Mutex<(u64, u64)>,
    pub timeline: Mutex<Vec<Sample>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t: f64,
    pub viewers: u64,
    pub hit_ratio: Option<f64>,
    pub latency_s: Option<f64>,
    pub requests: u64,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            kinds: Mutex::default(),
            ttfb: Mutex::new(Kind::ALL.iter().map(|k| (*k, hist())).collect()),
            download: Mutex::new(Kind::ALL.iter().map(|k| (*k, hist())).collect()),
            latency: Mutex::new(hist()),
            cache: Mutex::default(),
            segments_seen: Mutex::default(),
            stalls: AtomicU64::new(0),
            stall_micros: AtomicU64::new(0),
            active_viewers: AtomicU64::new(0),
            interval_latency: Mutex::default(),
            timeline: Mutex::default(),
        }
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, 3_600_000_000)
}

impl Stats {
    pub fn response(&self, kind: Kind, url: &str, ttfb: Duration, total: Duration, bytes: u64, cache: Option<&str>) {
        {
            let mut k = self.kinds.lock().unwrap();
            let e = k.entry(kind).or_default();
            e.requests += 1;
            e.bytes += bytes;
        }
        let _ = self.ttfb.lock().unwrap().get_mut(&kind).map(|h| h.record(micros(ttfb)));
        let _ = self
            .download
            .lock()
            .unwrap()
            .get_mut(&kind)
            .map(|h| h.record(micros(total)));
        if let Some(c) = cache {
            *self.cache.lock().unwrap().entry(c.to_ascii_uppercase()).or_default() += 1;
        }
        if kind == Kind::Segment {
            self.segments_seen.lock().unwrap().insert(url.to_string());
        }
    }

    pub fn error(&self, kind: Kind, what: String) {
        let mut k = self.kinds.lock().unwrap();
        let e = k.entry(kind).or_default();
        e.requests += 1;
        *e.errors.entry(what).or_default() += 1;
    }

    pub fn stall(&self, lasted: Duration) {
        self.stalls.fetch_add(1, Ordering::Relaxed);
        self.stall_micros.fetch_add(micros(lasted), Ordering::Relaxed);
    }

    pub fn latency(&self, d: Duration) {
        let _ = self.latency.lock().unwrap().record(micros(d));
        let mut i = self.interval_latency.lock().unwrap();
        i.0 += micros(d);
        i.1 += 1;
    }

    pub fn hits_and_lookups(&self) -> (u64, u64) {
        let c = self.cache.lock().unwrap();
        let hits = c.get("HIT").copied().unwrap_or(0);
        let lookups: u64 = c.iter().filter(|(k, _)| k.as_str() != "PASS").map(|(_, v)| *v).sum();
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

    /// Takes one timeline sample (called once a second).
    pub fn sample(&self, t: f64, prev: &mut (u64, u64, u64)) {
        let (hits, lookups) = self.hits_and_lookups();
        let requests = self.total_requests();
        let d_lookups = lookups - prev.1;
        let hit_ratio = (d_lookups > 0).then(|| (hits - prev.0) as f64 / d_lookups as f64);
        let (sum, n) = std::mem::take(&mut *self.interval_latency.lock().unwrap());
        let latency_s = (n > 0).then(|| sum as f64 / n as f64 / 1e6);
        self.timeline.lock().unwrap().push(Sample {
            t,
            viewers: self.active_viewers.load(Ordering::Relaxed),
            hit_ratio,
            latency_s,
            requests: requests - prev.2,
        });
        *prev = (hits, lookups, requests);
    }

    pub fn distinct_segments(&self) -> u64 {
        self.segments_seen.lock().unwrap().len() as u64
    }

    pub fn stall_seconds(&self) -> f64 {
        self.stall_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    pub fn cache_statuses(&self) -> BTreeMap<String, u64> {
        self.cache.lock().unwrap().clone()
    }

    pub fn per_kind(&self) -> BTreeMap<&'static str, serde_json::Value> {
        let kinds = self.kinds.lock().unwrap();
        let ttfb = self.ttfb.lock().unwrap();
        let download = self.download.lock().unwrap();
        let pct = |h: &Histogram<u64>| {
            serde_json::json!({
                "count": h.len(),
                "p50_ms": h.value_at_quantile(0.5) as f64 / 1000.0,
                "p90_ms": h.value_at_quantile(0.9) as f64 / 1000.0,
                "p99_ms": h.value_at_quantile(0.99) as f64 / 1000.0,
                "max_ms": h.max() as f64 / 1000.0,
            })
        };
        Kind::ALL
            .iter()
            .map(|k| {
                let pk = kinds.get(k);
                (
                    k.label(),
                    serde_json::json!({
                        "requests": pk.map_or(0, |p| p.requests),
                        "bytes": pk.map_or(0, |p| p.bytes),
                        "errors": pk.map(|p| p.errors.clone()).unwrap_or_default(),
                        "ttfb": pct(&ttfb[k]),
                        "download": pct(&download[k]),
                    }),
                )
            })
            .collect()
    }

    pub fn latency_summary(&self) -> serde_json::Value {
        let h = self.latency.lock().unwrap();
        if h.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::json!({
            "p50_s": h.value_at_quantile(0.5) as f64 / 1e6,
            "p90_s": h.value_at_quantile(0.9) as f64 / 1e6,
            "p99_s": h.value_at_quantile(0.99) as f64 / 1e6,
            "max_s": h.max() as f64 / 1e6,
        })
    }

    pub fn total_bytes(&self) -> u64 {
        self.kinds.lock().unwrap().values().map(|k| k.bytes).sum()
    }
}
