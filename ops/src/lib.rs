//! What every Dionysia service binary does the same way, so that operators
//! see one behaviour everywhere: logs go through `tracing` with an
//! EnvFilter-syntax `--log` setting, SIGTERM and SIGINT start a graceful
//! shutdown, `/metrics` speaks the Prometheus text format, and HTTP is
//! served with the same time and connection limits ([`http`]).

pub mod http;
pub mod logging;

use prometheus::{Encoder, Registry, TextEncoder};

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Installs the global `tracing` subscriber with `filter` (e.g. `info`,
/// `router_api=debug`), libraries' `log` records included ([`logging`]).
pub fn init_logging(filter: &str) {
    logging::init(filter);
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutting down");
}

/// Renders every metric of `registry` in the Prometheus text format.
pub fn render_metrics(registry: &Registry) -> String {
    let mut buf = vec![];
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("encode metrics");
    String::from_utf8(buf).expect("metrics are UTF-8")
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_registered_metrics() {
        let r = prometheus::Registry::new();
        let c = prometheus::IntCounter::new("x_total", "help").unwrap();
        r.register(Box::new(c.clone())).unwrap();
        c.inc();
        assert!(super::render_metrics(&r).contains("x_total 1"));
    }
}
