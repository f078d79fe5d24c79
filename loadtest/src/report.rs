//! The reports of one run: `report.json` for machines (the schema is
//! [`crate::model`]), `report.html` for people, and the summary printed at
//! the end.
//!
//! The HTML page is one self-contained file (inline CSS and SVG, no script,
//! nothing fetched), laid out as k6's and Gatling's summaries are: the
//! verdict first, then the figures an operator came for (offload, latency,
//! stalls), a table per object kind, and the plots over time. Every number
//! goes through [`crate::plot`]'s formatting: no more than four decimals.

use crate::model::{KindReport, Report, Verdict};
use crate::plot::{LineChart, Series, SpanChart, YRange, bytes, esc, num, pct};
use std::fmt::Write as _;
use std::path::Path;

/// The order kinds are shown in; unknown kinds follow, alphabetically.
const KIND_ORDER: [&str; 5] = ["multivariant", "playlist", "init", "segment", "part"];

/// The kinds of a report in display order.
pub fn kinds(r: &Report) -> Vec<(&str, &KindReport)> {
    let mut v: Vec<(&str, &KindReport)> = r.by_kind.iter().map(|(k, v)| (k.as_str(), v)).collect();
    v.sort_by_key(|(k, _)| (KIND_ORDER.iter().position(|o| o == k).unwrap_or(KIND_ORDER.len()), *k));
    v
}

/// Writes `report.json` and `report.html` into `dir`.
pub fn write(dir: &Path, report: &Report) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(report)? + "\n")?;
    std::fs::write(dir.join("report.html"), html(report))?;
    Ok(())
}

/// A rate as a percentage with three significant digits (`0.0417 %`).
pub fn rate(r: f64) -> String {
    if r == 0.0 {
        "0 %".into()
    } else {
        format!("{} %", num(r * 100.0))
    }
}

fn seconds(s: f64) -> String {
    format!("{} s", num(s))
}

/// The verdict in one sentence.
pub fn verdict_line(r: &Report) -> String {
    let stalls = format!(
        "{} stall{} in {} of {} viewers ({} stalled, {} of watch time)",
        r.stalls,
        if r.stalls == 1 { "" } else { "s" },
        r.stalled_viewers,
        r.viewers,
        seconds(r.stall_seconds),
        rate(r.stall_ratio)
    );
    let errors = format!(
        "{} errors ({} of {} requests)",
        r.errors,
        rate(r.error_rate),
        r.requests
    );
    match r.verdict {
        Verdict::Clean => format!(
            "Clean: {} viewers for {}, no errors in {} requests, no stalls",
            r.viewers,
            seconds(r.duration_s),
            r.requests
        ),
        Verdict::Stalls => format!("Stalls: {stalls}; no errors"),
        Verdict::Errors if r.stalls > 0 => format!("Errors: {errors}; {stalls}"),
        Verdict::Errors => format!("Errors: {errors}; no stalls"),
    }
}

/// The command line, quoted for a POSIX shell where needed.
pub fn command_line(r: &Report) -> String {
    r.command
        .iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// (label, value) rows of the summary, shared by the page and the terminal.
fn summary_rows(r: &Report) -> Vec<(&'static str, String)> {
    let opt_pct = |v: Option<f64>, missing: &str| v.map_or(missing.to_string(), pct);
    let mut rows = vec![
        ("Verdict", r.verdict.label().to_string()),
        ("Viewers", format!("{} (joined over {})", r.viewers, seconds(r.ramp_s))),
        (
            "Duration",
            format!("{} (ran {})", seconds(r.duration_s), seconds(r.elapsed_s)),
        ),
        (
            "Requests",
            format!("{} ({} /s)", r.requests, num(r.requests as f64 / r.elapsed_s.max(1e-3))),
        ),
        (
            "Hit ratio",
            opt_pct(r.hit_ratio, "no X-Cache-Status seen") + " (from viewers' X-Cache-Status)",
        ),
        (
            "Edge hit ratio",
            opt_pct(r.edge_hit_ratio, "not read") + " (from the edge's counters)",
        ),
        (
            "Origin offload",
            match (r.origin_offload, r.origin_requests) {
                (Some(o), Some(n)) => format!(
                    "{} ({} origin requests for {} viewer requests)",
                    pct(o.max(0.0)),
                    num(n),
                    r.requests
                ),
                _ => "not read (no metrics page)".into(),
            },
        ),
        (
            "Origin requests per segment",
            r.origin_requests_per_segment.map_or("not read".into(), |v| {
                format!("{} ({} distinct segments)", num(v), r.distinct_segments)
            }),
        ),
        (
            "Origin requests per part",
            match (r.origin_requests_per_part, &r.ll) {
                (Some(v), _) => format!("{} ({} distinct parts)", num(v), r.distinct_parts),
                (None, Some(_)) => "not read".into(),
                (None, None) => "no parts (not LL-HLS)".into(),
            },
        ),
        (
            "Errors",
            if r.errors == 0 {
                "0".into()
            } else {
                format!("{} ({} of requests)", r.errors, rate(r.error_rate))
            },
        ),
        (
            "Stalls",
            if r.stalls == 0 {
                "0".into()
            } else {
                format!(
                    "{} in {} viewers ({} per viewer; {} stalled, {} of watch time)",
                    r.stalls,
                    r.stalled_viewers,
                    num(r.stalls_per_viewer),
                    seconds(r.stall_seconds),
                    rate(r.stall_ratio)
                )
            },
        ),
        (
            "Throughput",
            format!("{} Mbit/s ({} received)", num(r.throughput_mbps), bytes(r.bytes)),
        ),
        (
            "Live latency",
            r.latency.map_or("never playing".into(), |l| {
                let p95 = l.p95_s.map_or(String::new(), |p| format!(" · p95 {}", seconds(p)));
                format!(
                    "p50 {} · p90 {}{p95} · p99 {} (max {})",
                    seconds(l.p50_s),
                    seconds(l.p90_s),
                    seconds(l.p99_s),
                    seconds(l.max_s)
                )
            }),
        ),
        ("Rendition switches", r.rendition_switches.to_string()),
    ];
    if let Some(ll) = &r.ll {
        rows.push((
            "LL-HLS",
            format!(
                "{} viewers; {} blocking reloads, {} delta updates ({} refused), {} preload hints ({} never came)",
                ll.viewers,
                ll.blocking_reloads,
                ll.delta_updates,
                ll.delta_failures,
                ll.preload_hints,
                ll.preload_hint_misses
            ),
        ));
    }
    if let Some(f) = &r.fail_on {
        rows.push((
            "--fail-on",
            if f.failed {
                format!("{}: held: {} (exit status 3)", f.conditions, f.held.join(", "))
            } else {
                format!("{}: none held", f.conditions)
            },
        ));
    }
    rows
}

fn errors_by_cause(k: &KindReport) -> String {
    if k.errors.is_empty() {
        return "none".into();
    }
    k.errors
        .iter()
        .map(|(cause, n)| format!("{cause}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;color:#1b1b1b;max-width:960px;margin:1.5em auto;padding:0 1em}
h1{font-size:1.6em;margin:.2em 0}h1 small{color:#666;font-weight:normal}
h2{font-size:1.2em;margin:1.6em 0 .5em;border-bottom:1px solid #ddd}
.meta{color:#555;margin:0}
.verdict{padding:.6em .9em;border-radius:4px;font-size:1.1em;margin:1em 0}
.verdict.clean{background:#e3f4e8;border-left:6px solid #1a7f37}
.verdict.stalls{background:#fff4d6;border-left:6px solid #b07d00}
.verdict.errors{background:#fde7e7;border-left:6px solid #c62828}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #eee;vertical-align:top}
table.summary th{text-align:left;white-space:nowrap;color:#333}
table.kinds td,table.kinds th{text-align:right}
table.kinds td:first-child,table.kinds th:first-child,table.kinds td.errors{text-align:left}
table.kinds thead th{background:#f5f5f5}
figure{margin:1.2em 0}figcaption{font-weight:600;margin-bottom:.2em}
figure p{margin:.2em 0;color:#555;font-size:.9em}
svg.chart{max-width:100%;height:auto;background:#fff}
svg.chart text{font:11px system-ui,sans-serif;fill:#333}
svg.chart text.axis-label{font-size:12px;fill:#111}
svg.chart text.value{font-size:10px;fill:#333}
svg.chart text.empty{font-size:14px;fill:#888}
svg.chart .grid{stroke:#eee}svg.chart .axis{stroke:#777}
svg.chart .line{fill:none;stroke-width:2}
pre{background:#f5f5f5;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
footer{margin-top:2em;color:#666;font-size:.9em}
";

fn figure(out: &mut String, id: &str, caption: &str, note: &str, svg: &str) {
    let _ = write!(
        out,
        r#"<figure id="{id}"><figcaption>{}</figcaption>{svg}<p>{}</p></figure>"#,
        esc(caption),
        esc(note)
    );
}

/// The whole HTML page.
pub fn html(r: &Report) -> String {
    let mut out = String::new();
    let title = match &r.label {
        Some(l) => format!("Load test: {l}, {} viewers", r.viewers),
        None => format!("Load test: {} viewers", r.viewers),
    };
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{}</title><style>{STYLE}</style></head><body>"#,
        esc(&title)
    );
    let _ = write!(
        out,
        r#"<header><h1>Load test{}</h1><p class="meta">{} · <code>{}</code></p></header>"#,
        r.label
            .as_ref()
            .map(|l| format!(" <small>{}</small>", esc(l)))
            .unwrap_or_default(),
        esc(&r.started_at),
        esc(&r.url)
    );
    let _ = write!(
        out,
        r#"<p id="verdict" class="verdict {}">{}</p>"#,
        r.verdict.label(),
        esc(&verdict_line(r))
    );
    out.push_str(r#"<section><h2>Summary</h2><table id="summary" class="summary">"#);
    for (k, v) in summary_rows(r) {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    out.push_str("</table></section>");

    out.push_str(
        r#"<section><h2>By object kind</h2><table id="by-kind" class="kinds"><thead><tr><th rowspan="2">kind</th><th rowspan="2">requests</th><th rowspan="2">hit ratio</th><th colspan="3">time to first byte (ms)</th><th colspan="3">download (ms)</th><th rowspan="2">bytes</th><th rowspan="2">errors by cause</th></tr><tr><th>p50</th><th>p90</th><th>p99</th><th>p50</th><th>p90</th><th>p99</th></tr></thead><tbody>"#,
    );
    for (name, k) in kinds(r) {
        let d = |v: f64, count: u64| if count > 0 { num(v) } else { "–".into() };
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="errors">{}</td></tr>"#,
            esc(name),
            k.requests,
            k.hit_ratio.map_or("–".into(), pct),
            d(k.ttfb.p50_ms, k.ttfb.count),
            d(k.ttfb.p90_ms, k.ttfb.count),
            d(k.ttfb.p99_ms, k.ttfb.count),
            d(k.download.p50_ms, k.download.count),
            d(k.download.p90_ms, k.download.count),
            d(k.download.p99_ms, k.download.count),
            bytes(k.bytes),
            esc(&errors_by_cause(k))
        );
    }
    out.push_str("</tbody></table>");
    if !r.cache_statuses.is_empty() {
        let statuses: Vec<String> = r.cache_statuses.iter().map(|(s, n)| format!("{s} {n}")).collect();
        let _ = write!(out, "<p>X-Cache-Status seen: {}.</p>", esc(&statuses.join(", ")));
    }
    out.push_str("</section><section><h2>Plots</h2>");
    plots(&mut out, r);
    out.push_str("</section>");
    let _ = write!(
        out,
        r#"<section><h2>Command</h2><pre id="command"><code>{}</code></pre></section><footer>Schema <code>{}</code> version {} (docs/loadtest.md) · machine-readable: <a href="report.json">report.json</a></footer></body></html>"#,
        esc(&command_line(r)),
        esc(&r.schema),
        r.schema_version
    );
    out
}

fn plots(out: &mut String, r: &Report) {
    let tl = &r.timeline;
    let x_max = Some(r.elapsed_s.max(r.duration_s));
    let series = |f: &dyn Fn(&crate::model::Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        tl.iter().filter_map(|s| f(s).map(|v| (s.t, v))).collect()
    };
    figure(
        out,
        "plot-load",
        "Viewers and requests per second",
        "Viewers playing (left axis) and requests sent per second, all kinds (right axis).",
        &LineChart {
            title: "Viewers and requests per second",
            x_label: "time since start (s)",
            y_label: "viewers",
            y_range: YRange::FromZero,
            y2: Some(("requests per second", YRange::FromZero)),
            x_max,
            x_log: false,
            series: vec![
                Series::new("viewers", series(&|s| Some(s.viewers as f64))),
                Series::new("requests/s", series(&|s| Some(s.requests_per_s)))
                    .on_right()
                    .dashed(),
            ],
        }
        .svg(),
    );
    let origin = series(&|s| s.origin_requests_per_s);
    figure(
        out,
        "plot-offload",
        "Hit ratio and origin requests per second",
        if origin.is_empty() {
            "Hit ratio of each second's responses (left axis). No origin counts: the metrics page was not read."
        } else {
            "Hit ratio of each second's responses (left axis) and requests reaching the origin per second (right axis): the origin's load is what the cache did not offload."
        },
        &LineChart {
            title: "Hit ratio and origin requests per second",
            x_label: "time since start (s)",
            y_label: "hit ratio (%)",
            y_range: YRange::Ratio,
            y2: Some(("origin requests per second", YRange::FromZero)),
            x_max,
            x_log: false,
            series: vec![
                Series::new("hit ratio", series(&|s| s.hit_ratio)),
                Series::new("origin requests/s", origin).on_right().dashed(),
            ],
        }
        .svg(),
    );
    figure(
        out,
        "plot-latency",
        "Live latency percentiles",
        "Wall clock minus the program date-time of the media playing, over the viewers' samples in each second.",
        &LineChart {
            title: "Live latency percentiles",
            x_label: "time since start (s)",
            y_label: "live latency (s)",
            y_range: YRange::FromZero,
            y2: None,
            x_max,
            x_log: false,
            series: vec![
                Series::new("p50", series(&|s| s.latency_p50_s)),
                Series::new("p90", series(&|s| s.latency_p90_s)),
                Series::new("p99", series(&|s| s.latency_p99_s)),
            ],
        }
        .svg(),
    );
    figure(
        out,
        "plot-ttfb",
        "Time to first byte by object kind",
        "Share of successful requests of each kind answered within a time (cumulative; logarithmic time axis).",
        &LineChart {
            title: "Time to first byte by object kind",
            x_label: "time to first byte (ms, log scale)",
            y_label: "requests answered (%)",
            y_range: YRange::Percent,
            y2: None,
            x_max: None,
            x_log: true,
            series: kinds(r)
                .into_iter()
                .filter(|(_, k)| !k.ttfb.cdf.is_empty())
                .map(|(name, k)| Series::new(name, k.ttfb.cdf.iter().map(|p| (p[0], p[1])).collect()))
                .collect(),
        }
        .svg(),
    );
    // The stall timeline: one row per viewer that stalled.
    let mut rows: std::collections::BTreeMap<u32, Vec<(f64, f64)>> = Default::default();
    for e in &r.stall_events {
        rows.entry(e.viewer).or_default().push((e.start_s, e.duration_s));
    }
    const MAX_ROWS: usize = 200;
    let shown = rows.len().min(MAX_ROWS);
    let mut note = format!(
        "Each bar is a stall: the viewer (row), when its playback stopped and for how long. {} stalls in {} viewers.",
        r.stalls, r.stalled_viewers
    );
    if rows.len() > MAX_ROWS || r.stall_events_dropped > 0 {
        let _ = write!(
            note,
            " Shown: the first {shown} viewers that stalled{}.",
            if r.stall_events_dropped > 0 {
                format!("; {} later stalls were counted, not listed", r.stall_events_dropped)
            } else {
                String::new()
            }
        );
    }
    figure(
        out,
        "plot-stalls",
        "Stall timeline",
        &note,
        &SpanChart {
            title: "Stall timeline",
            x_label: "time since start (s)",
            y_label: if shown <= 12 {
                "viewer"
            } else {
                "viewers that stalled (in viewer order)"
            },
            x_max: r.elapsed_s.max(r.duration_s),
            rows: rows
                .into_iter()
                .take(MAX_ROWS)
                .map(|(v, spans)| (format!("#{v}"), spans))
                .collect(),
            empty: "no stalls",
        }
        .svg(),
    );
    figure(
        out,
        "plot-throughput",
        "Throughput",
        "Body bytes received by all viewers, per second.",
        &LineChart {
            title: "Throughput",
            x_label: "time since start (s)",
            y_label: "throughput (Mbit/s)",
            y_range: YRange::FromZero,
            y2: None,
            x_max,
            x_log: false,
            series: vec![Series::new("Mbit/s", series(&|s| Some(s.mbps)))],
        }
        .svg(),
    );
}

/// The summary printed at the end of a run.
pub fn summary(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", verdict_line(r));
    for (k, v) in summary_rows(r) {
        let _ = writeln!(out, "{k:<29} {v}");
    }
    let _ = writeln!(
        out,
        "\n{:<13} {:>9} {:>9} {:>29} {:>29} {:>10}  errors",
        "kind", "requests", "hit ratio", "ttfb p50/p90/p99 (ms)", "download p50/p90/p99 (ms)", "bytes"
    );
    for (name, k) in kinds(r) {
        let trio = |d: &crate::model::Distribution| {
            if d.count == 0 {
                "–".into()
            } else {
                format!("{} / {} / {}", num(d.p50_ms), num(d.p90_ms), num(d.p99_ms))
            }
        };
        let _ = writeln!(
            out,
            "{:<13} {:>9} {:>9} {:>29} {:>29} {:>10}  {}",
            name,
            k.requests,
            k.hit_ratio.map_or("–".into(), pct),
            trio(&k.ttfb),
            trio(&k.download),
            bytes(k.bytes),
            errors_by_cause(k)
        );
    }
    let _ = write!(out, "\ncommand: {}", command_line(r));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::*;

    pub(crate) fn sample_report() -> Report {
        let dist = |base: f64| Distribution {
            count: 100,
            p50_ms: base,
            p90_ms: base * 2.0,
            p99_ms: base * 7.3333333,
            max_ms: base * 10.0,
            cdf: vec![
                [base / 3.0, 0.0],
                [base, 0.5],
                [base * 7.3333333, 0.99],
                [base * 10.0, 1.0],
            ],
        };
        let kind = |requests: u64, base: f64| KindReport {
            requests,
            bytes: requests * 123_457,
            hit_ratio: Some(0.9773381629051732),
            cache_statuses: [("HIT".to_string(), requests - 1), ("MISS".to_string(), 1)].into(),
            errors: Default::default(),
            ttfb: dist(base),
            download: dist(base * 1.5),
        };
        let mut by_kind: std::collections::BTreeMap<String, KindReport> = [
            ("segment".to_string(), kind(1000, 0.41234)),
            ("init".to_string(), kind(20, 0.3)),
            ("multivariant".to_string(), kind(10, 1.11111)),
            ("playlist".to_string(), kind(3000, 0.25)),
        ]
        .into();
        by_kind.get_mut("segment").unwrap().errors.insert("timeout".into(), 3);
        Report {
            schema: SCHEMA.into(),
            schema_version: SCHEMA_VERSION,
            label: Some("edge <&>".into()),
            command: vec![
                "loadtest".into(),
                "--url".into(),
                "http://127.0.0.1:1/s/index.m3u8".into(),
                "--fail-on".into(),
                "stalls>0,hit_ratio<0.99".into(),
                "it's".into(),
            ],
            started_at: "2026-12-01T08:00:00Z".into(),
            url: "http://127.0.0.1:1/s/index.m3u8".into(),
            viewers: 200,
            ramp_s: 5.0,
            duration_s: 30.0,
            elapsed_s: 31.123456789,
            requests: 4030,
            errors: 3,
            error_rate: 3.0 / 4030.0,
            stalls: 2,
            stalled_viewers: 1,
            stall_seconds: 1.23456789,
            stalls_per_viewer: 0.01,
            watch_seconds: 5999.123456,
            stall_ratio: 1.23456789 / 5999.123456,
            bytes: 1_440_018_423,
            throughput_mbps: 384.40018423193084,
            hit_ratio: Some(0.9773381629051732),
            edge_hit_ratio: Some(0.99987),
            origin_requests: Some(91.0),
            origin_offload: Some(1.0 - 91.0 / 4030.0),
            origin_requests_per_segment: Some(1.0333333333),
            distinct_segments: 30,
            origin_requests_per_part: None,
            distinct_parts: 0,
            rendition_switches: 0,
            ll: None,
            latency: Some(Latency {
                p50_s: 3.1234567,
                p90_s: 3.9,
                p95_s: Some(4.1),
                p99_s: 4.56789,
                max_s: 5.0,
            }),
            cache_statuses: [("HIT".to_string(), 4000), ("MISS".to_string(), 27)].into(),
            by_kind,
            timeline: (1..=31)
                .map(|i| Sample {
                    t: i as f64 * 1.0000123,
                    viewers: (i * 7).min(200),
                    requests_per_s: 130.123456,
                    errors: 0,
                    stalls: 0,
                    mbps: 384.400184,
                    hit_ratio: Some(0.99 - 0.001 * i as f64 / 3.0),
                    origin_requests_per_s: Some(2.93333333),
                    latency_p50_s: Some(3.1234567),
                    latency_p90_s: Some(3.8),
                    latency_p99_s: Some(4.5555555),
                })
                .collect(),
            stall_events: vec![
                StallEvent {
                    viewer: 17,
                    start_s: 12.3456789,
                    duration_s: 0.61234,
                },
                StallEvent {
                    viewer: 17,
                    start_s: 20.3456789,
                    duration_s: 0.61234,
                },
            ],
            stall_events_dropped: 0,
            verdict: Verdict::Errors,
            fail_on: Some(FailOn {
                conditions: "stalls>0,hit_ratio<0.99".into(),
                held: vec!["stalls>0 (is 2)".into(), "hit_ratio<0.99 (is 0.977)".into()],
                failed: true,
            }),
        }
    }

    #[test]
    fn page_reads_at_a_glance() {
        let r = sample_report();
        let html = html(&r);
        assert!(crate::plot::max_decimals(&html) <= 4, "a long decimal in the page");
        assert!(!html.contains("0.9773381629051732") && !html.contains("384.4001"));
        assert!(html.contains("97.7 %") && html.contains("99.98 %") && html.contains("384 Mbit/s"));
        assert!(html.contains(r#"class="verdict errors""#));
        assert!(html.contains("Errors: 3 errors (0.0744 % of 4030 requests); 2 stalls in 1 of 200 viewers"));
        assert_eq!(html.matches("<svg").count(), 6);
        assert!(html.contains("edge &lt;&amp;&gt;") && !html.contains("edge <&>"));
        assert!(html.contains("timeout: 3"));
        // Kinds in reading order.
        let at = |k: &str| html.find(&format!("<td>{k}</td>")).unwrap();
        assert!(at("multivariant") < at("playlist") && at("playlist") < at("init") && at("init") < at("segment"));
        assert!(
            html.contains("&#39;it&#39;\\&#39;&#39;s&#39;"),
            "the quoted command line"
        );
    }

    #[test]
    fn verdicts() {
        let mut r = sample_report();
        r.errors = 0;
        r.error_rate = 0.0;
        r.verdict = Verdict::of(0, 2);
        assert!(verdict_line(&r).starts_with("Stalls: 2 stalls in 1 of 200 viewers (1.23 s stalled"));
        r.stalls = 0;
        r.verdict = Verdict::of(0, 0);
        assert_eq!(
            verdict_line(&r),
            "Clean: 200 viewers for 30 s, no errors in 4030 requests, no stalls"
        );
        let text = summary(&r);
        assert!(
            text.contains("Origin offload") && text.contains("97.7 % (91 origin requests"),
            "{text}"
        );
        assert!(text.contains("command: loadtest --url"));
    }

    #[test]
    fn an_empty_run_draws_no_nan() {
        let mut r = sample_report();
        r.timeline.clear();
        r.stall_events.clear();
        r.latency = None;
        r.hit_ratio = None;
        for k in r.by_kind.values_mut() {
            k.ttfb.cdf.clear();
            k.ttfb.count = 0;
        }
        let html = html(&r);
        assert!(!html.contains("NaN") && !html.contains("inf"), "{html}");
        assert!(html.contains("no samples") && html.contains("no stalls"));
        // Every sample at 100 %: the ratio axis still has a span.
        let mut r = sample_report();
        for s in &mut r.timeline {
            s.hit_ratio = Some(1.0);
        }
        assert!(!super::html(&r).contains("NaN"));
    }

    #[test]
    fn unknown_kinds_follow_known_ones() {
        let mut r = sample_report();
        let seg = r.by_kind["segment"].clone();
        r.by_kind.insert("part".into(), seg.clone());
        r.by_kind.insert("aaa".into(), seg);
        let names: Vec<&str> = kinds(&r).into_iter().map(|k| k.0).collect();
        assert_eq!(names, ["multivariant", "playlist", "init", "segment", "part", "aaa"]);
    }
}
