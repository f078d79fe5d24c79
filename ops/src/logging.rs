//! Log setup: one `tracing` subscriber for our code and for the `log`
//! records of the libraries we build on (pingora logs through `log`).
//!
//! Why not `tracing_subscriber::fmt().init()`, which bridges `log` by
//! itself: a library's idea of ERROR is not always an operator's. pingora
//! 0.9 logs `failed to acquire reusable stream` at ERROR when it takes an
//! idle upstream connection from its pool while the pool's idle watcher,
//! which has just let go of the connection's lock, still holds its last
//! reference for an instant (a race between two runtime threads; the
//! connection is dropped and a fresh one is opened, no request fails). An
//! ERROR line that means nothing teaches operators to ignore ERROR lines, so
//! the bridge here passes every record on unchanged except the few listed in
//! [`DEMOTED`], which it passes on at DEBUG.

use log::{Level, Log, Metadata, Record};
use tracing_log::{AsLog, LogTracer};
use tracing_subscriber::{EnvFilter, filter::LevelFilter};

/// Library records that are routine despite their level: (target, message).
pub const DEMOTED: &[(&str, &str)] = &[("pingora_core::connectors", "failed to acquire reusable stream")];

/// The level a `log` record is passed on at.
pub fn level_for(target: &str, message: Option<&str>, level: Level) -> Level {
    match message {
        Some(m) if DEMOTED.iter().any(|&(t, d)| t == target && d == m) => Level::Debug,
        _ => level,
    }
}

/// Installs the global `tracing` subscriber with `filter` (e.g. `info`,
/// `router_api=debug`) and the `log` bridge.
pub fn init(filter: &str) {
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    log::set_boxed_logger(Box::new(Bridge(LogTracer::new()))).expect("the only logger");
    // Records above the most verbose level any directive enables are not
    // even formatted by the libraries.
    log::set_max_level(LevelFilter::current().as_log());
}

/// `log` to `tracing`, with [`level_for`] applied.
struct Bridge(LogTracer);

impl Log for Bridge {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // The message is not known yet: a demoted record is judged when it
        // comes, at its new level.
        self.0.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        let level = level_for(record.target(), record.args().as_str(), record.level());
        if level == record.level() {
            return self.0.log(record);
        }
        let demoted = Record::builder()
            .args(*record.args())
            .level(level)
            .target(record.target())
            .module_path(record.module_path())
            .file(record.file())
            .line(record.line())
            .build();
        // LogTracer judges the record at its new level.
        self.0.log(&demoted);
    }

    fn flush(&self) {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_records_are_demoted() {
        let pool = "pingora_core::connectors";
        let race = Some("failed to acquire reusable stream");
        assert_eq!(level_for(pool, race, Level::Error), Level::Debug);
        // Another message of the same module, or the same words elsewhere,
        // keep their level.
        assert_eq!(level_for(pool, Some("connect refused"), Level::Error), Level::Error);
        assert_eq!(level_for("edge", race, Level::Error), Level::Error);
        // A formatted message (no static string) is never demoted.
        assert_eq!(level_for(pool, None, Level::Warn), Level::Warn);
    }
}
