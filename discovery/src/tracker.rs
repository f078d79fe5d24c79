//! The tracker: decides which streams are live and records it in
//! [`Desired`]. Runs on its own thread and never touches the network.
//!
//! It re-inspects a stream when the watcher marks it dirty, when a live
//! stream reaches its stale deadline (no event will announce that), and on a
//! periodic full re-scan that also serves as the start-up scan.
//!
//! Each judgement of a stream folder also looks for its complete recordings
//! ([`crate::recordings`]): a new or changed `recording.json` is read and
//! checked, one seen before (same modification time and length) is not read
//! again, and a recording whose folder went (the origin's retention) is
//! withdrawn. At most `--max-recordings` are tracked; more are counted in
//! `discovery_recordings_untracked` and left unread.

use crate::desired::{Desired, Report, Subject};
use crate::inspect::{self, Status};
use crate::metrics::Metrics;
use crate::recordings::{self, Stamp};
use crate::settings::Settings;
use crate::watch::DirtySet;
use std::collections::{HashMap, HashSet};
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
    /// Recordings seen, per stream: session -> the `recording.json` stamp
    /// and whether it was a valid recording (reported).
    recordings: HashMap<String, HashMap<String, (Stamp, bool)>>,
    /// How many entries `recordings` holds, at most `max_recordings`.
    tracked: usize,
    max_recordings: usize,
    /// Recordings left untracked at the cap, per stream.
    untracked: HashMap<String, usize>,
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
            recordings: HashMap::new(),
            tracked: 0,
            max_recordings: s.max_recordings,
            untracked: HashMap::new(),
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
                // Streams with recordings whose folder is gone too (a
                // missed removal event must not keep them reported).
                let mut names: HashSet<String> = self.folders().into_iter().collect();
                names.extend(self.recordings.keys().cloned());
                names.extend(self.untracked.keys().cloned());
                for name in names {
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
                self.desired
                    .set(Subject::Live(name.to_string()), Some(Report::Live(report)));
            }
            Status::NotLive(why) => {
                let was_live = self.live.remove(name).is_some();
                if was_live {
                    tracing::info!(stream = name, reason = why, "stream over");
                }
                if was_live || withdraw_unknown {
                    self.desired.set(Subject::Live(name.to_string()), None);
                }
            }
        }
        self.metrics.streams_live.set(self.live.len() as i64);
        self.judge_recordings(name);
    }

    /// Reports the complete recordings of `name`'s folder, withdraws those
    /// that went.
    fn judge_recordings(&mut self, name: &str) {
        let stream_dir = self.output_dir.join(name);
        let found = recordings::candidates(&stream_dir);
        let mut known = self.recordings.remove(name).unwrap_or_default();
        let mut now_known: HashMap<String, (Stamp, bool)> = HashMap::new();
        let mut untracked = 0usize;
        for (session, stamp) in found {
            let subject = Subject::Recording(name.to_string(), session.clone());
            let was_valid = match known.remove(&session) {
                Some((old, valid)) if old == stamp => {
                    now_known.insert(session, (old, valid));
                    continue;
                }
                Some((_, valid)) => valid,
                None if self.tracked >= self.max_recordings => {
                    untracked += 1;
                    continue;
                }
                None => {
                    self.tracked += 1;
                    false
                }
            };
            let valid = match recordings::judge(&stream_dir, name, &session, &self.advertise) {
                Ok(report) => {
                    tracing::info!(stream = name, %session, duration_s = report.duration_s, "recording found");
                    self.desired.set(subject, Some(Report::Recording(report)));
                    true
                }
                Err(why) => {
                    tracing::warn!(stream = name, %session, reason = why, "not a recording");
                    if was_valid {
                        self.desired.set(subject, None);
                    }
                    false
                }
            };
            now_known.insert(session, (stamp, valid));
        }
        for (session, (_, valid)) in known {
            self.tracked -= 1;
            if valid {
                tracing::info!(stream = name, %session, "recording gone");
                self.desired.set(Subject::Recording(name.to_string(), session), None);
            }
        }
        if !now_known.is_empty() {
            self.recordings.insert(name.to_string(), now_known);
        }
        if untracked > 0 {
            self.untracked.insert(name.to_string(), untracked);
        } else {
            self.untracked.remove(name);
        }
        self.metrics.set_recordings(self.tracked, self.untracked.values().sum());
    }
}
