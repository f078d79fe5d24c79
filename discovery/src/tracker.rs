//! The tracker: decides which streams are live and records it in
//! [`Desired`]. Runs on its own thread and never touches the network.
//!
//! It re-inspects a stream when the watcher marks it dirty, when a live
//! stream reaches its stale deadline (no event will announce that), and on a
//! periodic full re-scan that also serves as the start-up scan.

use crate::desired::Desired;
use crate::inspect::{self, Status};
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::watch::DirtySet;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Longest wait between checks of stale deadlines.
const TICK: Duration = Duration::from_millis(100);

pub struct Tracker {
    output_dir: PathBuf,
    advertise: String,
    stale_after: Option<Duration>,
    rescan: Duration,
    desired: Arc<Desired>,
    metrics: Arc<Metrics>,
    /// Live streams and their stale deadlines.
    live: HashMap<String, SystemTime>,
}

impl Tracker {
    pub fn new(s: &Settings, desired: Arc<Desired>, metrics: Arc<Metrics>) -> Tracker {
        Tracker {
            output_dir: s.output_dir.clone(),
            advertise: s.advertise.clone(),
            stale_after: s.stale_after,
            rescan: s.rescan,
            desired,
            metrics,
            live: HashMap::new(),
        }
    }

    pub fn run(mut self, dirty: Arc<DirtySet>) {
        // Start-up scan: re-report what is live, withdraw what is not (the
        // agent may have been down when a stream ended).
        for name in self.folders() {
            self.judge(&name, true);
        }
        let mut next_rescan = Instant::now() + self.rescan;
        loop {
            for name in dirty.take(TICK) {
                self.judge(&name, false);
            }
            let now = SystemTime::now();
            let due: Vec<String> = self
                .live
                .iter()
                .filter(|(_, stale_at)| **stale_at <= now)
                .map(|(n, _)| n.clone())
                .collect();
            for name in due {
                self.judge(&name, false);
            }
            if Instant::now() >= next_rescan {
                for name in self.folders() {
                    self.judge(&name, false);
                }
                next_rescan = Instant::now() + self.rescan;
            }
        }
    }

    /// Names of the folders directly under the output folder.
    fn folders(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.output_dir) else {
            tracing::warn!(dir = %self.output_dir.display(), "cannot read the output folder");
            return vec![];
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| api_types::validate_name("stream name", n).is_ok())
            .collect()
    }

    /// Inspects one stream and records the outcome. `withdraw_unknown`: also
    /// withdraw a stream this tracker never saw live (start-up scan).
    fn judge(&mut self, name: &str, withdraw_unknown: bool) {
        let ctx = inspect::Context {
            output_dir: &self.output_dir,
            advertise: &self.advertise,
            stale_after: self.stale_after,
        };
        match inspect::inspect(&ctx, name, SystemTime::now()) {
            Status::Live { report, stale_at } => {
                if self.live.insert(name.to_string(), stale_at).is_none() {
                    tracing::info!(stream = name, session = %report.session, "stream live");
                    self.metrics.streams_seen.inc();
                }
                self.desired.set(name, Some(report));
            }
            Status::NotLive(why) => {
                let was_live = self.live.remove(name).is_some();
                if was_live {
                    tracing::info!(stream = name, reason = why, "stream over");
                }
                if was_live || withdraw_unknown {
                    self.desired.set(name, None);
                }
            }
        }
        self.metrics.streams_live.set(self.live.len() as i64);
    }
}
