//! Recordings: a recorded session kept after it ends as a VOD.
//!
//! A session whose stream has `record` set keeps every segment on disk (no
//! window deletion) and, when it ends, gets (see `api_types::layout`):
//! `{session}/{rendition}/vod.m3u8` for each rendition (EXT-X-PLAYLIST-TYPE:VOD,
//! every segment of the session, ENDLIST, no LL tags), `{session}/vod.m3u8`
//! (the live multivariant playlist's variants, pointing at those), then
//! `{session}/recording.json` (`api_types::RecordingMeta`), last, so its
//! presence means the recording is complete. Every file is written
//! atomically ([`write_atomic`]). The init and media segments are the live
//! session's own files: nothing is copied.
//!
//! [`write_recording`] is the one function that writes those files from the
//! per-rendition segment lists; whatever else describes a recording (a
//! static DASH MPD) is written beside it from the same lists.
//!
//! Crashes: a recorded session also keeps, while live, a marker
//! ([`MARKER`], JSON: what the recording's metadata and multivariant
//! playlist need) and an append-only log of its segments per rendition
//! ([`SEGMENT_LOG`], one line per segment: sequence, date, duration). Both
//! are dot-files, never served. When the origin starts again after a crash,
//! [`recover`] finalizes every session with a marker and no
//! `recording.json` from them, checking each logged segment is on disk.
//! The log costs one small append per segment; the in-memory lists stay
//! what a normal end writes from.

use super::fsio::write_atomic;
use super::playlist::{extinf, pdt};
use api_types::layout::{INIT_SEGMENT, RECORDING_META, VOD_PLAYLIST};
use api_types::{RecordingMeta, Rendition};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `{session}/.recording`: a recorded session's marker, written when the
/// session starts and again once its multivariant playlist exists.
pub const MARKER: &str = ".recording";
/// `{session}/{rendition}/.segments`: a recorded rendition's segment log.
pub const SEGMENT_LOG: &str = ".segments";

/// One segment of a recording.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VodSegment {
    pub sequence: u64,
    pub program_date_time: SystemTime,
    pub duration: Duration,
}

/// One rendition of a recording: its name (folder) and every segment.
#[derive(Debug, Clone, PartialEq)]
pub struct VodRendition {
    pub name: String,
    /// EXT-X-TARGETDURATION (the live playlist's).
    pub target_duration: u64,
    pub segments: Vec<VodSegment>,
}

impl VodRendition {
    pub fn duration(&self) -> Duration {
        self.segments.iter().map(|s| s.duration).sum()
    }
}

/// What the marker holds: enough to finalize the recording from disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    pub stream: String,
    pub session: String,
    /// EXT-X-TARGETDURATION of every rendition.
    pub target_duration: u64,
    /// Wall-clock time of the session's first media, once known.
    #[serde(default)]
    pub started_at_ms: Option<u64>,
    /// The recording's multivariant playlist, once every rendition has a
    /// segment (it lists `{rendition}/vod.m3u8`).
    #[serde(default)]
    pub multivariant: Option<String>,
    #[serde(default)]
    pub renditions: Vec<Rendition>,
}

impl Marker {
    pub fn write(&self, session_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        write_atomic(&session_dir.join(MARKER), &json)
    }
}

pub fn ms_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The VOD media playlist of one rendition.
pub fn render_media(r: &VodRendition) -> String {
    let mut out = String::with_capacity(256 + 80 * r.segments.len());
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", r.target_duration);
    out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    let _ = writeln!(
        out,
        "#EXT-X-MEDIA-SEQUENCE:{}",
        r.segments.first().map_or(0, |s| s.sequence)
    );
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = writeln!(out, "#EXT-X-MAP:URI=\"{INIT_SEGMENT}\"");
    // Every segment carries its date, so a segment missing in between (lost
    // in a crash) leaves a gap players see on the PROGRAM-DATE-TIME timeline.
    for s in &r.segments {
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", pdt(s.program_date_time));
        let _ = writeln!(out, "#EXTINF:{},\n{}.m4s", extinf(s.duration), s.sequence);
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// A finished session to write as a recording: what [`write_recording`]
/// (and any other writer of a recording's manifests) reads.
#[derive(Debug, Clone, Copy)]
pub struct Recording<'a> {
    pub stream: &'a str,
    pub session: &'a str,
    pub started_at_ms: u64,
    pub ended_at_ms: u64,
    /// `{session}/vod.m3u8`: variants pointing at `{rendition}/vod.m3u8`.
    pub multivariant: &'a str,
    /// Every rendition's segments (renditions without any are left out).
    pub renditions: &'a [VodRendition],
    /// The renditions as `recording.json` lists them.
    pub info: &'a [Rendition],
}

/// Writes a recording's files under `session_dir`: each rendition's
/// `vod.m3u8`, then the multivariant `vod.m3u8`, then `recording.json`.
/// Returns the metadata written.
pub fn write_recording(session_dir: &Path, rec: &Recording<'_>) -> std::io::Result<RecordingMeta> {
    let with_media: Vec<&VodRendition> = rec.renditions.iter().filter(|r| !r.segments.is_empty()).collect();
    if with_media.is_empty() {
        return Err(std::io::Error::other("a recording without any segment"));
    }
    for r in &with_media {
        write_atomic(
            &session_dir.join(&r.name).join(VOD_PLAYLIST),
            render_media(r).as_bytes(),
        )?;
    }
    write_atomic(&session_dir.join(VOD_PLAYLIST), rec.multivariant.as_bytes())?;
    // The same recording as a static DASH MPD, over the same segments.
    if let Some(mpd) = static_mpd(rec, &with_media) {
        write_atomic(&session_dir.join(api_types::layout::MPD), mpd.as_bytes())?;
    }
    let duration = with_media.iter().map(|r| r.duration()).max().unwrap_or_default();
    let meta = RecordingMeta {
        stream: rec.stream.to_string(),
        session: rec.session.to_string(),
        started_at_ms: rec.started_at_ms,
        ended_at_ms: rec.ended_at_ms.max(rec.started_at_ms),
        duration_s: (duration.as_secs_f64() * 1000.0).round() / 1000.0,
        renditions: rec
            .info
            .iter()
            .filter(|i| with_media.iter().any(|r| r.name == i.name))
            .cloned()
            .collect(),
    };
    let json = serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?;
    write_atomic(&session_dir.join(RECORDING_META), &json)?;
    Ok(meta)
}

/// A recording's static MPD (`package::mpd::render_static`): its renditions
/// as Representations, their segments on the session's timeline (the first
/// segment's PROGRAM-DATE-TIME is 0).
fn static_mpd(rec: &Recording<'_>, with_media: &[&VodRendition]) -> Option<String> {
    use super::mpd::{Media, Representation, SegmentTime, render_static};
    let origin = with_media
        .iter()
        .filter_map(|r| r.segments.first().map(|s| s.program_date_time))
        .min()?;
    let reps: Vec<Representation> = with_media
        .iter()
        .map(|r| {
            let info = rec.info.iter().find(|i| i.name == r.name);
            let media = info
                .and_then(|i| i.resolution.as_deref())
                .and_then(|res| res.split_once('x'))
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                .map_or(Media::Audio, |(width, height)| Media::Video {
                    width,
                    height,
                    fps: None,
                });
            Representation {
                id: r.name.clone(),
                media,
                codec: info.and_then(|i| i.codecs.clone()).unwrap_or_default(),
                bandwidth: info.and_then(|i| i.bandwidth).unwrap_or(0),
                segments: r
                    .segments
                    .iter()
                    .map(|s| SegmentTime {
                        number: s.sequence,
                        start: s.program_date_time.duration_since(origin).unwrap_or_default(),
                        duration: s.duration,
                    })
                    .collect(),
            }
        })
        .collect();
    let target = with_media
        .iter()
        .flat_map(|r| r.segments.iter().map(|s| s.duration))
        .max()
        .unwrap_or_default();
    render_static(rec.session, target, &reps)
}

/// Appends one segment to a rendition's log (`{rendition}/.segments`).
pub fn log_segment(rendition_dir: &Path, s: &VodSegment) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(rendition_dir.join(SEGMENT_LOG))?;
    // One write per line: a crash leaves at most a torn last line, which
    // `read_log` ignores.
    f.write_all(
        format!(
            "{} {} {}\n",
            s.sequence,
            ms_since_epoch(s.program_date_time),
            s.duration.as_micros()
        )
        .as_bytes(),
    )
}

/// A rendition's logged segments whose file is on disk.
fn read_log(rendition_dir: &Path) -> Vec<VodSegment> {
    let Ok(text) = std::fs::read_to_string(rendition_dir.join(SEGMENT_LOG)) else {
        return vec![];
    };
    let mut out: Vec<VodSegment> = vec![];
    for line in text.lines() {
        let mut f = line.split(' ').map(str::parse::<u64>);
        let (Some(Ok(sequence)), Some(Ok(at_ms)), Some(Ok(us)), None) = (f.next(), f.next(), f.next(), f.next()) else {
            continue;
        };
        if out.last().is_some_and(|l| l.sequence >= sequence)
            || !rendition_dir.join(format!("{sequence}.m4s")).is_file()
        {
            continue;
        }
        out.push(VodSegment {
            sequence,
            program_date_time: UNIX_EPOCH + Duration::from_millis(at_ms),
            duration: Duration::from_micros(us),
        });
    }
    out
}

/// Whether `session_dir` is a recorded session (finished or not).
pub fn is_recorded(session_dir: &Path) -> bool {
    session_dir.join(MARKER).is_file() || session_dir.join(RECORDING_META).is_file()
}

/// A finished recording's metadata, if `session_dir` holds one.
pub fn read_meta(session_dir: &Path) -> Option<RecordingMeta> {
    let bytes = std::fs::read(session_dir.join(RECORDING_META)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Finalizes every recorded session under `output_dir` that has no
/// `recording.json` (its origin stopped without ending it: a crash), from
/// its marker and segment logs. Called at start-up, before any publish.
/// Returns how many were finalized.
pub fn recover(output_dir: &Path) -> usize {
    let mut done = 0;
    let dirs = std::fs::read_dir(output_dir).into_iter().flatten().flatten();
    for stream in dirs.filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
        for session in std::fs::read_dir(stream.path()).into_iter().flatten().flatten() {
            let dir = session.path();
            if !dir.join(MARKER).is_file() || dir.join(RECORDING_META).exists() {
                continue;
            }
            match recover_one(&dir) {
                Ok(meta) => {
                    done += 1;
                    tracing::info!(stream = %meta.stream, session = %meta.session, duration_s = meta.duration_s,
                        "recording of a session cut short finalized from its segments on disk");
                }
                Err(e) => tracing::warn!(path = %dir.display(), error = %e, "cannot finalize a recording cut short"),
            }
        }
    }
    done
}

fn recover_one(dir: &Path) -> std::io::Result<RecordingMeta> {
    let marker: Marker = serde_json::from_slice(&std::fs::read(dir.join(MARKER))?).map_err(std::io::Error::other)?;
    let multivariant = marker
        .multivariant
        .as_deref()
        .ok_or_else(|| std::io::Error::other("the session never became playable"))?;
    let renditions: Vec<VodRendition> = marker
        .renditions
        .iter()
        .map(|r| VodRendition {
            name: r.name.clone(),
            target_duration: marker.target_duration,
            segments: read_log(&dir.join(&r.name)),
        })
        .collect();
    if renditions.iter().any(|r| r.segments.is_empty()) {
        return Err(std::io::Error::other(
            "a rendition of the recording has no segment on disk",
        ));
    }
    let ended_at_ms = renditions
        .iter()
        .filter_map(|r| r.segments.last())
        .map(|s| ms_since_epoch(s.program_date_time + s.duration))
        .max()
        .unwrap_or(0);
    let started_at_ms = marker.started_at_ms.unwrap_or_else(|| {
        renditions
            .iter()
            .filter_map(|r| r.segments.first())
            .map(|s| ms_since_epoch(s.program_date_time))
            .min()
            .unwrap_or(0)
    });
    write_recording(
        dir,
        &Recording {
            stream: &marker.stream,
            session: &marker.session,
            started_at_ms,
            ended_at_ms,
            multivariant,
            renditions: &renditions,
            info: &marker.renditions,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(n: u64) -> VodSegment {
        VodSegment {
            sequence: n,
            program_date_time: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 2 * n),
            duration: Duration::from_millis(2000),
        }
    }

    #[test]
    fn a_vod_playlist_lists_every_segment_and_ends() {
        let r = VodRendition {
            name: "360p".into(),
            target_duration: 2,
            segments: (0..100).map(seg).collect(),
        };
        let text = render_media(&r);
        let p = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(p.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
        assert!(p.end_list && p.independent_segments);
        assert_eq!(p.segments.len(), 100);
        assert_eq!(p.segments[0].map.as_ref().unwrap().uri, "init.mp4");
        assert!(p.segments.iter().all(|s| s.program_date_time.is_some()));
        assert!(!text.contains("PART") && !text.contains("SERVER-CONTROL"), "{text}");
    }

    #[test]
    fn a_session_cut_short_is_finalized_from_its_log() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("golive/s1");
        for r in ["360p", "audio"] {
            std::fs::create_dir_all(dir.join(r)).unwrap();
            for n in 0..5 {
                if n != 3 || r == "audio" {
                    std::fs::write(dir.join(r).join(format!("{n}.m4s")), b"x").unwrap();
                }
                log_segment(&dir.join(r), &seg(n)).unwrap();
            }
        }
        // A torn last line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("360p").join(SEGMENT_LOG))
            .unwrap()
            .write_all(b"5 17")
            .unwrap();
        let info = |name: &str| Rendition {
            name: name.into(),
            bandwidth: Some(1),
            resolution: None,
            codecs: None,
        };
        Marker {
            stream: "golive".into(),
            session: "s1".into(),
            target_duration: 2,
            started_at_ms: Some(1_700_000_000_000),
            multivariant: Some("#EXTM3U\n".into()),
            renditions: vec![info("360p"), info("audio")],
        }
        .write(&dir)
        .unwrap();
        assert_eq!(recover(d.path()), 1);
        let meta = read_meta(&dir).unwrap();
        assert_eq!(meta.ended_at_ms, 1_700_000_010_000);
        assert_eq!(meta.duration_s, 10.0);
        let video = std::fs::read_to_string(dir.join("360p/vod.m3u8")).unwrap();
        assert!(!video.contains("\n3.m4s") && video.contains("\n4.m4s"), "{video}");
        assert_eq!(recover(d.path()), 0, "finalized once");
    }
}
