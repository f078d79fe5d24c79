//! Prometheus metrics: requests by route and status, latency, Redis errors,
//! webhook deliveries, HTTP connections. Every label takes its values from a fixed set: routes
//! are templates (or `unmatched`), methods outside [`METHODS`] are `other`.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use std::sync::Arc;
use std::time::Instant;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub redis_errors: IntCounter,
    /// Webhook deliveries by `event` (`stream.live`, `stream.ended`) and
    /// `outcome` (`delivered`, `retried`, `failed`, `dropped`).
    pub webhook_deliveries: IntCounterVec,
    connections: ops::http::ConnMetrics,
}

/// The methods counted under their own name; any other is `other`, so a
/// client inventing method names cannot grow the label set.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The `method` label of `method`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method.as_str())
        .copied()
        .unwrap_or("other")
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "router_http_requests_total",
                "HTTP requests by route template, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "router_http_request_duration_seconds",
                "HTTP request latency by route template",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route", "method"],
        )
        .expect("valid metric");
        let redis_errors = IntCounter::new("router_redis_errors_total", "Redis operations that failed or timed out")
            .expect("valid metric");
        registry.register(Box::new(requests.clone())).expect("register");
        registry.register(Box::new(latency.clone())).expect("register");
        registry.register(Box::new(redis_errors.clone())).expect("register");
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "router_webhook_deliveries_total",
                "Webhook deliveries by event and outcome (delivered, retried, failed, dropped)",
            ),
            &["event", "outcome"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(webhook_deliveries.clone()))
            .expect("register");
        let connections = ops::http::ConnMetrics::register(&registry).expect("register");
        Metrics {
            registry,
            requests,
            latency,
            redis_errors,
            webhook_deliveries,
            connections,
        }
    }

    /// The HTTP server's connection metrics, registered here.
    pub fn connections(&self) -> ops::http::ConnMetrics {
        self.connections.clone()
    }

    pub fn render(&self) -> String {
        ops::render_metrics(&self.registry)
    }
}

/// Middleware: counts and times every request under its route template
/// (`/streams/{name}`, not the concrete path, to bound label cardinality).
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    let start = Instant::now();
    let resp = next.run(req).await;
    metrics
        .latency
        .with_label_values(&[&route, method])
        .observe(start.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[&route, method, resp.status().as_str()])
        .inc();
    resp
}

pub async fn handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([("content-type", ops::METRICS_CONTENT_TYPE)], metrics.render())
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn invented_methods_are_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method_label(&Method::from_bytes(b"get").unwrap()), "other");
    }
}
