//! DASH MPDs (ISO/IEC 23009-1) over the session's own CMAF segments: the
//! live stream as a dynamic MPD (`{stream}/manifest.mpd`) and a recording as
//! a static one (`{stream}/{session}/manifest.mpd`). Only the manifest
//! differs from HLS: the init and media segments are the very files the
//! media playlists list (`{session}/{rendition}/init.mp4`, `{n}.m4s`).
//!
//! Shape (DASH-IF IOP "live" and CMAF profiles):
//! - one Period (id: the session), starting at 0; a video AdaptationSet with
//!   every video rendition as a Representation and an audio AdaptationSet;
//! - per AdaptationSet one `SegmentTemplate` with `$RepresentationID$` (our
//!   rendition names, `[a-z0-9][a-z0-9_-]*`, need no escaping in a URL) and
//!   `$Number$` = the media sequence number, and a `SegmentTimeline`:
//!   segments vary in length (passthrough cuts at the source's keyframes,
//!   audio at AAC frames), so `$Number$` alone cannot describe them;
//! - times in [`TIMESCALE`] ticks of the session's running time, which is
//!   the media time of the fragments (their `tfdt`): running time 0 is the
//!   first frame, whose wall-clock time is `availabilityStartTime`, so a
//!   segment starts at the same wall-clock time as its HLS
//!   PROGRAM-DATE-TIME (within a millisecond: see [`place`]); what an MPD
//!   states of a segment never changes in a later one;
//! - an AdaptationSet lists the segments every one of its Representations
//!   has written (renditions close a segment one after the other), so every
//!   URL the template implies exists;
//! - the Representations are fixed by a session's first MPD, written once
//!   every rendition's playlist lists a segment (a Period keeps its
//!   Representations, as the multivariant playlist keeps its variants).
//!
//! Live (`type="dynamic"`): rewritten when what it lists changes, that is
//! per segment, not per part ([`LiveMpd`]), once the media playlists list
//! the segment; `minimumUpdatePeriod` is the segment duration (or the
//! shortest segment, for passthrough), `timeShiftBufferDepth` what the
//! playlists list, `suggestedPresentationDelay` HOLD-BACK's three target
//! durations (less when the window is that short: see
//! [`presentation_delay`]), and an inline `UTCTiming` (`urn:mpeg:dash:utc:direct:2014`) so that a player
//! needs no time server (dash.js would ask a public one): the value is the
//! time the MPD was written, at most a cache lifetime old when read, which
//! makes a player think it is earlier than it is, the safe side (it asks
//! for nothing that does not exist yet). When the session ends the MPD
//! stays dynamic, loses `minimumUpdatePeriod` and gains
//! `mediaPresentationDuration`: the DASH-IF IOP timing model's way for an
//! MPD update to give a live presentation its end (an MPD without
//! `minimumUpdatePeriod` is final); switching to `static` would also move
//! the players' timeline to the on-demand model mid-play.
//!
//! No low-latency DASH (`availabilityTimeOffset`, chunked segments): an
//! LL-HLS part is a file of its own (`{n}.{p}.m4s`), and `{n}.m4s` gets its
//! name only once whole (`package::fsio`), so there is no URL a DASH player
//! could read a segment's chunks from while it grows.
//!
//! Written by hand: the MPD is a fixed dozen elements whose values are
//! numbers, codec strings and validated names (attribute values are
//! escaped all the same), rewritten every segment; a full MPD data model
//! would bring a serde schema of the whole standard for that. The tests
//! read it back with an XML parser, ffmpeg's DASH demuxer and dash.js.

use api_types::layout::INIT_SEGMENT;
use chrono::{DateTime, SecondsFormat, Utc};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

/// Ticks per second of every SegmentTimeline: 90 kHz holds a video frame at
/// the usual rates and an AAC frame at 48 kHz exactly.
pub const TIMESCALE: u64 = 90_000;

const PROFILES: &str = "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019";

/// What a Representation carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Media {
    Video { width: u32, height: u32, fps: Option<f64> },
    Audio,
}

/// One segment of a rendition, on the session's running time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentTime {
    /// The media sequence number (`$Number$`, `{n}.m4s`).
    pub number: u64,
    /// Running time of its first sample: its media time.
    pub start: Duration,
    pub duration: Duration,
}

/// One rendition, as a Representation.
#[derive(Debug, Clone, PartialEq)]
pub struct Representation {
    /// The rendition's name: the RepresentationID and its folder.
    pub id: String,
    pub media: Media,
    /// RFC 6381 codec string (`avc1.64001e`, `mp4a.40.2`); empty if unknown.
    pub codec: String,
    /// Peak bits per second (as the HLS BANDWIDTH of the rendition alone).
    pub bandwidth: u64,
    /// Its segments, oldest first, numbers consecutive.
    pub segments: Vec<SegmentTime>,
}

/// The live session an MPD describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Live<'a> {
    pub session: &'a str,
    /// Wall-clock time of running time 0 (the PROGRAM-DATE-TIME anchor).
    pub availability_start: SystemTime,
    /// When this MPD is written (`publishTime`, `UTCTiming`).
    pub now: SystemTime,
    /// The longest segment (EXT-X-TARGETDURATION's basis).
    pub target: Duration,
    /// The segment duration the encoders cut at: how often the MPD changes.
    pub segment: Duration,
    /// The session has ended: no more segments will come.
    pub ended: bool,
}

/// A segment as an MPD states it: (number, `t`, `d`) in [`TIMESCALE`] ticks.
type Entry = (u64, u64, u64);

/// What an MPD states of each set's segments (`true`: the video set).
type Placed = Vec<(bool, Vec<Entry>)>;

/// The largest gap or overlap between two segments that the MPD closes
/// (the second's `t` is then where the first ends): a millisecond.
const HAIRLINE: u64 = TIMESCALE / 1000;

/// The segments an AdaptationSet lists: numbers `first..=last`, with the
/// times of its first Representation, as the MPD states them.
#[derive(Debug, Clone, PartialEq)]
struct Set<'a> {
    video: bool,
    reps: Vec<&'a Representation>,
    segments: Vec<SegmentTime>,
    placed: Vec<Entry>,
}

impl Set<'_> {
    fn first(&self) -> u64 {
        self.placed[0].0
    }
    fn start(&self) -> u64 {
        self.placed[0].1
    }
    fn end(&self) -> u64 {
        let (_, t, d) = self.placed[self.placed.len() - 1];
        t + d
    }
}

/// Where the MPD puts each segment: its own length, and its own start, or
/// where the one before ends when that is within a [`HAIRLINE`] of it (audio
/// keeps the source's millisecond timestamps, so its segments are apart by
/// fractions of a millisecond: closing those gaps keeps the timeline one
/// `<S>` per run instead of one per segment, and every `t` within a
/// millisecond of the segment's `tfdt`). `before`: what an earlier MPD
/// stated, kept as it was (what an MPD says of a segment stays true in
/// every later one); the chain goes on from there.
fn place(segments: &[SegmentTime], before: &[Entry]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::with_capacity(segments.len());
    for s in segments {
        if let Ok(i) = before.binary_search_by_key(&s.number, |e| e.0) {
            out.push(before[i]);
            continue;
        }
        let own = ticks(s.start);
        let d = ticks(s.start + s.duration).saturating_sub(own);
        let t = match out.last() {
            Some(&(n, t, pd)) if n + 1 == s.number && (t + pd).abs_diff(own) <= HAIRLINE => t + pd,
            _ => own,
        };
        out.push((s.number, t, d));
    }
    out
}

/// What an MPD lists: per AdaptationSet (video, audio) the first and last
/// segment number, and whether the session ended. A live MPD is rewritten
/// only when this changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing(Vec<(bool, u64, u64)>, bool);

/// A running time in [`TIMESCALE`] ticks, rounded to the nearest.
fn ticks(d: Duration) -> u64 {
    ((d.as_nanos() * u128::from(TIMESCALE) + 500_000_000) / 1_000_000_000) as u64
}

/// [`TIMESCALE`] ticks as a duration (to the nanosecond below).
fn from_ticks(t: u64) -> Duration {
    Duration::from_nanos((u128::from(t) * 1_000_000_000 / u128::from(TIMESCALE)) as u64)
}

/// Groups renditions into a video and an audio set, each listing the
/// segment numbers all of its renditions have. Renditions without segments
/// or with a name unfit for a URL template are left out.
fn sets(reps: &[Representation]) -> Vec<Set<'_>> {
    let mut out = vec![];
    for video in [true, false] {
        let members: Vec<&Representation> = reps
            .iter()
            .filter(|r| matches!(r.media, Media::Video { .. }) == video)
            .filter(|r| !r.segments.is_empty())
            .filter(|r| api_types::validate_name("rendition", &r.id).is_ok())
            .collect();
        let Some(lead) = members.first() else { continue };
        let bounds = members
            .iter()
            .map(|r| (r.segments[0].number, r.segments[r.segments.len() - 1].number));
        let Some((first, last)) = common(bounds) else { continue };
        let segments: Vec<SegmentTime> = lead
            .segments
            .iter()
            .filter(|s| (first..=last).contains(&s.number))
            .copied()
            .collect();
        if segments.is_empty() {
            continue;
        }
        out.push(Set {
            video,
            reps: members,
            placed: place(&segments, &[]),
            segments,
        });
    }
    out
}

/// What a rendition's media playlist lists, gathered at every playlist
/// write (cheap: no segment is copied).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Listed<'a> {
    pub id: &'a str,
    pub video: bool,
    /// The first segment number listed, and the last (`None`: its playlist
    /// on disk lists none yet).
    pub first: u64,
    pub last: Option<u64>,
}

/// The first and last number every member lists (`first > last`: none).
fn common(members: impl Iterator<Item = (u64, u64)>) -> Option<(u64, u64)> {
    members.fold(None, |acc, (f, l)| match acc {
        None => Some((f, l)),
        Some((af, al)) => Some((af.max(f), al.min(l))),
    })
}

/// What [`render_dynamic`] lists for renditions whose playlists list
/// `listed`.
pub fn listing(listed: &[Listed<'_>], ended: bool) -> Listing {
    let sets = [true, false]
        .into_iter()
        .filter_map(|video| {
            let members = listed
                .iter()
                .filter(|l| l.video == video && api_types::validate_name("rendition", l.id).is_ok());
            let (first, last) = common(members.filter_map(|l| Some((l.first, l.last?))))?;
            (first <= last).then_some((video, first, last))
        })
        .collect();
    Listing(sets, ended)
}

/// `xs:dateTime` in UTC with milliseconds, as PROGRAM-DATE-TIME is printed.
fn date_time(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `xs:duration` in seconds with at most three decimals: `PT2S`, `PT1.5S`.
fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    let mut s = format!("PT{}.{:03}", ms / 1000, ms % 1000);
    while s.ends_with('0') {
        s.pop();
    }
    let s = s.trim_end_matches('.');
    format!("{s}S")
}

/// An attribute value, escaped.
fn esc(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `@frameRate` (`FrameRateType`: an integer or a fraction): `30`,
/// `30000/1001`, else milli-frames.
fn frame_rate(fps: f64) -> Option<String> {
    if !fps.is_finite() || fps <= 0.0 || fps > 1000.0 {
        return None;
    }
    if (fps - fps.round()).abs() < 1e-6 {
        return Some(format!("{}", fps.round() as u64));
    }
    let ntsc = fps * 1001.0;
    if (ntsc - ntsc.round()).abs() < 1e-3 {
        return Some(format!("{}/1001", ntsc.round() as u64));
    }
    Some(format!("{}/1000", (fps * 1000.0).round() as u64))
}

/// The `<S>` elements of a timeline: `@t` on the first and wherever a
/// segment does not start where the one before ended, runs of equal
/// durations folded into `@r`.
fn timeline(out: &mut String, entries: &[Entry]) {
    out.push_str("        <SegmentTimeline>\n");
    // (start, duration, repeats, explicit t)
    let mut run: Option<(u64, u64, u64, bool)> = None;
    let mut next = None;
    let flush = |out: &mut String, (t, d, r, explicit): (u64, u64, u64, bool)| {
        out.push_str("          <S");
        if explicit {
            let _ = write!(out, " t=\"{t}\"");
        }
        let _ = write!(out, " d=\"{d}\"");
        if r > 0 {
            let _ = write!(out, " r=\"{r}\"");
        }
        out.push_str("/>\n");
    };
    for &(_, t, d) in entries {
        let contiguous = next == Some(t);
        next = Some(t + d);
        match run.as_mut() {
            Some((_, rd, r, _)) if contiguous && *rd == d => *r += 1,
            _ => {
                if let Some(done) = run.take() {
                    flush(out, done);
                }
                run = Some((t, d, 0, !contiguous));
            }
        }
    }
    if let Some(done) = run {
        flush(out, done);
    }
    out.push_str("        </SegmentTimeline>\n");
}

/// The Period: one AdaptationSet per set. `prefix`: what comes before
/// `$RepresentationID$` in the template URLs (`{session}/` from the
/// stream's folder, nothing from the session's); `offset`: the
/// presentationTimeOffset, in ticks.
fn period(out: &mut String, session: &str, sets: &[Set<'_>], prefix: &str, offset: u64) {
    let _ = writeln!(out, "  <Period id=\"{}\" start=\"PT0S\">", esc(session));
    for (i, set) in sets.iter().enumerate() {
        let (content, mime) = if set.video {
            ("video", "video/mp4")
        } else {
            ("audio", "audio/mp4")
        };
        let _ = write!(
            out,
            "    <AdaptationSet id=\"{i}\" contentType=\"{content}\" mimeType=\"{mime}\" segmentAlignment=\"true\" startWithSAP=\"1\""
        );
        if set.video {
            let dims = set.reps.iter().filter_map(|r| match r.media {
                Media::Video { width, height, .. } => Some((width, height)),
                Media::Audio => None,
            });
            let (w, h) = dims.fold((0, 0), |(w, h), (a, b)| (w.max(a), h.max(b)));
            if w > 0 && h > 0 {
                let _ = write!(out, " maxWidth=\"{w}\" maxHeight=\"{h}\"");
            }
        }
        out.push_str(">\n");
        if !set.video {
            out.push_str("      <Role schemeIdUri=\"urn:mpeg:dash:role:2011\" value=\"main\"/>\n");
        }
        let prefix = esc(prefix);
        let _ = write!(
            out,
            "      <SegmentTemplate timescale=\"{TIMESCALE}\" initialization=\"{prefix}$RepresentationID$/{INIT_SEGMENT}\" \
             media=\"{prefix}$RepresentationID$/$Number$.m4s\" startNumber=\"{}\"",
            set.first()
        );
        if offset > 0 {
            let _ = write!(out, " presentationTimeOffset=\"{offset}\"");
        }
        out.push_str(">\n");
        timeline(out, &set.placed);
        out.push_str("      </SegmentTemplate>\n");
        // Highest quality first, as in the multivariant playlist.
        let mut reps = set.reps.clone();
        reps.sort_by_key(|r| std::cmp::Reverse(r.bandwidth));
        for r in reps {
            let _ = write!(
                out,
                "      <Representation id=\"{}\" bandwidth=\"{}\"",
                esc(&r.id),
                r.bandwidth.max(1)
            );
            if !r.codec.is_empty() {
                let _ = write!(out, " codecs=\"{}\"", esc(&r.codec));
            }
            if let Media::Video { width, height, fps } = r.media {
                if width > 0 && height > 0 {
                    let _ = write!(out, " width=\"{width}\" height=\"{height}\"");
                }
                if let Some(f) = fps.and_then(frame_rate) {
                    let _ = write!(out, " frameRate=\"{f}\"");
                }
            }
            out.push_str("/>\n");
        }
        out.push_str("    </AdaptationSet>\n");
    }
    out.push_str("  </Period>\n");
}

/// `suggestedPresentationDelay`: HOLD-BACK's three target durations, but
/// at least the longest segment short of the window (`depth`), so a player
/// that falls a little behind is still inside it (with a plain playlist's
/// window of three target durations, three would put it at the window's
/// very start); at least the shortest segment (a window just started).
fn presentation_delay(live: &Live<'_>, depth: Duration, longest: Duration, shortest: Duration) -> Duration {
    (live.target * 3).min(depth.saturating_sub(longest)).max(shortest)
}

/// The live stream's dynamic MPD, to be written at `{stream}/manifest.mpd`
/// (templates `{session}/$RepresentationID$/...`). `None` while no video
/// segment is listed by every video rendition.
pub fn render_dynamic(live: &Live<'_>, reps: &[Representation]) -> Option<String> {
    render_after(live, reps, &[]).map(|(text, _)| text)
}

/// [`render_dynamic`], keeping what the MPD last written stated of each
/// set's segments (`before`: per set, video first); returns the text and
/// what it states, for the next.
fn render_after(live: &Live<'_>, reps: &[Representation], before: &[(bool, Vec<Entry>)]) -> Option<(String, Placed)> {
    let mut sets = sets(reps);
    if !sets.iter().any(|s| s.video) {
        return None;
    }
    for set in &mut sets {
        if let Some((_, earlier)) = before.iter().find(|(v, _)| *v == set.video) {
            set.placed = place(&set.segments, earlier);
        }
    }
    // What every set still lists, and where the last one ends.
    let depth = sets.iter().map(|s| s.end() - s.start()).min().unwrap_or(0);
    let end = sets.iter().map(Set::end).max().unwrap_or(0);
    let lengths = || sets.iter().flat_map(|s| &s.segments).map(|s| s.duration);
    let longest = lengths().max().unwrap_or(live.target);
    // Video's: audio's cuts fall an AAC frame either side of video's.
    let video = sets.iter().filter(|s| s.video).flat_map(|s| &s.segments);
    let shortest = video.map(|s| s.duration).min().unwrap_or(live.segment);
    let mut out = String::with_capacity(1024 + 32 * sets.iter().map(|s| s.segments.len()).sum::<usize>());
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = write!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"{PROFILES}\" type=\"dynamic\" \
         availabilityStartTime=\"{}\" publishTime=\"{}\"",
        date_time(live.availability_start),
        date_time(live.now)
    );
    if live.ended {
        let _ = write!(out, " mediaPresentationDuration=\"{}\"", duration(from_ticks(end)));
    } else {
        // As often as segments come: the encoders' cadence, or the
        // shortest segment yet (passthrough cuts where the source has
        // keyframes).
        let update = live.segment.min(shortest).max(Duration::from_millis(100));
        let _ = write!(out, " minimumUpdatePeriod=\"{}\"", duration(update));
    }
    let _ = writeln!(
        out,
        " timeShiftBufferDepth=\"{}\" suggestedPresentationDelay=\"{}\" maxSegmentDuration=\"{}\" minBufferTime=\"{}\">",
        duration(from_ticks(depth)),
        duration(presentation_delay(live, from_ticks(depth), longest, shortest)),
        duration(live.target),
        duration(live.target)
    );
    period(&mut out, live.session, &sets, &format!("{}/", live.session), 0);
    let _ = writeln!(
        out,
        "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"{}\"/>",
        date_time(live.now)
    );
    out.push_str("</MPD>\n");
    let placed = sets.into_iter().map(|s| (s.video, s.placed)).collect();
    Some((out, placed))
}

/// A recording's static MPD, to be written at `{stream}/{session}/manifest.mpd`
/// beside its VOD playlists (templates `$RepresentationID$/...`): every
/// segment of `reps`, presented from 0 (`presentationTimeOffset` is where
/// the first set starts), `mediaPresentationDuration` to the last end.
/// `target`: the longest segment. `None` without video segments.
pub fn render_static(session: &str, target: Duration, reps: &[Representation]) -> Option<String> {
    let sets = sets(reps);
    if !sets.iter().any(|s| s.video) {
        return None;
    }
    let offset = sets.iter().map(Set::start).min().unwrap_or(0);
    let end = sets.iter().map(Set::end).max().unwrap_or(0);
    let length = from_ticks(end - offset);
    let mut out = String::with_capacity(1024 + 32 * sets.iter().map(|s| s.segments.len()).sum::<usize>());
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"{PROFILES}\" type=\"static\" \
         mediaPresentationDuration=\"{}\" maxSegmentDuration=\"{}\" minBufferTime=\"{}\">",
        duration(length),
        duration(target),
        duration(target)
    );
    period(&mut out, session, &sets, "", offset);
    out.push_str("</MPD>\n");
    Some(out)
}

/// A live session's MPD writer state: what the last MPD written listed,
/// and which renditions it has (fixed by the first: a Period keeps its
/// Representations, as the multivariant playlist, written once, keeps its
/// variants).
#[derive(Debug, Default)]
pub struct LiveMpd {
    last: Option<Listing>,
    members: Option<Vec<String>>,
    /// What the last MPD stated of each set's segments.
    placed: Placed,
}

impl LiveMpd {
    /// Whether rendition `id` is in the MPD (before the first, any is).
    pub fn admits(&self, id: &str) -> bool {
        self.members.as_ref().is_none_or(|m| m.iter().any(|x| x == id))
    }

    /// Whether the MPD must be written again, and what it will list: the
    /// playlists list other segments than when it was last written
    /// (renditions close a segment one after another, and low-latency
    /// playlists change every part; the MPD changes once every rendition of
    /// a set lists the segment), or the session ended. `listed`: every
    /// rendition with media. `None` too while a rendition of the MPD has no
    /// segment on its playlist yet, or no video is listed. Call
    /// [`LiveMpd::written`] once it is.
    pub fn due(&self, listed: &[Listed<'_>], ended: bool) -> Option<Listing> {
        let members: Vec<Listed<'_>> = listed.iter().filter(|l| self.admits(l.id)).copied().collect();
        if members.iter().any(|l| l.last.is_none()) {
            return None;
        }
        let now = listing(&members, ended);
        let video = now.0.iter().any(|(v, _, _)| *v);
        (video && self.last.as_ref() != Some(&now)).then_some(now)
    }

    /// The MPD to write: [`render_dynamic`], stating what the last MPD
    /// stated of the segments it still lists.
    pub fn render(&mut self, live: &Live<'_>, reps: &[Representation]) -> Option<String> {
        let (text, placed) = render_after(live, reps, &self.placed)?;
        self.placed = placed;
        Some(text)
    }

    /// Records what the MPD just written lists; the first fixes its
    /// renditions (`listed`, as given to [`LiveMpd::due`]).
    pub fn written(&mut self, listing: Listing, listed: &[Listed<'_>]) {
        self.last = Some(listing);
        if self.members.is_none() {
            self.members = Some(listed.iter().map(|l| l.id.to_string()).collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_xml::Reader;
    use quick_xml::events::Event;
    use std::collections::BTreeMap;

    /// Every element of an MPD with its attributes, in document order
    /// (also checks the document is well-formed).
    fn elements(xml: &str) -> Vec<(String, BTreeMap<String, String>)> {
        let mut reader = Reader::from_str(xml);
        reader.config_mut().check_end_names = true;
        let mut out = vec![];
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(e) | Event::Empty(e) => {
                    let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                    let attrs = e
                        .attributes()
                        .map(|a| {
                            let a = a.unwrap();
                            (
                                String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                                a.unescape_value().unwrap().into_owned(),
                            )
                        })
                        .collect();
                    out.push((name, attrs));
                }
                Event::Eof => break,
                _ => {}
            }
        }
        out
    }

    fn segs(first: u64, durations_ms: &[u64], start_ms: u64) -> Vec<SegmentTime> {
        let mut at = Duration::from_millis(start_ms);
        durations_ms
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let s = SegmentTime {
                    number: first + i as u64,
                    start: at,
                    duration: Duration::from_millis(*d),
                };
                at += s.duration;
                s
            })
            .collect()
    }

    fn video(id: &str, h: u32, segments: Vec<SegmentTime>) -> Representation {
        Representation {
            id: id.into(),
            media: Media::Video {
                width: h * 16 / 9,
                height: h,
                fps: Some(30_000.0 / 1001.0),
            },
            codec: "avc1.64001e".into(),
            bandwidth: u64::from(h) * 2000,
            segments,
        }
    }

    fn audio(segments: Vec<SegmentTime>) -> Representation {
        Representation {
            id: "audio".into(),
            media: Media::Audio,
            codec: "mp4a.40.2".into(),
            bandwidth: 80_000,
            segments,
        }
    }

    fn live(ended: bool) -> Live<'static> {
        Live {
            session: "s1",
            availability_start: SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_600_000_123),
            now: SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_600_010_000),
            target: Duration::from_secs(2),
            segment: Duration::from_secs(2),
            ended,
        }
    }

    #[test]
    fn a_dynamic_mpd_lists_what_every_rendition_has() {
        // 720p has segment 7 already, 360p not yet; audio lags by one at the
        // window's start. Durations vary (passthrough): 2, 2, 1.5, 2.5 s.
        let reps = [
            video("720p", 720, segs(3, &[2000, 2000, 1500, 2500, 2000], 6000)),
            video("360p", 360, segs(3, &[2000, 2000, 1500, 2500], 6000)),
            audio(segs(4, &[2005, 1493, 2507], 8000)),
        ];
        let text = render_dynamic(&live(false), &reps).unwrap();
        let els = elements(&text);
        let (name, mpd) = &els[0];
        assert_eq!(name, "MPD");
        assert_eq!(mpd["type"], "dynamic");
        assert_eq!(mpd["xmlns"], "urn:mpeg:dash:schema:mpd:2011");
        assert!(mpd["profiles"].contains("urn:mpeg:dash:profile:isoff-live:2011"));
        assert_eq!(mpd["availabilityStartTime"], "2025-12-01T14:40:00.123Z");
        assert_eq!(mpd["publishTime"], "2025-12-01T14:40:10.000Z");
        // As often as segments come: the shortest (video) segment.
        assert_eq!(mpd["minimumUpdatePeriod"], "PT1.5S");
        // Three target durations, within the window less its longest segment.
        assert_eq!(mpd["suggestedPresentationDelay"], "PT3.498S");
        // Video lists 6..14 s, audio 8..14.005 s: the shorter is the depth.
        assert_eq!(mpd["timeShiftBufferDepth"], "PT6.005S");
        assert!(!mpd.contains_key("mediaPresentationDuration"));
        let templates: Vec<_> = els.iter().filter(|(n, _)| n == "SegmentTemplate").collect();
        assert_eq!(templates.len(), 2);
        let (_, t) = templates[0];
        assert_eq!(t["media"], "s1/$RepresentationID$/$Number$.m4s");
        assert_eq!(t["initialization"], "s1/$RepresentationID$/init.mp4");
        assert_eq!(t["startNumber"], "3");
        assert_eq!(t["timescale"], "90000");
        assert_eq!(templates[1].1["startNumber"], "4");
        // Video: 3 and 4 of 2 s (one S, r=1), 5 of 1.5 s, 6 of 2.5 s; not 7.
        let s: Vec<&BTreeMap<String, String>> = els.iter().filter(|(n, _)| n == "S").map(|(_, a)| a).collect();
        assert_eq!(s[0]["t"], (6 * TIMESCALE).to_string());
        assert_eq!((s[0]["d"].as_str(), s[0]["r"].as_str()), ("180000", "1"));
        assert_eq!((s[1]["d"].as_str(), s[1].get("t")), ("135000", None));
        assert_eq!(s[2]["d"], "225000");
        // Audio: 4, 5, 6 from 8 s.
        assert_eq!(s[3]["t"], (8 * TIMESCALE).to_string());
        assert_eq!(s.len(), 6, "{text}");
        let reps: Vec<&BTreeMap<String, String>> = els
            .iter()
            .filter(|(n, _)| n == "Representation")
            .map(|(_, a)| a)
            .collect();
        assert_eq!(reps[0]["id"], "720p");
        assert_eq!(reps[0]["frameRate"], "30000/1001");
        assert_eq!((reps[0]["width"].as_str(), reps[0]["height"].as_str()), ("1280", "720"));
        assert_eq!(reps[1]["id"], "360p");
        assert_eq!(
            (reps[2]["id"].as_str(), reps[2]["codecs"].as_str()),
            ("audio", "mp4a.40.2")
        );
        let utc = els.iter().find(|(n, _)| n == "UTCTiming").unwrap();
        assert_eq!(utc.1["schemeIdUri"], "urn:mpeg:dash:utc:direct:2014");
        assert_eq!(utc.1["value"], mpd["publishTime"]);
    }

    #[test]
    fn the_end_is_announced_and_updates_stop() {
        let reps = [
            video("360p", 360, segs(0, &[2000, 2000, 1000], 0)),
            audio(segs(0, &[2005, 1995, 1021], 0)),
        ];
        let text = render_dynamic(&live(true), &reps).unwrap();
        let mpd = &elements(&text)[0].1;
        assert_eq!(mpd["type"], "dynamic");
        assert!(!mpd.contains_key("minimumUpdatePeriod"), "{text}");
        assert_eq!(mpd["mediaPresentationDuration"], "PT5.021S");
    }

    #[test]
    fn a_live_mpd_is_due_only_when_its_listing_changes() {
        let mut w = LiveMpd::default();
        let l = |id, video, first, last| Listed {
            id,
            video,
            first,
            last: Some(last),
        };
        let write = |w: &mut LiveMpd, listed: &[Listed<'_>], ended| match w.due(listed, ended) {
            Some(now) => {
                w.written(now, listed);
                true
            }
            None => false,
        };
        // Audio alone: no MPD yet.
        assert!(!write(&mut w, &[l("audio", false, 0, 0)], false));
        // 360p has a segment whose playlist does not list it yet: wait.
        let mut listed = vec![l("360p", true, 0, 0), l("audio", false, 0, 0)];
        listed[0].last = None;
        assert!(!write(&mut w, &listed, false));
        listed[0].last = Some(0);
        assert!(write(&mut w, &listed, false));
        assert!(!write(&mut w, &listed, false), "nothing changed");
        // 240p had no media when the MPD was first written: never in it.
        listed.push(l("240p", true, 0, 0));
        assert!(!w.admits("240p") && w.admits("360p"));
        assert!(!write(&mut w, &listed, false), "the same numbers listed");
        listed[0].last = Some(1);
        assert!(write(&mut w, &listed, false), "360p's segment 1");
        listed[1].last = Some(1);
        assert!(write(&mut w, &listed, false), "audio's segment 1");
        assert!(write(&mut w, &listed, true), "the end is news");
        // Two video renditions: the MPD lists what both have.
        let mut w = LiveMpd::default();
        let mut listed = vec![l("360p", true, 0, 1), l("180p", true, 0, 0), l("audio", false, 0, 1)];
        assert!(write(&mut w, &listed, false));
        assert_eq!(w.last, Some(Listing(vec![(true, 0, 0), (false, 0, 1)], false)));
        listed[1].last = Some(1);
        assert!(write(&mut w, &listed, false));
        // The listing is what the MPD lists.
        let reps = [
            video("360p", 360, segs(3, &[2000, 2000, 2000], 0)),
            video("180p", 180, segs(4, &[2000, 2000, 2000], 2000)),
            audio(segs(3, &[2000, 2000], 0)),
        ];
        let text = render_dynamic(&live(false), &reps).unwrap();
        let els = elements(&text);
        let starts: Vec<&str> = els
            .iter()
            .filter(|(n, _)| n == "SegmentTemplate")
            .map(|(_, a)| a["startNumber"].as_str())
            .collect();
        assert_eq!(starts, ["4", "3"]);
        let listed: Vec<Listed<'_>> = reps
            .iter()
            .map(|r| Listed {
                id: &r.id,
                video: r.media != Media::Audio,
                first: r.segments[0].number,
                last: r.segments.last().map(|s| s.number),
            })
            .collect();
        assert_eq!(
            listing(&listed, false),
            Listing(vec![(true, 4, 5), (false, 3, 4)], false)
        );
        // No video at all: no MPD.
        assert_eq!(render_dynamic(&live(false), &reps[2..]), None);
    }

    #[test]
    fn gaps_get_an_explicit_time_and_names_unfit_for_urls_are_left_out() {
        let mut v = segs(0, &[1000, 1000], 0);
        v.extend(segs(2, &[1000], 5000));
        let mut bad = video("Bad Name\"&", 360, segs(0, &[1000, 1000, 1000], 0));
        bad.codec = "avc1<&>".into();
        let mut odd = video("odd", 480, v.clone());
        odd.codec = "avc1.4d401f\"&".into();
        let text = render_dynamic(&live(false), &[video("360p", 360, v), bad, odd]).unwrap();
        let els = elements(&text);
        let s: Vec<&BTreeMap<String, String>> = els.iter().filter(|(n, _)| n == "S").map(|(_, a)| a).collect();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0]["t"].as_str(), s[0]["r"].as_str()), ("0", "1"));
        assert_eq!(s[1]["t"], (5 * TIMESCALE).to_string());
        let ids: Vec<&str> = els
            .iter()
            .filter(|(n, _)| n == "Representation")
            .map(|(_, a)| a["id"].as_str())
            .collect();
        assert_eq!(ids, ["odd", "360p"]);
        let odd = els
            .iter()
            .find(|(n, a)| n == "Representation" && a["id"] == "odd")
            .unwrap();
        assert_eq!(odd.1["codecs"], "avc1.4d401f\"&", "escaped, read back whole");
    }

    #[test]
    fn hairline_gaps_are_closed_and_what_was_stated_stays() {
        // Audio of the source's millisecond timestamps: a 0.3 ms gap, then
        // a 0.2 ms overlap, then a real gap of 5 ms.
        let a = |number, start_us, duration_us| SegmentTime {
            number,
            start: Duration::from_micros(start_us),
            duration: Duration::from_micros(duration_us),
        };
        let mut audio = audio(vec![
            a(0, 0, 1_003_000),
            a(1, 1_003_300, 1_002_900),
            a(2, 2_006_000, 1_000_000),
        ]);
        let video = video("360p", 360, segs(0, &[1000, 1000, 1000, 1000, 1000], 0));
        let s_of = |text: &str| -> Vec<BTreeMap<String, String>> {
            elements(text)
                .into_iter()
                .filter(|(n, _)| n == "S")
                .map(|(_, a)| a)
                .collect()
        };
        let mut w = LiveMpd::default();
        let text = w.render(&live(false), &[video.clone(), audio.clone()]).unwrap();
        let s = s_of(&text);
        assert_eq!(s.len(), 4, "{text}");
        // Each `d` its own; 1 and 2 start where the one before ends, within
        // a millisecond of their own start.
        assert_eq!((s[1]["t"].as_str(), s[1]["d"].as_str()), ("0", "90270"));
        assert_eq!((s[2].get("t"), s[2]["d"].as_str()), (None, "90261"));
        assert_eq!((s[3].get("t"), s[3]["d"].as_str()), (None, "90000"));
        // The window slides past 0 and a segment after a real gap comes:
        // 1 and 2 keep the times stated (not their own, 90297), 4 its own.
        audio.segments.remove(0);
        audio.segments.push(a(3, 3_006_000, 1_000_000));
        audio.segments.push(a(4, 4_011_000, 1_000_000));
        let text = w.render(&live(false), &[video.clone(), audio.clone()]).unwrap();
        let s = s_of(&text);
        assert_eq!((s[1]["t"].as_str(), s[1]["d"].as_str()), ("90270", "90261"));
        assert_eq!(
            (s[2].get("t"), s[2]["d"].as_str(), s[2]["r"].as_str()),
            (None, "90000", "1")
        );
        assert_eq!((s[3]["t"].as_str(), s[3]["d"].as_str()), ("360990", "90000"));
        // Without the history, the window's first segment starts at its own time.
        let fresh = s_of(&render_dynamic(&live(false), &[video, audio]).unwrap());
        assert_eq!(fresh[1]["t"], "90297");
    }

    #[test]
    fn a_static_mpd_presents_a_recording_from_zero() {
        // A recording whose first segment starts 0.04 s into the session.
        let reps = [
            video("360p", 360, segs(0, &[2000, 2000, 2000, 1300], 40)),
            video("180p", 180, segs(0, &[2000, 2000, 2000, 1300], 40)),
            audio(segs(0, &[2005, 1995, 2005, 1316], 40)),
        ];
        let text = render_static("s9", Duration::from_secs(2), &reps).unwrap();
        let els = elements(&text);
        let mpd = &els[0].1;
        assert_eq!(mpd["type"], "static");
        assert_eq!(mpd["mediaPresentationDuration"], "PT7.321S");
        for key in ["availabilityStartTime", "minimumUpdatePeriod", "timeShiftBufferDepth"] {
            assert!(!mpd.contains_key(key), "{key} in a static MPD");
        }
        assert_eq!(els.iter().find(|(n, _)| n == "Period").unwrap().1["id"], "s9");
        for (_, t) in els.iter().filter(|(n, _)| n == "SegmentTemplate") {
            assert_eq!(t["media"], "$RepresentationID$/$Number$.m4s");
            assert_eq!(t["initialization"], "$RepresentationID$/init.mp4");
            assert_eq!(t["startNumber"], "0");
            assert_eq!(t["presentationTimeOffset"], (TIMESCALE * 40 / 1000).to_string());
        }
        // Every segment listed, summing to the whole recording.
        let total: u64 = els
            .iter()
            .filter(|(n, _)| n == "S")
            .map(|(_, a)| a["d"].parse::<u64>().unwrap() * (1 + a.get("r").map_or(0, |r| r.parse::<u64>().unwrap())))
            .sum();
        let video_ticks = 7300 * TIMESCALE / 1000;
        let audio_ticks = 7321 * TIMESCALE / 1000;
        assert_eq!(total, video_ticks + audio_ticks);
        assert!(text.ends_with("</MPD>\n"));
    }

    /// A two-hour DVR window (issue 17's `dvr_window: 2h`) of 2 s segments:
    /// video folds into one `<S>`, audio (93 or 94 AAC frames a segment,
    /// sub-millisecond jitter) into one per run of equal lengths, with no
    /// `t` after the first: about 95 kB for three rungs and audio.
    #[test]
    fn a_two_hour_window_stays_compact() {
        let n = 3600u64;
        let frame = Duration::from_nanos(1024 * 1_000_000_000 / 48_000);
        let mut at = Duration::ZERO;
        let audio_segs: Vec<SegmentTime> = (0..n)
            .map(|i| {
                let frames = if (i * 94) % 4 == 0 { 94 } else { 93 };
                let s = SegmentTime {
                    number: i,
                    start: at + Duration::from_micros((i * 7919) % 600),
                    duration: frame * frames,
                };
                at += s.duration;
                s
            })
            .collect();
        let reps = [
            video("720p", 720, segs(0, &vec![2000; n as usize], 0)),
            video("480p", 480, segs(0, &vec![2000; n as usize], 0)),
            video("360p", 360, segs(0, &vec![2000; n as usize], 0)),
            audio(audio_segs),
        ];
        let text = LiveMpd::default().render(&live(false), &reps).unwrap();
        let s = elements(&text).into_iter().filter(|(n, _)| n == "S").count();
        println!("2 h window: {} bytes, {s} <S> elements", text.len());
        // Video: one `<S>`; audio: at most one a segment, none with a `t`.
        assert!(s <= n as usize + 1, "{s} S");
        assert_eq!(text.matches(" t=\"").count(), 2, "one t per set");
        assert!(text.len() < 120_000, "{} bytes", text.len());
    }

    #[test]
    fn numbers_print_as_the_schema_wants() {
        assert_eq!(duration(Duration::from_millis(1500)), "PT1.5S");
        assert_eq!(duration(Duration::ZERO), "PT0S");
        assert_eq!(duration(Duration::from_millis(7321)), "PT7.321S");
        assert_eq!(frame_rate(15.0).as_deref(), Some("15"));
        assert_eq!(frame_rate(29.97).as_deref(), Some("29970/1000"));
        assert_eq!(frame_rate(30_000.0 / 1001.0).as_deref(), Some("30000/1001"));
        assert_eq!(frame_rate(f64::NAN), None);
        assert_eq!(ticks(Duration::from_nanos(21_333_333)), 1920);
        assert_eq!(ticks(Duration::from_secs(1)), TIMESCALE);
        assert_eq!(from_ticks(TIMESCALE), Duration::from_secs(1));
    }
}
