//! The LL-HLS media playlist as the LL viewer ([`crate::llviewer`]) reads
//! it: segments with their parts, the segment in progress (parts only),
//! `EXT-X-SERVER-CONTROL`, `EXT-X-PART-INF`, `EXT-X-PRELOAD-HINT`,
//! `EXT-X-RENDITION-REPORT`, and delta updates (`EXT-X-SKIP`) applied to
//! the copy a viewer keeps.
//!
//! Hand-written because m3u8-rs (6.0) knows none of the LL-HLS tags: it
//! keeps `EXT-X-PART` as an unknown tag of the segment that follows, and
//! drops the tags after the last segment's URI, which is where the segment
//! in progress, the preload hint and the rendition reports are. The syntax
//! is line-based (RFC 8216bis 4.1, attribute lists 4.2), so the parser is
//! one pass over the lines.
//!
//! Hostile input is bounded: the text is at most [`MAX_BYTES`], and the
//! counts of segments, parts per segment and rendition reports are capped
//! ([`MAX_SEGMENTS`], [`MAX_PARTS_PER_SEGMENT`], [`MAX_RENDITION_REPORTS`]),
//! so what a playlist allocates is a small multiple of its size whatever it
//! holds; numbers are checked (finite, non-negative, sequence numbers that
//! do not overflow). The fuzz target is `fuzz/fuzz_targets/llhls.rs`.

/// The longest playlist text parsed.
pub const MAX_BYTES: usize = 1 << 20;
/// The most segments a playlist may list (skipped ones included).
pub const MAX_SEGMENTS: u64 = 20_000;
/// The most parts of one segment.
pub const MAX_PARTS_PER_SEGMENT: usize = 1_000;
/// The most `EXT-X-RENDITION-REPORT` tags.
pub const MAX_RENDITION_REPORTS: usize = 64;
/// The largest duration (seconds) or date accepted as a number.
const MAX_SECONDS: f64 = 1e7;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("not a playlist (no #EXTM3U)")]
    NotPlaylist,
    #[error("playlist longer than {MAX_BYTES} bytes")]
    TooLong,
    #[error("more than the {0} a playlist may hold")]
    TooMany(&'static str),
    #[error("line {line}: {what}")]
    Bad { line: usize, what: &'static str },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeltaError {
    #[error("the delta skips segment {0}, which the copy does not hold")]
    Missing(u64),
    #[error("the delta starts at media sequence {delta}, before the copy's {copy}")]
    Older { delta: u64, copy: u64 },
}

/// `EXT-X-SERVER-CONTROL`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerControl {
    pub can_block_reload: bool,
    /// Seconds from the end before which a delta update may skip segments.
    pub can_skip_until: Option<f64>,
    pub part_hold_back: Option<f64>,
    pub hold_back: Option<f64>,
}

/// One `EXT-X-PART`.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub uri: String,
    pub duration: f64,
    pub independent: bool,
    /// Its start as a PROGRAM-DATE-TIME (seconds since the Unix epoch).
    pub pdt: Option<f64>,
}

/// A segment: complete (EXTINF and URI) or in progress (parts only).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub msn: u64,
    /// EXTINF; `None` for the segment in progress.
    pub duration: Option<f64>,
    /// The whole segment's URI; `None` for the segment in progress.
    pub uri: Option<String>,
    /// Its start as a PROGRAM-DATE-TIME (seconds since the Unix epoch):
    /// its own tag, else carried from its neighbours.
    pub pdt: Option<f64>,
    pub parts: Vec<Part>,
}

impl Segment {
    pub fn complete(&self) -> bool {
        self.uri.is_some()
    }

    /// Its duration: EXTINF, or the sum of its parts while in progress.
    pub fn length(&self) -> f64 {
        self.duration
            .unwrap_or_else(|| self.parts.iter().map(|p| p.duration).sum())
    }
}

/// `EXT-X-RENDITION-REPORT`.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionReport {
    pub uri: String,
    pub last_msn: Option<u64>,
    pub last_part: Option<u64>,
}

/// A position in a rendition: part `part` of segment `msn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub msn: u64,
    pub part: usize,
}

/// A media playlist, LL-HLS tags included.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Playlist {
    pub target_duration: f64,
    pub media_sequence: u64,
    pub server_control: ServerControl,
    /// `EXT-X-PART-INF:PART-TARGET`; its presence makes the playlist LL.
    pub part_target: Option<f64>,
    /// The first `EXT-X-MAP` URI.
    pub map: Option<String>,
    /// `EXT-X-SKIP:SKIPPED-SEGMENTS` of a delta update (0 once applied).
    pub skipped: u64,
    /// In order; the first has msn `media_sequence + skipped`.
    pub segments: Vec<Segment>,
    /// `EXT-X-PRELOAD-HINT:TYPE=PART` URI.
    pub preload_hint: Option<String>,
    pub rendition_reports: Vec<RenditionReport>,
    pub end_list: bool,
}

/// Splits an attribute list (`A=1,B="x,y",C=YES`) into (name, value),
/// quotes removed from quoted values.
fn attributes(list: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = list;
    std::iter::from_fn(move || {
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if rest.is_empty() {
                return None;
            }
            let eq = rest.find('=');
            let comma = rest.find(',');
            let Some(eq) = eq.filter(|e| comma.is_none_or(|c| *e < c)) else {
                // A name without a value: skip it.
                rest = comma.map_or("", |c| &rest[c..]);
                continue;
            };
            let name = rest[..eq].trim();
            let after = &rest[eq + 1..];
            if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted.find('"').unwrap_or(quoted.len());
                rest = quoted.get(end + 1..).unwrap_or("");
                return Some((name, &quoted[..end]));
            }
            let end = after.find(',').unwrap_or(after.len());
            rest = &after[end..];
            return Some((name, after[..end].trim()));
        }
    })
}

fn attr<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    attributes(list).find(|(n, _)| *n == name).map(|(_, v)| v)
}

fn seconds(v: &str) -> Option<f64> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (0.0..=MAX_SECONDS).contains(s))
}

fn integer(v: &str) -> Option<u64> {
    let v = v.trim();
    // Digits only: no sign, no "+1", nothing a u64 parse would also take.
    (!v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()))
        .then(|| v.parse().ok())
        .flatten()
}

/// An RFC 3339 date as seconds since the Unix epoch.
fn date(v: &str) -> Option<f64> {
    let d = chrono::DateTime::parse_from_rfc3339(v.trim()).ok()?;
    let s = d.timestamp() as f64 + f64::from(d.timestamp_subsec_nanos()) / 1e9;
    s.is_finite().then_some(s)
}

/// The segment being assembled from the tags before its URI.
#[derive(Default)]
struct Pending {
    duration: Option<f64>,
    pdt: Option<f64>,
    parts: Vec<Part>,
}

impl Playlist {
    /// Parses a media playlist (at most [`MAX_BYTES`]).
    pub fn parse(text: &[u8]) -> Result<Playlist, ParseError> {
        if text.len() > MAX_BYTES {
            return Err(ParseError::TooLong);
        }
        let text = String::from_utf8_lossy(text);
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
        if lines
            .by_ref()
            .find(|(_, l)| !l.is_empty())
            .is_none_or(|(_, l)| l != "#EXTM3U")
        {
            return Err(ParseError::NotPlaylist);
        }
        let mut pl = Playlist::default();
        let mut pending = Pending::default();
        // The msn of the next segment, once the first segment is seen.
        let mut next_msn: Option<u64> = None;
        for (line, l) in lines {
            let bad = |what| ParseError::Bad { line, what };
            if l.is_empty() {
                continue;
            }
            let Some(tag) = l.strip_prefix('#') else {
                // A URI line: the segment the pending tags describe.
                let duration = pending.duration.ok_or(bad("a segment URI without EXTINF"))?;
                let msn = *next_msn.get_or_insert(pl.media_sequence + pl.skipped);
                if msn - pl.media_sequence >= MAX_SEGMENTS {
                    return Err(ParseError::TooMany("segments"));
                }
                let p = std::mem::take(&mut pending);
                pl.segments.push(Segment {
                    msn,
                    duration: Some(duration),
                    uri: Some(l.to_string()),
                    pdt: p.pdt,
                    parts: p.parts,
                });
                next_msn = Some(msn + 1);
                continue;
            };
            let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
            match name {
                "EXT-X-TARGETDURATION" => {
                    pl.target_duration = seconds(value).ok_or(bad("EXT-X-TARGETDURATION"))?;
                }
                "EXT-X-MEDIA-SEQUENCE" => {
                    if next_msn.is_some() {
                        return Err(bad("EXT-X-MEDIA-SEQUENCE after a segment"));
                    }
                    pl.media_sequence = integer(value)
                        .filter(|m| m.checked_add(2 * MAX_SEGMENTS).is_some())
                        .ok_or(bad("EXT-X-MEDIA-SEQUENCE"))?;
                }
                "EXT-X-SKIP" => {
                    if next_msn.is_some() || !pending.parts.is_empty() {
                        return Err(bad("EXT-X-SKIP after a segment"));
                    }
                    let n = attr(value, "SKIPPED-SEGMENTS")
                        .and_then(integer)
                        .ok_or(bad("EXT-X-SKIP without SKIPPED-SEGMENTS"))?;
                    if n >= MAX_SEGMENTS {
                        return Err(ParseError::TooMany("segments"));
                    }
                    pl.skipped = n;
                }
                "EXT-X-SERVER-CONTROL" => {
                    for (k, v) in attributes(value) {
                        match k {
                            "CAN-BLOCK-RELOAD" => pl.server_control.can_block_reload = v == "YES",
                            "CAN-SKIP-UNTIL" => pl.server_control.can_skip_until = seconds(v),
                            "PART-HOLD-BACK" => pl.server_control.part_hold_back = seconds(v),
                            "HOLD-BACK" => pl.server_control.hold_back = seconds(v),
                            _ => {}
                        }
                    }
                }
                "EXT-X-PART-INF" => {
                    pl.part_target = Some(
                        attr(value, "PART-TARGET")
                            .and_then(seconds)
                            .ok_or(bad("EXT-X-PART-INF without PART-TARGET"))?,
                    );
                }
                "EXT-X-MAP" if pl.map.is_none() => {
                    pl.map = Some(attr(value, "URI").ok_or(bad("EXT-X-MAP without URI"))?.to_string());
                }
                "EXT-X-PROGRAM-DATE-TIME" => pending.pdt = Some(date(value).ok_or(bad("EXT-X-PROGRAM-DATE-TIME"))?),
                "EXTINF" => {
                    let d = value.split(',').next().unwrap_or_default();
                    pending.duration = Some(seconds(d).ok_or(bad("EXTINF"))?);
                }
                "EXT-X-PART" => {
                    if pending.parts.len() >= MAX_PARTS_PER_SEGMENT {
                        return Err(ParseError::TooMany("parts of a segment"));
                    }
                    let uri = attr(value, "URI").ok_or(bad("EXT-X-PART without URI"))?;
                    let duration = attr(value, "DURATION")
                        .and_then(seconds)
                        .ok_or(bad("EXT-X-PART without DURATION"))?;
                    pending.parts.push(Part {
                        uri: uri.to_string(),
                        duration,
                        independent: attr(value, "INDEPENDENT") == Some("YES"),
                        pdt: None,
                    });
                }
                "EXT-X-PRELOAD-HINT" if attr(value, "TYPE") == Some("PART") => {
                    pl.preload_hint = attr(value, "URI").map(str::to_string);
                }
                "EXT-X-RENDITION-REPORT" => {
                    if pl.rendition_reports.len() >= MAX_RENDITION_REPORTS {
                        return Err(ParseError::TooMany("rendition reports"));
                    }
                    let uri = attr(value, "URI").ok_or(bad("EXT-X-RENDITION-REPORT without URI"))?;
                    pl.rendition_reports.push(RenditionReport {
                        uri: uri.to_string(),
                        last_msn: attr(value, "LAST-MSN").and_then(integer),
                        last_part: attr(value, "LAST-PART").and_then(integer),
                    });
                }
                "EXT-X-ENDLIST" => pl.end_list = true,
                _ => {}
            }
        }
        if !pending.parts.is_empty() {
            // The segment in progress: parts, no EXTINF or URI yet.
            let msn = next_msn.unwrap_or(pl.media_sequence + pl.skipped);
            if msn - pl.media_sequence >= MAX_SEGMENTS {
                return Err(ParseError::TooMany("segments"));
            }
            pl.segments.push(Segment {
                msn,
                duration: None,
                uri: None,
                pdt: pending.pdt,
                parts: pending.parts,
            });
        }
        pl.fill_dates();
        Ok(pl)
    }

    /// Carries PROGRAM-DATE-TIME to the segments without their own tag
    /// (forward from each dated one, then back from the first), and dates
    /// every part.
    fn fill_dates(&mut self) {
        let mut prev: Option<(f64, f64)> = None;
        for s in &mut self.segments {
            if s.pdt.is_none() {
                s.pdt = prev.map(|(pdt, len)| pdt + len);
            }
            prev = s.pdt.map(|p| (p, s.length()));
        }
        if let Some(first) = self.segments.iter().position(|s| s.pdt.is_some()) {
            for i in (0..first).rev() {
                let next = self.segments[i + 1].pdt.unwrap_or_default();
                self.segments[i].pdt = Some(next - self.segments[i].length());
            }
        }
        for s in &mut self.segments {
            let mut at = s.pdt;
            for p in &mut s.parts {
                p.pdt = at;
                at = at.map(|a| a + p.duration);
            }
        }
    }

    /// Dates a playlist without PROGRAM-DATE-TIME from one segment's date
    /// (nothing when `msn` is not listed).
    pub fn date_from(&mut self, msn: u64, pdt: f64) {
        let Some(first) = self.first_msn() else { return };
        if let Some(i) = msn
            .checked_sub(first)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < self.segments.len())
        {
            self.segments[i].pdt = Some(pdt);
            self.fill_dates();
        }
    }

    /// Is this an LL-HLS playlist (`EXT-X-PART-INF`)?
    pub fn is_ll(&self) -> bool {
        self.part_target.is_some()
    }

    /// PART-HOLD-BACK: the server's, else three part targets (RFC 8216bis
    /// 4.4.3.8 says at least two, should be three).
    pub fn part_hold_back(&self) -> f64 {
        self.server_control
            .part_hold_back
            .unwrap_or(3.0 * self.part_target.unwrap_or(self.target_duration))
    }

    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.first()?.msn;
        self.segments
            .get(usize::try_from(msn.checked_sub(first)?).ok()?)
            .filter(|s| s.msn == msn)
    }

    /// The first msn listed (after a skip), if any.
    pub fn first_msn(&self) -> Option<u64> {
        self.segments.first().map(|s| s.msn)
    }

    /// Where the playlist will grow next: the next part of the segment in
    /// progress, or part 0 of the segment after the last complete one.
    /// This is what a blocking reload asks for (`_HLS_msn`, `_HLS_part`).
    pub fn next_pos(&self) -> Pos {
        match self.segments.last() {
            Some(s) if !s.complete() => Pos {
                msn: s.msn,
                part: s.parts.len(),
            },
            Some(s) => Pos {
                msn: s.msn + 1,
                part: 0,
            },
            None => Pos {
                msn: self.media_sequence + self.skipped,
                part: 0,
            },
        }
    }

    /// The PROGRAM-DATE-TIME of the end of the playlist (its last part or
    /// segment).
    pub fn end_pdt(&self) -> Option<f64> {
        let s = self.segments.last()?;
        Some(s.pdt? + s.length())
    }

    /// Where a player joining at `hold_back` seconds from the live edge
    /// starts loading: the latest independent part that begins at or before
    /// that point, and the point itself (its PROGRAM-DATE-TIME). `None`
    /// while the playlist's parts do not reach that far back.
    pub fn join(&self, hold_back: f64) -> Option<(Pos, f64)> {
        let target = self.end_pdt()? - hold_back;
        self.independent_part_at(target).map(|p| (p, target))
    }

    /// The latest independent part beginning at or before `at` (a
    /// millisecond of slack: PDTs and durations have three decimals).
    pub fn independent_part_at(&self, at: f64) -> Option<Pos> {
        let mut found = None;
        for s in &self.segments {
            for (i, p) in s.parts.iter().enumerate() {
                let start = p.pdt?;
                if start > at + 0.001 {
                    return found;
                }
                if p.independent {
                    found = Some(Pos { msn: s.msn, part: i });
                }
            }
        }
        found
    }

    /// Applies a delta update (`EXT-X-SKIP`) to this copy: the skipped
    /// segments come from the copy, the rest (and every other tag) from
    /// the delta. On error the copy is unchanged.
    pub fn apply_delta(&mut self, delta: Playlist) -> Result<(), DeltaError> {
        if delta.skipped == 0 {
            *self = delta;
            return Ok(());
        }
        if let Some(first) = self.first_msn()
            && delta.media_sequence < first
        {
            return Err(DeltaError::Older {
                delta: delta.media_sequence,
                copy: first,
            });
        }
        let skipped_end = delta.media_sequence + delta.skipped;
        let mut segments = Vec::with_capacity(delta.skipped as usize + delta.segments.len());
        for msn in delta.media_sequence..skipped_end {
            match self.segment(msn) {
                Some(s) if s.complete() => segments.push(s.clone()),
                _ => return Err(DeltaError::Missing(msn)),
            }
        }
        segments.extend(delta.segments);
        *self = Playlist {
            skipped: 0,
            segments,
            ..delta
        };
        if self.segments.iter().any(|s| s.pdt.is_none()) {
            self.fill_dates();
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The contract's example (docs/ll-contract: what the origin serves),
    /// shortened: segments 40-51 whole, 52 with parts, 53 in progress.
    pub(crate) fn origin_text(skip: bool) -> String {
        let mut t = String::from(
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12,PART-HOLD-BACK=1.002\n\
             #EXT-X-PART-INF:PART-TARGET=0.334\n#EXT-X-MEDIA-SEQUENCE:40\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"init.mp4\"\n",
        );
        let first = if skip {
            t += "#EXT-X-SKIP:SKIPPED-SEGMENTS=6\n";
            46
        } else {
            40
        };
        for msn in first..52 {
            t += &format!(
                "#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:{:02}.000Z\n#EXTINF:2,\n{msn}.m4s\n",
                (msn - 40) * 2
            );
        }
        t += "#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:24.000Z\n";
        for p in 0..6 {
            let ind = if p == 0 { ",INDEPENDENT=YES" } else { "" };
            t += &format!("#EXT-X-PART:DURATION=0.333,URI=\"52.{p}.m4s\"{ind}\n");
        }
        t += "#EXTINF:2,\n52.m4s\n#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:26.000Z\n";
        t += "#EXT-X-PART:DURATION=0.333,URI=\"53.0.m4s\",INDEPENDENT=YES\n";
        t += "#EXT-X-PART:DURATION=0.333,URI=\"53.1.m4s\"\n";
        t += "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"53.2.m4s\"\n";
        t += "#EXT-X-RENDITION-REPORT:URI=\"../720p/index.m3u8\",LAST-MSN=53,LAST-PART=1\n";
        t += "#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=53,LAST-PART=1\n";
        t
    }

    const T0: f64 = 1_796_126_400.0; // 2026-12-01T12:00:00Z

    #[test]
    fn reads_the_origins_playlist() {
        let pl = Playlist::parse(origin_text(false).as_bytes()).unwrap();
        assert!(pl.is_ll());
        assert_eq!(pl.target_duration, 2.0);
        assert_eq!(pl.media_sequence, 40);
        assert_eq!(
            pl.server_control,
            ServerControl {
                can_block_reload: true,
                can_skip_until: Some(12.0),
                part_hold_back: Some(1.002),
                hold_back: None
            }
        );
        assert_eq!(pl.part_target, Some(0.334));
        assert_eq!(pl.map.as_deref(), Some("init.mp4"));
        assert_eq!(pl.segments.len(), 14);
        assert_eq!(pl.segments[0].msn, 40);
        assert!(pl.segments[0].parts.is_empty());
        let s52 = pl.segment(52).unwrap();
        assert!(s52.complete());
        assert_eq!(s52.parts.len(), 6);
        assert_eq!(s52.parts[0].uri, "52.0.m4s");
        assert!(s52.parts[0].independent && !s52.parts[1].independent);
        let s53 = pl.segment(53).unwrap();
        assert!(!s53.complete());
        assert_eq!(s53.parts.len(), 2);
        assert!((s53.length() - 0.666).abs() < 1e-9);
        assert_eq!(pl.next_pos(), Pos { msn: 53, part: 2 });
        assert_eq!(pl.preload_hint.as_deref(), Some("53.2.m4s"));
        assert_eq!(pl.rendition_reports.len(), 2);
        assert_eq!(pl.rendition_reports[0].uri, "../720p/index.m3u8");
        assert_eq!(pl.rendition_reports[0].last_msn, Some(53));
        assert_eq!(pl.rendition_reports[0].last_part, Some(1));
        assert!(!pl.end_list);
        // Dates: each segment's own, parts from their segment's.
        assert_eq!(pl.segments[0].pdt, Some(T0));
        let p = &s52.parts[2];
        assert!((p.pdt.unwrap() - (T0 + 24.666)).abs() < 1e-6);
        assert!((pl.end_pdt().unwrap() - (T0 + 26.666)).abs() < 1e-6);
    }

    #[test]
    fn joins_at_the_independent_part_before_part_hold_back() {
        let pl = Playlist::parse(origin_text(false).as_bytes()).unwrap();
        // 1.002 s back from 26.666 is 25.664, inside part 52.4; the latest
        // independent part at or before it is 52.0.
        let (pos, target) = pl.join(pl.part_hold_back()).unwrap();
        assert_eq!(pos, Pos { msn: 52, part: 0 });
        assert!((target - (T0 + 25.664)).abs() < 1e-6);
        // Just after 53.0 began: 53.0.
        assert_eq!(pl.independent_part_at(T0 + 26.1), Some(Pos { msn: 53, part: 0 }));
        // Before any part: none.
        assert_eq!(pl.independent_part_at(T0 + 10.0), None);
    }

    #[test]
    fn a_playlist_without_parts_far_enough_back_cannot_be_joined() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.334\n\
                    #EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:00.000Z\n\
                    #EXT-X-PART:DURATION=0.333,URI=\"0.1.m4s\"\n\
                    #EXT-X-PART:DURATION=0.333,URI=\"0.2.m4s\"\n";
        let pl = Playlist::parse(text.as_bytes()).unwrap();
        assert_eq!(pl.part_hold_back(), 3.0 * 0.334);
        assert_eq!(pl.next_pos(), Pos { msn: 0, part: 2 });
        // No independent part: nowhere to start.
        assert_eq!(pl.join(0.5), None);
    }

    #[test]
    fn applies_a_delta_update() {
        let mut copy = Playlist::parse(origin_text(false).as_bytes()).unwrap();
        let full = copy.clone();
        let delta = Playlist::parse(origin_text(true).as_bytes()).unwrap();
        assert_eq!(delta.skipped, 6);
        assert_eq!(delta.segments[0].msn, 46);
        copy.apply_delta(delta).unwrap();
        assert_eq!(copy, full);

        // A newer delta: the window moved by two segments, one more part.
        let text = origin_text(true)
            .replace("MEDIA-SEQUENCE:40", "MEDIA-SEQUENCE:42")
            .replace("SKIPPED-SEGMENTS=6", "SKIPPED-SEGMENTS=4")
            .replace(
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"53.2.m4s\"",
                "#EXT-X-PART:DURATION=0.333,URI=\"53.2.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"53.3.m4s\"",
            );
        let delta = Playlist::parse(text.as_bytes()).unwrap();
        let mut copy = full.clone();
        copy.apply_delta(delta).unwrap();
        assert_eq!(copy.first_msn(), Some(42));
        assert_eq!(copy.segments.len(), 12);
        assert_eq!(copy.segment(42), full.segment(42));
        assert_eq!(copy.next_pos(), Pos { msn: 53, part: 3 });
        assert_eq!(copy.skipped, 0);

        // A delta skipping what the copy never had: refused, copy kept.
        let mut short = full.clone();
        short.segments.drain(..8); // the copy starts at 48
        let before = short.clone();
        let delta = Playlist::parse(origin_text(true).as_bytes()).unwrap();
        assert_eq!(short.apply_delta(delta), Err(DeltaError::Older { delta: 40, copy: 48 }));
        assert_eq!(short, before);
        let mut holed = full.clone();
        holed.segments.remove(3); // 43 missing: 44 now sits where 43 was
        let delta = Playlist::parse(origin_text(true).as_bytes()).unwrap();
        assert!(holed.apply_delta(delta).is_err());
    }

    #[test]
    fn attribute_lists() {
        let a: Vec<_> = attributes("A=1,B=\"x,y\",C=YES,BARE,D=\"unterminated").collect();
        assert_eq!(a, [("A", "1"), ("B", "x,y"), ("C", "YES"), ("D", "unterminated")]);
        assert_eq!(attributes("").count(), 0);
        assert_eq!(attributes(",,=,").count(), 1);
    }

    #[test]
    fn refuses_what_is_not_a_playlist_and_bad_numbers() {
        assert_eq!(Playlist::parse(b""), Err(ParseError::NotPlaylist));
        assert_eq!(Playlist::parse(b"<html>"), Err(ParseError::NotPlaylist));
        assert_eq!(Playlist::parse(&vec![b'#'; MAX_BYTES + 1]), Err(ParseError::TooLong));
        for bad in [
            "#EXTINF:-1,\na.m4s",
            "#EXTINF:NaN,\na.m4s",
            "#EXTINF:inf,\na.m4s",
            "a.m4s",
            "#EXT-X-MEDIA-SEQUENCE:-1",
            "#EXT-X-MEDIA-SEQUENCE:+1",
            "#EXT-X-MEDIA-SEQUENCE:18446744073709551615",
            "#EXT-X-PART:URI=\"a\"",
            "#EXT-X-PART:DURATION=1e400,URI=\"a\"",
            "#EXT-X-PROGRAM-DATE-TIME:yesterday",
            "#EXTINF:1,\na.m4s\n#EXT-X-SKIP:SKIPPED-SEGMENTS=1",
            "#EXT-X-SKIP:SKIPPED-SEGMENTS=99999999",
        ] {
            let text = format!("#EXTM3U\n{bad}\n");
            assert!(
                matches!(
                    Playlist::parse(text.as_bytes()),
                    Err(ParseError::Bad { .. } | ParseError::TooMany(_))
                ),
                "{bad:?} parsed"
            );
        }
    }

    #[test]
    fn counts_are_bounded() {
        let parts = "#EXT-X-PART:DURATION=0.1,URI=\"p\"\n".repeat(MAX_PARTS_PER_SEGMENT + 1);
        let text = format!("#EXTM3U\n{parts}");
        assert_eq!(
            Playlist::parse(text.as_bytes()),
            Err(ParseError::TooMany("parts of a segment"))
        );
        let segments = "#EXTINF:1,\ns\n".repeat(MAX_SEGMENTS as usize + 1);
        let text = format!("#EXTM3U\n{segments}");
        assert_eq!(Playlist::parse(text.as_bytes()), Err(ParseError::TooMany("segments")));
        let reports = "#EXT-X-RENDITION-REPORT:URI=\"a\"\n".repeat(MAX_RENDITION_REPORTS + 1);
        let text = format!("#EXTM3U\n{reports}");
        assert_eq!(
            Playlist::parse(text.as_bytes()),
            Err(ParseError::TooMany("rendition reports"))
        );
    }

    #[test]
    fn dates_carry_to_undated_segments_both_ways() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na\n\
                    #EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:02.000Z\n#EXTINF:1.5,\nb\n#EXTINF:2,\nc\n";
        let pl = Playlist::parse(text.as_bytes()).unwrap();
        let dates: Vec<f64> = pl.segments.iter().map(|s| s.pdt.unwrap() - T0).collect();
        assert_eq!(dates, [0.0, 2.0, 3.5]);
        assert!(!pl.is_ll());
    }

    /// Every input in `fuzz/regressions/llhls/` (a copy and a delta
    /// separated by NUL, as the fuzz target takes them) parses or is
    /// refused without a panic; the seed is the origin's playlist and its
    /// delta, which apply.
    #[test]
    fn fuzz_regressions() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/llhls");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            let (copy, delta) = match data.iter().position(|&b| b == 0) {
                Some(i) => (&data[..i], &data[i + 1..]),
                None => (&data[..], &[][..]),
            };
            if let (Ok(mut c), Ok(d)) = (Playlist::parse(copy), Playlist::parse(delta)) {
                let _ = c.apply_delta(d);
                let _ = c.join(c.part_hold_back());
            }
            n += 1;
        }
        assert!(n > 0);
        let seed = std::fs::read(dir.join("seed-origin-copy-and-delta")).unwrap();
        let i = seed.iter().position(|&b| b == 0).unwrap();
        let mut copy = Playlist::parse(&seed[..i]).unwrap();
        let full = copy.clone();
        copy.apply_delta(Playlist::parse(&seed[i + 1..]).unwrap()).unwrap();
        assert_eq!(copy, full);
        assert_eq!(seed[..i], *origin_text(false).as_bytes());
    }
}
