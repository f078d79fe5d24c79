//! `loadtest`: runs simulated HLS viewers against an edge and reports.
//!
//! Modules: [`settings`] (flags and safety rules), [`viewer`] (one player),
//! [`stats`] (shared measurements), [`report`] (JSON, HTML, summary).
//! Many thousands of viewers share one process: each is a tokio task, and
//! all share one HTTP connection pool.

mod report;
mod settings;
mod stats;
mod viewer;

use clap::Parser;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Counters read from the edge's /metrics.
#[derive(Debug, Default, Clone)]
struct EdgeCounters {
    hits: f64,
    lookups: f64,
    origin_segment_fetches: f64,
}

async fn edge_counters(client: &reqwest::Client, url: &reqwest::Url) -> Option<EdgeCounters> {
    let resp = client
        .get(url.clone())
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let text = resp.text().await.ok()?;
    // A counter that has not counted yet is absent from the page: that is a
    // zero, as long as the page is a Prometheus page at all.
    let seen = text.contains("# TYPE ");
    let mut c = EdgeCounters::default();
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else { continue };
        if name.starts_with("edge_requests_total{") && !name.contains("kind=\"other\"") {
            if name.contains("cache_status=\"HIT\"") {
                c.hits += v;
            }
            if ["HIT", "MISS", "EXPIRED", "STALE", "BYPASS"]
                .iter()
                .any(|s| name.contains(&format!("cache_status=\"{s}\"")))
            {
                c.lookups += v;
            }
        } else if (name.starts_with("edge_origin_fetches_total{")
            || (name.starts_with("origin_http_requests_total{") && name.contains("status=\"200\"")))
            && name.contains("kind=\"segment\"")
        {
            // The edge's count of origin fetches, or (when --metrics-url is
            // an origin's) the origin's own count of segment requests.
            c.origin_segment_fetches += v;
        }
    }
    seen.then_some(c)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = settings::Settings::parse();
    s.check()?;
    let client = reqwest::Client::builder()
        .timeout(s.request_timeout)
        .connect_timeout(s.request_timeout.min(Duration::from_secs(3)))
        .pool_max_idle_per_host(s.viewers as usize * 2)
        .build()?;
    let metrics_url = s.metrics_url();
    let before = edge_counters(&client, &metrics_url).await;

    let stats = Arc::new(stats::Stats::default());
    let started = Instant::now();
    let stop_at = started + s.duration;
    let mut viewers = tokio::task::JoinSet::new();
    // Progress: one line a second on stderr, and the timeline sample.
    let progress = {
        let (stats, quiet) = (stats.clone(), s.quiet);
        tokio::spawn(async move {
            let mut prev = (0, 0, 0);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let t = started.elapsed().as_secs_f64();
                stats.sample(t, &mut prev);
                if !quiet {
                    let (hits, lookups) = stats.hits_and_lookups();
                    eprintln!(
                        "[{t:5.0}s] viewers {:>5}  requests {:>8}  hit ratio {:>6.2}%  errors {:>5}  stalls {:>4}",
                        stats.active_viewers.load(Ordering::Relaxed),
                        stats.total_requests(),
                        if lookups > 0 {
                            hits as f64 * 100.0 / lookups as f64
                        } else {
                            0.0
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
        let v = viewer::Viewer {
            client: client.clone(),
            url: s.url.clone(),
            pick: s.pick,
            stats: stats.clone(),
            stop_at,
        };
        let stats = stats.clone();
        viewers.spawn(async move {
            tokio::time::sleep_until(join_at.into()).await;
            stats.active_viewers.fetch_add(1, Ordering::Relaxed);
            v.run().await;
            stats.active_viewers.fetch_sub(1, Ordering::Relaxed);
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

    let after = edge_counters(&client, &metrics_url).await;
    let (hits, lookups) = stats.hits_and_lookups();
    let distinct = stats.distinct_segments();
    let (edge_hit_ratio, origin_per_segment) = match (&before, &after) {
        (Some(b), Some(a)) => {
            let lookups = a.lookups - b.lookups;
            let fetches = a.origin_segment_fetches - b.origin_segment_fetches;
            (
                (lookups > 0.0).then(|| (a.hits - b.hits) / lookups),
                (distinct > 0).then(|| fetches / distinct as f64),
            )
        }
        _ => (None, None),
    };
    let report = json!({
        "url": s.url.as_str(),
        "viewers": s.viewers,
        "duration_s": s.duration.as_secs_f64(),
        "elapsed_s": elapsed,
        "hit_ratio": (lookups > 0).then(|| hits as f64 / lookups as f64),
        "edge_hit_ratio": edge_hit_ratio,
        "origin_requests_per_segment": origin_per_segment,
        "distinct_segments": distinct,
        "errors": stats.total_errors(),
        "requests": stats.total_requests(),
        "stalls": stats.stalls.load(Ordering::Relaxed),
        "stall_seconds": stats.stall_seconds(),
        "stalls_per_viewer": stats.stalls.load(Ordering::Relaxed) as f64 / f64::from(s.viewers),
        "throughput_mbps": stats.total_bytes() as f64 * 8.0 / elapsed / 1e6,
        "latency": stats.latency_summary(),
        "cache_statuses": stats.cache_statuses(),
        "by_kind": stats.per_kind().into_iter().collect::<BTreeMap<_, _>>(),
        "timeline": *stats.timeline.lock().unwrap(),
    });
    let timeline = stats.timeline.lock().unwrap().clone();
    report::write(&s.report_dir, &report, &timeline)?;
    println!("{}", report::summary(&report));
    println!(
        "reports: {}/report.json, {}/report.html",
        s.report_dir.display(),
        s.report_dir.display()
    );
    Ok(())
}
