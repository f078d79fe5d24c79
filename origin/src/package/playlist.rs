//! The live media playlist of one rendition (RFC 8216bis, section 6.2.2),
//! plain or low-latency (LL-HLS, section 6.2.2 and appendix B).
//!
//! The model is segments made of parts. A plain playlist lists complete
//! segments only; a low-latency one also lists the parts (`EXT-X-PART`) of
//! the segments near its end and of the segment in progress, a preload hint
//! for the next part, and rendition reports. Rules kept here:
//! - EXT-X-TARGETDURATION is fixed when the playlist is created and never
//!   changes; a segment whose rounded duration would exceed it is refused.
//! - The window lists at least three target durations of media; a
//!   low-latency one [`LL_WINDOW_TARGETS`] target durations, so that a delta
//!   update (`_HLS_skip`, which may skip only what lies more than
//!   CAN-SKIP-UNTIL = [`SKIP_UNTIL_TARGETS`] target durations from the end)
//!   skips about half of it.
//! - A DVR (time-shift) window ([`MediaPlaylist::with_dvr_window`]) makes
//!   the window that long instead, so players can seek back within it. Such
//!   a playlist advertises delta updates (CAN-SKIP-UNTIL) even when plain
//!   (8216bis 4.4.3.8 allows EXT-X-SERVER-CONTROL in any playlist), so a
//!   reload of a long window stays small.
//! - Parts are listed for the segments that end within the last three
//!   target durations, and for the segment in progress (8216bis 6.2.2).
//! - Rendering costs one copy per segment line: each segment's lines
//!   (PROGRAM-DATE-TIME, EXTINF, URI) are formatted once, when it is listed,
//!   and kept beside it; only the parts near the live end are formatted on
//!   every render. A 3,600-segment DVR window re-rendered on every part
//!   stays cheap (`loadtest/bench/dvr.sh`).
//! - PART-HOLD-BACK is three part targets, the spec's recommendation.
//! - Every segment carries EXT-X-PROGRAM-DATE-TIME.
//! - A segment that leaves the window is handed back to the caller, which
//!   deletes it (and its parts) only after a grace period (players may still
//!   be fetching it).
//! - Once ended (EXT-X-ENDLIST), nothing more is added.
//! - Durations are printed in milliseconds at most (`1.963`, not the f32
//!   `1.9626666`): a segment's duration is whole AAC or video frames, and
//!   players need no more.
//!
//! Written by hand rather than with m3u8-rs, whose writer has none of the
//! LL-HLS tags; m3u8-rs still parses what is written here in the tests, as
//! players do.

use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};
use thiserror::Error;

/// CAN-SKIP-UNTIL, in target durations (the spec's minimum is six).
pub const SKIP_UNTIL_TARGETS: u64 = 6;
/// The window of a low-latency playlist, in target durations.
pub const LL_WINDOW_TARGETS: u64 = 2 * SKIP_UNTIL_TARGETS;
/// Parts are listed for segments ending within this many target durations
/// of the playlist's end.
const PARTS_LISTED_TARGETS: u64 = 3;
/// The longest DVR window a profile may ask for.
pub const MAX_DVR_WINDOW: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Error, PartialEq)]
pub enum PlaylistError {
    #[error("segment of {0:?} exceeds the target duration of {1}s")]
    TooLong(Duration, u64),
    #[error("the playlist has ended")]
    Ended,
}

/// A chunk of a segment: a CMAF chunk, listed as an LL-HLS partial segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub duration: Duration,
    /// Starts with a keyframe.
    pub independent: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number.
    pub sequence: u64,
    /// URI relative to the playlist, e.g. `42.m4s`.
    pub uri: String,
    /// Wall-clock time of the segment's first sample.
    pub program_date_time: SystemTime,
    pub parts: Vec<Part>,
}

impl Segment {
    pub fn duration(&self) -> Duration {
        self.parts.iter().map(|p| p.duration).sum()
    }
}

/// `{sequence}.m4s`: a segment's URI, relative to its playlist.
pub fn segment_uri(sequence: u64) -> String {
    format!("{sequence}.m4s")
}

/// `{sequence}.{index}.m4s`: a part's URI, relative to its playlist.
pub fn part_uri(sequence: u64, index: usize) -> String {
    format!("{sequence}.{index}.m4s")
}

/// Another rendition's live position, for `EXT-X-RENDITION-REPORT`.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionReport {
    /// Its playlist's URI relative to this one (`../720p/index.m3u8`).
    pub uri: String,
    /// Its last part: (media sequence number, part index).
    pub last_part: (u64, usize),
}

/// A duration in seconds with at most three decimals: `2`, `2.09`, `1.963`.
fn secs(d: Duration) -> String {
    let ms = (d.as_secs_f64() * 1000.0).round() as u64;
    let mut s = format!("{}.{:03}", ms / 1000, ms % 1000);
    while s.ends_with('0') {
        s.pop();
    }
    s.trim_end_matches('.').to_string()
}

/// A duration in seconds rounded up to the millisecond (for limits such as
/// PART-TARGET, which no part may exceed).
fn secs_ceil(d: Duration) -> String {
    secs(Duration::from_millis(d.as_nanos().div_ceil(1_000_000) as u64))
}

#[derive(Debug)]
pub struct MediaPlaylist {
    target_duration: u64,
    init_uri: String,
    segments: VecDeque<Segment>,
    /// Each listed segment's lines without its parts
    /// (`#EXT-X-PROGRAM-DATE-TIME`, `#EXTINF`, URI), formatted once.
    lines: VecDeque<Box<str>>,
    /// The time-shift window, if longer than the live one.
    dvr_window: Option<Duration>,
    /// Low-latency: the part target (EXT-X-PART-INF).
    part_target: Option<Duration>,
    /// Low-latency: the segment in progress (its parts so far).
    building: Option<Segment>,
    /// Low-latency: the part the preload hint names.
    hint: Option<(u64, usize)>,
    ended: bool,
}

impl MediaPlaylist {
    /// A plain playlist. `target` is the segment duration the encoder aims
    /// at (its GOP); EXT-X-TARGETDURATION is that rounded up to whole seconds.
    pub fn new(target: Duration, init_uri: &str) -> MediaPlaylist {
        MediaPlaylist {
            target_duration: target.as_secs_f64().ceil().max(1.0) as u64,
            init_uri: init_uri.to_string(),
            segments: VecDeque::new(),
            lines: VecDeque::new(),
            dvr_window: None,
            part_target: None,
            building: None,
            hint: None,
            ended: false,
        }
    }

    /// A low-latency playlist whose parts last at most `part_target`.
    pub fn low_latency(target: Duration, part_target: Duration, init_uri: &str) -> MediaPlaylist {
        MediaPlaylist {
            part_target: Some(part_target),
            ..MediaPlaylist::new(target, init_uri)
        }
    }

    /// Lists `window` of media (a DVR window) when that is longer than the
    /// live window; `None` or zero keeps the live window.
    pub fn with_dvr_window(mut self, window: Option<Duration>) -> MediaPlaylist {
        self.dvr_window = window.filter(|w| !w.is_zero());
        self
    }

    pub fn target_duration(&self) -> u64 {
        self.target_duration
    }

    /// The least media the window lists: the live window, or the DVR
    /// window when longer.
    pub fn window(&self) -> Duration {
        let targets = if self.part_target.is_some() {
            LL_WINDOW_TARGETS
        } else {
            3
        };
        let live = Duration::from_secs(targets * self.target_duration);
        self.dvr_window.map_or(live, |d| d.max(live))
    }

    /// Whether the playlist offers delta updates (`_HLS_skip`): every
    /// low-latency one, and a plain one with a DVR window.
    pub fn can_skip(&self) -> bool {
        self.part_target.is_some() || self.dvr_window.is_some()
    }

    pub fn part_target(&self) -> Option<Duration> {
        self.part_target
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The sequence number the next segment must carry (the segment in
    /// progress's, if there is one).
    pub fn next_sequence(&self) -> u64 {
        if let Some(b) = &self.building {
            return b.sequence;
        }
        self.segments.back().map_or(0, |s| s.sequence + 1)
    }

    /// The segment in progress, if any.
    pub fn building(&self) -> Option<&Segment> {
        self.building.as_ref()
    }

    /// The last part listed: (media sequence number, part index).
    pub fn last_part(&self) -> Option<(u64, usize)> {
        if let Some(b) = self.building.as_ref().filter(|b| !b.parts.is_empty()) {
            return Some((b.sequence, b.parts.len() - 1));
        }
        self.segments
            .back()
            .map(|s| (s.sequence, s.parts.len().saturating_sub(1)))
    }

    /// Whether a segment lasting `d` may be listed: RFC 8216bis 4.4.3.1,
    /// EXTINF rounded to the nearest integer must not exceed the target
    /// duration. [`MediaPlaylist::push`] checks it too.
    pub fn accepts(&self, d: Duration) -> Result<(), PlaylistError> {
        if d.as_secs_f64().round() as u64 > self.target_duration {
            return Err(PlaylistError::TooLong(d, self.target_duration));
        }
        Ok(())
    }

    /// Appends a complete segment; returns the segments that left the window.
    pub fn push(&mut self, segment: Segment) -> Result<Vec<Segment>, PlaylistError> {
        if self.ended {
            return Err(PlaylistError::Ended);
        }
        self.accepts(segment.duration())?;
        self.lines.push_back(segment_lines(&segment).into());
        self.segments.push_back(segment);
        let min_window = self.window();
        let mut total: Duration = self.segments.iter().map(Segment::duration).sum();
        let mut left = vec![];
        while let Some(oldest) = self.segments.front() {
            if total.saturating_sub(oldest.duration()) < min_window {
                break;
            }
            total -= oldest.duration();
            self.lines.pop_front();
            left.extend(self.segments.pop_front());
        }
        Ok(left)
    }

    /// Low-latency: appends a part to the segment in progress, starting one
    /// (numbered [`MediaPlaylist::next_sequence`], at `program_date_time`)
    /// if there is none. Returns the part's index in its segment.
    pub fn push_part(&mut self, program_date_time: SystemTime, part: Part) -> Result<usize, PlaylistError> {
        if self.ended {
            return Err(PlaylistError::Ended);
        }
        let sequence = self.next_sequence();
        let b = self.building.get_or_insert_with(|| Segment {
            sequence,
            uri: segment_uri(sequence),
            program_date_time,
            parts: vec![],
        });
        b.parts.push(part);
        Ok(b.parts.len() - 1)
    }

    /// Low-latency: the segment in progress is complete; lists it as a
    /// segment. Returns the segments that left the window.
    pub fn close_segment(&mut self) -> Result<Vec<Segment>, PlaylistError> {
        match self.building.take() {
            Some(b) => self.push(b),
            None => Ok(vec![]),
        }
    }

    /// Low-latency: names the part the preload hint announces.
    pub fn set_hint(&mut self, hint: Option<(u64, usize)>) {
        self.hint = hint;
    }

    /// Marks the playlist ended (EXT-X-ENDLIST).
    pub fn end(&mut self) {
        self.ended = true;
        self.hint = None;
    }

    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter()
    }

    /// CAN-SKIP-UNTIL, for a low-latency playlist.
    pub fn skip_until(&self) -> Duration {
        Duration::from_secs(SKIP_UNTIL_TARGETS * self.target_duration)
    }

    /// How many of the oldest segments a delta update skips: those that end
    /// at least CAN-SKIP-UNTIL before the end of the playlist.
    fn skippable(&self) -> usize {
        let building = self.building.as_ref().map_or(Duration::ZERO, Segment::duration);
        let mut after: Duration = self.segments.iter().map(Segment::duration).sum::<Duration>() + building;
        let mut n = 0;
        for s in &self.segments {
            after -= s.duration();
            if after < self.skip_until() {
                break;
            }
            n += 1;
        }
        n
    }

    /// The playlist's text: the whole playlist, or with `skip` (and a
    /// playlist that offers delta updates, [`MediaPlaylist::can_skip`]) a
    /// delta update.
    pub fn render(&self, reports: &[RenditionReport], skip: bool) -> String {
        let mut out = String::new();
        self.render_into(&mut out, reports, skip);
        out
    }

    /// [`MediaPlaylist::render`] into `out` (cleared first), so that a
    /// caller rendering on every change reuses one buffer: a new one of a
    /// slightly larger size each time (a DVR window grows for hours) left
    /// glibc's heap fragmented, hundreds of MB for a 2 h window.
    pub fn render_into(&self, out: &mut String, reports: &[RenditionReport], skip: bool) {
        out.clear();
        let skipped = if skip && self.can_skip() { self.skippable() } else { 0 };
        let bytes: usize = self.lines.iter().skip(skipped).map(|l| l.len()).sum();
        out.reserve(512 + bytes + 256 * reports.len());
        let ll = self.part_target;
        out.push_str("#EXTM3U\n");
        // EXT-X-SKIP needs version 9; so do the LL tags.
        let version = if ll.is_some() || skipped > 0 { 9 } else { 7 };
        let _ = writeln!(out, "#EXT-X-VERSION:{version}");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        if let Some(pt) = ll {
            let _ = writeln!(
                out,
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={},PART-HOLD-BACK={}",
                secs(self.skip_until()),
                secs_ceil(pt * 3)
            );
            let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", secs_ceil(pt));
        } else if self.can_skip() {
            let _ = writeln!(out, "#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL={}", secs(self.skip_until()));
        }
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA-SEQUENCE:{}",
            self.segments
                .front()
                .or(self.building.as_ref())
                .map_or(0, |s| s.sequence)
        );
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        if skipped > 0 {
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
        // EXT-X-MAP once, before the first segment: it applies to all.
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", self.init_uri);

        // Parts for the segments ending within the last three target durations.
        let parts_from = {
            let window = Duration::from_secs(PARTS_LISTED_TARGETS * self.target_duration);
            let mut after = self.building.as_ref().map_or(Duration::ZERO, Segment::duration);
            let mut from = self.segments.len();
            for s in self.segments.iter().rev() {
                if after >= window {
                    break;
                }
                after += s.duration();
                from -= 1;
            }
            from
        };
        let write_parts = |out: &mut String, s: &Segment| {
            for (i, p) in s.parts.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "#EXT-X-PART:DURATION={},URI=\"{}\"{}",
                    secs(p.duration),
                    part_uri(s.sequence, i),
                    if p.independent { ",INDEPENDENT=YES" } else { "" }
                );
            }
        };
        for (i, (s, lines)) in self.segments.iter().zip(&self.lines).enumerate().skip(skipped) {
            if ll.is_some() && i >= parts_from {
                let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", pdt(s.program_date_time));
                write_parts(out, s);
                let _ = writeln!(out, "#EXTINF:{},\n{}", secs(s.duration()), s.uri);
            } else {
                out.push_str(lines);
            }
        }
        if ll.is_some() {
            if let Some(b) = &self.building {
                let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", pdt(b.program_date_time));
                write_parts(out, b);
            }
            if let Some((seq, i)) = self.hint.filter(|_| !self.ended) {
                let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"", part_uri(seq, i));
            }
            for r in reports {
                let _ = writeln!(
                    out,
                    "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={},LAST-PART={}",
                    r.uri, r.last_part.0, r.last_part.1
                );
            }
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
    }
}

/// A segment's lines without its parts: date, duration, URI.
fn segment_lines(s: &Segment) -> String {
    format!(
        "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{},\n{}\n",
        pdt(s.program_date_time),
        secs(s.duration()),
        s.uri
    )
}

/// A duration in seconds with at most three decimals, as EXTINF prints it.
pub fn extinf(d: Duration) -> String {
    secs(d)
}

/// EXT-X-PROGRAM-DATE-TIME's form of `t` (RFC 3339, milliseconds, UTC).
pub fn pdt(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u64, secs: f64) -> Segment {
        Segment {
            sequence: seq,
            uri: format!("{seq}.m4s"),
            program_date_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seq * 2),
            parts: vec![
                Part {
                    duration: Duration::from_secs_f64(secs / 2.0),
                    independent: true,
                },
                Part {
                    duration: Duration::from_secs_f64(secs / 2.0),
                    independent: false,
                },
            ],
        }
    }

    #[test]
    fn window_holds_at_least_three_target_durations() {
        let mut p = MediaPlaylist::new(Duration::from_secs(2), "init.mp4");
        let mut left = vec![];
        for n in 0..10 {
            assert_eq!(p.next_sequence(), n);
            left.extend(p.push(seg(n, 2.0)).unwrap());
            let listed: Duration = p.segments().map(Segment::duration).sum();
            if n >= 2 {
                assert!(listed >= Duration::from_secs(6), "window {listed:?} after {n}");
            }
            assert!(listed <= Duration::from_secs(8));
        }
        assert_eq!(
            left.iter().map(|s| s.sequence).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6]
        );
    }

    #[test]
    fn renders_a_valid_live_playlist_then_ends() {
        let mut p = MediaPlaylist::new(Duration::from_secs(2), "init.mp4");
        for n in 0..5 {
            p.push(seg(n, 2.0)).unwrap();
        }
        let text = p.render(&[], false);
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.target_duration, 2);
        assert_eq!(parsed.media_sequence, 2);
        assert!(parsed.independent_segments && !parsed.end_list);
        assert_eq!(parsed.segments.len(), 3);
        assert!(parsed.segments.iter().all(|s| s.program_date_time.is_some()));
        assert_eq!(parsed.segments[0].map.as_ref().unwrap().uri, "init.mp4");
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24"), "{text}");

        p.end();
        assert!(
            m3u8_rs::parse_media_playlist_res(p.render(&[], false).as_bytes())
                .unwrap()
                .end_list
        );
        assert_eq!(p.push(seg(5, 2.0)), Err(PlaylistError::Ended));
    }

    #[test]
    fn extinf_has_at_most_three_decimals() {
        let mut p = MediaPlaylist::new(Duration::from_secs(2), "init.mp4");
        // 92 AAC frames at 48 kHz, 90 at 44.1 kHz, one frame, two video seconds.
        for (n, d) in [
            Duration::from_nanos(92 * 1024 * 1_000_000_000 / 48_000),
            Duration::from_nanos(90 * 1024 * 1_000_000_000 / 44_100),
            Duration::from_nanos(21_333_333),
            Duration::from_secs(2),
        ]
        .into_iter()
        .enumerate()
        {
            let mut s = seg(n as u64, 0.0);
            s.parts = vec![Part {
                duration: d,
                independent: true,
            }];
            p.push(s).unwrap();
        }
        let text = p.render(&[], false);
        let extinf: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .map(|l| l.trim_end_matches(','))
            .collect();
        assert_eq!(extinf, ["1.963", "2.09", "0.021", "2"], "{text}");
    }

    #[test]
    fn target_duration_is_fixed_and_enforced() {
        let mut p = MediaPlaylist::new(Duration::from_millis(1500), "init.mp4");
        assert_eq!(p.target_duration(), 2);
        assert!(p.push(seg(0, 2.4)).is_ok(), "2.4 rounds to 2");
        assert_eq!(
            p.push(seg(1, 2.6)),
            Err(PlaylistError::TooLong(Duration::from_secs_f64(2.6), 2))
        );
    }
}

#[cfg(test)]
mod low_latency_tests {
    use super::*;

    const PDT0: u64 = 1_700_000_000;

    fn part(ms: u64, independent: bool) -> Part {
        Part {
            duration: Duration::from_millis(ms),
            independent,
        }
    }

    /// A low-latency playlist fed `segments` whole segments of six 1/3 s
    /// parts, then `building` parts of the next.
    fn ll(segments: u64, building: usize) -> MediaPlaylist {
        let mut p = MediaPlaylist::low_latency(Duration::from_secs(2), Duration::from_millis(334), "init.mp4");
        for n in 0..segments {
            for i in 0..6 {
                let at = SystemTime::UNIX_EPOCH + Duration::from_secs(PDT0 + n * 2);
                assert_eq!(p.push_part(at, part(333, i == 0)).unwrap(), i);
            }
            p.close_segment().unwrap();
        }
        for i in 0..building {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(PDT0 + segments * 2);
            p.push_part(at, part(333, i == 0)).unwrap();
        }
        p
    }

    #[test]
    fn lists_server_control_parts_hint_and_reports() {
        let mut p = ll(20, 2);
        p.set_hint(Some((20, 2)));
        let reports = [RenditionReport {
            uri: "../audio/index.m3u8".into(),
            last_part: (20, 1),
        }];
        let text = p.render(&reports, false);
        assert!(
            text.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n"),
            "{text}"
        );
        assert!(
            text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12,PART-HOLD-BACK=1.002\n"),
            "{text}"
        );
        assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.334\n"), "{text}");
        // The window: at least 12 target durations (24 s) of whole segments.
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        let listed: f32 = parsed.segments.iter().map(|s| s.duration).sum();
        assert!((24.0..26.5).contains(&listed), "{listed}");
        assert_eq!(parsed.segments.last().unwrap().uri, "19.m4s");
        // Parts: the last three target durations' segments and the one in progress.
        let parts: Vec<&str> = text.lines().filter(|l| l.starts_with("#EXT-X-PART:")).collect();
        assert_eq!(parts.len(), 3 * 6 + 2, "{text}");
        assert_eq!(parts[0], "#EXT-X-PART:DURATION=0.333,URI=\"17.0.m4s\",INDEPENDENT=YES");
        assert_eq!(parts[1], "#EXT-X-PART:DURATION=0.333,URI=\"17.1.m4s\"");
        assert_eq!(*parts.last().unwrap(), "#EXT-X-PART:DURATION=0.333,URI=\"20.1.m4s\"");
        let tail: Vec<&str> = text.lines().rev().take(2).collect();
        assert_eq!(
            tail,
            [
                "#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=20,LAST-PART=1",
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"20.2.m4s\"",
            ]
        );
        assert_eq!(p.last_part(), Some((20, 1)));
        assert_eq!(p.next_sequence(), 20);
        // The segment in progress carries its date too.
        assert!(
            text.contains(
                "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:14:00.000Z\n#EXT-X-PART:DURATION=0.333,URI=\"20.0.m4s\""
            ),
            "{text}"
        );
    }

    #[test]
    fn a_delta_update_skips_what_lies_past_can_skip_until() {
        let p = ll(20, 3);
        let full = p.render(&[], false);
        let delta = p.render(&[], true);
        let media_sequence = |t: &str| {
            t.lines()
                .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                .unwrap()
                .to_string()
        };
        assert_eq!(media_sequence(&full), media_sequence(&delta));
        let skipped: usize = delta
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))
            .expect("a skip tag")
            .parse()
            .unwrap();
        let uris = |t: &str| t.lines().filter(|l| l.ends_with(".m4s") && !l.starts_with('#')).count();
        assert_eq!(uris(&full), uris(&delta) + skipped);
        // What is left lasts at least CAN-SKIP-UNTIL (12 s) to the end.
        let left = uris(&delta) as f64 * 2.0 + 1.0;
        assert!((12.0..14.5).contains(&left), "{delta}");
        // Never for a plain playlist.
        let mut plain = MediaPlaylist::new(Duration::from_secs(2), "init.mp4");
        plain
            .push(Segment {
                sequence: 0,
                uri: "0.m4s".into(),
                program_date_time: SystemTime::UNIX_EPOCH,
                parts: vec![part(2000, true)],
            })
            .unwrap();
        let text = plain.render(&[], true);
        assert!(
            !text.contains("SKIP") && !text.contains("PART") && text.contains("#EXT-X-VERSION:7"),
            "{text}"
        );
    }

    #[test]
    fn a_dvr_window_lists_that_much_and_delta_updates_keep_reloads_small() {
        // Two hours of 2 s segments: 3,600.
        let mut p = MediaPlaylist::low_latency(Duration::from_secs(2), Duration::from_millis(334), "init.mp4")
            .with_dvr_window(Some(Duration::from_secs(7200)));
        let mut left = 0;
        for n in 0..3700u64 {
            for i in 0..6 {
                let at = SystemTime::UNIX_EPOCH + Duration::from_secs(PDT0 + n * 2);
                p.push_part(at, part(333, i == 0)).unwrap();
            }
            left += p.close_segment().unwrap().len();
        }
        // Segments of 1.998 s: 3,604 make the first two hours.
        let listed: Duration = p.segments().map(Segment::duration).sum();
        assert!(
            listed >= Duration::from_secs(7200) && listed < Duration::from_secs(7202),
            "{listed:?}"
        );
        assert_eq!(p.segments().count(), 3604);
        assert_eq!(left, 96);
        let full = p.render(&[], false);
        let delta = p.render(&[], true);
        let parsed = m3u8_rs::parse_media_playlist_res(full.as_bytes()).unwrap();
        assert_eq!(parsed.segments.len(), 3604);
        assert_eq!(parsed.media_sequence, 96);
        // Parts only near the live end, as with the live window.
        assert_eq!(
            full.matches("#EXT-X-PART:").count(),
            4 * 6,
            "segments ending within 6 s"
        );
        assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=3597\n"), "{delta}");
        assert!(
            delta.len() * 50 < full.len(),
            "delta {} full {}",
            delta.len(),
            full.len()
        );
        // The cached lines render exactly as the parts' segments' do.
        let last_dated = full.rfind("#EXT-X-PROGRAM-DATE-TIME").unwrap();
        assert!(
            full[..last_dated].contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:16:32.000Z\n#EXTINF:1.998,\n96.m4s\n")
        );
    }

    #[test]
    fn a_plain_dvr_playlist_offers_delta_updates() {
        let mut p =
            MediaPlaylist::new(Duration::from_secs(2), "init.mp4").with_dvr_window(Some(Duration::from_secs(60)));
        for n in 0..40 {
            p.push(Segment {
                sequence: n,
                uri: segment_uri(n),
                program_date_time: SystemTime::UNIX_EPOCH + Duration::from_secs(PDT0 + 2 * n),
                parts: vec![part(2000, true)],
            })
            .unwrap();
        }
        let full = p.render(&[], false);
        assert_eq!(p.segments().count(), 30, "60 s of 2 s segments");
        assert!(
            full.contains("#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=12\n") && full.contains("#EXT-X-VERSION:7"),
            "{full}"
        );
        assert!(!full.contains("CAN-BLOCK-RELOAD") && !full.contains("PART"), "{full}");
        let delta = p.render(&[], true);
        assert!(
            delta.contains("#EXT-X-VERSION:9\n") && delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=24\n"),
            "{delta}"
        );
        assert_eq!(delta.lines().filter(|l| l.ends_with(".m4s")).count(), 6);
        // Zero is the live window.
        let live = MediaPlaylist::new(Duration::from_secs(2), "init.mp4").with_dvr_window(Some(Duration::ZERO));
        assert!(!live.can_skip() && live.window() == Duration::from_secs(6));
    }

    #[test]
    fn an_ended_playlist_has_no_hint() {
        let mut p = ll(3, 0);
        p.set_hint(Some((3, 0)));
        p.end();
        let text = p.render(&[], false);
        assert!(
            text.ends_with("#EXT-X-ENDLIST\n") && !text.contains("PRELOAD-HINT"),
            "{text}"
        );
        assert_eq!(
            p.push_part(SystemTime::UNIX_EPOCH, part(333, true)),
            Err(PlaylistError::Ended)
        );
    }
}
