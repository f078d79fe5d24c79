//! Prometheus metrics of the edge.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    /// Requests by object kind and cache status.
    pub requests: IntCounterVec,
    /// Body bytes sent to viewers by object kind and cache status.
    pub bytes: IntCounterVec,
    /// Requests sent to origins by object kind and status.
    pub origin_fetches: IntCounterVec,
    pub upstream_latency: HistogramVec,
    /// Route look-ups by source: cached, fetched, stale (resolved once: they
    /// are counted on every request).
    pub route_lookups: [IntCounter; 3],
    pub route_failures: IntCounter,
    pub cache_bytes: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("edge_requests_total", "Viewer requests by object kind and cache status"),
            &["kind", "cache_status"],
        )
        .unwrap();
        let bytes = IntCounterVec::new(
            Opts::new(
                "edge_response_bytes_total",
                "Body bytes sent to viewers by object kind and cache status",
            ),
            &["kind", "cache_status"],
        )
        .unwrap();
        let origin_fetches = IntCounterVec::new(
            Opts::new(
                "edge_origin_fetches_total",
                "Requests sent to origins by object kind and status",
            ),
            &["kind", "status"],
        )
        .unwrap();
        let upstream_latency = HistogramVec::new(
            HistogramOpts::new("edge_upstream_latency_seconds", "Time to the origin's response header").buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["kind"],
        )
        .unwrap();
        let route_lookups = IntCounterVec::new(
            Opts::new(
                "edge_route_lookups_total",
                "Route look-ups by source: cached, fetched (router API), stale",
            ),
            &["source"],
        )
        .unwrap();
        let route_failures = IntCounter::new(
            "edge_route_lookup_failures_total",
            "Route look-ups that failed with no usable last answer",
        )
        .unwrap();
        let cache_bytes = IntGauge::new("edge_cache_bytes", "Bytes held in the cache").unwrap();
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(bytes.clone()),
            Box::new(origin_fetches.clone()),
            Box::new(upstream_latency.clone()),
            Box::new(route_lookups.clone()),
            Box::new(route_failures.clone()),
            Box::new(cache_bytes.clone()),
        ] {
            registry.register(c).unwrap();
        }
        let route_lookups = ["cached", "fetched", "stale"].map(|s| route_lookups.with_label_values(&[s]));
        Metrics {
            registry,
            requests,
            bytes,
            origin_fetches,
            upstream_latency,
            route_lookups,
            route_failures,
            cache_bytes,
        }
    }
}
