//! Prometheus metrics of the edge. Every label takes values from a fixed
//! set (object kinds, cache statuses, origin status codes, the few words
//! below); no label carries a stream name or a client's method.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Kinds of origin request (`edge_upstream_requests_total{kind}`): the
/// object kinds, and of media playlists and parts the held ones apart
/// (`blocking`: a blocking reload; `hinted`: a part not written yet).
pub const UPSTREAM_KINDS: [&str; 7] = [
    "multivariant",
    "playlist",
    "blocking",
    "init",
    "segment",
    "part",
    "hinted",
];

/// What the edge made of LL-HLS requests (`edge_ll_answers_total{outcome}`),
/// in the order of [`Metrics::ll_answers`].
pub const LL_OUTCOMES: [&str; 6] = ["copy", "held", "bad_directive", "too_far", "no_part", "refused"];

/// Kinds of client abort (`edge_client_aborts_total{kind}`).
pub const ABORT_KINDS: [&str; 3] = ["closed", "reset", "timeout"];

/// The abort kind of an I/O error on a viewer connection.
pub fn abort_kind_of_io(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::*;
    match e.kind() {
        TimedOut | WouldBlock => "timeout",
        ConnectionReset | ConnectionAborted | BrokenPipe => "reset",
        _ => "closed",
    }
}

pub struct Metrics {
    pub registry: Registry,
    /// Requests by object kind and cache status.
    pub requests: IntCounterVec,
    /// Body bytes sent to viewers by object kind and cache status.
    pub bytes: IntCounterVec,
    /// Requests sent to origins by object kind and status.
    pub origin_fetches: IntCounterVec,
    pub upstream_latency: HistogramVec,
    /// Route look-ups by source: cached, fetched, stale, unknown (not in
    /// the live set: answered 404 with no look-up). Resolved once: they are
    /// counted on every request.
    pub route_lookups: [IntCounter; 4],
    pub route_failures: IntCounter,
    pub cache_bytes: IntGauge,
    /// Viewers that went away mid-answer, by kind ([`ABORT_KINDS`]): not
    /// errors of the edge, so counted here and logged at debug only.
    pub client_aborts: IntCounterVec,
    /// Connections refused at the connection cap.
    pub connections_refused: IntCounter,
    connections_open: IntGauge,
    /// Connections closed by a limit: head, idle, write.
    pub timed_out: [IntCounter; 3],
    /// Requests sent to origins by [`UPSTREAM_KINDS`], counted as sent:
    /// origin requests per part per edge is `blocking` (or `hinted`) over
    /// the parts produced.
    pub upstream_requests: IntCounterVec,
    /// LL-HLS outcomes by [`LL_OUTCOMES`]: answered from the copy, held,
    /// refused for a bad directive, for an msn too far ahead, for a part
    /// that will never exist, at the held-request bound.
    pub ll_answers: [IntCounter; 6],
    /// Requests held now (blocking reloads and parts not written yet).
    pub held_requests: IntGauge,
    /// Media playlist requests that waited for a moved publisher's new
    /// session, by [`FAILOVER_OUTCOMES`].
    pub failover_waits: [IntCounter; 2],
}

/// How a wait for a moved publisher's session ended
/// (`edge_failover_waits_total{outcome}`): redirected to the new session,
/// or none came within `--failover-wait`.
pub const FAILOVER_OUTCOMES: [&str; 2] = ["moved", "timeout"];

/// Counts a connection as open while alive.
pub struct OpenConnection(IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
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
                "Route look-ups by source: cached, fetched (router API), stale, unknown (not live: no look-up)",
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
        let client_aborts = IntCounterVec::new(
            Opts::new(
                "edge_client_aborts_total",
                "Viewer connections that closed, reset or timed out mid-answer, by kind",
            ),
            &["kind"],
        )
        .unwrap();
        for k in ABORT_KINDS {
            client_aborts.with_label_values(&[k]);
        }
        let connections_refused = IntCounter::new(
            "edge_connections_refused_total",
            "Viewer connections refused at the connection cap (--http-max-connections)",
        )
        .unwrap();
        let connections_open = IntGauge::new("edge_connections_open", "Viewer connections open now").unwrap();
        let timed_out = IntCounterVec::new(
            Opts::new(
                "edge_connections_timed_out_total",
                "Viewer connections closed by a time limit: head, idle or write",
            ),
            &["limit"],
        )
        .unwrap();
        let upstream_requests = IntCounterVec::new(
            Opts::new(
                "edge_upstream_requests_total",
                "Requests sent to origins by kind (blocking: a blocking playlist reload; hinted: a part not written yet)",
            ),
            &["kind"],
        )
        .unwrap();
        for k in UPSTREAM_KINDS {
            upstream_requests.with_label_values(&[k]);
        }
        let ll_answers = IntCounterVec::new(
            Opts::new(
                "edge_ll_answers_total",
                "LL-HLS requests by outcome: answered from the edge's copy, held, refused (bad directive, msn too far, \
                 no such part, held-request bound)",
            ),
            &["outcome"],
        )
        .unwrap();
        let held_requests = IntGauge::new(
            "edge_held_requests",
            "Requests held now: blocking reloads and parts not written yet (bounded by --max-held-requests)",
        )
        .unwrap();
        let failover_waits = IntCounterVec::new(
            Opts::new(
                "edge_failover_waits_total",
                "Media playlist requests whose origin was gone that waited for the publisher's new session \
                 (--failover-wait), by outcome: redirected to it, or none came",
            ),
            &["outcome"],
        )
        .unwrap();
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failover_waits.clone()),
            Box::new(upstream_requests.clone()),
            Box::new(ll_answers.clone()),
            Box::new(held_requests.clone()),
            Box::new(bytes.clone()),
            Box::new(origin_fetches.clone()),
            Box::new(upstream_latency.clone()),
            Box::new(route_lookups.clone()),
            Box::new(route_failures.clone()),
            Box::new(cache_bytes.clone()),
            Box::new(client_aborts.clone()),
            Box::new(connections_refused.clone()),
            Box::new(connections_open.clone()),
            Box::new(timed_out.clone()),
        ] {
            registry.register(c).unwrap();
        }
        let route_lookups = ["cached", "fetched", "stale", "unknown"].map(|s| route_lookups.with_label_values(&[s]));
        let timed_out = ["head", "idle", "write"].map(|s| timed_out.with_label_values(&[s]));
        let ll_answers = LL_OUTCOMES.map(|s| ll_answers.with_label_values(&[s]));
        let failover_waits = FAILOVER_OUTCOMES.map(|s| failover_waits.with_label_values(&[s]));
        Metrics {
            registry,
            requests,
            bytes,
            origin_fetches,
            upstream_latency,
            route_lookups,
            route_failures,
            cache_bytes,
            client_aborts,
            connections_refused,
            connections_open,
            timed_out,
            upstream_requests,
            ll_answers,
            held_requests,
            failover_waits,
        }
    }

    /// Counts one more open connection until the guard drops.
    pub fn open_connection(&self) -> OpenConnection {
        self.connections_open.inc();
        OpenConnection(self.connections_open.clone())
    }
}
