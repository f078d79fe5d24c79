//! Writes one publish session to disk: init segments, media segments, media
//! playlists and, once every rendition has output, the multivariant playlist.
//!
//! It is fed the output of `cmafmux`, buffer by buffer, from GStreamer's
//! streaming threads ([`SessionWriter::push_buffer`]). `cmafmux` marks its
//! output: the init segment is `HEADER|DISCONT`; a fragment starts with a
//! `HEADER` buffer (the `moof`) carrying the fragment's PTS and duration;
//! the last buffer of a chunk carries `MARKER`. One chunk per fragment
//! today; low-latency HLS will publish each chunk as a part.
//!
//! Layout (see `api_types::layout`): `{stream}/{session}/{rendition}/...`
//! and `{stream}/index.m3u8`.

use super::fsio::write_atomic;
use super::multivariant::{self, RenditionInfo};
use super::playlist::{MediaPlaylist, Part, PlaylistError, Segment};
use api_types::layout::{self, INIT_SEGMENT, PLAYLIST};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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
    /// Running time of the fragment's first sample: one timeline shared by
    /// every rendition of the session (0 is the pipeline's start), so the
    /// same media sequence number gets the same PROGRAM-DATE-TIME in each.
    pub pts: Option<Duration>,
    pub duration: Option<Duration>,
}

/// Events the writer reports, for metrics and logs.
pub trait Observer: Send + Sync {
    fn segment_written(&self, rendition: &str, duration: Duration, end: Duration);
}

struct Pending {
    pts: Duration,
    duration: Duration,
    data: Vec<u8>,
}

struct Rendition {
    kind: Kind,
    dir: PathBuf,
    codec: Option<String>,
    playlist: MediaPlaylist,
    pending: Option<Pending>,
    measured_peak_bps: u64,
    bytes: u64,
    media: Duration,
}

struct State {
    renditions: BTreeMap<String, Rendition>,
    multivariant_written: bool,
    expired: VecDeque<(PathBuf, Instant)>,
    ended: bool,
}

pub struct SessionWriter {
    stream: String,
    session: String,
    stream_dir: PathBuf,
    target: Duration,
    grace: Duration,
    started: SystemTime,
    observer: Arc<dyn Observer>,
    state: Mutex<State>,
}

impl SessionWriter {
    /// `target`: the segment duration the encoders aim at; `grace`: how long
    /// a segment stays on disk after it has left every playlist.
    pub fn new(
        output_dir: &Path,
        stream: &str,
        session: &str,
        target: Duration,
        grace: Duration,
        observer: Arc<dyn Observer>,
    ) -> std::io::Result<SessionWriter> {
        let stream_dir = output_dir.join(stream);
        std::fs::create_dir_all(stream_dir.join(session))?;
        Ok(SessionWriter {
            stream: stream.to_string(),
            session: session.to_string(),
            stream_dir,
            target,
            grace,
            started: SystemTime::now(),
            observer,
            state: Mutex::new(State {
                renditions: BTreeMap::new(),
                multivariant_written: false,
                expired: VecDeque::new(),
                ended: false,
            }),
        })
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    /// Declares a rendition; the multivariant playlist waits for every
    /// declared rendition's first segment.
    pub fn add_rendition(&self, name: &str, kind: Kind) -> std::io::Result<()> {
        let dir = self.stream_dir.join(&self.session).join(name);
        std::fs::create_dir_all(&dir)?;
        let mut st = self.state.lock().expect("session lock");
        st.renditions.insert(
            name.to_string(),
            Rendition {
                kind,
                dir,
                codec: None,
                playlist: MediaPlaylist::new(self.target, INIT_SEGMENT),
                pending: None,
                measured_peak_bps: 0,
                bytes: 0,
                media: Duration::ZERO,
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
        if buf.header && !buf.delta {
            r.pending = Some(Pending {
                pts: buf.pts.unwrap_or_default(),
                duration: buf.duration.unwrap_or_default(),
                data: buf.data.to_vec(),
            });
            return Ok(());
        }
        if let Some(p) = r.pending.as_mut() {
            p.data.extend_from_slice(buf.data);
        }
        if buf.marker {
            self.complete_segment(&mut st, name)?;
        }
        Ok(())
    }

    /// Writes the pending segment of `name`, its playlist, and the
    /// multivariant playlist once everything is there.
    fn complete_segment(&self, st: &mut State, name: &str) -> std::io::Result<()> {
        let Some(r) = st.renditions.get_mut(name) else {
            return Ok(());
        };
        let Some(p) = r.pending.take() else { return Ok(()) };
        // A segment the playlist would refuse (longer than the target
        // duration) is dropped before anything is written: its sequence
        // number, and so its URI, then goes to the next segment, and no URI
        // is ever written twice with other bytes.
        if let Err(e) = r.playlist.accepts(p.duration) {
            tracing::error!(stream = %self.stream, rendition = name, error = %e, "segment dropped");
            return Ok(());
        }
        let seq = r.playlist.next_sequence();
        let uri = format!("{seq}.m4s");
        // Complete before it has a name: a reader polling ahead sees 404,
        // then the whole segment, never a short one.
        write_atomic(&r.dir.join(&uri), &p.data)?;
        let segment = Segment {
            sequence: seq,
            uri,
            program_date_time: self.started + p.pts,
            parts: vec![Part {
                duration: p.duration,
                independent: true,
            }],
        };
        match r.playlist.push(segment) {
            Ok(left) => {
                let deadline = Instant::now() + self.grace;
                for s in left {
                    st.expired.push_back((r.dir.join(&s.uri), deadline));
                }
            }
            Err(e @ PlaylistError::TooLong(..)) => {
                tracing::error!(stream = %self.stream, rendition = name, error = %e, "segment not listed");
                return Ok(());
            }
            Err(PlaylistError::Ended) => return Ok(()),
        }
        let secs = p.duration.as_secs_f64().max(0.001);
        r.measured_peak_bps = r.measured_peak_bps.max((p.data.len() as f64 * 8.0 / secs) as u64);
        r.bytes += p.data.len() as u64;
        r.media += p.duration;
        write_atomic(&r.dir.join(PLAYLIST), r.playlist.render().as_bytes())?;
        let end = p.pts + p.duration;
        self.observer.segment_written(name, p.duration, end);

        if !st.multivariant_written && st.renditions.values().all(|r| r.playlist.segments().next().is_some()) {
            self.write_multivariant(st)?;
        }
        self.delete_expired(st);
        Ok(())
    }

    fn write_multivariant(&self, st: &mut State) -> std::io::Result<()> {
        let info = |name: &str, r: &Rendition| {
            let nominal = match r.kind {
                Kind::Video { nominal_bps, .. } | Kind::Audio { nominal_bps } => nominal_bps,
            };
            let average = if r.media.is_zero() {
                0
            } else {
                (r.bytes as f64 * 8.0 / r.media.as_secs_f64()) as u64
            };
            let (resolution, frame_rate) = match r.kind {
                Kind::Video { width, height, fps, .. } => (Some((width, height)), fps),
                Kind::Audio { .. } => (None, None),
            };
            RenditionInfo {
                name: name.to_string(),
                uri: layout::media_playlist_uri(&self.session, name),
                codec: r.codec.clone().unwrap_or_default(),
                // Peak: the larger of what was asked of the encoder and what
                // the first segment measured, with headroom for later peaks.
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
            .filter(|(_, r)| r.playlist.segments().next().is_some())
        {
            match r.kind {
                Kind::Video { .. } => video.push(info(name, r)),
                Kind::Audio { .. } => audio = Some(info(name, r)),
            }
        }
        if video.is_empty() {
            return Ok(());
        }
        let text = multivariant::render(&video, audio.as_ref());
        write_atomic(&self.stream_dir.join(PLAYLIST), text.as_bytes())?;
        st.multivariant_written = true;
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
                self.complete_segment(&mut st, name)?;
            }
        }
        if !st.multivariant_written {
            self.write_multivariant(&mut st)?;
        }
        for r in st.renditions.values_mut() {
            r.playlist.end();
            if r.playlist.segments().next().is_some() {
                write_atomic(&r.dir.join(PLAYLIST), r.playlist.render().as_bytes())?;
            }
        }
        st.ended = true;
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
            Duration::ZERO,
            Arc::new(Quiet),
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

        w.finish().unwrap();
        let media = std::fs::read_to_string(root.join("s1/audio/index.m3u8")).unwrap();
        assert!(media.contains("#EXT-X-ENDLIST"));
        assert_eq!(w.written_media(), Duration::from_secs(12));
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
