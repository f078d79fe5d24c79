//! The reports: `report.json` for machines, `report.html` (with inline SVG
//! plots) for people, and the summary table printed at the end.

use crate::stats::Sample;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// An SVG line chart of `(t, value)` points.
fn chart(title: &str, unit: &str, points: &[(f64, f64)]) -> String {
    let (w, h, pad) = (640.0, 200.0, 40.0);
    let tmax = points.iter().map(|p| p.0).fold(1.0f64, f64::max);
    let vmax = points.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-9) * 1.1;
    let x = |t: f64| pad + t / tmax * (w - 2.0 * pad);
    let y = |v: f64| h - pad - v / vmax * (h - 2.0 * pad);
    let path: Vec<String> = points
        .iter()
        .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
        .collect();
    format!(
        r##"<figure><figcaption>{title}</figcaption><svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{title}">
<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="#888"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" stroke="#888"/>
<text x="{pad}" y="{ty}" font-size="11">0</text><text x="{r}" y="{ty}" font-size="11" text-anchor="end">{tmax:.0} s</text>
<text x="4" y="{pad}" font-size="11">{vmax:.3} {unit}</text>
<polyline fill="none" stroke="#0a6" stroke-width="2" points="{pts}"/></svg></figure>"##,
        b = h - pad,
        r = w - pad,
        ty = h - pad + 14.0,
        pts = path.join(" "),
    )
}

pub fn write(dir: &Path, report: &Value, timeline: &[Sample]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(report)? + "\n")?;
    let series = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        timeline.iter().filter_map(|s| f(s).map(|v| (s.t, v))).collect()
    };
    let mut html = String::from(
        "<!doctype html><meta charset=utf-8><title>Dionysia load test</title>\
         <style>body{font-family:sans-serif;max-width:720px;margin:2em auto}td,th{padding:2px 8px;text-align:right}</style>\
         <h1>Load test</h1>",
    );
    let _ = write!(
        html,
        "<p>{} viewers against <code>{}</code> for {} s.</p><table>",
        report["viewers"],
        report["url"].as_str().unwrap_or(""),
        report["duration_s"]
    );
    for key in [
        "hit_ratio",
        "errors",
        "stalls",
        "stall_seconds",
        "origin_requests_per_segment",
        "throughput_mbps",
    ] {
        let _ = write!(html, "<tr><th>{key}</th><td>{}</td></tr>", report[key]);
    }
    html.push_str("</table>");
    html.push_str(&chart("Live latency over time", "s", &series(&|s| s.latency_s)));
    html.push_str(&chart("Hit ratio over time", "", &series(&|s| s.hit_ratio)));
    html.push_str(&chart(
        "Viewers over time",
        "viewers",
        &series(&|s| Some(s.viewers as f64)),
    ));
    let _ = write!(
        html,
        "<h2>Details</h2><pre>{}</pre>",
        serde_json::to_string_pretty(&report["by_kind"])?
    );
    std::fs::write(dir.join("report.html"), html)?;
    Ok(())
}

/// The summary table printed at the end of a run.
pub fn summary(report: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<30} {}", "viewers", report["viewers"]);
    for key in [
        "hit_ratio",
        "edge_hit_ratio",
        "origin_requests_per_segment",
        "errors",
        "stalls",
        "stall_seconds",
        "throughput_mbps",
    ] {
        let _ = writeln!(out, "{:<30} {}", key, report[key]);
    }
    let _ = writeln!(out, "{:<30} {}", "live latency", report["latency"]);
    let _ = writeln!(
        out,
        "{:<14} {:>9} {:>10} {:>10} {:>10} {:>8}",
        "kind", "requests", "ttfb p50", "ttfb p99", "dl p99", "errors"
    );
    if let Some(kinds) = report["by_kind"].as_object() {
        for (k, v) in kinds {
            let errors: u64 = v["errors"]
                .as_object()
                .map_or(0, |e| e.values().filter_map(Value::as_u64).sum());
            let _ = writeln!(
                out,
                "{:<14} {:>9} {:>8.1}ms {:>8.1}ms {:>8.1}ms {:>8}",
                k,
                v["requests"],
                v["ttfb"]["p50_ms"].as_f64().unwrap_or(0.0),
                v["ttfb"]["p99_ms"].as_f64().unwrap_or(0.0),
                v["download"]["p99_ms"].as_f64().unwrap_or(0.0),
                errors
            );
        }
    }
    out
}
