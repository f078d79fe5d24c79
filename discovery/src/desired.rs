//! What the router API should know: the hand-off between the tracker (which
//! reads the disk) and the reporter (which talks to the network).
//!
//! One entry per subject the tracker has judged: a stream folder (live or
//! not) or a complete recording in it. The reporter removes withdrawn
//! entries once the router has acknowledged them (or they are old enough to
//! have expired there anyway), so the map stays bounded by the number of
//! stream folders plus the recordings tracked (`--max-recordings`).

use api_types::{OriginReport, RecordingReport};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::Notify;

/// What a report is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A stream live on this origin (`/origins/{o}/streams/{name}`).
    Live(String),
    /// A complete recording on this origin
    /// (`/origins/{o}/recordings/{name}/{session}`).
    Recording(String, String),
}

impl Subject {
    pub fn is_recording(&self) -> bool {
        matches!(self, Subject::Recording(..))
    }
}

/// What the router should hold about a subject.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Live(OriginReport),
    Recording(RecordingReport),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    /// `Some`: report this; `None`: withdraw.
    pub report: Option<Report>,
    /// When this want was set.
    pub since: Instant,
}

#[derive(Default)]
pub struct Desired {
    map: Mutex<HashMap<Subject, Want>>,
    changed: Notify,
}

impl Desired {
    /// Records the wanted state of `subject`; wakes the reporter if it changed.
    pub fn set(&self, subject: Subject, report: Option<Report>) {
        let mut map = self.map.lock().expect("desired lock");
        let changed = map.get(&subject).is_none_or(|w| w.report != report);
        if changed {
            map.insert(
                subject,
                Want {
                    report,
                    since: Instant::now(),
                },
            );
            drop(map);
            self.changed.notify_one();
        }
    }

    pub fn snapshot(&self) -> Vec<(Subject, Want)> {
        let map = self.map.lock().expect("desired lock");
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Forgets a withdrawal, unless the subject came back meanwhile.
    pub fn forget_withdrawn(&self, subject: &Subject) {
        let mut map = self.map.lock().expect("desired lock");
        if map.get(subject).is_some_and(|w| w.report.is_none()) {
            map.remove(subject);
        }
    }

    /// Resolves when [`Desired::set`] changed something.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}
