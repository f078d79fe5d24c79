//! One load-test run: viewers joined over the ramp, a sample a second
//! (with the edge's or origin's counters), then the [`Report`].
//!
//! Many thousands of viewers share one process: each is a tokio task, and
//! all share one HTTP connection pool.

use crate::model::{LlReport, Report, SCHEMA, SCHEMA_VERSION, Verdict};
use crate::settings::Settings;
use crate::stats::{Stats, Totals};
use crate::viewer::Viewer;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Counters read from a Prometheus page: the edge's, or an origin's.
#[derive(Debug, Default, Clone)]
struct Counters {
    hits: f64,
    lookups: f64,
    /// Requests that reached the origin, all object kinds.
    origin_fetches: f64,
    origin_segment_fetches: f64,
    /// Part requests the origin answered with 200 (LL-HLS).
    origin_part_fetches: f64,
    /// Part requests answered otherwise (404 for a hint that never came,
    /// 503 past the hold).
    origin_part_failed: f64,
}

/// The most of a metrics page read (ours are a few kB): a page that goes on
/// is not read into memory once a second.
const MAX_METRICS_PAGE: usize = 4 << 20;

async fn counters(client: &reqwest::Client, url: &reqwest::Url, timeout: Duration) -> Option<Counters> {
    let mut resp = client.get(url.clone()).timeout(timeout).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.ok()? {
        if body.len() + chunk.len() > MAX_METRICS_PAGE {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&body);
    // A counter that has not counted yet is absent from the page: that is a
    // zero, as long as the page is a Prometheus page at all.
    let seen = text.contains("# TYPE ");
    let mut c = Counters::default();
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else { continue };
        if name.contains("kind=\"other\"") {
            continue;
        }
        if name.starts_with("edge_requests_total{") {
            if name.contains("cache_status=\"HIT\"") {
                c.hits += v;
            }
            if ["HIT", "MISS", "EXPIRED", "STALE", "BYPASS"]
                .iter()
                .any(|s| name.contains(&format!("cache_status=\"{s}\"")))
            {
                c.lookups += v;
            }
        } else if name.starts_with("edge_origin_fetches_total{") || name.starts_with("origin_http_requests_total{") {
            // The edge's count of origin fetches, or (when --metrics-url is
            // an origin's) the origin's own count of the requests it served.
            c.origin_fetches += v;
            let ok = name.starts_with("edge_") || name.contains("status=\"200\"");
            if ok && name.contains("kind=\"segment\"") {
                c.origin_segment_fetches += v;
            }
            if name.contains("kind=\"part\"") {
                if name.contains("status=\"200\"") {
                    c.origin_part_fetches += v;
                } else {
                    c.origin_part_failed += v;
                }
            }
        }
    }
    seen.then_some(c)
}

/// Runs the viewers and measures; `command` is the command line, kept in the
/// report.
pub async fn run(s: &Settings, command: Vec<String>) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder()
        .timeout(s.request_timeout)
        .connect_timeout(s.request_timeout.min(Duration::from_secs(3)))
        .pool_max_idle_per_host(s.viewers as usize * 2)
        .build()?;
    let metrics_url = s.metrics_url();
    let before = counters(&client, &metrics_url, Duration::from_secs(3)).await;

    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let started = Instant::now();
    let stats = Arc::new(Stats::new(started));
    let stop_at = started + s.duration;
    let mut viewers = tokio::task::JoinSet::new();
    // Once a second: the timeline sample (with the metrics page's origin
    // count) and, unless --quiet, a progress line on stderr.
    let progress = {
        let (stats, quiet, client, url) = (stats.clone(), s.quiet, client.clone(), metrics_url.clone());
        let mut last = before.clone().map(|c| (0.0, c));
        tokio::spawn(async move {
            let mut totals = Totals::default();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = counters(&client, &url, Duration::from_millis(800)).await;
                let t = started.elapsed().as_secs_f64();
                let origin_rps = match (&last, &now) {
                    (Some((t0, a)), Some(b)) => {
                        Some((b.origin_fetches - a.origin_fetches).max(0.0) / (t - t0).max(1e-3))
                    }
                    _ => None,
                };
                if let Some(c) = now {
                    last = Some((t, c));
                }
                stats.sample(t, &mut totals, origin_rps);
                if !quiet {
                    let (hits, lookups) = stats.hits_and_lookups();
                    eprintln!(
                        "[{t:5.0}s] viewers {:>5}  requests {:>8}  hit ratio {:>8}  errors {:>5}  stalls {:>4}",
                        stats.active_viewers.load(Ordering::Relaxed),
                        stats.total_requests(),
                        if lookups > 0 {
                            crate::plot::pct(hits as f64 / lookups as f64)
                        } else {
                            "–".into()
                        },
                        stats.total_errors(),
                        stats.stalls.load(Ordering::Relaxed),
                    );
                }
            }
        })
    };
    for i in 0..s.viewers {
        let join_at = started + s.ramp.mul_f64(f64::from(i) / f64::from(s.viewers));
        let v = Viewer {
            id: i,
            client: client.clone(),
            url: s.url.clone(),
            pick: s.pick,
            ll: s.ll,
            preload_hints: !s.no_preload_hints,
            stats: stats.clone(),
            stop_at,
        };
        let stats = stats.clone();
        viewers.spawn(async move {
            tokio::time::sleep_until(join_at.into()).await;
            let joined = Instant::now();
            stats.active_viewers.fetch_add(1, Ordering::Relaxed);
            v.run().await;
            stats.active_viewers.fetch_sub(1, Ordering::Relaxed);
            stats.watched(joined.elapsed());
        });
    }
    // Every viewer stops by itself at stop_at; this bounds the wait anyway.
    let deadline = stop_at + s.request_timeout + Duration::from_secs(2);
    while tokio::time::timeout_at(deadline.into(), viewers.join_next())
        .await
        .ok()
        .flatten()
        .is_some()
    {}
    viewers.abort_all();
    progress.abort();
    let elapsed = started.elapsed().as_secs_f64();

    let after = counters(&client, &metrics_url, Duration::from_secs(3)).await;
    let (hits, lookups) = stats.hits_and_lookups();
    let distinct = stats.distinct_segments();
    let distinct_parts = stats.distinct_parts();
    let requests = stats.total_requests();
    let (edge_hit_ratio, origin_requests, origin_per_segment) = match (&before, &after) {
        (Some(b), Some(a)) => {
            let lookups = a.lookups - b.lookups;
            let segment_fetches = a.origin_segment_fetches - b.origin_segment_fetches;
            (
                (lookups > 0.0).then(|| (a.hits - b.hits) / lookups),
                Some(a.origin_fetches - b.origin_fetches),
                (distinct > 0).then(|| segment_fetches / distinct as f64),
            )
        }
        _ => (None, None, None),
    };
    let origin_parts = before.as_ref().zip(after.as_ref()).map(|(b, a)| {
        (
            a.origin_part_fetches - b.origin_part_fetches,
            a.origin_part_failed - b.origin_part_failed,
        )
    });
    let ll = {
        let c = &stats.ll;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        (n(&c.viewers) > 0).then(|| LlReport {
            viewers: n(&c.viewers),
            blocking_reloads: n(&c.blocking_reloads),
            delta_updates: n(&c.delta_updates),
            delta_failures: n(&c.delta_failures),
            preload_hints: n(&c.preload_hints),
            preload_hint_misses: n(&c.preload_hint_misses),
            origin_part_requests: origin_parts.map(|p| p.0),
            origin_part_requests_failed: origin_parts.map(|p| p.1),
        })
    };
    let errors = stats.total_errors();
    let stalls = stats.stalls.load(Ordering::Relaxed);
    let watch_seconds = stats.watch_seconds();
    let bytes = stats.total_bytes();
    let (stall_events, stall_events_dropped) = stats.stall_events();
    let timeline = std::mem::take(&mut *stats.timeline.lock().unwrap());
    let mut report = Report {
        schema: SCHEMA.into(),
        schema_version: SCHEMA_VERSION,
        label: s.label.clone(),
        command,
        started_at,
        url: s.url.to_string(),
        viewers: s.viewers,
        ramp_s: s.ramp.as_secs_f64(),
        duration_s: s.duration.as_secs_f64(),
        elapsed_s: elapsed,
        requests,
        errors,
        error_rate: if requests > 0 {
            errors as f64 / requests as f64
        } else {
            0.0
        },
        stalls,
        stalled_viewers: stats.stalled_viewers(),
        stall_seconds: stats.stall_seconds(),
        stalls_per_viewer: stalls as f64 / f64::from(s.viewers),
        watch_seconds,
        stall_ratio: if watch_seconds > 0.0 {
            stats.stall_seconds() / watch_seconds
        } else {
            0.0
        },
        bytes,
        throughput_mbps: bytes as f64 * 8.0 / elapsed / 1e6,
        hit_ratio: (lookups > 0).then(|| hits as f64 / lookups as f64),
        edge_hit_ratio,
        origin_requests,
        origin_offload: origin_requests
            .filter(|_| requests > 0)
            .map(|o| 1.0 - o / requests as f64),
        origin_requests_per_segment: origin_per_segment,
        distinct_segments: distinct,
        origin_requests_per_part: origin_parts
            .filter(|_| distinct_parts > 0)
            .map(|p| p.0 / distinct_parts as f64),
        distinct_parts,
        rendition_switches: stats.rendition_switches.load(Ordering::Relaxed),
        ll,
        latency: stats.latency_summary(),
        cache_statuses: stats.cache_statuses(),
        by_kind: stats.per_kind(),
        timeline,
        stall_events,
        stall_events_dropped,
        verdict: Verdict::of(errors, stalls),
        fail_on: None,
    };
    report.fail_on = s.fail_on.as_ref().map(|c| c.check(&report));
    Ok(report)
}
