//! The live state of every rendition this origin is writing, shared between
//! the session writers (GStreamer's streaming threads) and the HTTP server.
//!
//! Why: an LL-HLS blocking playlist reload (`_HLS_msn`/`_HLS_part`) and a
//! request for the hinted part are held until the packager has produced
//! what they ask for. Polling the disk would answer late and cost a read per
//! waiter per poll; instead every writer publishes a [`Snapshot`] on a
//! `tokio::sync::watch` channel after each part, and waiters wake on it.
//! The snapshot carries the rendered playlist (whole and delta), so a woken
//! waiter answers from memory, never from a half-updated file.
//!
//! Invariant: a snapshot is published only after everything it lists is on
//! disk (parts and segments are written first, atomically), so a waiter
//! woken for a part can read it at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// One rendition's playlist as of its last change.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The whole playlist's text.
    pub full: Arc<str>,
    /// The delta update's text (`_HLS_skip=YES`); `None` for a plain playlist.
    pub delta: Option<Arc<str>>,
    /// EXT-X-TARGETDURATION.
    pub target_duration: Duration,
    /// The segment in progress: the next one to complete.
    pub building: u64,
    /// Parts of the segment in progress written so far.
    pub parts: usize,
    /// Whether the playlist has EXT-X-ENDLIST.
    pub ended: bool,
    /// Whether the playlist is low-latency (advertises CAN-BLOCK-RELOAD).
    pub low_latency: bool,
}

impl Snapshot {
    /// Whether a blocking reload for segment `msn` (and part `part`) is
    /// answered by this playlist: it lists that part, or segment `msn`
    /// whole when no part is named, or anything later (8216bis 6.2.5.2).
    pub fn satisfies(&self, msn: u64, part: Option<usize>) -> bool {
        match part {
            None => self.building > msn,
            Some(p) => self.building > msn || (self.building == msn && self.parts > p),
        }
    }

    /// What becomes of part `part` of segment `msn`, which is not on disk.
    pub fn part_fate(&self, msn: u64, part: usize) -> PartFate {
        if self.ended {
            return PartFate::Never;
        }
        // The part the preload hint names, or one a little ahead of it (an
        // edge whose copy of the playlist is a part or two old).
        let soon = (msn == self.building && part >= self.parts && part < self.parts + HELD_PARTS_AHEAD)
            || (msn == self.building + 1 && part < HELD_PARTS_AHEAD);
        if soon { PartFate::Coming } else { PartFate::Never }
    }
}

/// How far past the last part a request for a part not yet written is held
/// (rather than answered 404).
const HELD_PARTS_AHEAD: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartFate {
    /// Will be written soon: hold the request.
    Coming,
    /// Not coming (gone, never will be, or too far ahead): 404.
    Never,
}

/// Every live rendition, by its path `{stream}/{session}/{rendition}`.
#[derive(Default)]
pub struct Live {
    renditions: Mutex<HashMap<String, watch::Sender<Arc<Snapshot>>>>,
}

impl Live {
    pub fn new() -> Arc<Live> {
        Arc::new(Live::default())
    }

    /// Publishes `snapshot` for `key`, waking its waiters.
    pub fn publish(&self, key: &str, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        let mut map = self.renditions.lock().expect("live lock");
        match map.get(key) {
            Some(tx) => {
                tx.send_replace(snapshot);
            }
            None => {
                map.insert(key.to_string(), watch::Sender::new(snapshot));
            }
        }
    }

    /// Forgets `key` (its session is over). Waiters see the channel close
    /// and answer from its last snapshot.
    pub fn remove(&self, key: &str) {
        self.renditions.lock().expect("live lock").remove(key);
    }

    /// The latest snapshot of `key` and a receiver of the next ones.
    pub fn subscribe(&self, key: &str) -> Option<watch::Receiver<Arc<Snapshot>>> {
        self.renditions
            .lock()
            .expect("live lock")
            .get(key)
            .map(watch::Sender::subscribe)
    }

    /// How many renditions are live.
    pub fn len(&self) -> usize {
        self.renditions.lock().expect("live lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(building: u64, parts: usize) -> Snapshot {
        Snapshot {
            full: "".into(),
            delta: None,
            target_duration: Duration::from_secs(2),
            building,
            parts,
            ended: false,
            low_latency: true,
        }
    }

    #[test]
    fn blocking_rules() {
        let s = snap(10, 2);
        assert!(s.satisfies(9, None) && !s.satisfies(10, None));
        assert!(s.satisfies(10, Some(1)) && !s.satisfies(10, Some(2)));
        assert!(
            s.satisfies(9, Some(100)),
            "a later part answers a part past the segment's end"
        );
        assert!(!s.satisfies(11, Some(0)));
        assert_eq!(s.part_fate(10, 2), PartFate::Coming);
        assert_eq!(s.part_fate(11, 0), PartFate::Coming);
        assert_eq!(s.part_fate(10, 9), PartFate::Never);
        assert_eq!(s.part_fate(12, 0), PartFate::Never);
        assert_eq!(s.part_fate(9, 7), PartFate::Never, "segment 9 is complete");
        let ended = Snapshot { ended: true, ..s };
        assert_eq!(ended.part_fate(10, 2), PartFate::Never);
    }

    #[tokio::test]
    async fn waiters_wake_on_publish_and_see_the_last_snapshot_after_removal() {
        let live = Live::new();
        live.publish("a/s/r", snap(0, 0));
        let mut rx = live.subscribe("a/s/r").unwrap();
        let waiter = tokio::spawn(async move {
            let got = rx.wait_for(|s| s.satisfies(0, Some(1))).await.map(|s| s.parts);
            got.unwrap()
        });
        live.publish("a/s/r", snap(0, 1));
        live.publish("a/s/r", snap(0, 2));
        assert_eq!(waiter.await.unwrap(), 2);
        let mut rx = live.subscribe("a/s/r").unwrap();
        live.remove("a/s/r");
        assert!(rx.changed().await.is_err());
        assert_eq!(rx.borrow().parts, 2);
        assert!(live.subscribe("a/s/r").is_none() && live.is_empty());
    }
}
