//! Prometheus metrics and the health endpoints: `/healthz` (the process
//! runs; its JSON says what the reporter sees) and `/readyz` (503 while the
//! router refuses some of this agent's reports: a rotated token, a profile
//! the router does not accept). Served with [`ops::http`]'s limits.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use serde_json::json;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

pub struct Metrics {
    registry: Registry,
    pub streams_live: IntGauge,
    pub streams_seen: IntCounter,
    reports: IntCounterVec,
    failures: IntCounter,
    refusals: IntCounter,
    refused: IntGauge,
    recordings: IntGauge,
    recordings_untracked: IntGauge,
    recordings_refused: IntGauge,
    last_success_age: Gauge,
    connections: ops::http::ConnMetrics,
    started: Instant,
    last_success: Mutex<Option<Instant>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let streams_live = IntGauge::new("discovery_streams_live", "Streams currently judged live").unwrap();
        let streams_seen =
            IntCounter::new("discovery_streams_seen_total", "Times a stream was first seen live").unwrap();
        let reports = IntCounterVec::new(
            Opts::new(
                "discovery_reports_total",
                "Reports acknowledged by the router API, by operation",
            ),
            &["op"],
        )
        .unwrap();
        let failures = IntCounter::new(
            "discovery_report_failures_total",
            "Reports that failed (router unreachable, 5xx, or refused)",
        )
        .unwrap();
        let refusals = IntCounter::new(
            "discovery_report_refusals_total",
            "Reports the router API refused (4xx); each is retried after a growing delay",
        )
        .unwrap();
        let refused = IntGauge::new(
            "discovery_streams_refused",
            "Live streams whose latest report the router API refused",
        )
        .unwrap();
        let recordings = IntGauge::new(
            "discovery_recordings",
            "Recordings (recording.json) tracked in the output folder, reported when valid",
        )
        .unwrap();
        let recordings_untracked = IntGauge::new(
            "discovery_recordings_untracked",
            "Recordings on disk neither read nor reported because --max-recordings are tracked",
        )
        .unwrap();
        let recordings_refused = IntGauge::new(
            "discovery_recordings_refused",
            "Recordings whose latest report the router API refused (e.g. their stream was deleted)",
        )
        .unwrap();
        let last_success_age = Gauge::new(
            "discovery_last_success_age_seconds",
            "Seconds since the router API last acknowledged a report (since start if never)",
        )
        .unwrap();
        for m in [
            Box::new(streams_live.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(streams_seen.clone()),
            Box::new(reports.clone()),
            Box::new(failures.clone()),
            Box::new(refusals.clone()),
            Box::new(refused.clone()),
            Box::new(recordings.clone()),
            Box::new(recordings_untracked.clone()),
            Box::new(recordings_refused.clone()),
            Box::new(last_success_age.clone()),
        ] {
            registry.register(m).unwrap();
        }
        let connections = ops::http::ConnMetrics::register(&registry).unwrap();
        Metrics {
            registry,
            streams_live,
            streams_seen,
            reports,
            failures,
            refusals,
            refused,
            recordings,
            recordings_untracked,
            recordings_refused,
            last_success_age,
            connections,
            started: Instant::now(),
            last_success: Mutex::new(None),
        }
    }

    pub fn report_ok(&self, op: &str) {
        self.reports.with_label_values(&[op]).inc();
        *self.last_success.lock().unwrap() = Some(Instant::now());
    }

    pub fn report_failed(&self) {
        self.failures.inc();
    }

    pub fn report_refused(&self) {
        self.refusals.inc();
    }

    /// Refused live streams (what `/readyz` reads) and refused recordings
    /// (which do not make the agent unready: a deleted stream's recordings
    /// stay on disk until the origin's retention removes them).
    pub fn set_refused(&self, streams: usize, recordings: usize) {
        self.refused.set(streams as i64);
        self.recordings_refused.set(recordings as i64);
    }

    pub fn set_recordings(&self, tracked: usize, untracked: usize) {
        self.recordings.set(tracked as i64);
        self.recordings_untracked.set(untracked as i64);
    }

    /// The HTTP server's connection metrics, registered here.
    pub fn connections(&self) -> ops::http::ConnMetrics {
        self.connections.clone()
    }

    fn health(&self) -> serde_json::Value {
        let refused = self.refused.get();
        json!({
            "status": if refused > 0 { "refused" } else { "ok" },
            "streams_live": self.streams_live.get(),
            "streams_refused": refused,
            "recordings": self.recordings.get(),
            "last_success_age_seconds": self.last_success_age_secs(),
        })
    }

    fn last_success_age_secs(&self) -> f64 {
        let since = self.last_success.lock().unwrap().unwrap_or(self.started);
        since.elapsed().as_secs_f64()
    }

    fn render(&self) -> String {
        self.last_success_age.set(self.last_success_age_secs());
        ops::render_metrics(&self.registry)
    }
}

/// `/metrics`, `/healthz` and `/readyz`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                ([("content-type", ops::METRICS_CONTENT_TYPE)], m.render())
            }),
        )
        .route(
            "/healthz",
            get(|State(m): State<Arc<Metrics>>| async move { axum::Json(m.health()).into_response() }),
        )
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                let status = if m.refused.get() > 0 {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                };
                (status, axum::Json(m.health())).into_response()
            }),
        )
        .with_state(metrics)
}
