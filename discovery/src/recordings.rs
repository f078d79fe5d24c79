//! Finding complete recordings in a stream folder and judging each one.
//!
//! The origin writes `{stream}/{session}/recording.json`
//! (`api_types::layout::RECORDING_META`) last, after the recording's VOD
//! playlists, so its presence means the recording is complete. The file is
//! input from disk, treated as hostile: only a regular file (never a link, a
//! FIFO or a device), read up to [`MAX_META_BYTES`], parsed as
//! [`RecordingMeta`] and checked (its stream and session are the folders'
//! names, times and duration make sense, renditions are few and named like
//! ours, `vod.m3u8` is beside it). Anything else is not a recording. Like
//! [`crate::inspect`], this only reads files.

use api_types::layout::{RECORDING_META, VOD_PLAYLIST};
use api_types::{MAX_RENDITIONS, RecordingMeta, RecordingReport, validate_name, validate_session};
use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

/// Largest `recording.json` read; a real one is well under 4 KiB.
pub const MAX_META_BYTES: u64 = 64 * 1024;
/// Longest recording believed, in seconds (a week).
const MAX_DURATION_S: f64 = 7.0 * 24.0 * 3600.0;
/// Most session folders looked at in one stream folder per judgement.
pub const MAX_SESSIONS_PER_STREAM: usize = 10_000;

/// A `recording.json` as found on disk: what identifies its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub modified: Option<SystemTime>,
    pub len: u64,
}

/// The sessions of `stream_dir` that have a `recording.json` regular file,
/// with its stamp. Folders that are not session names are skipped.
pub fn candidates(stream_dir: &Path) -> Vec<(String, Stamp)> {
    let Ok(entries) = std::fs::read_dir(stream_dir) else {
        return vec![];
    };
    entries
        .filter_map(Result::ok)
        .take(MAX_SESSIONS_PER_STREAM)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|s| validate_session(s).is_ok())
        .filter_map(|session| {
            let meta = std::fs::symlink_metadata(stream_dir.join(&session).join(RECORDING_META)).ok()?;
            meta.file_type().is_file().then(|| {
                let stamp = Stamp {
                    modified: meta.modified().ok(),
                    len: meta.len(),
                };
                (session, stamp)
            })
        })
        .collect()
}

/// Reads and checks `{stream_dir}/{session}/recording.json`: the report to
/// send, or why it is not a recording.
pub fn judge(stream_dir: &Path, stream: &str, session: &str, advertise: &str) -> Result<RecordingReport, &'static str> {
    let dir = stream_dir.join(session);
    let path = dir.join(RECORDING_META);
    let meta = std::fs::symlink_metadata(&path).map_err(|_| "no recording.json")?;
    if !meta.file_type().is_file() {
        return Err("recording.json is not a regular file");
    }
    if meta.len() > MAX_META_BYTES {
        return Err("recording.json is too large");
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_META_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|_| "recording.json cannot be read")?;
    if bytes.len() as u64 > MAX_META_BYTES {
        return Err("recording.json is too large");
    }
    let m: RecordingMeta = serde_json::from_slice(&bytes).map_err(|_| "recording.json is not valid")?;
    check(&m, stream, session)?;
    let vod = std::fs::symlink_metadata(dir.join(VOD_PLAYLIST)).map_err(|_| "no vod.m3u8 beside recording.json")?;
    if !vod.file_type().is_file() {
        return Err("vod.m3u8 is not a regular file");
    }
    Ok(RecordingReport {
        host: advertise.to_string(),
        started_at_ms: m.started_at_ms,
        ended_at_ms: m.ended_at_ms,
        duration_s: m.duration_s,
        renditions: m.renditions,
    })
}

/// The checks on a parsed `recording.json`.
fn check(m: &RecordingMeta, stream: &str, session: &str) -> Result<(), &'static str> {
    if m.stream != stream || m.session != session {
        return Err("recording.json names another stream or session");
    }
    validate_name("stream name", stream).map_err(|_| "not a stream name")?;
    validate_session(session).map_err(|_| "not a session name")?;
    if m.ended_at_ms < m.started_at_ms {
        return Err("recording.json ends before it starts");
    }
    if !m.duration_s.is_finite() || m.duration_s <= 0.0 || m.duration_s > MAX_DURATION_S {
        return Err("recording.json has an impossible duration");
    }
    if m.renditions.len() > MAX_RENDITIONS {
        return Err("recording.json lists too many renditions");
    }
    let too_long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.len() > 128);
    for r in &m.renditions {
        if validate_name("rendition name", &r.name).is_err() || too_long(&r.resolution) || too_long(&r.codecs) {
            return Err("recording.json lists a bad rendition");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(stream: &str, session: &str) -> serde_json::Value {
        serde_json::json!({
            "stream": stream, "session": session, "started_at_ms": 1000, "ended_at_ms": 21000,
            "duration_s": 20.0, "renditions": [{"name": "720p", "bandwidth": 1000}]
        })
    }

    fn write(dir: &Path, rel: &str, body: &[u8]) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    #[test]
    fn a_complete_recording_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("golive");
        write(&s, "s1/vod.m3u8", b"#EXTM3U\n");
        write(&s, "s1/recording.json", meta("golive", "s1").to_string().as_bytes());
        let found = candidates(&s);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "s1");
        let r = judge(&s, "golive", "s1", "127.0.0.1:1").unwrap();
        assert_eq!((r.started_at_ms, r.ended_at_ms, r.duration_s), (1000, 21000, 20.0));
        assert_eq!(r.host, "127.0.0.1:1");
        assert_eq!(r.renditions[0].name, "720p");
    }

    #[test]
    fn hostile_recording_files_are_not_recordings() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("golive");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("huge", vec![b' '; MAX_META_BYTES as usize + 1]),
            ("garbage", b"\x00\x01{".to_vec()),
            ("other", meta("other", "other").to_string().into_bytes()),
            ("neg", {
                let mut m = meta("golive", "neg");
                m["duration_s"] = serde_json::json!(-1.0);
                m.to_string().into_bytes()
            }),
            ("back", {
                let mut m = meta("golive", "back");
                m["ended_at_ms"] = serde_json::json!(10);
                m.to_string().into_bytes()
            }),
            ("rend", {
                let mut m = meta("golive", "rend");
                m["renditions"] = serde_json::json!([{"name": "../x"}]);
                m.to_string().into_bytes()
            }),
        ];
        for (session, body) in &cases {
            write(&s, &format!("{session}/vod.m3u8"), b"#EXTM3U\n");
            write(&s, &format!("{session}/recording.json"), body);
            assert!(judge(&s, "golive", session, "127.0.0.1:1").is_err(), "{session}");
        }
        // No VOD playlist beside it.
        write(
            &s,
            "novod/recording.json",
            meta("golive", "novod").to_string().as_bytes(),
        );
        assert_eq!(
            judge(&s, "golive", "novod", "127.0.0.1:1"),
            Err("no vod.m3u8 beside recording.json")
        );
        // A link is not followed; a folder that is not a session is skipped.
        std::os::unix::fs::symlink("/dev/zero", s.join("huge/link.json")).unwrap();
        std::fs::create_dir_all(s.join("link")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", s.join("link/recording.json")).unwrap();
        write(
            &s,
            "Bad.Name/recording.json",
            meta("golive", "Bad.Name").to_string().as_bytes(),
        );
        let names: Vec<String> = candidates(&s).into_iter().map(|(n, _)| n).collect();
        assert!(!names.contains(&"link".to_string()) && !names.contains(&"Bad.Name".to_string()));
        assert_eq!(
            judge(&s, "golive", "link", "127.0.0.1:1"),
            Err("recording.json is not a regular file")
        );
    }
}
