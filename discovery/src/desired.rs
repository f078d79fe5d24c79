//! What the router API should know: the hand-off between the tracker (which
//! reads the disk) and the reporter (which talks to the network).
//!
//! One entry per stream folder the tracker has judged; the reporter removes
//! withdrawn entries once the router has acknowledged them (or they are old
//! enough to have expired there anyway), so the map stays bounded by the
//! number of streams on disk.

use api_types::OriginReport;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    /// `Some`: live with this report; `None`: withdraw.
    pub report: Option<OriginReport>,
    /// When this want was set.
    pub since: Instant,
}

#[derive(Default)]
pub struct Desired {
    map: Mutex<HashMap<String, Want>>,
    changed: Notify,
}

impl Desired {
    /// Records the wanted state of `name`; wakes the reporter if it changed.
    pub fn set(&self, name: &str, report: Option<OriginReport>) {
        let mut map = self.map.lock().expect("desired lock");
        let changed = map.get(name).is_none_or(|w| w.report != report);
        if changed {
            map.insert(
                name.to_string(),
                Want {
                    report,
                    since: Instant::now(),
                },
            );
            drop(map);
            self.changed.notify_one();
        }
    }

    pub fn snapshot(&self) -> Vec<(String, Want)> {
        let map = self.map.lock().expect("desired lock");
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Forgets a withdrawal, unless the stream came back meanwhile.
    pub fn forget_withdrawn(&self, name: &str) {
        let mut map = self.map.lock().expect("desired lock");
        if map.get(name).is_some_and(|w| w.report.is_none()) {
            map.remove(name);
        }
    }

    /// Resolves when [`Desired::set`] changed something.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}
