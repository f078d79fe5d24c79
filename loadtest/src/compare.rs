//! The comparison page: caches side by side at each viewer step, from the
//! `report.json` of every run `loadtest/compare.sh` made.
//!
//! Runs are grouped by their `--label` (the cache), steps are their viewer
//! counts. The page shows, per cache, the largest clean viewer count, and
//! at each step bars for hit ratio, origin requests per segment, live
//! latency and segment time to first byte, then a table with a link to
//! every run's own report. Self-contained like the run reports.

use crate::model::{Report, Verdict};
use crate::plot::{BarChart, esc, num, pct};
use crate::report::rate;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One run on the page.
pub struct Run {
    pub report: Report,
    /// Link to the run's report.html, relative to the page where possible.
    pub href: String,
}

/// Reads `report.json` from each path (a run's folder or the file itself);
/// links are made relative to the folder `page` is written in.
pub fn load(paths: &[PathBuf], page: &Path) -> anyhow::Result<Vec<Run>> {
    let base = page.parent().unwrap_or(Path::new("."));
    let base = std::fs::canonicalize(if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    })?;
    let mut runs = Vec::new();
    for p in paths {
        let json = if p.is_dir() { p.join("report.json") } else { p.clone() };
        let text = std::fs::read_to_string(&json).map_err(|e| anyhow::anyhow!("{}: {e}", json.display()))?;
        let report: Report = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a loadtest report: {e}", json.display()))?;
        let html = std::fs::canonicalize(&json)?.with_file_name("report.html");
        let href = match html.strip_prefix(&base) {
            Ok(rel) => rel.to_string_lossy().into_owned(),
            Err(_) => format!("file://{}", html.display()),
        };
        runs.push(Run { report, href });
    }
    Ok(runs)
}

/// A run's cache name.
fn label(r: &Report) -> String {
    r.label.clone().unwrap_or_else(|| "unlabelled".into())
}

/// The page.
pub fn page(runs: &[Run]) -> String {
    // Caches in the order first seen, steps ascending.
    let mut caches: Vec<String> = Vec::new();
    for r in runs {
        let l = label(&r.report);
        if !caches.contains(&l) {
            caches.push(l);
        }
    }
    let mut steps: Vec<u32> = runs.iter().map(|r| r.report.viewers).collect();
    steps.sort_unstable();
    steps.dedup();
    let find = |cache: &str, step: u32| {
        runs.iter()
            .find(|r| label(&r.report) == cache && r.report.viewers == step)
    };
    let grid = |f: &dyn Fn(&Report) -> Option<f64>| -> Vec<Vec<Option<f64>>> {
        steps
            .iter()
            .map(|&s| caches.iter().map(|c| find(c, s).and_then(|r| f(&r.report))).collect())
            .collect()
    };
    let best: Vec<Option<u32>> = caches
        .iter()
        .map(|c| {
            runs.iter()
                .filter(|r| label(&r.report) == *c && r.report.verdict == Verdict::Clean)
                .map(|r| r.report.viewers)
                .max()
        })
        .collect();

    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>Load test comparison</title><style>{}</style></head><body><h1>Load test comparison</h1>"#,
        STYLE
    );
    let first = runs.first().map(|r| &r.report);
    let _ = write!(
        out,
        r#"<p class="meta">{} caches, steps {} viewers, {} each{}.</p>"#,
        caches.len(),
        steps.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
        first.map_or("–".into(), |r| format!("{} s", num(r.duration_s))),
        first.map_or(String::new(), |r| format!(", started {}", esc(&r.started_at)))
    );
    out.push_str(r#"<table id="best" class="runs"><thead><tr><th>cache</th><th>largest clean viewers</th><th>hit ratio</th><th>origin requests per segment</th><th>live latency p50</th><th>report</th></tr></thead><tbody>"#);
    for (c, b) in caches.iter().zip(&best) {
        let run = b.and_then(|s| find(c, s));
        let cell = |f: &dyn Fn(&Report) -> String| run.map_or("–".into(), |r| f(&r.report));
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(c),
            b.map_or("none".into(), |b| b.to_string()),
            cell(&|r| r.hit_ratio.map_or("–".into(), pct)),
            cell(&|r| r.origin_requests_per_segment.map_or("–".into(), num)),
            cell(&|r| r.latency.map_or("–".into(), |l| format!("{} s", num(l.p50_s)))),
            run.map_or("–".into(), |r| format!(r#"<a href="{}">report</a>"#, esc(&r.href))),
        );
    }
    out.push_str("</tbody></table>");

    let steps_s: Vec<String> = steps.iter().map(u32::to_string).collect();
    let bars = |title: &'static str, y_label: &'static str, ratio: bool, values: Vec<Vec<Option<f64>>>| {
        BarChart {
            title,
            x_label: "viewers (step)",
            y_label,
            ratio,
            categories: steps_s.clone(),
            members: caches.clone(),
            values,
        }
        .svg()
    };
    let figure = |out: &mut String, id: &str, caption: &str, svg: String| {
        let _ = write!(
            out,
            r#"<figure id="{id}"><figcaption>{}</figcaption>{svg}</figure>"#,
            esc(caption)
        );
    };
    figure(
        &mut out,
        "bars-clean",
        "Largest clean viewer count (no errors, no stalls)",
        BarChart {
            title: "Largest clean viewer count",
            x_label: "cache",
            y_label: "viewers",
            ratio: false,
            categories: vec!["largest clean step".into()],
            members: caches.clone(),
            values: vec![best.iter().map(|b| b.map(f64::from)).collect()],
        }
        .svg(),
    );
    figure(
        &mut out,
        "bars-hit-ratio",
        "Hit ratio at each step",
        bars("Hit ratio at each step", "hit ratio (%)", true, grid(&|r| r.hit_ratio)),
    );
    figure(
        &mut out,
        "bars-origin",
        "Origin requests per segment at each step",
        bars(
            "Origin requests per segment",
            "origin requests per segment",
            false,
            grid(&|r| r.origin_requests_per_segment),
        ),
    );
    figure(
        &mut out,
        "bars-latency",
        "Live latency p50 at each step",
        bars(
            "Live latency p50",
            "live latency p50 (s)",
            false,
            grid(&|r| r.latency.map(|l| l.p50_s)),
        ),
    );
    figure(
        &mut out,
        "bars-ttfb",
        "Segment time to first byte p99 at each step",
        bars(
            "Segment time to first byte p99",
            "segment TTFB p99 (ms)",
            false,
            grid(&|r| {
                r.by_kind
                    .get("segment")
                    .filter(|k| k.ttfb.count > 0)
                    .map(|k| k.ttfb.p99_ms)
            }),
        ),
    );

    out.push_str(r#"<h2>Every run</h2><table id="runs" class="runs"><thead><tr><th>cache</th><th>viewers</th><th>verdict</th><th>errors</th><th>stalls</th><th>hit ratio</th><th>origin offload</th><th>origin requests per segment</th><th>live latency p50 / p99</th><th>Mbit/s</th><th>report</th></tr></thead><tbody>"#);
    for c in &caches {
        for &s in &steps {
            let Some(run) = find(c, s) else { continue };
            let r = &run.report;
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td>{}</td><td class="v-{}">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href="{}">report</a></td></tr>"#,
                esc(c),
                r.viewers,
                r.verdict.label(),
                r.verdict.label(),
                if r.errors == 0 {
                    "0".into()
                } else {
                    format!("{} ({})", r.errors, rate(r.error_rate))
                },
                r.stalls,
                r.hit_ratio.map_or("–".into(), pct),
                r.origin_offload.map_or("–".into(), |o| pct(o.max(0.0))),
                r.origin_requests_per_segment.map_or("–".into(), num),
                r.latency
                    .map_or("–".into(), |l| format!("{} / {} s", num(l.p50_s), num(l.p99_s))),
                num(r.throughput_mbps),
                esc(&run.href)
            );
        }
    }
    out.push_str("</tbody></table>");
    if let Some(r) = first {
        let _ = write!(
            out,
            "<p>A step that is not clean ends a cache's climb: later steps are not run. Each run: <code>{}</code></p>",
            esc(&crate::report::command_line(r))
        );
    }
    out.push_str("</body></html>");
    out
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;color:#1b1b1b;max-width:960px;margin:1.5em auto;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}.meta{color:#555}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}td{white-space:nowrap}
th:first-child,td:first-child{text-align:left}thead th{background:#f5f5f5}
.v-clean{color:#1a7f37}.v-stalls{color:#b07d00}.v-errors{color:#c62828}
figure{margin:1.2em 0}figcaption{font-weight:600}
svg.chart{max-width:100%;height:auto}svg.chart text{font:11px system-ui,sans-serif;fill:#333}
svg.chart text.axis-label{font-size:12px;fill:#111}svg.chart text.value{font-size:10px}
svg.chart .grid{stroke:#eee}svg.chart .axis{stroke:#777}
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample_report;

    fn run(label: &str, viewers: u32, verdict: Verdict) -> Run {
        let mut report = sample_report();
        report.label = Some(label.into());
        report.viewers = viewers;
        report.verdict = verdict;
        Run {
            report,
            href: format!("{label}-{viewers}/report.html"),
        }
    }

    #[test]
    fn caches_side_by_side() {
        let runs = vec![
            run("edge", 100, Verdict::Clean),
            run("edge", 200, Verdict::Clean),
            run("nginx", 100, Verdict::Clean),
            run("nginx", 200, Verdict::Stalls),
            run("varnish", 100, Verdict::Errors),
        ];
        let html = page(&runs);
        assert!(crate::plot::max_decimals(&html) <= 4);
        assert_eq!(html.matches("<svg").count(), 5);
        for r in &runs {
            assert!(html.contains(&format!(r#"href="{}""#, r.href)), "{}", r.href);
        }
        assert!(html.contains("<tr><td>edge</td><td>200</td>"));
        assert!(html.contains("<tr><td>nginx</td><td>100</td>"));
        assert!(html.contains("<tr><td>varnish</td><td>none</td>"));
        // Varnish has no run at 200: its bar is a gap.
        assert!(html.contains("n/a"));
    }
}
