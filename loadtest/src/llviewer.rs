//! One simulated LL-HLS viewer: what an LL-HLS player (Apple's, hls.js with
//! `lowLatencyMode`) does, minus decoding. [`crate::viewer`] hands over to
//! it when the media playlist has `EXT-X-PART-INF` (`--ll`).
//!
//! - Joins PART-HOLD-BACK (`EXT-X-SERVER-CONTROL`, else three part targets)
//!   from the live edge: loading starts at the latest independent part at or
//!   before that point (a decoder needs its keyframe), playback at the point
//!   itself. While the playlist's parts do not reach that far back (a stream
//!   that just went live) it waits, as start-up time, not a stall.
//! - Loads parts, not segments; a whole segment only where the playlist no
//!   longer lists the parts of the position it needs (it fell behind).
//! - Reloads with blocking requests for the next part (`_HLS_msn`,
//!   `_HLS_part`: the part after the last one listed), with `_HLS_skip=YES`
//!   when `CAN-SKIP-UNTIL` allows delta updates, which it applies to the
//!   copy it keeps ([`crate::llhls::Playlist::apply_delta`]); a delta its
//!   copy cannot take is followed by a full reload. Without
//!   `CAN-BLOCK-RELOAD` it polls every part target.
//! - Requests the `EXT-X-PRELOAD-HINT` part together with the blocking
//!   reload that will list it (unless `--no-preload-hints`), so the part
//!   arrives when the playlist does. A hinted part that never comes (404:
//!   the segment ended with fewer parts) is counted apart, not as an error.
//! - Video and audio are loaded concurrently, each by its own loop; the
//!   audio rendition joins at the point video chose.
//! - Adaptive viewers switch renditions as the plain viewer decides (the
//!   throughput of the last download), at the next segment boundary (the
//!   next independent part): the new rendition's first request is a
//!   blocking reload at the `EXT-X-RENDITION-REPORT` position the old
//!   playlist gave for it, so no cache can answer an older copy.
//! - The play-out buffer is kept on the PROGRAM-DATE-TIME timeline: per
//!   track, the media loaded up to a date; the playhead advances with the
//!   wall clock while both tracks have media beyond it. A stall is the
//!   playhead reaching the end of either, until both have media again (as
//!   the plain viewer counts them). Live latency is the wall clock minus
//!   the playhead's PROGRAM-DATE-TIME, sampled every [`SAMPLE_EVERY`].

use crate::llhls::{Playlist, Pos};
use crate::settings::{Ll, Pick};
use crate::stats::Kind;
use crate::viewer::{Fetched, Viewer};
use m3u8_rs::{MasterPlaylist, VariantStream};
use reqwest::Url;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

const VIDEO: usize = 0;
const AUDIO: usize = 1;

/// How often the playhead advances and latency is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// A gap between what a track has and what it loads next that is still
/// played through (PDTs and durations have three decimals; audio parts end
/// within an AAC frame of video's).
const GAP_SLACK: f64 = 0.05;
/// The wait after a failed request before the next one.
const RETRY: Duration = Duration::from_secs(1);

/// The wall clock as seconds since the Unix epoch (the PDT timeline).
fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The play-out buffer on the PROGRAM-DATE-TIME timeline. Times are passed
/// in so it can be tested without a clock.
pub(crate) struct Playout {
    /// The date each track has media up to: [video, audio].
    ends: [Option<f64>; 2],
    has_audio: bool,
    /// The date being played (set at the join).
    playhead: Option<f64>,
    playing: bool,
    /// Media ahead of the playhead needed to start playing (once; after a
    /// stall any media resumes it, as in the plain viewer).
    start_level: f64,
    started: bool,
    last_tick: Instant,
    stalled_since: Option<Instant>,
}

impl Playout {
    pub(crate) fn new(has_audio: bool, now: Instant) -> Playout {
        Playout {
            ends: [None; 2],
            has_audio,
            playhead: None,
            playing: false,
            start_level: 0.0,
            started: false,
            last_tick: now,
            stalled_since: None,
        }
    }

    /// Media ahead of the playhead, the smaller over the tracks playback
    /// needs; `None` before every track has some.
    fn level(&self) -> Option<f64> {
        let video = self.ends[VIDEO]?;
        let audio = if self.has_audio {
            self.ends[AUDIO]?
        } else {
            f64::INFINITY
        };
        Some(video.min(audio) - self.playhead?)
    }

    /// Plays from the last tick to `now`; a buffer that runs dry on the way
    /// stops playback at the instant it ran dry.
    pub(crate) fn tick(&mut self, now: Instant) {
        let now = now.max(self.last_tick);
        if self.playing
            && let Some(p) = self.playhead.as_mut()
        {
            let dt = now - self.last_tick;
            *p += dt.as_secs_f64();
            let level = self.level().unwrap_or(0.0);
            if level <= 0.0 {
                let dry_for = Duration::from_secs_f64(-level).min(dt);
                self.stalled_since = Some(now - dry_for);
                if let Some(p) = self.playhead.as_mut() {
                    *p += level;
                }
                self.playing = false;
            }
        }
        self.last_tick = now;
    }

    /// Media of `track` from date `start` to `end` arrived at `now`.
    /// Returns when the stall this ends began, if it ends one.
    pub(crate) fn add(&mut self, now: Instant, track: usize, start: f64, end: f64) -> Option<Instant> {
        self.tick(now);
        self.ends[track] = Some(match self.ends[track] {
            Some(e) if start <= e + GAP_SLACK => e.max(end),
            Some(_) => {
                // A hole (the track fell out of the window): a player jumps
                // it; the stall until then has been counted.
                if let Some(p) = self.playhead.as_mut() {
                    *p = p.max(start);
                }
                end
            }
            None => end,
        });
        let need = if self.started { 0.0 } else { self.start_level };
        if !self.playing && self.level().is_some_and(|l| l > need) {
            self.playing = true;
            self.started = true;
            return self.stalled_since.take();
        }
        None
    }

    /// Playback starts at `at` (a date) once `level` seconds of every
    /// track are loaded beyond it.
    pub(crate) fn start_at(&mut self, at: f64, level: f64) {
        self.playhead = Some(at);
        self.start_level = level;
    }

    /// The date being played, while playing.
    pub(crate) fn playhead(&self) -> Option<f64> {
        self.playhead.filter(|_| self.playing)
    }
}

/// One rendition being followed.
struct Track {
    url: Url,
    index: usize,
    /// The copy of the playlist (delta updates applied).
    pl: Option<Playlist>,
    /// The next part (or segment) to load.
    pos: Option<Pos>,
    init_loaded: bool,
    /// A delta update failed: the next reload asks for the whole playlist.
    full_reload: bool,
    /// The first request after a switch: a blocking reload at this
    /// rendition report position (msn, part).
    report: Option<(u64, Option<u64>)>,
    /// Dates for a playlist without PROGRAM-DATE-TIME: (msn, its date).
    anchor: Option<(u64, f64)>,
    /// The hinted part loaded ahead: its URI and answer.
    prefetched: Option<(String, Fetched)>,
    /// Throughput of the last download, bit/s.
    rate: Option<f64>,
}

impl Track {
    fn new(url: Url, index: usize) -> Track {
        Track {
            url,
            index,
            pl: None,
            pos: None,
            init_loaded: false,
            full_reload: false,
            report: None,
            anchor: None,
            prefetched: None,
            rate: None,
        }
    }
}

/// What to do at a position of a playlist.
#[derive(Debug, PartialEq)]
enum Step {
    /// Load `uri` (a part, or a whole segment), media `start..end`, then
    /// go on at `then`.
    Load {
        kind: Kind,
        uri: String,
        start: Option<f64>,
        end: Option<f64>,
        then: Pos,
    },
    /// Nothing to load here: go on at this position.
    Skip(Pos),
    /// The playlist does not hold it yet.
    Wait,
}

fn step(pl: &Playlist, pos: Pos) -> Step {
    let Some(seg) = pl.segment(pos.msn) else {
        return match pl.first_msn() {
            // Fell out of the window: the oldest segment left.
            Some(first) if pos.msn < first => Step::Skip(Pos { msn: first, part: 0 }),
            _ => Step::Wait,
        };
    };
    let next_segment = Pos {
        msn: pos.msn + 1,
        part: 0,
    };
    if let Some(p) = seg.parts.get(pos.part) {
        let last = seg.complete() && pos.part + 1 == seg.parts.len();
        return Step::Load {
            kind: Kind::Part,
            uri: p.uri.clone(),
            start: p.pdt,
            end: p.pdt.map(|d| d + p.duration),
            then: if last {
                next_segment
            } else {
                Pos {
                    msn: pos.msn,
                    part: pos.part + 1,
                }
            },
        };
    }
    match &seg.uri {
        // Its parts are no longer listed: the whole segment (what was
        // loaded of it already overlaps, which the buffer takes).
        Some(uri) if seg.parts.is_empty() => Step::Load {
            kind: Kind::Segment,
            uri: uri.clone(),
            start: seg.pdt,
            end: seg.pdt.map(|d| d + seg.length()),
            then: next_segment,
        },
        // Ended with fewer parts than the position.
        Some(_) => Step::Skip(next_segment),
        None => Step::Wait,
    }
}

/// The blocking reload query for `next` (`_HLS_msn`, `_HLS_part`, and
/// `_HLS_skip=YES` when `skip`).
fn reload_url(base: &Url, msn: u64, part: Option<u64>, skip: bool) -> Url {
    let mut u = base.clone();
    u.set_query(None);
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("_HLS_msn", &msn.to_string());
        if let Some(p) = part {
            q.append_pair("_HLS_part", &p.to_string());
        }
        if skip {
            q.append_pair("_HLS_skip", "YES");
        }
    }
    u
}

/// Dates a playlist without PROGRAM-DATE-TIME: from the track's anchor
/// (the last segment of the previous load), else its end is now.
fn date_if_undated(pl: &mut Playlist, anchor: &mut Option<(u64, f64)>) {
    if pl.segments.is_empty() || pl.segments.iter().any(|s| s.pdt.is_some()) {
        return;
    }
    if let Some((msn, date)) = *anchor {
        pl.date_from(msn, date);
    }
    if pl.segments[0].pdt.is_none() {
        let total: f64 = pl.segments.iter().map(|s| s.length()).sum();
        let first = pl.segments[0].msn;
        pl.date_from(first, now_epoch() - total);
    }
    *anchor = pl.segments.last().and_then(|s| s.pdt.map(|d| (s.msn, d)));
}

struct Shared<'a> {
    viewer: &'a Viewer,
    playout: &'a Mutex<Playout>,
    master: &'a MasterPlaylist,
}

/// Plays an LL-HLS stream until the viewer's stop: `first` is the video
/// rendition's playlist as first loaded.
pub(crate) async fn play(
    v: &Viewer,
    master: &MasterPlaylist,
    variant: &VariantStream,
    video_url: Url,
    audio_url: Option<Url>,
    first: Playlist,
) {
    v.stats.ll.viewers.fetch_add(1, Ordering::Relaxed);
    let playout = Mutex::new(Playout::new(audio_url.is_some(), Instant::now()));
    let shared = Shared {
        viewer: v,
        playout: &playout,
        master,
    };
    let mut video = Track::new(video_url, VIDEO);
    video.pl = Some(first);
    // The join: PART-HOLD-BACK from the end, once the parts reach back so far.
    let (target, part) = loop {
        if let Some(pl) = video.pl.as_mut() {
            date_if_undated(pl, &mut video.anchor);
            if let Some((pos, target)) = pl.join(pl.part_hold_back()) {
                video.pos = Some(pos);
                break (target, pl.part_target.unwrap_or_default());
            }
        }
        if !shared.reload(&mut video).await {
            return;
        }
    };
    // A media element plays once it has data beyond its position: a part.
    playout.lock().unwrap().start_at(target, part);
    let audio = audio_url.map(|u| Track::new(u, AUDIO));
    tokio::join!(
        shared.follow(video, Some(variant.uri.clone())),
        async {
            if let Some(a) = audio {
                shared.follow_from(a, target).await;
            }
        },
        shared.sample(),
    );
    // A stall still going on at the end counts, as in the plain viewer.
    let mut p = playout.lock().unwrap();
    p.tick(Instant::now());
    if let Some(since) = p.stalled_since.take() {
        v.stats.stall(v.id, since);
    }
}

impl Shared<'_> {
    fn live(&self) -> bool {
        Instant::now() < self.viewer.stop_at
    }

    /// Advances the playhead and samples the latency until the stop.
    async fn sample(&self) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while self.live() {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::time::sleep_until(self.viewer.stop_at.into()) => break,
            }
            let playhead = {
                let mut p = self.playout.lock().unwrap();
                p.tick(Instant::now());
                p.playhead()
            };
            if let Some(at) = playhead {
                let lat = now_epoch() - at;
                if lat >= 0.0 {
                    self.viewer.stats.latency(Duration::from_secs_f64(lat));
                }
            }
        }
    }

    /// The audio track: its first playlist, then the join at `target`.
    async fn follow_from(&self, mut t: Track, target: f64) {
        while t.pos.is_none() {
            if !self.reload(&mut t).await {
                return;
            }
            if let Some(pl) = t.pl.as_mut() {
                date_if_undated(pl, &mut t.anchor);
                t.pos = pl.independent_part_at(target).or_else(|| {
                    // Its parts all begin after the target: the first.
                    pl.segments
                        .iter()
                        .find(|s| !s.parts.is_empty())
                        .map(|s| Pos { msn: s.msn, part: 0 })
                });
            }
        }
        self.follow(t, None).await;
    }

    /// Loads and reloads one track until the stop; `variant` is the video
    /// variant's URI for adaptive switches.
    async fn follow(&self, mut t: Track, mut variant: Option<String>) {
        let v = self.viewer;
        let mut pending_switch: Option<(String, Url)> = None;
        while self.live() {
            // A switch waits for a segment boundary: loading stops there.
            self.load_listed(&mut t, pending_switch.is_some()).await;
            if !self.live() {
                break;
            }
            // Adaptive: a switch decided on the last download, made at the
            // next segment boundary (an independent part).
            if v.pick == Pick::Adaptive
                && let (Some(current), Some(rate)) = (variant.as_ref(), t.rate)
                && let Some(next) = v.choose(self.master, Some(rate))
                && &next.uri != current
                && let Ok(u) = v.url.join(&next.uri)
            {
                pending_switch = Some((next.uri.clone(), u));
            }
            if let Some(pos) = t.pos
                && pos.part == 0
                && let Some((uri, url)) = pending_switch.take()
            {
                let report = t.pl.as_ref().and_then(|pl| {
                    pl.rendition_reports
                        .iter()
                        .find(|r| t.url.join(&r.uri).is_ok_and(|u| u.path() == url.path()))
                        .and_then(|r| r.last_msn.map(|m| (m, r.last_part)))
                });
                v.stats.rendition_switches.fetch_add(1, Ordering::Relaxed);
                variant = Some(uri);
                t = Track {
                    pos: Some(pos),
                    report,
                    ..Track::new(url, t.index)
                };
            }
            if !self.reload(&mut t).await {
                break;
            }
        }
    }

    /// Loads everything the copy lists from the track's position on, or
    /// up to the next segment boundary when `to_boundary`.
    async fn load_listed(&self, t: &mut Track, to_boundary: bool) {
        let v = self.viewer;
        let Some(pl) = t.pl.as_ref() else { return };
        if !t.init_loaded
            && let Some(map) = pl.map.as_ref()
            && let Ok(u) = t.url.join(map)
        {
            t.init_loaded = matches!(v.fetch_timed(Kind::Init, &u, false).await, Fetched::Ok { .. });
        }
        let prefetched = t.prefetched.take();
        // Bounded by what one playlist lists.
        for _ in 0..=pl.segments.len() * (crate::llhls::MAX_PARTS_PER_SEGMENT + 1) {
            let Some(pos) = t.pos else { return };
            if !self.live() {
                return;
            }
            match step(pl, pos) {
                Step::Wait => return,
                Step::Load { .. } if to_boundary && pos.part == 0 => return,
                Step::Skip(next) => t.pos = Some(next),
                Step::Load {
                    kind,
                    uri,
                    start,
                    end,
                    then,
                } => {
                    let answer = match &prefetched {
                        Some((hinted, Fetched::Ok { body, ttfb, total, url })) if *hinted == uri => Fetched::Ok {
                            body: body.clone(),
                            ttfb: *ttfb,
                            total: *total,
                            url: url.clone(),
                        },
                        _ => match t.url.join(&uri) {
                            Ok(u) => v.fetch_timed(kind, &u, false).await,
                            Err(_) => Fetched::Failed,
                        },
                    };
                    if let Some(rate) = answer.rate() {
                        t.rate = Some(rate);
                    }
                    if matches!(answer, Fetched::Ok { .. })
                        && let (Some(start), Some(end)) = (start, end)
                    {
                        let since = self.playout.lock().unwrap().add(Instant::now(), t.index, start, end);
                        if let Some(since) = since {
                            v.stats.stall(v.id, since);
                        }
                    }
                    // A failed part is not retried: a player moves on.
                    t.pos = Some(then);
                }
            }
        }
    }

    /// One reload of the track's playlist: blocking for the next part when
    /// the server can, with the hinted part alongside. False at the stop.
    async fn reload(&self, t: &mut Track) -> bool {
        let v = self.viewer;
        let began = Instant::now();
        let copy = t.pl.as_ref();
        let blocking = copy.is_some_and(|pl| pl.server_control.can_block_reload && !pl.end_list);
        let asked: Option<Pos> = copy.filter(|_| blocking).map(Playlist::next_pos);
        let url = if let Some((msn, part)) = t.report.take() {
            reload_url(&t.url, msn, part, false)
        } else if let (Some(pl), Some(next)) = (copy, asked) {
            // A delta update when the copy is fresh enough (it is: it was
            // reloaded within a part's wait) and the server allows one.
            let skip = pl.server_control.can_skip_until.is_some() && !t.full_reload;
            reload_url(&t.url, next.msn, Some(next.part as u64), skip)
        } else {
            t.url.clone()
        };
        if url.query().is_some_and(|q| q.contains("_HLS_msn")) {
            v.stats.ll.blocking_reloads.fetch_add(1, Ordering::Relaxed);
        }
        // The hinted part, when it is the next one this track needs.
        let hint = copy
            .filter(|pl| v.preload_hints && blocking && t.pos == Some(pl.next_pos()))
            .and_then(|pl| pl.preload_hint.clone())
            .and_then(|h| t.url.join(&h).ok().map(|u| (h, u)));
        let (answer, hinted) = tokio::join!(v.fetch_timed(Kind::Playlist, &url, false), async {
            let (uri, u) = hint.as_ref()?;
            v.stats.ll.preload_hints.fetch_add(1, Ordering::Relaxed);
            let a = v.fetch_timed(Kind::Part, u, true).await;
            if matches!(a, Fetched::NotFound) {
                v.stats.ll.preload_hint_misses.fetch_add(1, Ordering::Relaxed);
            }
            Some((uri.clone(), a))
        });
        t.prefetched = hinted.filter(|(_, a)| matches!(a, Fetched::Ok { .. }));
        let Fetched::Ok {
            body, url: answered, ..
        } = answer
        else {
            return v.sleep_until_or_stop(Instant::now() + RETRY).await;
        };
        // Redirected to another session (the edge moves a player whose
        // origin died to the publisher's new session): its playlist
        // replaces the copy, and loading goes on from its first segment
        // (the play-out jumps the hole in the dates, as a player does).
        let moved = answered.path() != t.url.path();
        if moved {
            t.url = answered;
            t.url.set_query(None);
            t.pl = None;
            t.init_loaded = false;
            t.full_reload = false;
            t.prefetched = None;
            t.anchor = None;
        }
        let parsed = match Playlist::parse(&body) {
            Ok(p) => p,
            Err(_) => {
                v.stats.error(Kind::Playlist, "unparsable".into());
                return v.sleep_until_or_stop(Instant::now() + RETRY).await;
            }
        };
        if v.ll == Ll::On && !parsed.is_ll() {
            v.stats.error(Kind::Playlist, "not LL-HLS".into());
        }
        t.full_reload = false;
        if parsed.skipped > 0 {
            let applied = match t.pl.as_mut() {
                Some(copy) => copy.apply_delta(parsed).is_ok(),
                None => false,
            };
            if applied {
                v.stats.ll.delta_updates.fetch_add(1, Ordering::Relaxed);
            } else {
                v.stats.ll.delta_failures.fetch_add(1, Ordering::Relaxed);
                t.full_reload = true;
                return self.live();
            }
        } else {
            t.pl = Some(parsed);
        }
        let Some(pl) = t.pl.as_mut() else { return self.live() };
        date_if_undated(pl, &mut t.anchor);
        if moved && t.pos.is_some() {
            t.pos = pl.segments.first().map(|s| Pos { msn: s.msn, part: 0 });
        }
        // Pacing where the server does not hold the request: polling every
        // part target (half a target duration after ENDLIST), and never a
        // loop that asks again at once for what it just did not get.
        let part = pl.part_target.unwrap_or(pl.target_duration / 2.0).max(0.05);
        let wait = if pl.end_list {
            Some(pl.target_duration.max(0.1) / 2.0)
        } else if !pl.server_control.can_block_reload {
            Some(part)
        } else if !moved && asked.is_some_and(|a| pl.next_pos() <= a) {
            // A blocking answer that does not hold what was asked (a cache
            // answering an older copy).
            Some(part / 2.0)
        } else {
            None
        };
        match wait {
            Some(s) => v.sleep_until_or_stop(began + Duration::from_secs_f64(s)).await,
            None => self.live(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llhls::tests::origin_text;

    #[test]
    fn steps_through_parts_then_to_the_next_segment() {
        let pl = Playlist::parse(origin_text(false).as_bytes()).unwrap();
        let load = |pos| match step(&pl, pos) {
            Step::Load { kind, uri, then, .. } => (kind, uri, then),
            other => panic!("{other:?}"),
        };
        let (kind, uri, then) = load(Pos { msn: 52, part: 4 });
        assert_eq!(
            (kind, uri.as_str(), then),
            (Kind::Part, "52.4.m4s", Pos { msn: 52, part: 5 })
        );
        // The last part of a complete segment: then the next segment.
        assert_eq!(load(Pos { msn: 52, part: 5 }).2, Pos { msn: 53, part: 0 });
        // In progress: part 1, then part 2 (not yet listed: wait).
        assert_eq!(load(Pos { msn: 53, part: 1 }).2, Pos { msn: 53, part: 2 });
        assert_eq!(step(&pl, Pos { msn: 53, part: 2 }), Step::Wait);
        assert_eq!(step(&pl, Pos { msn: 54, part: 0 }), Step::Wait);
        // A complete segment whose parts are gone: the whole segment.
        let (kind, uri, then) = load(Pos { msn: 50, part: 3 });
        assert_eq!(
            (kind, uri.as_str(), then),
            (Kind::Segment, "50.m4s", Pos { msn: 51, part: 0 })
        );
        // A segment that ended with fewer parts than asked: the next one.
        assert_eq!(
            step(&pl, Pos { msn: 52, part: 6 }),
            Step::Skip(Pos { msn: 53, part: 0 })
        );
        // Out of the window: the oldest segment.
        assert_eq!(
            step(&pl, Pos { msn: 30, part: 2 }),
            Step::Skip(Pos { msn: 40, part: 0 })
        );
    }

    #[test]
    fn blocking_reload_queries() {
        let base: Url = "http://127.0.0.1:1/s/x/720p/index.m3u8".parse().unwrap();
        assert_eq!(
            reload_url(&base, 53, Some(2), true).as_str(),
            "http://127.0.0.1:1/s/x/720p/index.m3u8?_HLS_msn=53&_HLS_part=2&_HLS_skip=YES"
        );
        assert_eq!(reload_url(&base, 54, None, false).query(), Some("_HLS_msn=54"));
    }

    #[test]
    fn plays_on_the_date_timeline_and_stalls_when_a_track_runs_dry() {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut p = Playout::new(true, t0);
        p.start_at(100.0, 0.4);
        // Video from 99.8 (its independent part) to 101; no audio yet.
        assert_eq!(p.add(t0, VIDEO, 99.8, 100.333), None);
        assert_eq!(p.add(t0, VIDEO, 100.333, 101.0), None);
        assert!(p.playhead().is_none(), "waits for audio");
        assert_eq!(p.add(t0, AUDIO, 100.0, 100.3), None);
        assert!(p.playhead().is_none(), "less than the start level");
        assert_eq!(p.add(t0, AUDIO, 100.3, 100.5), None);
        assert_eq!(p.playhead(), Some(100.0));
        // Half a second on, audio ran out: stalled since then.
        p.tick(at(0.7));
        assert!(p.playhead().is_none());
        let dry = at(0.5);
        let close = |a: Instant| a.max(dry) - a.min(dry) < Duration::from_millis(1);
        assert!(p.stalled_since.is_some_and(close));
        // Audio arrives (within the slack of its end): playback goes on
        // from where it stopped, the stall reported.
        let since = p.add(at(0.9), AUDIO, 100.52, 101.0);
        assert!(since.is_some_and(close), "{since:?}");
        assert!((p.playhead().unwrap() - 100.5).abs() < 1e-9);
        p.tick(at(1.2));
        assert!((p.playhead().unwrap() - 100.8).abs() < 1e-6);
    }

    #[test]
    fn a_hole_is_jumped() {
        let t0 = Instant::now();
        let mut p = Playout::new(false, t0);
        p.start_at(10.0, 0.0);
        p.add(t0, VIDEO, 10.0, 11.0);
        p.tick(t0 + Duration::from_secs(2));
        assert!(p.playhead().is_none());
        // The track lost 5 s (fell out of the window): playback resumes at
        // the new media, not in the hole.
        assert!(p.add(t0 + Duration::from_secs(3), VIDEO, 16.0, 18.0).is_some());
        assert_eq!(p.playhead(), Some(16.0));
    }

    #[test]
    fn undated_playlists_get_dates_from_the_first_load() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:5\n#EXT-X-PART-INF:PART-TARGET=0.5\n\
                    #EXTINF:2,\n5.m4s\n#EXT-X-PART:DURATION=0.5,URI=\"6.0.m4s\",INDEPENDENT=YES\n";
        let mut pl = Playlist::parse(text.as_bytes()).unwrap();
        let mut anchor = None;
        let before = now_epoch();
        date_if_undated(&mut pl, &mut anchor);
        let end = pl.end_pdt().unwrap();
        assert!(end >= before && end <= now_epoch() + 0.01, "{end} {before}");
        // The next load: the same dates for the same segments.
        let mut again = Playlist::parse(text.as_bytes()).unwrap();
        date_if_undated(&mut again, &mut anchor);
        assert_eq!(again.segments[1].pdt, pl.segments[1].pdt);
    }
}
