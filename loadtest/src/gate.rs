//! `--fail-on`: conditions on a report that make the run exit non-zero, so
//! a CI pipeline can gate on a load test (`stalls>0,hit_ratio<0.99`).
//!
//! Hand-written because the language is one line: comma-separated
//! `metric OP number`, OP one of `>`, `>=`, `<`, `<=`, `==`, `!=`; a number
//! may end in `%` (`hit_ratio<99%` is `hit_ratio<0.99`). Metric names are
//! checked when the flag is parsed, so a typo fails before the run, not
//! after it. A metric the run could not measure (no `X-Cache-Status`, say)
//! makes its condition hold: a gate must not pass on missing data.

use crate::model::{FailOn, Report};

/// The exit status of a run whose `--fail-on` held.
pub const EXIT_FAILED: i32 = 3;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GateError {
    #[error("{0:?}: expected METRIC OP NUMBER, OP one of > >= < <= == !=")]
    Syntax(String),
    #[error("{0:?}: unknown metric; known: {known}", known = known_metrics())]
    UnknownMetric(String),
    #[error("{0:?}: not a number")]
    Number(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

type Getter = fn(&Report) -> Option<f64>;

/// The metrics conditions may name, and where each is read in the report.
const METRICS: &[(&str, Getter)] = &[
    ("errors", |r| Some(r.errors as f64)),
    ("error_rate", |r| Some(r.error_rate)),
    ("stalls", |r| Some(r.stalls as f64)),
    ("stalled_viewers", |r| Some(r.stalled_viewers as f64)),
    ("stall_seconds", |r| Some(r.stall_seconds)),
    ("stall_ratio", |r| Some(r.stall_ratio)),
    ("stalls_per_viewer", |r| Some(r.stalls_per_viewer)),
    ("requests", |r| Some(r.requests as f64)),
    ("hit_ratio", |r| r.hit_ratio),
    ("edge_hit_ratio", |r| r.edge_hit_ratio),
    ("origin_offload", |r| r.origin_offload),
    ("origin_requests_per_segment", |r| r.origin_requests_per_segment),
    ("throughput_mbps", |r| Some(r.throughput_mbps)),
    ("latency_p50_s", |r| r.latency.map(|l| l.p50_s)),
    ("latency_p90_s", |r| r.latency.map(|l| l.p90_s)),
    ("latency_p95_s", |r| r.latency.and_then(|l| l.p95_s)),
    ("latency_p99_s", |r| r.latency.map(|l| l.p99_s)),
    ("latency_max_s", |r| r.latency.map(|l| l.max_s)),
    ("origin_requests_per_part", |r| r.origin_requests_per_part),
    ("rendition_switches", |r| Some(r.rendition_switches as f64)),
    ("ll_viewers", |r| Some(r.ll.as_ref().map_or(0, |l| l.viewers) as f64)),
];

/// Per-kind metrics: `{kind}_ttfb_{p50|p90|p99}_ms`, `{kind}_errors`.
const KINDS: [&str; 5] = ["multivariant", "playlist", "init", "segment", "part"];

fn known_metrics() -> String {
    let mut names: Vec<String> = METRICS.iter().map(|m| m.0.to_string()).collect();
    names.push("{kind}_errors".into());
    names.push("{kind}_ttfb_p50_ms (p90, p99)".into());
    names.push(format!("kind: {}", KINDS.join("|")));
    names.join(", ")
}

/// A metric by name.
#[derive(Debug, Clone, PartialEq)]
enum Metric {
    Top(usize),
    KindErrors(String),
    KindTtfb(String, u8),
}

impl Metric {
    fn parse(name: &str) -> Option<Metric> {
        if let Some(i) = METRICS.iter().position(|m| m.0 == name) {
            return Some(Metric::Top(i));
        }
        let (kind, rest) = name.split_once('_')?;
        if !KINDS.contains(&kind) {
            return None;
        }
        match rest {
            "errors" => Some(Metric::KindErrors(kind.into())),
            "ttfb_p50_ms" => Some(Metric::KindTtfb(kind.into(), 50)),
            "ttfb_p90_ms" => Some(Metric::KindTtfb(kind.into(), 90)),
            "ttfb_p99_ms" => Some(Metric::KindTtfb(kind.into(), 99)),
            _ => None,
        }
    }

    fn read(&self, r: &Report) -> Option<f64> {
        match self {
            Metric::Top(i) => (METRICS[*i].1)(r),
            Metric::KindErrors(k) => Some(r.by_kind.get(k).map_or(0, |k| k.errors.values().sum::<u64>()) as f64),
            Metric::KindTtfb(k, p) => {
                let d = &r.by_kind.get(k)?.ttfb;
                (d.count > 0).then_some(match p {
                    50 => d.p50_ms,
                    90 => d.p90_ms,
                    _ => d.p99_ms,
                })
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    text: String,
    metric: Metric,
    op: Op,
    value: f64,
}

/// Parsed `--fail-on` conditions; the run fails when any holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Conditions {
    text: String,
    list: Vec<Condition>,
}

/// Parses `--fail-on` (the clap value parser).
pub fn parse(s: &str) -> Result<Conditions, GateError> {
    let mut list = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let at = part
            .find(['<', '>', '=', '!'])
            .ok_or_else(|| GateError::Syntax(part.into()))?;
        let (name, rest) = part.split_at(at);
        let (op, number) = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
        ]
        .iter()
        .find_map(|(sym, op)| rest.strip_prefix(sym).map(|n| (*op, n.trim())))
        .ok_or_else(|| GateError::Syntax(part.into()))?;
        let name = name.trim();
        let metric = Metric::parse(name).ok_or_else(|| GateError::UnknownMetric(name.into()))?;
        let (digits, scale) = match number.strip_suffix('%') {
            Some(d) => (d.trim(), 0.01),
            None => (number, 1.0),
        };
        let value = digits
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| GateError::Number(number.into()))?
            * scale;
        list.push(Condition {
            text: part.into(),
            metric,
            op,
            value,
        });
    }
    if list.is_empty() {
        return Err(GateError::Syntax(s.into()));
    }
    Ok(Conditions { text: s.into(), list })
}

impl Conditions {
    /// Which conditions hold for `report`.
    pub fn check(&self, report: &Report) -> FailOn {
        let held: Vec<String> = self
            .list
            .iter()
            .filter_map(|c| match c.metric.read(report) {
                Some(v) if c.op.holds(v, c.value) => Some(format!("{} (is {})", c.text, crate::plot::num(v))),
                Some(_) => None,
                None => Some(format!("{} (not measured)", c.text)),
            })
            .collect();
        FailOn {
            conditions: self.text.clone(),
            failed: !held.is_empty(),
            held,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use std::collections::BTreeMap;

    fn report(errors: u64, stalls: u64, hit_ratio: Option<f64>) -> Report {
        Report {
            schema: SCHEMA.into(),
            schema_version: SCHEMA_VERSION,
            label: None,
            command: vec![],
            started_at: String::new(),
            url: String::new(),
            viewers: 10,
            ramp_s: 1.0,
            duration_s: 10.0,
            elapsed_s: 10.0,
            requests: 100,
            errors,
            error_rate: errors as f64 / 100.0,
            stalls,
            stalled_viewers: stalls.min(10),
            stall_seconds: stalls as f64,
            stalls_per_viewer: stalls as f64 / 10.0,
            watch_seconds: 100.0,
            stall_ratio: stalls as f64 / 100.0,
            bytes: 0,
            throughput_mbps: 1.0,
            hit_ratio,
            edge_hit_ratio: None,
            origin_requests: None,
            origin_offload: None,
            origin_requests_per_segment: None,
            distinct_segments: 0,
            origin_requests_per_part: None,
            distinct_parts: 0,
            rendition_switches: 0,
            ll: None,
            latency: None,
            cache_statuses: BTreeMap::new(),
            by_kind: BTreeMap::new(),
            timeline: vec![],
            stall_events: vec![],
            stall_events_dropped: 0,
            verdict: Verdict::of(errors, stalls),
            fail_on: None,
        }
    }

    #[test]
    fn parses_conditions() {
        let c = parse("stalls>0, hit_ratio<99%,errors>=3").unwrap();
        assert_eq!(c.list.len(), 3);
        assert_eq!(c.list[1].op, Op::Lt);
        assert!((c.list[1].value - 0.99).abs() < 1e-12);
        assert_eq!(c.list[2].op, Op::Ge);
        assert!(parse("segment_ttfb_p99_ms>250").is_ok());
        assert!(parse("part_errors>0").is_ok());
        assert!(matches!(parse("stals>0"), Err(GateError::UnknownMetric(_))));
        assert!(matches!(parse("stalls"), Err(GateError::Syntax(_))));
        assert!(matches!(parse("stalls>lots"), Err(GateError::Number(_))));
        assert!(matches!(parse("stalls>NaN"), Err(GateError::Number(_))));
        assert!(matches!(parse(""), Err(GateError::Syntax(_))));
        assert!(matches!(parse("video_errors>0"), Err(GateError::UnknownMetric(_))));
    }

    #[test]
    fn holds_or_not() {
        let c = parse("stalls>0,hit_ratio<0.99").unwrap();
        let clean = c.check(&report(0, 0, Some(0.995)));
        assert!(!clean.failed, "{clean:?}");
        let stalled = c.check(&report(0, 2, Some(0.995)));
        assert!(stalled.failed);
        assert_eq!(stalled.held, vec!["stalls>0 (is 2)"]);
        let low = c.check(&report(0, 0, Some(0.9)));
        assert_eq!(low.held, vec!["hit_ratio<0.99 (is 0.9)"]);
        // Missing data fails the gate.
        let unmeasured = c.check(&report(0, 0, None));
        assert_eq!(unmeasured.held, vec!["hit_ratio<0.99 (not measured)"]);
        assert!(!parse("errors!=0").unwrap().check(&report(0, 0, None)).failed);
        assert!(parse("errors==0").unwrap().check(&report(0, 0, None)).failed);
    }
}
