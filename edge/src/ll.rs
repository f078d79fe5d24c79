//! LL-HLS at the edge, the pure part: a media playlist's live position read
//! from its text, and the verdicts the edge takes from it for a blocking
//! reload or a part request (answer at once, hold, 400, 404). The
//! directives themselves (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) are read by
//! `api_types::hls_query`, as the origin reads them.
//!
//! Why it exists: with LL-HLS every viewer asks for the next part before it
//! exists (a blocking reload, or the preload-hinted part), several times a
//! second. The edge must collapse those into one origin request each and
//! answer from its own freshest copy of the playlist whenever that copy
//! already satisfies the request. That takes knowing where the stream is,
//! which only the playlist text says.
//!
//! Hand-written rather than `m3u8-rs` (the workspace's playlist crate):
//! `m3u8-rs` 6 does not know `EXT-X-PART`, `EXT-X-PRELOAD-HINT`,
//! `EXT-X-SKIP` or `EXT-X-SERVER-CONTROL`, and the edge needs only a handful
//! of numbers from one pass over the lines, none of the rest. Nothing here
//! allocates per line but the per-segment part counts (one entry per segment
//! with parts listed), so the cost is bounded by the body, which the caller
//! bounds. Std only, so the fuzz target (`fuzz/fuzz_targets/ll.rs`) and the
//! end-to-end test (`edge/tests/ll.rs`) compile this file as it is.

use std::time::Duration;

/// A decimal integer of at most 19 digits (fits `u64` with room).
fn number(v: &str) -> Option<u64> {
    (!v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()))
        .then(|| v.parse().ok())
        .flatten()
}

/// `{msn}.{part}.m4s` taken apart.
pub fn part_name(file: &str) -> Option<(u64, u64)> {
    let (msn, part) = file.strip_suffix(".m4s")?.split_once('.')?;
    Some((number(msn)?, number(part)?))
}

/// Where a media playlist says its stream is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Position {
    /// `EXT-X-TARGETDURATION`, seconds.
    pub target_duration: Option<u64>,
    /// `EXT-X-PART-INF:PART-TARGET`, seconds.
    pub part_target: Option<f64>,
    /// `EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES`: the origin holds
    /// blocking reloads (an LL playlist).
    pub can_block: bool,
    /// `EXT-X-ENDLIST`: directives no longer matter.
    pub ended: bool,
    /// The media sequence number of the last whole segment.
    pub last_segment: Option<u64>,
    /// The last part listed, `(msn, index)`.
    pub last_part: Option<(u64, u64)>,
    /// `EXT-X-PRELOAD-HINT:TYPE=PART`: the part the origin will write next.
    pub hint: Option<(u64, u64)>,
    /// Whole segments whose parts are listed from their first: `(msn,
    /// number of parts)`, oldest first.
    pub whole_parts: Vec<(u64, u64)>,
}

/// The value of `ATTR=` in an attribute list (quotes removed).
fn attr<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = list;
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        rest = &rest[eq + 1..];
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"')?;
            let v = &quoted[..end];
            rest = quoted[end + 1..].trim_start_matches(',');
            v
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let v = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or("");
            v
        };
        if key == name {
            return Some(value);
        }
    }
    None
}

impl Position {
    /// Reads a media playlist. `None` when it is not one, or its numbers
    /// do not add up (a sequence number past `u64`).
    pub fn parse(text: &str) -> Option<Position> {
        let mut lines = text.lines();
        if lines.next()?.trim_end() != "#EXTM3U" {
            return None;
        }
        let mut pos = Position::default();
        // The msn of the segment the next URI line (or part) belongs to.
        let mut msn: u64 = 0;
        let mut after_extinf = false;
        // Parts of the current segment: the first index seen, the count.
        let mut parts: Option<(u64, u64)> = None;
        for line in lines {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            let Some(tag) = line.strip_prefix('#') else {
                if after_extinf {
                    pos.last_segment = Some(msn);
                    if let Some((0, n)) = parts {
                        pos.whole_parts.push((msn, n));
                    }
                    msn = msn.checked_add(1)?;
                    parts = None;
                    after_extinf = false;
                }
                continue;
            };
            let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
            match name {
                "EXT-X-MEDIA-SEQUENCE" => msn = number(value.trim())?,
                "EXT-X-SKIP" => msn = msn.checked_add(number(attr(value, "SKIPPED-SEGMENTS")?)?)?,
                "EXT-X-TARGETDURATION" => pos.target_duration = number(value.trim()),
                "EXT-X-PART-INF" => {
                    pos.part_target = attr(value, "PART-TARGET")
                        .and_then(|v| v.parse::<f64>().ok())
                        .filter(|v| v.is_finite() && *v > 0.0);
                }
                "EXT-X-SERVER-CONTROL" => pos.can_block = attr(value, "CAN-BLOCK-RELOAD") == Some("YES"),
                "EXT-X-ENDLIST" => pos.ended = true,
                "EXTINF" => after_extinf = true,
                "EXT-X-PART" => {
                    // The index from the part's name when it follows the
                    // layout (a window may begin mid-segment), else by count.
                    let named = attr(value, "URI").and_then(|u| part_name(u.rsplit('/').next()?));
                    let index = match named {
                        Some((m, i)) if m == msn => i,
                        Some(_) => return None,
                        None => parts.map_or(0, |(first, n)| first + n),
                    };
                    parts = match parts {
                        None => Some((index, 1)),
                        Some((first, n)) if index == first + n => Some((first, n + 1)),
                        Some(_) => return None,
                    };
                    pos.last_part = Some((msn, index));
                }
                "EXT-X-PRELOAD-HINT" if attr(value, "TYPE") == Some("PART") => {
                    // By its name when it follows the layout: the origin
                    // hints the next segment's first part once the segment
                    // in progress has its duration, before it is closed.
                    let named = attr(value, "URI").and_then(|u| part_name(u.rsplit('/').next()?));
                    pos.hint = Some(named.unwrap_or((msn, parts.map_or(0, |(first, n)| first + n))));
                }
                _ => {}
            }
        }
        Some(pos)
    }

    /// The msn of the segment in progress (the one after the last whole).
    pub fn in_progress(&self) -> Option<u64> {
        match (self.last_segment, self.last_part) {
            (Some(s), _) => s.checked_add(1),
            (None, Some((m, _))) => Some(m),
            (None, None) => None,
        }
    }

    /// How many parts segment `msn` has, when it is whole and its parts
    /// are listed.
    fn parts_of(&self, msn: u64) -> Option<u64> {
        self.whole_parts.iter().find(|(m, _)| *m == msn).map(|(_, n)| *n)
    }

    /// Whether this playlist answers a blocking reload for `msn` (and
    /// `part`): it holds that part (or segment) or a later one.
    pub fn satisfies(&self, msn: u64, part: Option<u64>) -> bool {
        if self.ended {
            return true;
        }
        let whole = self.last_segment.is_some_and(|s| s >= msn);
        match part {
            None => whole,
            Some(p) => {
                self.last_segment.is_some_and(|s| s > msn)
                    || self.last_part.is_some_and(|lp| lp >= (msn, p))
                    || (whole && self.parts_of(msn).is_some_and(|n| p < n))
            }
        }
    }

    /// What to do with a blocking reload for `msn` (and `part`) given this
    /// copy, `age` old.
    pub fn judge(&self, msn: u64, part: Option<u64>, age: Duration) -> Verdict {
        if self.satisfies(msn, part) {
            return Verdict::Now;
        }
        if !self.can_block {
            return Verdict::Forward;
        }
        // The origin refuses msn more than two past the segment in progress.
        // A copy younger than one part target is at most one part behind,
        // and that part may have begun one new segment: past three, the
        // origin's answer is certain.
        let young = self.part_target.is_some_and(|t| age.as_secs_f64() < t);
        match self.in_progress() {
            Some(now) if young && msn > now.saturating_add(3) => Verdict::TooFar,
            _ => Verdict::Hold,
        }
    }

    /// What to make of a request for part `(msn, index)` given this copy.
    pub fn judge_part(&self, msn: u64, index: u64) -> PartVerdict {
        if let Some(n) = self.parts_of(msn) {
            return if index < n {
                PartVerdict::Listed
            } else {
                PartVerdict::Never
            };
        }
        match self.last_part {
            Some(lp) if (msn, index) <= lp && self.in_progress() == Some(msn) => PartVerdict::Listed,
            Some(lp) if (msn, index) > lp && !self.ended && self.can_block => PartVerdict::Ahead,
            _ => PartVerdict::Unknown,
        }
    }

    /// Whether `self` is at least as far along as `other`.
    pub fn not_behind(&self, other: &Position) -> bool {
        (self.ended, self.last_segment, self.last_part) >= (other.ended, other.last_segment, other.last_part)
    }
}

/// What the edge does with a blocking reload, from its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The copy satisfies it: answer from the copy at once.
    Now,
    /// Not yet: hold it on the one upstream request of its key.
    Hold,
    /// Sure to be refused by the origin (msn too far ahead): 400 here.
    TooFar,
    /// Not an LL playlist: forward as any request.
    Forward,
}

/// What the edge makes of a part request, from its copy of the playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartVerdict {
    /// The playlist lists it: it exists.
    Listed,
    /// Not written yet (the hinted part or later): held on one fetch.
    Ahead,
    /// Its segment ended with fewer parts: it will never exist (404).
    Never,
    /// Older than the copy's parts, or no LL copy: forwarded as any object.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's example, shortened: segments 40..=52 whole (parts
    /// listed for 51 and 52), 53 in progress with two parts and a hint.
    const LIVE: &str = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12,PART-HOLD-BACK=1.002
#EXT-X-PART-INF:PART-TARGET=0.334
#EXT-X-MEDIA-SEQUENCE:40
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:00.000Z
#EXTINF:2,
40.m4s
#EXTINF:2,
41.m4s
#EXTINF:2,
42.m4s
#EXTINF:2,
43.m4s
#EXTINF:2,
44.m4s
#EXTINF:2,
45.m4s
#EXTINF:2,
46.m4s
#EXTINF:2,
47.m4s
#EXTINF:2,
48.m4s
#EXTINF:2,
49.m4s
#EXTINF:2,
50.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:22.000Z
#EXT-X-PART:DURATION=0.333,URI=\"51.4.m4s\"
#EXT-X-PART:DURATION=0.333,URI=\"51.5.m4s\"
#EXTINF:2,
51.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:24.000Z
#EXT-X-PART:DURATION=0.333,URI=\"52.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.333,URI=\"52.1.m4s\"
#EXT-X-PART:DURATION=0.333,URI=\"52.2.m4s\"
#EXT-X-PART:DURATION=0.333,URI=\"52.3.m4s\"
#EXT-X-PART:DURATION=0.333,URI=\"52.4.m4s\"
#EXTINF:1.665,
52.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:25.665Z
#EXT-X-PART:DURATION=0.333,URI=\"53.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.333,URI=\"53.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"53.2.m4s\"
#EXT-X-RENDITION-REPORT:URI=\"../720p/index.m3u8\",LAST-MSN=53,LAST-PART=1
";

    fn live() -> Position {
        Position::parse(LIVE).expect("parses")
    }

    #[test]
    fn the_live_position_of_a_playlist() {
        let p = live();
        assert_eq!(p.target_duration, Some(2));
        assert_eq!(p.part_target, Some(0.334));
        assert!(p.can_block && !p.ended);
        assert_eq!(p.last_segment, Some(52));
        assert_eq!(p.last_part, Some((53, 1)));
        assert_eq!(p.hint, Some((53, 2)));
        assert_eq!(p.in_progress(), Some(53));
        // 51's parts are listed from index 4 only: its count is unknown.
        assert_eq!(p.whole_parts, vec![(52, 5)]);
    }

    #[test]
    fn a_delta_update_counts_the_skipped_segments() {
        let delta = LIVE.replace(
            "#EXTINF:2,\n40.m4s\n#EXTINF:2,\n41.m4s\n#EXTINF:2,\n42.m4s\n",
            "#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n",
        );
        assert!(delta.contains("EXT-X-SKIP"));
        assert_eq!(Position::parse(&delta), Some(live()));
    }

    #[test]
    fn a_segment_just_completed_has_a_hint_for_the_next() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n\
                    #EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-PART:DURATION=0.3,URI=\"7.0.m4s\"\n#EXTINF:0.3,\n7.m4s\n\
                    #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"8.0.m4s\"\n";
        let p = Position::parse(text).unwrap();
        assert_eq!(
            (p.last_segment, p.last_part, p.hint),
            (Some(7), Some((7, 0)), Some((8, 0)))
        );
        assert_eq!(p.in_progress(), Some(8));
        assert_eq!(p.whole_parts, vec![(7, 1)]);
        // A hint for the next segment's first part, the segment in
        // progress not closed yet.
        let early = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n\
                     #EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-PART:DURATION=0.3,URI=\"7.0.m4s\"\n\
                     #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"8.0.m4s\"\n";
        let p2 = Position::parse(early).unwrap();
        assert_eq!(
            (p2.last_segment, p2.last_part, p2.hint),
            (None, Some((7, 0)), Some((8, 0)))
        );
        assert_eq!(p2.judge_part(8, 0), PartVerdict::Ahead);
        // 7.3 would be satisfied by 8.0 only, not there yet.
        assert_eq!(p.judge(7, Some(3), Duration::ZERO), Verdict::Hold);
        assert_eq!(p.judge(7, Some(0), Duration::ZERO), Verdict::Now);
    }

    #[test]
    fn blocking_reloads_judged_from_the_copy() {
        let p = live();
        let fresh = Duration::from_millis(100);
        // Held parts and segments: answered at once.
        for (m, part) in [
            (53, Some(1)),
            (53, Some(0)),
            (52, None),
            (52, Some(4)),
            (40, Some(9)),
            (10, None),
        ] {
            assert_eq!(p.judge(m, part, fresh), Verdict::Now, "{m} {part:?}");
        }
        // 52 ended with five parts: 52.7 is satisfied by a later part, 53.0.
        assert_eq!(p.judge(52, Some(7), fresh), Verdict::Now);
        for (m, part) in [(53, Some(2)), (53, None), (54, Some(0)), (56, Some(0)), (56, None)] {
            assert_eq!(p.judge(m, part, fresh), Verdict::Hold, "{m} {part:?}");
        }
        // More than two past the segment in progress, with one segment of
        // slack for what the copy may have missed.
        assert_eq!(p.judge(57, None, fresh), Verdict::TooFar);
        assert_eq!(p.judge(u64::MAX, Some(0), fresh), Verdict::TooFar);
        // An older copy cannot tell: the origin decides.
        assert_eq!(p.judge(57, None, Duration::from_secs(1)), Verdict::Hold);
        // After ENDLIST the directives are ignored.
        let ended = Position::parse(&format!("{LIVE}#EXT-X-ENDLIST\n")).unwrap();
        assert_eq!(ended.judge(999, Some(3), Duration::from_secs(60)), Verdict::Now);
        // A playlist that cannot block: forwarded.
        let plain = Position::parse(&LIVE.replace("CAN-BLOCK-RELOAD=YES,", "")).unwrap();
        assert_eq!(plain.judge(60, None, fresh), Verdict::Forward);
    }

    #[test]
    fn part_requests_judged_from_the_copy() {
        let p = live();
        assert_eq!(p.judge_part(53, 0), PartVerdict::Listed);
        assert_eq!(p.judge_part(53, 1), PartVerdict::Listed);
        assert_eq!(p.judge_part(52, 4), PartVerdict::Listed);
        assert_eq!(p.judge_part(53, 2), PartVerdict::Ahead);
        assert_eq!(p.judge_part(53, 5), PartVerdict::Ahead);
        assert_eq!(p.judge_part(54, 0), PartVerdict::Ahead);
        assert_eq!(p.judge_part(52, 5), PartVerdict::Never);
        assert_eq!(p.judge_part(51, 1), PartVerdict::Unknown);
        assert_eq!(p.judge_part(30, 0), PartVerdict::Unknown);
        let ended = Position::parse(&format!("{LIVE}#EXT-X-ENDLIST\n")).unwrap();
        assert_eq!(ended.judge_part(53, 2), PartVerdict::Unknown);
    }

    #[test]
    fn odd_playlists_do_not_parse_or_do_not_claim_much() {
        assert_eq!(Position::parse(""), None);
        assert_eq!(Position::parse("#EXTINF:2,\n1.m4s\n"), None);
        let overflow = format!("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:{}\n#EXTINF:2,\na.m4s\n", u64::MAX);
        assert_eq!(Position::parse(&overflow), None);
        // Parts out of order, or named for another segment: not trusted.
        assert_eq!(
            Position::parse("#EXTM3U\n#EXT-X-PART:URI=\"1.0.m4s\"\n#EXT-X-PART:URI=\"1.2.m4s\"\n"),
            None
        );
        assert_eq!(Position::parse("#EXTM3U\n#EXT-X-PART:URI=\"9.0.m4s\"\n"), None);
        let p =
            Position::parse("#EXTM3U\n#EXT-X-PART-INF:PART-TARGET=NaN\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=NO\n")
                .unwrap();
        assert_eq!(p, Position::default());
        assert_eq!(attr("A=1,B=\"x,y\",C=3", "C"), Some("3"));
        assert_eq!(attr("A=1,B=\"x,y\",C=3", "B"), Some("x,y"));
        assert_eq!(attr("A=\"unterminated", "A"), None);
        assert_eq!(part_name("53.2.m4s"), Some((53, 2)));
        assert_eq!(part_name("53.m4s"), None);
        assert_eq!(part_name("a.2.m4s"), None);
    }

    #[test]
    fn positions_compare_by_how_far_along() {
        let p = live();
        let older = Position::parse(&LIVE.replace("#EXT-X-PART:DURATION=0.333,URI=\"53.1.m4s\"\n", "")).unwrap();
        assert!(p.not_behind(&older) && !older.not_behind(&p) && p.not_behind(&p));
    }
}
