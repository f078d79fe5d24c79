//! Prometheus metrics and the health endpoint.

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
    last_success_age: Gauge,
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
            Box::new(last_success_age.clone()),
        ] {
            registry.register(m).unwrap();
        }
        Metrics {
            registry,
            streams_live,
            streams_seen,
            reports,
            failures,
            last_success_age,
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

    fn last_success_age_secs(&self) -> f64 {
        let since = self.last_success.lock().unwrap().unwrap_or(self.started);
        since.elapsed().as_secs_f64()
    }

    fn render(&self) -> String {
        self.last_success_age.set(self.last_success_age_secs());
        ops::render_metrics(&self.registry)
    }
}

/// `/metrics` and `/healthz`.
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
            get(|State(m): State<Arc<Metrics>>| async move {
                axum::Json(json!({
                    "status": "ok",
                    "streams_live": m.streams_live.get(),
                    "last_success_age_seconds": m.last_success_age_secs(),
                }))
                .into_response()
            }),
        )
        .with_state(metrics)
}
