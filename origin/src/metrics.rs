//! Prometheus metrics of the origin.

use prometheus::{GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    pub streams_live: IntGauge,
    pub publishers_refused: IntCounterVec,
    pub frames_in: IntCounterVec,
    pub frames_out: IntCounterVec,
    pub encoder_lag: GaugeVec,
    pub segments_written: IntCounterVec,
    /// HTTP requests served, by object kind and status.
    pub http_requests: IntCounterVec,
    /// Requests held open now (LL-HLS blocking reloads and hinted parts).
    pub held_requests: IntGauge,
    /// How held requests ended, by kind (playlist, part) and outcome.
    pub held_outcomes: IntCounterVec,
    /// Live thumbnails written, by size (`full`, `small`).
    pub thumbnails_written: IntCounterVec,
    /// Thumbnails not made, by reason (`busy`, `decode`, `write`).
    pub thumbnail_failures: IntCounterVec,
    /// Time to make one keyframe's thumbnails (decode, scale, JPEG, both sizes).
    pub thumbnail_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let streams_live = IntGauge::new("origin_streams_live", "Streams being published to this origin").unwrap();
        let publishers_refused = IntCounterVec::new(
            Opts::new(
                "origin_publishers_refused_total",
                "Publishers refused or dropped, by reason",
            ),
            &["reason"],
        )
        .unwrap();
        let frames_in = IntCounterVec::new(
            Opts::new("origin_frames_in_total", "Video frames received, by stream"),
            &["stream"],
        )
        .unwrap();
        let frames_out = IntCounterVec::new(
            Opts::new("origin_frames_out_total", "Frames packaged, by stream and rendition"),
            &["stream", "rendition"],
        )
        .unwrap();
        let encoder_lag = GaugeVec::new(
            Opts::new(
                "origin_encoder_lag_seconds",
                "Wall-clock time since the publish started minus media time packaged (grows when transcoding is slower than real time)",
            ),
            &["stream"],
        )
        .unwrap();
        let segments_written = IntCounterVec::new(
            Opts::new(
                "origin_segments_written_total",
                "Media segments written, by stream and rendition",
            ),
            &["stream", "rendition"],
        )
        .unwrap();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "origin_http_requests_total",
                "HTTP requests for HLS objects, by kind and status",
            ),
            &["kind", "status"],
        )
        .unwrap();
        let held_requests = IntGauge::new(
            "origin_held_requests",
            "Requests held open now: LL-HLS blocking playlist reloads and parts not written yet",
        )
        .unwrap();
        let held_outcomes = IntCounterVec::new(
            Opts::new(
                "origin_held_requests_total",
                "Held requests by kind (playlist, part) and outcome (answered, timeout, refused)",
            ),
            &["kind", "outcome"],
        )
        .unwrap();
        let thumbnails_written = IntCounterVec::new(
            Opts::new(
                "origin_thumbnails_written_total",
                "Live thumbnails written, by size (full, small)",
            ),
            &["size"],
        )
        .unwrap();
        let thumbnail_failures = IntCounterVec::new(
            Opts::new(
                "origin_thumbnail_failures_total",
                "Keyframes left without a thumbnail, by reason (busy: the previous one was still being made; decode; write)",
            ),
            &["reason"],
        )
        .unwrap();
        let thumbnail_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "origin_thumbnail_seconds",
                "Time to make one keyframe's thumbnails: decode, scale and JPEG-encode both sizes",
            )
            .buckets(vec![0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]),
        )
        .unwrap();
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(thumbnails_written.clone()),
            Box::new(thumbnail_failures.clone()),
            Box::new(thumbnail_seconds.clone()),
            Box::new(held_requests.clone()),
            Box::new(held_outcomes.clone()),
            Box::new(streams_live.clone()),
            Box::new(publishers_refused.clone()),
            Box::new(frames_in.clone()),
            Box::new(frames_out.clone()),
            Box::new(encoder_lag.clone()),
            Box::new(segments_written.clone()),
        ] {
            registry.register(c).unwrap();
        }
        Metrics {
            registry,
            streams_live,
            publishers_refused,
            frames_in,
            frames_out,
            encoder_lag,
            segments_written,
            http_requests,
            held_requests,
            held_outcomes,
            thumbnails_written,
            thumbnail_failures,
            thumbnail_seconds,
        }
    }

    /// Drops a stream's labelled series when it ends (bounded cardinality).
    pub fn forget_stream(&self, stream: &str, renditions: &[String]) {
        let _ = self.frames_in.remove_label_values(&[stream]);
        let _ = self.encoder_lag.remove_label_values(&[stream]);
        for r in renditions {
            let _ = self.frames_out.remove_label_values(&[stream, r]);
            let _ = self.segments_written.remove_label_values(&[stream, r]);
        }
    }
}
