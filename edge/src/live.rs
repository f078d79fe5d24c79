//! What the edge knows of each LL-HLS stream's live position: its freshest
//! copy of every LL media playlist, and the count of requests it holds.
//!
//! Why it exists: a blocking reload that the edge's freshest copy already
//! satisfies needs no origin request and no wait, and a hinted-part request
//! for a part the copy lists is no longer a hold. The copy is whatever the
//! origin last answered for that playlist (a plain reload or a blocking
//! one), kept only while it is not behind the one held before: a slow answer
//! to an old question never replaces a newer copy. Delta updates
//! (`_HLS_skip`) are other bodies, so each skip form has its own copy.
//!
//! Bounds: copies are only made from an origin's 200 for a path of the
//! layout on a live route, weighed by their bytes in a `moka` cache of
//! [`MAX_COPY_BYTES`], and dropped a minute after their last use. Held
//! requests are counted with an owned guard ([`Held`]) that every exit path
//! drops; past `--max-held-requests` the edge answers 503 at once.

use crate::ll::Position;
use crate::storage::FreshWire;
use api_types::hls_query::Skip;
use bytes::Bytes;
use pingora_http::ResponseHeader;
use prometheus::IntGauge;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// Bytes of playlist copies held at most.
pub const MAX_COPY_BYTES: u64 = 64 << 20;
/// Largest playlist body copied (larger ones are served, not copied).
pub const MAX_PLAYLIST: usize = 1 << 20;
/// How long an unused copy is kept.
const COPY_IDLE: Duration = Duration::from_secs(60);

/// The freshest copy of one LL media playlist (in one skip form).
pub struct Copy {
    pub pos: Position,
    /// The origin's response head, as it would be stored in the cache.
    pub header: ResponseHeader,
    pub body: Bytes,
    /// When the origin's answer arrived: its age is the copy's age.
    pub created: SystemTime,
    fetched: Instant,
    /// The head as the hit-first path sends it, built on first use.
    wire_head: OnceLock<Bytes>,
}

impl Copy {
    /// How long ago the origin answered with it.
    pub fn age(&self) -> Duration {
        self.fetched.elapsed()
    }

    /// The copy as bytes for [`crate::hits`], the head built once by `build`.
    pub fn wire(&self, build: impl FnOnce(&ResponseHeader, usize, SystemTime) -> Bytes) -> FreshWire {
        FreshWire {
            head: self
                .wire_head
                .get_or_init(|| build(&self.header, self.body.len(), self.created))
                .clone(),
            body: self.body.clone(),
            created: self.created,
        }
    }
}

/// The edge's LL state (see the module docs).
pub struct Live {
    copies: moka::sync::Cache<String, Arc<Copy>>,
    held: Arc<AtomicUsize>,
    gauge: IntGauge,
    max_held: usize,
    /// How long a held request may wait for the origin (see `--hold-timeout`).
    pub hold_timeout: Duration,
    /// Set once a playlist's target duration made `hold_timeout` too short.
    warned: std::sync::atomic::AtomicBool,
}

/// A request the edge holds, counted until dropped.
pub struct Held {
    held: Arc<AtomicUsize>,
    gauge: IntGauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }
}

/// The copy key: origin id, path, skip form (length-prefixed, so no two
/// triples collide).
fn key(origin: &str, path: &str, skip: Option<Skip>) -> String {
    let skip = match skip {
        None => "full",
        Some(Skip::Yes) => "YES",
        Some(Skip::V2) => "v2",
    };
    format!("{}:{origin}{path} {skip}", origin.len())
}

impl Live {
    pub fn new(max_held: usize, hold_timeout: Duration, gauge: IntGauge) -> Live {
        Live {
            copies: moka::sync::Cache::builder()
                .max_capacity(MAX_COPY_BYTES)
                .weigher(|k: &String, c: &Arc<Copy>| u32::try_from(c.body.len() + k.len() + 512).unwrap_or(u32::MAX))
                .time_to_idle(COPY_IDLE)
                .build(),
            held: Arc::default(),
            gauge,
            max_held,
            hold_timeout,
            warned: Default::default(),
        }
    }

    /// The copy of `path` (a media playlist) from `origin`, in skip form `skip`.
    pub fn copy(&self, origin: &str, path: &str, skip: Option<Skip>) -> Option<Arc<Copy>> {
        self.copies.get(&key(origin, path, skip))
    }

    /// The furthest along of a playlist's copies, whatever their skip form:
    /// what a part request is judged by.
    pub fn freshest(&self, origin: &str, path: &str) -> Option<Arc<Copy>> {
        [None, Some(Skip::Yes), Some(Skip::V2)]
            .into_iter()
            .filter_map(|s| self.copy(origin, path, s))
            .reduce(|a, b| if b.pos.not_behind(&a.pos) { b } else { a })
    }

    /// Takes the origin's 200 for a media playlist as the copy if it is an
    /// LL playlist and not behind the copy held. `fetched` is when the
    /// answer's head arrived.
    pub fn offer(
        &self,
        origin: &str,
        path: &str,
        skip: Option<Skip>,
        header: ResponseHeader,
        body: Bytes,
        fetched: Instant,
    ) {
        let Some(pos) = std::str::from_utf8(&body).ok().and_then(Position::parse) else {
            return;
        };
        if !pos.can_block {
            return;
        }
        if let Some(td) = pos.target_duration
            && Duration::from_secs(td.saturating_mul(3)) >= self.hold_timeout
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                target_duration = td,
                hold_timeout = ?self.hold_timeout,
                "--hold-timeout is not above 3 target durations: long holds will time out at the edge"
            );
        }
        let created = SystemTime::now() - fetched.elapsed();
        let copy = Arc::new(Copy {
            pos,
            header,
            body,
            created,
            fetched,
            wire_head: OnceLock::new(),
        });
        self.copies
            .entry(key(origin, path, skip))
            .and_compute_with(|old| match old {
                Some(old) if !copy.pos.not_behind(&old.value().pos) => moka::ops::compute::Op::Nop,
                _ => moka::ops::compute::Op::Put(copy),
            });
    }

    /// Counts one more held request, or `None` at `--max-held-requests`.
    pub fn hold(&self) -> Option<Held> {
        if self.held.fetch_add(1, Ordering::Relaxed) >= self.max_held {
            self.held.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        self.gauge.inc();
        Some(Held {
            held: self.held.clone(),
            gauge: self.gauge.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAYLIST: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n\
        #EXT-X-PART-INF:PART-TARGET=0.334\n#EXT-X-MEDIA-SEQUENCE:7\n\
        #EXT-X-PART:DURATION=0.3,URI=\"7.0.m4s\"\n#EXTINF:0.3,\n7.m4s\n";

    fn live(max_held: usize) -> Live {
        Live::new(max_held, Duration::from_secs(8), IntGauge::new("held", "held").unwrap())
    }

    fn offer(l: &Live, text: &str) {
        let head = ResponseHeader::build(200, None).unwrap();
        l.offer("o", "/p", None, head, Bytes::from(text.to_string()), Instant::now());
    }

    #[test]
    fn a_copy_is_replaced_only_by_one_not_behind_it() {
        let l = live(1);
        offer(&l, PLAYLIST);
        assert_eq!(l.copy("o", "/p", None).unwrap().pos.last_segment, Some(7));
        offer(&l, &format!("{PLAYLIST}#EXT-X-PART:DURATION=0.3,URI=\"8.0.m4s\"\n"));
        assert_eq!(l.copy("o", "/p", None).unwrap().pos.last_part, Some((8, 0)));
        // A late answer to an older question does not go back in time.
        offer(&l, PLAYLIST);
        assert_eq!(l.copy("o", "/p", None).unwrap().pos.last_part, Some((8, 0)));
        assert!(l.copy("o", "/p", Some(Skip::Yes)).is_none() && l.copy("p", "/p", None).is_none());
        assert_eq!(l.freshest("o", "/p").unwrap().pos.last_part, Some((8, 0)));
        // Plain HLS (no blocking reloads) and non-playlists are not copied.
        offer(&l, "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:99\n#EXTINF:2,\n99.m4s\n");
        assert_eq!(l.copy("o", "/p", None).unwrap().pos.last_part, Some((8, 0)));
        let head = ResponseHeader::build(200, None).unwrap();
        l.offer("o", "/q", None, head, Bytes::from_static(b"\xff\xfe"), Instant::now());
        assert!(l.copy("o", "/q", None).is_none());
    }

    #[test]
    fn held_requests_are_bounded_and_counted_until_dropped() {
        let l = live(2);
        let a = l.hold().expect("first");
        let b = l.hold().expect("second");
        assert!(l.hold().is_none());
        assert_eq!(l.gauge.get(), 2);
        drop(a);
        let c = l.hold().expect("room again");
        drop((b, c));
        assert_eq!((l.gauge.get(), l.held.load(Ordering::Relaxed)), (0, 0));
    }
}
