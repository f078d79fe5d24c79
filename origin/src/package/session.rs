//! Writes one publish session to disk: init segments, parts, media segments,
//! media playlists and, once every rendition has output, the multivariant
//! playlist; and publishes each rendition's live state to [`Live`] for the
//! HTTP server's blocking requests.
//!
//! It is fed the output of `cmafmux`, buffer by buffer, from GStreamer's
//! streaming threads ([`SessionWriter::push_buffer`]). `cmafmux` marks its
//! output: the init segment is `HEADER|DISCONT`; a fragment starts with a
//! `HEADER` buffer (the first chunk's `moof`) carrying the chunk's PTS and
//! duration; every further chunk of the fragment starts with a
//! `HEADER|DELTA_UNIT` buffer; the last buffer of a chunk carries `MARKER`.
//! A fragment is a segment and each of its chunks a part.
//!
//! Plain HLS: one chunk per fragment, so a segment is complete at its first
//! `MARKER`. Low-latency HLS: each chunk is written as a part (`{n}.{p}.m4s`)
//! and listed at once; the segment is complete when the next fragment
//! starts (or the session ends), and is then written whole (`{n}.m4s`) from
//! the bytes of its parts. The preload hint names the next part: the next
//! of this segment, or the first of the next segment once this one has
//! lasted its target (less half a part).
//!
//! Every object is written complete before it is listed (see [`write_atomic`]),
//! and a URI is never written twice with other bytes.
//!
//! Retention of segments: one that leaves the playlist window (the live
//! window, or the profile's DVR window, [`SessionWriter::with_dvr_window`])
//! is deleted a grace period later. A recorded session
//! ([`SessionWriter::recording`]) deletes only parts: it keeps every
//! segment, and when it ends writes its VOD playlists and `recording.json`
//! (see [`super::vod`]).
//!
//! Layout (see `api_types::layout`): `{stream}/{session}/{rendition}/...`
//! and `{stream}/index.m3u8`.

use super::fsio::write_atomic;
use super::live::{Live, Snapshot};
use super::mpd;
use super::multivariant::{self, RenditionInfo};
use super::playlist::{MediaPlaylist, Part, PlaylistError, RenditionReport, Segment, part_uri, segment_uri};
use super::vod::{self, Marker, VodRendition, VodSegment};
use api_types::layout::{self, INIT_SEGMENT, PLAYLIST};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// What kind of media a rendition carries, with its nominal bitrate.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Video {
        width: u32,
        height: u32,
        fps: Option<f64>,
        nominal_bps: Option<u64>,
    },
    Audio {
        nominal_bps: Option<u64>,
    },
}

/// One buffer of `cmafmux` output.
pub struct MuxBuffer<'a> {
    pub data: &'a [u8],
    pub header: bool,
    pub discont: bool,
    pub delta: bool,
    pub marker: bool,
    /// Running time of the chunk's first sample: one timeline shared by
    /// every rendition of the session (0 is the pipeline's start), so the
    /// same media sequence number gets the same PROGRAM-DATE-TIME in each.
    pub pts: Option<Duration>,
    pub duration: Option<Duration>,
}

/// Events the writer reports, for metrics and logs.
pub trait Observer: Send + Sync {
    fn segment_written(&self, rendition: &str, duration: Duration, end: Duration);
}

/// A chunk being received.
struct Pending {
    pts: Duration,
    duration: Duration,
    independent: bool,
    data: Vec<u8>,
}

struct Rendition {
    kind: Kind,
    dir: PathBuf,
    codec: Option<String>,
    playlist: MediaPlaylist,
    pending: Option<Pending>,
    /// Low-latency: the bytes of the segment in progress (its parts so far)
    /// and the running time it started at.
    building: Option<(Duration, Vec<u8>)>,
    measured_peak_bps: u64,
    /// Low-latency: its first [`EARLY_PLAYABLE`] of parts is written and
    /// measured, so the multivariant playlist need not wait for its first
    /// whole segment.
    early: bool,
    bytes: u64,
    media: Duration,
    /// A recorded session: every segment written so far.
    archive: Option<Vec<VodSegment>>,
    /// The buffer playlists are rendered into, reused (see
    /// [`MediaPlaylist::render_into`]).
    scratch: String,
}

/// Low-latency: how much of its first segment's parts each rendition needs
/// before the multivariant playlist is written (and the stream reported):
/// PART-HOLD-BACK's worth, what a player joins with. A publisher that moves
/// to this origin after its own died is playable this soon after it
/// starts, instead of after a whole first segment (measured in
/// `loadtest/tests/failover.rs`).
const EARLY_PLAYABLE: Duration = Duration::from_secs(1);

struct State {
    renditions: BTreeMap<String, Rendition>,
    multivariant_written: bool,
    expired: VecDeque<(PathBuf, Instant)>,
    ended: bool,
    /// What the live DASH MPD last listed.
    mpd: mpd::LiveMpd,
}

/// What a low-latency session's parts are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LowLatency {
    /// PART-TARGET: no part lasts longer.
    pub part_target: Duration,
    /// The segment duration the encoders cut at (the target duration may be
    /// longer, for passthrough): the preload hint's guess of when the next
    /// segment starts.
    pub segment: Duration,
}

pub struct SessionWriter {
    stream: String,
    session: String,
    stream_dir: PathBuf,
    target: Duration,
    low_latency: Option<LowLatency>,
    part_target: Option<Duration>,
    grace: Duration,
    /// The profile's time-shift window (`None`: the live window).
    dvr_window: Option<Duration>,
    /// Whether the session is kept as a recording.
    record: bool,
    /// Wall-clock time of running time 0: the arrival of the first frame.
    started: OnceLock<SystemTime>,
    observer: Arc<dyn Observer>,
    live: Arc<Live>,
    state: Mutex<State>,
}

impl SessionWriter {
    /// `target`: the longest segment (EXT-X-TARGETDURATION, rounded up);
    /// `low_latency`: the parts of low-latency HLS (`None`: plain HLS);
    /// `grace`: how long a segment stays on disk after it has left every
    /// playlist.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        output_dir: &Path,
        stream: &str,
        session: &str,
        target: Duration,
        low_latency: Option<LowLatency>,
        grace: Duration,
        observer: Arc<dyn Observer>,
        live: Arc<Live>,
    ) -> std::io::Result<SessionWriter> {
        let stream_dir = output_dir.join(stream);
        std::fs::create_dir_all(stream_dir.join(session))?;
        Ok(SessionWriter {
            stream: stream.to_string(),
            session: session.to_string(),
            stream_dir,
            target,
            low_latency,
            part_target: low_latency.map(|l| l.part_target),
            grace,
            dvr_window: None,
            record: false,
            started: OnceLock::new(),
            observer,
            live,
            state: Mutex::new(State {
                renditions: BTreeMap::new(),
                multivariant_written: false,
                expired: VecDeque::new(),
                ended: false,
                mpd: mpd::LiveMpd::default(),
            }),
        })
    }

    /// Media playlists list `window` of media (a DVR window; `None` or zero:
    /// the live window), and segments stay on disk that long plus the grace.
    /// Call before [`SessionWriter::add_rendition`].
    pub fn with_dvr_window(mut self, window: Option<Duration>) -> SessionWriter {
        self.dvr_window = window.filter(|w| !w.is_zero());
        self
    }

    /// Keeps the session as a recording (`record`): no segment is deleted,
    /// and [`SessionWriter::finish`] writes the VOD playlists and
    /// `recording.json`. Writes the marker that lets a session cut by a crash
    /// be finalized at the next start ([`vod::recover`]).
    pub fn recording(mut self, record: bool) -> std::io::Result<SessionWriter> {
        self.record = record;
        if record {
            self.marker(None, vec![]).write(&self.session_dir())?;
        }
        Ok(self)
    }

    fn session_dir(&self) -> PathBuf {
        self.stream_dir.join(&self.session)
    }

    fn marker(&self, multivariant: Option<String>, renditions: Vec<api_types::Rendition>) -> Marker {
        Marker {
            stream: self.stream.clone(),
            session: self.session.clone(),
            target_duration: self.target.as_secs_f64().ceil().max(1.0) as u64,
            started_at_ms: self.started.get().copied().map(vod::ms_since_epoch),
            multivariant,
            renditions,
        }
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    /// Anchors PROGRAM-DATE-TIME: running time 0 is now. Called when the
    /// first frame arrives from the publisher; later calls change nothing.
    pub fn first_frame_arrived(&self) {
        self.started.get_or_init(SystemTime::now);
    }

    fn program_date_time(&self, pts: Duration) -> SystemTime {
        *self.started.get_or_init(SystemTime::now) + pts
    }

    /// `{stream}/{session}/{rendition}`: the rendition's key in [`Live`].
    fn live_key(&self, rendition: &str) -> String {
        format!("{}/{}/{rendition}", self.stream, self.session)
    }

    /// Declares a rendition; the multivariant playlist waits for every
    /// declared rendition's first segment.
    pub fn add_rendition(&self, name: &str, kind: Kind) -> std::io::Result<()> {
        let dir = self.stream_dir.join(&self.session).join(name);
        std::fs::create_dir_all(&dir)?;
        let playlist = match self.part_target {
            Some(pt) => MediaPlaylist::low_latency(self.target, pt, INIT_SEGMENT),
            None => MediaPlaylist::new(self.target, INIT_SEGMENT),
        }
        .with_dvr_window(self.dvr_window);
        let mut st = self.state.lock().expect("session lock");
        st.renditions.insert(
            name.to_string(),
            Rendition {
                kind,
                dir,
                codec: None,
                playlist,
                pending: None,
                building: None,
                measured_peak_bps: 0,
                early: false,
                bytes: 0,
                media: Duration::ZERO,
                archive: self.record.then(Vec::new),
                scratch: String::new(),
            },
        );
        Ok(())
    }

    /// Records a rendition's codec string (from its caps) and, for video,
    /// its real size (for passthrough, where it is only known then).
    pub fn set_codec(&self, name: &str, codec: String, size: Option<(u32, u32)>) {
        let mut st = self.state.lock().expect("session lock");
        if let Some(r) = st.renditions.get_mut(name) {
            r.codec = Some(codec);
            if let (Kind::Video { width, height, .. }, Some((w, h))) = (&mut r.kind, size) {
                (*width, *height) = (w, h);
            }
        }
    }

    /// Takes one buffer of a rendition's `cmafmux` output.
    pub fn push_buffer(&self, name: &str, buf: MuxBuffer<'_>) -> std::io::Result<()> {
        let mut st = self.state.lock().expect("session lock");
        if st.ended {
            return Ok(());
        }
        let Some(r) = st.renditions.get_mut(name) else {
            return Ok(());
        };
        if buf.header && buf.discont {
            // The init segment: written once, before any media segment.
            return write_atomic(&r.dir.join(INIT_SEGMENT), buf.data);
        }
        if buf.header {
            // A fragment (`!delta`) or a further chunk of it starts. A new
            // fragment completes the segment in progress.
            if !buf.delta && r.building.is_some() {
                self.close_segment(&mut st, name)?;
            }
            let Some(r) = st.renditions.get_mut(name) else {
                return Ok(());
            };
            r.pending = Some(Pending {
                pts: buf.pts.unwrap_or_default(),
                duration: buf.duration.unwrap_or_default(),
                independent: !buf.delta,
                data: buf.data.to_vec(),
            });
            return Ok(());
        }
        if let Some(p) = r.pending.as_mut() {
            p.data.extend_from_slice(buf.data);
        }
        if buf.marker {
            self.complete_chunk(&mut st, name)?;
        }
        Ok(())
    }

    /// The chunk in `pending` is complete: a part (low-latency) or a whole
    /// segment (plain).
    fn complete_chunk(&self, st: &mut State, name: &str) -> std::io::Result<()> {
        let Some(r) = st.renditions.get_mut(name) else {
            return Ok(());
        };
        let Some(p) = r.pending.take() else { return Ok(()) };
        if self.part_target.is_none() {
            r.building = Some((p.pts, p.data));
            return self.close_segment_with(
                st,
                name,
                vec![Part {
                    duration: p.duration,
                    independent: true,
                }],
            );
        }
        // Low-latency. A segment would outgrow the target duration (a
        // source whose keyframes are further apart than the target, in
        // passthrough): close it here, so no segment is refused after its
        // parts were listed under its number.
        let so_far = r.playlist.building().map_or(Duration::ZERO, Segment::duration);
        if r.building.is_some() && r.playlist.accepts(so_far + p.duration).is_err() {
            tracing::warn!(stream = %self.stream, rendition = name, "keyframes further apart than the segment target: segment cut early");
            self.close_segment(st, name)?;
        }
        let Some(r) = st.renditions.get_mut(name) else {
            return Ok(());
        };
        let sequence = r.playlist.next_sequence();
        let index = r.playlist.building().map_or(0, |b| b.parts.len());
        // Complete before it has a name: a reader polling ahead sees 404,
        // then the whole part, never a short one.
        write_atomic(&r.dir.join(part_uri(sequence, index)), &p.data)?;
        let part = Part {
            duration: p.duration,
            independent: p.independent,
        };
        let pdt = self.program_date_time(p.pts);
        if let Err(e) = r.playlist.push_part(pdt, part) {
            tracing::error!(stream = %self.stream, rendition = name, error = %e, "part not listed");
            return Ok(());
        }
        let (_, bytes) = r.building.get_or_insert_with(|| (p.pts, Vec::new()));
        bytes.extend_from_slice(&p.data);
        let building_bytes = bytes.len();
        // The preload hint: the first part of the next segment once this one
        // has (about) its target duration, else the next part of this one.
        let lasted = r.playlist.building().map_or(Duration::ZERO, Segment::duration);
        let half_part = self.part_target.unwrap_or_default() / 2;
        let segment = self.low_latency.map_or(self.target, |l| l.segment);
        if !st.multivariant_written && !r.early && lasted >= EARLY_PLAYABLE.min(segment) {
            // Its bitrate over these parts (the first whole segment raises
            // the measure, but the multivariant playlist is written once).
            let bps = (building_bytes as f64 * 8.0 / lasted.as_secs_f64().max(0.001)) as u64;
            r.measured_peak_bps = r.measured_peak_bps.max(bps);
            r.early = true;
        }
        let hint = if lasted + half_part >= segment {
            (sequence + 1, 0)
        } else {
            (sequence, index + 1)
        };
        r.playlist.set_hint(Some(hint));
        self.publish_playlists(st, Some(name))?;
        if !st.multivariant_written
            && st
                .renditions
                .values()
                .all(|r| r.early || r.playlist.segments().next().is_some())
        {
            self.write_multivariant(st)?;
        }
        self.write_mpd(st)
    }

    /// Low-latency: the segment in progress is complete.
    fn close_segment(&self, st: &mut State, name: &str) -> std::io::Result<()> {
        self.close_segment_with(st, name, vec![])
    }

    /// Writes the segment in progress of `name` whole, lists it, and writes
    /// the multivariant playlist once everything is there. `parts`: the
    /// segment's one part, for plain HLS (low-latency playlists have theirs).
    fn close_segment_with(&self, st: &mut State, name: &str, parts: Vec<Part>) -> std::io::Result<()> {
        let Some(r) = st.renditions.get_mut(name) else {
            return Ok(());
        };
        let Some((pts, data)) = r.building.take() else {
            return Ok(());
        };
        let plain = self.part_target.is_none();
        let duration = if plain {
            parts.iter().map(|p| p.duration).sum()
        } else {
            r.playlist.building().map_or(Duration::ZERO, Segment::duration)
        };
        // Plain: a segment the playlist would refuse (longer than the
        // target duration) is dropped before anything is written: its
        // sequence number, and so its URI, then goes to the next segment,
        // and no URI is ever written twice with other bytes. (Low-latency
        // segments never get that long: see `complete_chunk`.)
        if plain && let Err(e) = r.playlist.accepts(duration) {
            tracing::error!(stream = %self.stream, rendition = name, error = %e, "segment dropped");
            return Ok(());
        }
        let seq = r.playlist.next_sequence();
        let uri = segment_uri(seq);
        write_atomic(&r.dir.join(&uri), &data)?;
        let program_date_time = self.program_date_time(pts);
        let listed = if plain {
            r.playlist.push(Segment {
                sequence: seq,
                uri,
                program_date_time,
                parts,
            })
        } else {
            r.playlist.close_segment()
        };
        match listed {
            Ok(left) => {
                let deadline = Instant::now() + self.grace;
                for s in left {
                    if !plain {
                        for i in 0..s.parts.len() {
                            st.expired.push_back((r.dir.join(part_uri(s.sequence, i)), deadline));
                        }
                    }
                    // A recording keeps every segment.
                    if r.archive.is_none() {
                        st.expired.push_back((r.dir.join(&s.uri), deadline));
                    }
                }
                if let Some(archive) = r.archive.as_mut() {
                    let entry = VodSegment {
                        sequence: seq,
                        program_date_time,
                        duration,
                    };
                    archive.push(entry);
                    if let Err(e) = vod::log_segment(&r.dir, &entry) {
                        tracing::warn!(stream = %self.stream, rendition = name, error = %e, "cannot log a recorded segment");
                    }
                }
            }
            Err(e @ PlaylistError::TooLong(..)) => {
                tracing::error!(stream = %self.stream, rendition = name, error = %e, "segment not listed");
                return Ok(());
            }
            Err(PlaylistError::Ended) => return Ok(()),
        }
        let secs = duration.as_secs_f64().max(0.001);
        r.measured_peak_bps = r.measured_peak_bps.max((data.len() as f64 * 8.0 / secs) as u64);
        r.bytes += data.len() as u64;
        r.media += duration;
        self.observer.segment_written(name, duration, pts + duration);
        if plain {
            self.publish_playlists(st, Some(name))?;
        }
        if !st.multivariant_written && st.renditions.values().all(|r| r.playlist.segments().next().is_some()) {
            self.write_multivariant(st)?;
        }
        // Low-latency: once the playlists list the segment (the next part).
        if plain {
            self.write_mpd(st)?;
        }
        self.delete_expired(st);
        Ok(())
    }

    /// The live DASH MPD (`{stream}/manifest.mpd`, see [`mpd`]), once the
    /// stream is playable: written again after a playlist write that makes
    /// it list other segments (so it is in step with the media playlists).
    fn write_mpd(&self, st: &mut State) -> std::io::Result<()> {
        // The first MPD fixes its Representations for the session: it waits
        // for a segment of every rendition (a low-latency multivariant
        // playlist comes earlier, after a second of parts), or the end.
        let every = st
            .renditions
            .values()
            .all(|r| r.playlist.segments().next().is_some() || r.playlist.is_ended());
        let Some(&started) = self.started.get().filter(|_| st.multivariant_written && every) else {
            return Ok(());
        };
        let video = |r: &Rendition| matches!(r.kind, Kind::Video { .. });
        // The last segment of a rendition's playlist on disk. Low-latency:
        // a segment closed when the next fragment starts is published with
        // that fragment's first part, so until then its playlist does not
        // list it (and neither may the MPD).
        let published = |r: &Rendition| {
            let last = r.playlist.segments().last()?.sequence;
            let pending = self.part_target.is_some() && r.playlist.building().is_none() && !r.playlist.is_ended();
            if pending { last.checked_sub(1) } else { Some(last) }
        };
        let listed: Vec<mpd::Listed<'_>> = st
            .renditions
            .iter()
            .filter_map(|(name, r)| {
                let first = r.playlist.segments().next()?.sequence;
                let last = published(r).filter(|l| *l >= first);
                Some(mpd::Listed {
                    id: name,
                    video: video(r),
                    first,
                    last,
                })
            })
            .collect();
        let ended = st.renditions.values().all(|r| r.playlist.is_ended());
        let Some(listing) = st.mpd.due(&listed, ended) else {
            return Ok(());
        };
        let reps: Vec<mpd::Representation> = st
            .renditions
            .iter()
            .filter(|(name, _)| st.mpd.admits(name))
            .map(|(name, r)| (name, r, published(r)))
            .map(|(name, r, last)| mpd::Representation {
                id: name.clone(),
                media: match r.kind {
                    Kind::Video { width, height, fps, .. } => mpd::Media::Video { width, height, fps },
                    Kind::Audio { .. } => mpd::Media::Audio,
                },
                codec: r.codec.clone().unwrap_or_default(),
                // As the multivariant playlist's peak (see there).
                bandwidth: (match r.kind {
                    Kind::Video { nominal_bps, .. } | Kind::Audio { nominal_bps } => nominal_bps,
                }
                .unwrap_or(0)
                .max(r.measured_peak_bps) as f64
                    * 1.25) as u64,
                segments: r
                    .playlist
                    .segments()
                    .take_while(|s| last.is_some_and(|l| s.sequence <= l))
                    .map(|s| mpd::SegmentTime {
                        number: s.sequence,
                        start: s.program_date_time.duration_since(started).unwrap_or_default(),
                        duration: s.duration(),
                    })
                    .collect(),
            })
            .collect();
        let live = mpd::Live {
            session: &self.session,
            availability_start: started,
            now: SystemTime::now(),
            target: self.target,
            segment: self.low_latency.map_or(self.target, |l| l.segment),
            ended,
        };
        if let Some(text) = st.mpd.render(&live, &reps) {
            write_atomic(&self.stream_dir.join(layout::MPD), text.as_bytes())?;
            st.mpd.written(listing, &listed);
        }
        Ok(())
    }

    /// Writes the media playlist of `only` (every rendition's if `None`) and
    /// publishes it to [`Live`]. A low-latency playlist reports the other
    /// renditions' positions (EXT-X-RENDITION-REPORT) as of its own last
    /// change: at most a part old, which is what the spec allows a report.
    fn publish_playlists(&self, st: &mut State, only: Option<&str>) -> std::io::Result<()> {
        let positions: Vec<(String, Option<(u64, usize)>)> = st
            .renditions
            .iter()
            .map(|(n, r)| (n.clone(), r.playlist.last_part()))
            .collect();
        for (name, r) in st
            .renditions
            .iter_mut()
            .filter(|(n, _)| only.is_none_or(|o| o == n.as_str()))
        {
            if r.playlist.segments().next().is_none() && r.playlist.building().is_none() {
                continue; // nothing to list yet
            }
            let reports: Vec<RenditionReport> = if self.part_target.is_some() {
                positions
                    .iter()
                    .filter(|(n, _)| n != name)
                    .filter_map(|(n, last)| {
                        Some(RenditionReport {
                            uri: format!("../{n}/{PLAYLIST}"),
                            last_part: (*last)?,
                        })
                    })
                    .collect()
            } else {
                vec![]
            };
            r.playlist.render_into(&mut r.scratch, &reports, false);
            let full: Arc<str> = r.scratch.as_str().into();
            write_atomic(&r.dir.join(PLAYLIST), full.as_bytes())?;
            let delta: Option<Arc<str>> = r.playlist.can_skip().then(|| {
                r.playlist.render_into(&mut r.scratch, &reports, true);
                r.scratch.as_str().into()
            });
            let building = r.playlist.next_sequence();
            let parts = r.playlist.building().map_or(0, |b| b.parts.len());
            self.live.publish(
                &self.live_key(name),
                Snapshot {
                    delta,
                    full,
                    target_duration: Duration::from_secs(r.playlist.target_duration()),
                    building,
                    parts,
                    ended: r.playlist.is_ended(),
                    low_latency: self.part_target.is_some(),
                },
            );
        }
        Ok(())
    }

    /// The variants of the multivariant playlist: video renditions and the
    /// audio one, each with media; `uri` names a rendition's media playlist.
    fn variants(&self, st: &State, uri: impl Fn(&str) -> String) -> (Vec<RenditionInfo>, Option<RenditionInfo>) {
        let info = |name: &str, r: &Rendition| {
            let nominal = match r.kind {
                Kind::Video { nominal_bps, .. } | Kind::Audio { nominal_bps } => nominal_bps,
            };
            let average = if r.media.is_zero() {
                // Low-latency, before the first whole segment: what its
                // first parts measured.
                r.measured_peak_bps
            } else {
                (r.bytes as f64 * 8.0 / r.media.as_secs_f64()) as u64
            };
            let (resolution, frame_rate) = match r.kind {
                Kind::Video { width, height, fps, .. } => (Some((width, height)), fps),
                Kind::Audio { .. } => (None, None),
            };
            RenditionInfo {
                name: name.to_string(),
                uri: uri(name),
                codec: r.codec.clone().unwrap_or_default(),
                // Peak: the larger of what was asked of the encoder and what
                // the first segment (or, low-latency, its first parts)
                // measured, with headroom for later peaks.
                peak_bps: (nominal.unwrap_or(0).max(r.measured_peak_bps) as f64 * 1.25) as u64,
                average_bps: nominal.unwrap_or(average),
                resolution,
                frame_rate,
            }
        };
        let mut video = vec![];
        let mut audio = None;
        // Only renditions with media: a session that ends early (a failed
        // encoder, a publisher gone after a second) must not list playlists
        // that do not exist.
        for (name, r) in st
            .renditions
            .iter()
            .filter(|(_, r)| r.early || r.playlist.segments().next().is_some())
        {
            match r.kind {
                Kind::Video { .. } => video.push(info(name, r)),
                Kind::Audio { .. } => audio = Some(info(name, r)),
            }
        }
        (video, audio)
    }

    /// The recording's multivariant playlist (`{session}/vod.m3u8`: the live
    /// one's variants, URIs `{rendition}/vod.m3u8`) and its renditions for
    /// `recording.json`; `None` without video.
    fn vod_variants(&self, st: &State) -> Option<(String, Vec<api_types::Rendition>)> {
        let (video, audio) = self.variants(st, |name| format!("{name}/{}", layout::VOD_PLAYLIST));
        if video.is_empty() {
            return None;
        }
        let text = multivariant::render(&video, audio.as_ref());
        let info = video
            .iter()
            .chain(audio.as_ref())
            .map(|v| api_types::Rendition {
                name: v.name.clone(),
                bandwidth: Some(v.peak_bps),
                resolution: v.resolution.map(|(w, h)| format!("{w}x{h}")),
                codecs: Some(v.codec.clone()).filter(|c| !c.is_empty()),
            })
            .collect();
        Some((text, info))
    }

    fn write_multivariant(&self, st: &mut State) -> std::io::Result<()> {
        let (video, audio) = self.variants(st, |name| layout::media_playlist_uri(&self.session, name));
        if video.is_empty() {
            return Ok(());
        }
        let text = multivariant::render(&video, audio.as_ref());
        write_atomic(&self.stream_dir.join(PLAYLIST), text.as_bytes())?;
        st.multivariant_written = true;
        if self.record
            && let Some((text, info)) = self.vod_variants(st)
        {
            // What a recording cut by a crash is finalized from.
            self.marker(Some(text), info).write(&self.session_dir())?;
        }
        tracing::info!(stream = %self.stream, session = %self.session, renditions = st.renditions.len(), "stream playable");
        Ok(())
    }

    fn delete_expired(&self, st: &mut State) {
        let now = Instant::now();
        while st.expired.front().is_some_and(|(_, at)| *at <= now) {
            if let Some((path, _)) = st.expired.pop_front()
                && let Err(e) = std::fs::remove_file(&path)
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete expired segment");
            }
        }
    }

    /// Ends the session: every media playlist gets EXT-X-ENDLIST.
    pub fn finish(&self) -> std::io::Result<()> {
        let mut st = self.state.lock().expect("session lock");
        if st.ended {
            return Ok(());
        }
        let names: Vec<String> = st.renditions.keys().cloned().collect();
        for name in &names {
            // A fragment cut short by the end of input is still media.
            let has_pending = st.renditions.get(name).is_some_and(|r| r.pending.is_some());
            if has_pending {
                self.complete_chunk(&mut st, name)?;
            }
            let building = st.renditions.get(name).is_some_and(|r| r.building.is_some());
            if building {
                self.close_segment(&mut st, name)?;
            }
        }
        if !st.multivariant_written {
            self.write_multivariant(&mut st)?;
        }
        for r in st.renditions.values_mut() {
            r.playlist.end();
        }
        self.publish_playlists(&mut st, None)?;
        self.write_mpd(&mut st)?;
        st.ended = true;
        if self.record {
            self.write_recording(&st)?;
        }
        Ok(())
    }

    /// A recorded session has ended: its VOD playlists, then
    /// `recording.json` ([`vod::write_recording`]).
    fn write_recording(&self, st: &State) -> std::io::Result<()> {
        let Some((multivariant, info)) = self.vod_variants(st) else {
            tracing::warn!(stream = %self.stream, session = %self.session, "recorded session without video: no recording");
            return Ok(());
        };
        let renditions: Vec<VodRendition> = st
            .renditions
            .iter()
            .filter_map(|(name, r)| {
                Some(VodRendition {
                    name: name.clone(),
                    target_duration: r.playlist.target_duration(),
                    segments: r.archive.clone().filter(|a| !a.is_empty())?,
                })
            })
            .collect();
        let ended = vod::ms_since_epoch(SystemTime::now());
        let started = self.started.get().copied().map_or(ended, vod::ms_since_epoch);
        let meta = vod::write_recording(
            &self.session_dir(),
            &vod::Recording {
                stream: &self.stream,
                session: &self.session,
                started_at_ms: started,
                ended_at_ms: ended,
                multivariant: &multivariant,
                renditions: &renditions,
                info: &info,
            },
        )?;
        tracing::info!(stream = %self.stream, session = %self.session, duration_s = meta.duration_s, "recording written");
        Ok(())
    }

    /// Whether the multivariant playlist has been written.
    pub fn is_playable(&self) -> bool {
        self.state.lock().expect("session lock").multivariant_written
    }

    /// Seconds of media written by the slowest rendition.
    pub fn written_media(&self) -> Duration {
        let st = self.state.lock().expect("session lock");
        st.renditions.values().map(|r| r.media).min().unwrap_or_default()
    }

    pub fn rendition_names(&self) -> Vec<String> {
        self.state
            .lock()
            .expect("session lock")
            .renditions
            .keys()
            .cloned()
            .collect()
    }
}

impl Drop for SessionWriter {
    /// The session's renditions leave [`Live`]; the files stay for the
    /// janitor, and requests for them are answered from disk.
    fn drop(&mut self) {
        let names: Vec<String> = match self.state.lock() {
            Ok(st) => st.renditions.keys().cloned().collect(),
            Err(_) => return,
        };
        for name in names {
            self.live.remove(&self.live_key(&name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Quiet;
    impl Observer for Quiet {
        fn segment_written(&self, _: &str, _: Duration, _: Duration) {}
    }

    fn writer(dir: &Path, session: &str) -> SessionWriter {
        SessionWriter::new(
            dir,
            "golive",
            session,
            Duration::from_secs(2),
            None,
            Duration::ZERO,
            Arc::new(Quiet),
            Live::new(),
        )
        .unwrap()
    }

    fn buf(data: &[u8], header: bool, discont: bool, marker: bool, pts_s: u64) -> MuxBuffer<'_> {
        MuxBuffer {
            data,
            header,
            discont,
            delta: !header,
            marker,
            pts: Some(Duration::from_secs(pts_s)),
            duration: Some(Duration::from_secs(2)),
        }
    }

    #[test]
    fn writes_segments_playlists_and_multivariant_then_ends() {
        let d = tempfile::tempdir().unwrap();
        let w = writer(d.path(), "s1");
        let video = Kind::Video {
            width: 640,
            height: 360,
            fps: Some(30.0),
            nominal_bps: Some(700_000),
        };
        w.add_rendition("360p", video).unwrap();
        w.add_rendition(
            "audio",
            Kind::Audio {
                nominal_bps: Some(128_000),
            },
        )
        .unwrap();
        w.set_codec("360p", "avc1.64001e".into(), None);
        w.set_codec("audio", "mp4a.40.2".into(), None);
        for name in ["360p", "audio"] {
            w.push_buffer(name, buf(b"INIT", true, true, false, 0)).unwrap();
        }
        for n in 0..6 {
            w.push_buffer("360p", buf(b"moof", true, false, false, n * 2)).unwrap();
            w.push_buffer("360p", buf(b"mdat", false, false, true, n * 2)).unwrap();
            if n == 0 {
                assert!(!w.is_playable(), "audio has no segment yet");
            }
            w.push_buffer("audio", buf(b"moof", true, false, false, n * 2)).unwrap();
            w.push_buffer("audio", buf(b"mdat", false, false, true, n * 2)).unwrap();
        }
        assert!(w.is_playable());
        let root = d.path().join("golive");
        assert_eq!(std::fs::read(root.join("s1/360p/init.mp4")).unwrap(), b"INIT");
        assert_eq!(std::fs::read(root.join("s1/360p/5.m4s")).unwrap(), b"moofmdat");
        // Grace zero: segments that left the window are gone, listed ones are not.
        assert!(!root.join("s1/360p/0.m4s").exists());
        let media = std::fs::read_to_string(root.join("s1/360p/index.m3u8")).unwrap();
        let parsed = m3u8_rs::parse_media_playlist_res(media.as_bytes()).unwrap();
        assert_eq!(
            parsed.segments.first().unwrap().uri,
            format!("{}.m4s", parsed.media_sequence)
        );
        for s in &parsed.segments {
            assert!(
                root.join("s1/360p").join(&s.uri).exists(),
                "{} listed but deleted",
                s.uri
            );
        }
        let master = std::fs::read_to_string(root.join("index.m3u8")).unwrap();
        assert!(
            master.contains("s1/360p/index.m3u8") && master.contains("mp4a.40.2"),
            "{master}"
        );

        let mpd = std::fs::read_to_string(root.join("manifest.mpd")).unwrap();
        assert!(
            mpd.contains("type=\"dynamic\"") && mpd.contains("minimumUpdatePeriod"),
            "{mpd}"
        );
        assert!(
            mpd.contains(&format!("startNumber=\"{}\"", parsed.media_sequence)),
            "{mpd}"
        );

        w.finish().unwrap();
        let media = std::fs::read_to_string(root.join("s1/audio/index.m3u8")).unwrap();
        assert!(media.contains("#EXT-X-ENDLIST"));
        let mpd = std::fs::read_to_string(root.join("manifest.mpd")).unwrap();
        assert!(
            mpd.contains("mediaPresentationDuration") && !mpd.contains("minimumUpdatePeriod"),
            "{mpd}"
        );
        assert_eq!(w.written_media(), Duration::from_secs(12));
    }

    #[test]
    fn a_recorded_session_keeps_every_segment_and_ends_as_a_vod() {
        let d = tempfile::tempdir().unwrap();
        let w = writer(d.path(), "s1").recording(true).unwrap();
        let root = d.path().join("golive/s1");
        assert!(root.join(vod::MARKER).exists(), "marked from the start");
        w.add_rendition(
            "360p",
            Kind::Video {
                width: 640,
                height: 360,
                fps: Some(30.0),
                nominal_bps: Some(700_000),
            },
        )
        .unwrap();
        w.add_rendition("audio", Kind::Audio { nominal_bps: None }).unwrap();
        w.set_codec("360p", "avc1.64001e".into(), None);
        w.set_codec("audio", "mp4a.40.2".into(), None);
        for name in ["360p", "audio"] {
            w.push_buffer(name, buf(b"INIT", true, true, false, 0)).unwrap();
        }
        for n in 0..10 {
            for name in ["360p", "audio"] {
                w.push_buffer(name, buf(b"moof", true, false, false, n * 2)).unwrap();
                w.push_buffer(name, buf(b"mdat", false, false, true, n * 2)).unwrap();
            }
        }
        // Grace zero, yet nothing is deleted; the live window still slides.
        assert!(root.join("360p/0.m4s").exists());
        let live = std::fs::read_to_string(root.join("360p/index.m3u8")).unwrap();
        assert!(!live.contains("\n0.m4s"), "{live}");
        assert!(
            !root.join(api_types::layout::RECORDING_META).exists(),
            "not before the end"
        );
        w.finish().unwrap();
        let media = std::fs::read_to_string(root.join("360p/vod.m3u8")).unwrap();
        let parsed = m3u8_rs::parse_media_playlist_res(media.as_bytes()).unwrap();
        assert_eq!(parsed.segments.len(), 10);
        assert!(parsed.end_list && parsed.playlist_type == Some(m3u8_rs::MediaPlaylistType::Vod));
        let master = std::fs::read_to_string(root.join("vod.m3u8")).unwrap();
        assert!(
            master.contains("\n360p/vod.m3u8") && master.contains("URI=\"audio/vod.m3u8\""),
            "{master}"
        );
        let meta = vod::read_meta(&root).unwrap();
        assert_eq!(
            (meta.stream.as_str(), meta.session.as_str(), meta.duration_s),
            ("golive", "s1", 20.0)
        );
        assert_eq!(meta.renditions.len(), 2);
        assert!(meta.ended_at_ms >= meta.started_at_ms);
    }

    #[test]
    fn an_over_long_segment_is_dropped_before_its_uri_is_written() {
        let d = tempfile::tempdir().unwrap();
        let w = writer(d.path(), "s1");
        w.add_rendition("audio", Kind::Audio { nominal_bps: None }).unwrap();
        w.push_buffer("audio", buf(b"INIT", true, true, false, 0)).unwrap();
        let dir = d.path().join("golive/s1/audio");
        // 10 s against a 2 s target: refused by the playlist, so not written.
        let long = MuxBuffer {
            duration: Some(Duration::from_secs(10)),
            ..buf(b"long", true, false, false, 0)
        };
        w.push_buffer("audio", long).unwrap();
        w.push_buffer("audio", buf(b"data", false, false, true, 0)).unwrap();
        assert!(!dir.join("0.m4s").exists(), "a refused segment never gets a URI");
        // The next segment takes the number, written once, with its own bytes.
        w.push_buffer("audio", buf(b"moof", true, false, false, 10)).unwrap();
        w.push_buffer("audio", buf(b"mdat", false, false, true, 10)).unwrap();
        assert_eq!(std::fs::read(dir.join("0.m4s")).unwrap(), b"moofmdat");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with('.')),
            "no temporary left: {names:?}"
        );
    }

    #[test]
    fn an_early_end_lists_only_renditions_with_media() {
        let d = tempfile::tempdir().unwrap();
        let w = writer(d.path(), "s1");
        for (name, height) in [("360p", 360), ("180p", 180)] {
            let kind = Kind::Video {
                width: height * 16 / 9,
                height,
                fps: Some(30.0),
                nominal_bps: Some(500_000),
            };
            w.add_rendition(name, kind).unwrap();
        }
        w.add_rendition("audio", Kind::Audio { nominal_bps: None }).unwrap();
        w.set_codec("360p", "avc1.64001e".into(), None);
        w.set_codec("audio", "mp4a.40.2".into(), None);
        for name in ["360p", "audio"] {
            w.push_buffer(name, buf(b"INIT", true, true, false, 0)).unwrap();
            w.push_buffer(name, buf(b"moof", true, false, false, 0)).unwrap();
            w.push_buffer(name, buf(b"mdat", false, false, true, 0)).unwrap();
        }
        // 180p never produced anything (its encoder failed).
        w.finish().unwrap();
        let master = std::fs::read_to_string(d.path().join("golive/index.m3u8")).unwrap();
        assert!(master.contains("s1/360p/index.m3u8"), "{master}");
        assert!(!master.contains("180p"), "{master}");
        assert!(
            !master.contains("CODECS=\",") && !master.contains("CODECS=\"\""),
            "{master}"
        );

        // Nothing of the video at all: no multivariant playlist.
        let d = tempfile::tempdir().unwrap();
        let w = writer(d.path(), "s2");
        w.add_rendition(
            "360p",
            Kind::Video {
                width: 640,
                height: 360,
                fps: None,
                nominal_bps: None,
            },
        )
        .unwrap();
        w.add_rendition("audio", Kind::Audio { nominal_bps: None }).unwrap();
        w.set_codec("audio", "mp4a.40.2".into(), None);
        w.push_buffer("audio", buf(b"INIT", true, true, false, 0)).unwrap();
        w.push_buffer("audio", buf(b"moof", true, false, false, 0)).unwrap();
        w.push_buffer("audio", buf(b"mdat", false, false, true, 0)).unwrap();
        w.finish().unwrap();
        assert!(!w.is_playable());
        assert!(!d.path().join("golive/index.m3u8").exists());
    }
}

#[cfg(test)]
mod low_latency_tests {
    use super::*;

    struct Quiet;
    impl Observer for Quiet {
        fn segment_written(&self, _: &str, _: Duration, _: Duration) {}
    }

    const PART: Duration = Duration::from_millis(500);

    /// A chunk as cmafmux writes it: a `moof` buffer (HEADER, DELTA_UNIT
    /// unless it starts a fragment), then an `mdat` buffer with MARKER.
    fn chunk(w: &SessionWriter, name: &str, at: Duration, first: bool, tag: &[u8]) {
        let header = MuxBuffer {
            data: tag,
            header: true,
            discont: false,
            delta: !first,
            marker: false,
            pts: Some(at),
            duration: Some(PART),
        };
        w.push_buffer(name, header).unwrap();
        let body = MuxBuffer {
            data: b"-mdat",
            header: false,
            discont: false,
            delta: true,
            marker: true,
            pts: Some(at),
            duration: None,
        };
        w.push_buffer(name, body).unwrap();
    }

    #[test]
    fn parts_are_listed_as_they_come_and_segments_when_the_next_starts() {
        let d = tempfile::tempdir().unwrap();
        let live = Live::new();
        let ll = LowLatency {
            part_target: PART,
            segment: Duration::from_secs(2),
        };
        let w = SessionWriter::new(
            d.path(),
            "golive",
            "s1",
            Duration::from_secs(2),
            Some(ll),
            Duration::ZERO,
            Arc::new(Quiet),
            live.clone(),
        )
        .unwrap();
        w.add_rendition(
            "360p",
            Kind::Video {
                width: 640,
                height: 360,
                fps: Some(30.0),
                nominal_bps: None,
            },
        )
        .unwrap();
        w.add_rendition("audio", Kind::Audio { nominal_bps: None }).unwrap();
        w.set_codec("360p", "avc1.64001e".into(), None);
        w.set_codec("audio", "mp4a.40.2".into(), None);
        for name in ["360p", "audio"] {
            w.push_buffer(
                name,
                MuxBuffer {
                    data: b"INIT",
                    header: true,
                    discont: true,
                    delta: false,
                    marker: false,
                    pts: None,
                    duration: None,
                },
            )
            .unwrap();
        }
        let dir = d.path().join("golive/s1/360p");
        // Segment 0: four parts of 0.5 s.
        for i in 0..4u32 {
            chunk(&w, "360p", PART * i, i == 0, format!("moof{i}").as_bytes());
            chunk(&w, "audio", PART * i, i == 0, b"moofa");
            // Playable once every rendition has a second of parts
            // (EARLY_PLAYABLE), not only after a whole segment.
            assert_eq!(w.is_playable(), i >= 1, "part {i}");
            assert!(dir.join(format!("0.{i}.m4s")).exists());
            assert!(!dir.join("0.m4s").exists(), "a segment waits for the next to start");
            let snap = live.subscribe("golive/s1/360p").unwrap().borrow().clone();
            assert_eq!((snap.building, snap.parts), (0, i as usize + 1));
            assert!(snap.low_latency && !snap.ended && snap.delta.is_some());
            let hint = if i < 3 {
                format!("0.{}.m4s", i + 1)
            } else {
                "1.0.m4s".to_string()
            };
            assert!(
                snap.full
                    .contains(&format!("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{hint}\"")),
                "{}",
                snap.full
            );
        }
        assert_eq!(std::fs::read(dir.join("0.1.m4s")).unwrap(), b"moof1-mdat");
        let master = std::fs::read_to_string(d.path().join("golive/index.m3u8")).unwrap();
        assert!(
            master.contains("s1/360p/index.m3u8") && master.contains("s1/audio/index.m3u8"),
            "{master}"
        );
        // Segment 1 starts: segment 0 is written whole, from its parts.
        chunk(&w, "360p", PART * 4, true, b"moof4");
        assert_eq!(
            std::fs::read(dir.join("0.m4s")).unwrap(),
            b"moof0-mdatmoof1-mdatmoof2-mdatmoof3-mdat"
        );
        let mpd = d.path().join("golive/manifest.mpd");
        assert!(!mpd.exists(), "no MPD before the stream is playable");
        chunk(&w, "audio", PART * 4, true, b"moofa");
        assert!(w.is_playable(), "every rendition has a segment");
        let text = std::fs::read_to_string(&mpd).unwrap();
        assert!(
            text.contains("startNumber=\"0\"") && text.contains("<S t=\"0\" d=\"180000\"/>"),
            "{text}"
        );
        let snap = live.subscribe("golive/s1/360p").unwrap().borrow().clone();
        assert_eq!((snap.building, snap.parts), (1, 1));
        assert!(snap.satisfies(0, None) && snap.satisfies(1, Some(0)) && !snap.satisfies(1, Some(1)));
        let text = std::fs::read_to_string(dir.join("index.m3u8")).unwrap();
        assert_eq!(&*snap.full, text.as_str(), "disk and memory agree");
        assert!(text.contains("#EXTINF:2,\n0.m4s\n"), "{text}");
        assert!(
            text.contains("#EXT-X-PART:DURATION=0.5,URI=\"1.0.m4s\",INDEPENDENT=YES"),
            "{text}"
        );
        assert!(
            text.contains("#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=0,LAST-PART=3"),
            "{text}"
        );
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.segments.len(), 1, "players see whole segments only");

        // The end: the segment in progress is closed, everything ends.
        w.finish().unwrap();
        let snap = live.subscribe("golive/s1/360p").unwrap().borrow().clone();
        assert!(snap.ended && snap.full.ends_with("#EXT-X-ENDLIST\n") && !snap.full.contains("PRELOAD-HINT"));
        assert_eq!(std::fs::read(dir.join("1.m4s")).unwrap(), b"moof4-mdat");
        drop(w);
        assert!(live.is_empty(), "a dropped session leaves the live set");
    }
}
