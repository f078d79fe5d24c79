//! Keeps the output folder bounded: removes ended sessions after the
//! retention, and enforces `--max-disk`.
//!
//! The live session's old segments are deleted by the packager itself (after
//! a grace period), so a live session's size is bounded by its playlist
//! window. This sweep handles the rest, session by session: sessions that
//! ended (including old sessions of a stream that is live again with a new
//! session), sessions of an origin that crashed, and a stream's folder and
//! multivariant playlist once none of its sessions is left.
//!
//! Recordings (sessions with `recording.json`, or a recorded session's
//! marker: see `package::vod`) have their own retention
//! (`--recording-retention`), counted from their `ended_at_ms`; other ended
//! sessions keep `--retain-ended`, counted from their last change. Both
//! survive a restart: the sweep reads only the disk.
//!
//! `--max-disk` bounds the bytes under the output folder, recordings
//! included. When a sweep finds more, it removes ended sessions before their
//! retention: unrecorded ones first, the one that ended longest ago first,
//! then recordings the same way; if live sessions alone are still over the bound,
//! new publishes are refused (live ones go on: each is bounded by its
//! window) until a sweep finds the folder under the bound again.
//!
//! Races with new publishes: a publish registers its session as live before
//! it creates the session's folder, and a sweep reads the live sessions
//! after listing the folders, so a folder it lists is either known live or
//! has ended. A stream folder is removed with `remove_dir`, which fails if a
//! new session appeared in it meanwhile.

use crate::package::vod;
use crate::publish::OriginContext;
use prometheus::{IntCounter, IntGauge, Registry};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Where the sweep stands, for metrics and `--max-disk` refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Bytes under the output folder after the sweep.
    pub bytes: u64,
    /// Session folders removed by this sweep.
    pub removed: u64,
    /// Still over `--max-disk` with nothing ended left to remove.
    pub full: bool,
    /// Ended recordings left on disk, and their bytes.
    pub recordings: u64,
    pub recording_bytes: u64,
}

/// How long ended sessions stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Sessions not recorded, from their last change (`--retain-ended`).
    pub ended: Duration,
    /// Recordings, from their end (`--recording-retention`).
    pub recordings: Duration,
}

/// The janitor's Prometheus metrics.
pub struct DiskMetrics {
    bytes: IntGauge,
    full: IntGauge,
    removed: IntCounter,
    recordings: IntGauge,
    recording_bytes: IntGauge,
}

impl DiskMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<DiskMetrics> {
        let m = DiskMetrics {
            bytes: IntGauge::new("origin_output_bytes", "Bytes under the output folder at the last sweep")?,
            full: IntGauge::new(
                "origin_output_full",
                "Whether the output folder is over --max-disk with nothing left the janitor can remove (1: new publishes are refused)",
            )?,
            removed: IntCounter::new(
                "origin_sessions_removed_total",
                "Ended session folders removed (retention passed or --max-disk reached)",
            )?,
            recordings: IntGauge::new(
                "origin_recordings",
                "Recordings (ended recorded sessions) on disk at the last sweep",
            )?,
            recording_bytes: IntGauge::new(
                "origin_recording_bytes",
                "Bytes of the recordings on disk at the last sweep (part of origin_output_bytes)",
            )?,
        };
        registry.register(Box::new(m.recordings.clone()))?;
        registry.register(Box::new(m.recording_bytes.clone()))?;
        registry.register(Box::new(m.bytes.clone()))?;
        registry.register(Box::new(m.full.clone()))?;
        registry.register(Box::new(m.removed.clone()))?;
        Ok(m)
    }
}

/// One session folder as found on disk.
struct SessionDir {
    stream: String,
    session: String,
    path: PathBuf,
    bytes: u64,
    /// When it ended: a recording's `ended_at_ms`, else the newest
    /// modification time inside (its last change).
    ended: SystemTime,
    recorded: bool,
}

/// Total size and newest mtime of everything under `dir` (two levels: a
/// session holds rendition folders of files).
fn measure(dir: &Path) -> (u64, SystemTime) {
    let mut bytes = 0;
    let mut newest = std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if let Ok(m) = meta.modified() {
                newest = newest.max(m);
            }
            if meta.is_dir() {
                if depth < 3 {
                    stack.push((entry.path(), depth + 1));
                }
            } else {
                bytes += meta.len();
            }
        }
    }
    (bytes, newest)
}

fn is_dir(e: &std::fs::DirEntry) -> bool {
    e.file_type().is_ok_and(|t| t.is_dir())
}

/// One sweep over `output_dir`. `live` gives the (stream, session) pairs
/// being published now; it is read after the folders are listed.
pub fn sweep(
    output_dir: &Path,
    live: impl FnOnce() -> Vec<(String, String)>,
    retention: Retention,
    max_disk: Option<u64>,
) -> Sweep {
    let mut sessions = vec![];
    let mut stream_dirs = vec![];
    let mut loose_bytes = 0;
    for stream in std::fs::read_dir(output_dir).into_iter().flatten().flatten() {
        let name = stream.file_name().to_string_lossy().into_owned();
        if !is_dir(&stream) {
            loose_bytes += stream.metadata().map_or(0, |m| m.len());
            continue;
        }
        for entry in std::fs::read_dir(stream.path()).into_iter().flatten().flatten() {
            if is_dir(&entry) {
                let path = entry.path();
                let (bytes, newest) = measure(&path);
                let recorded = vod::is_recorded(&path);
                let ended = match vod::read_meta(&path) {
                    Some(m) => SystemTime::UNIX_EPOCH + Duration::from_millis(m.ended_at_ms),
                    None => newest,
                };
                sessions.push(SessionDir {
                    stream: name.clone(),
                    session: entry.file_name().to_string_lossy().into_owned(),
                    path,
                    bytes,
                    ended,
                    recorded,
                });
            } else {
                loose_bytes += entry.metadata().map_or(0, |m| m.len());
            }
        }
        stream_dirs.push((name, stream.path()));
    }
    let live: HashSet<(String, String)> = live().into_iter().collect();
    let live_streams: HashSet<&str> = live.iter().map(|(s, _)| s.as_str()).collect();
    let now = SystemTime::now();
    let mut total = loose_bytes + sessions.iter().map(|s| s.bytes).sum::<u64>();
    let mut removed = 0;
    let mut remove = |s: &SessionDir, why: &str, total: &mut u64| match std::fs::remove_dir_all(&s.path) {
        Ok(()) => {
            *total = total.saturating_sub(s.bytes);
            removed += 1;
            tracing::info!(stream = %s.stream, session = %s.session, bytes = s.bytes, why, "removed ended session");
            true
        }
        Err(e) => {
            tracing::warn!(stream = %s.stream, session = %s.session, error = %e, "cannot remove ended session");
            false
        }
    };
    // Ended sessions: unrecorded ones first, then recordings; within each,
    // the one that ended longest ago first (the order --max-disk removes in).
    let mut ended: Vec<&SessionDir> = sessions
        .iter()
        .filter(|s| !live.contains(&(s.stream.clone(), s.session.clone())))
        .collect();
    ended.sort_by_key(|s| (s.recorded, s.ended));
    let mut kept = vec![];
    for s in ended {
        let age = now.duration_since(s.ended).unwrap_or_default();
        let keep_for = if s.recorded {
            retention.recordings
        } else {
            retention.ended
        };
        if age > keep_for {
            if !remove(s, "retention", &mut total) {
                kept.push(s);
            }
        } else {
            kept.push(s);
        }
    }
    let mut left = vec![];
    if let Some(max) = max_disk {
        for s in kept {
            if total > max && remove(s, "max-disk", &mut total) {
                continue;
            }
            left.push(s);
        }
    } else {
        left = kept;
    }
    let recordings: Vec<&&SessionDir> = left.iter().filter(|s| s.recorded).collect();
    // Streams not live whose sessions are all gone: their multivariant
    // playlist (and any temporary) goes, then the folder if it is empty.
    for (name, path) in stream_dirs {
        if live_streams.contains(name.as_str()) {
            continue;
        }
        let entries: Vec<_> = std::fs::read_dir(&path).into_iter().flatten().flatten().collect();
        if entries.iter().any(is_dir) {
            continue;
        }
        for e in entries {
            let bytes = e.metadata().map_or(0, |m| m.len());
            if std::fs::remove_file(e.path()).is_ok() {
                total = total.saturating_sub(bytes);
            }
        }
        if std::fs::remove_dir(&path).is_ok() {
            tracing::info!(stream = %name, "removed ended stream folder");
        }
    }
    Sweep {
        bytes: total,
        removed,
        full: max_disk.is_some_and(|max| total > max),
        recordings: recordings.len() as u64,
        recording_bytes: recordings.iter().map(|s| s.bytes).sum(),
    }
}

/// Sweeps every `min(retention, 2 s)` until the origin shuts down; keeps
/// the context's disk-full flag and the metrics current.
pub async fn run(ctx: Arc<OriginContext>, retention: Retention, max_disk: Option<u64>, metrics: DiskMetrics) {
    let period = retention
        .ended
        .min(retention.recordings)
        .clamp(Duration::from_millis(200), Duration::from_secs(2));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let c = ctx.clone();
        let Ok(s) =
            tokio::task::spawn_blocking(move || sweep(&c.output_dir, || c.live_sessions(), retention, max_disk)).await
        else {
            continue;
        };
        metrics.bytes.set(s.bytes as i64);
        metrics.removed.inc_by(s.removed);
        metrics.full.set(i64::from(s.full));
        metrics.recordings.set(s.recordings as i64);
        metrics.recording_bytes.set(s.recording_bytes as i64);
        if s.full && !ctx.disk_full() {
            tracing::error!(
                bytes = s.bytes,
                max_disk = max_disk.unwrap_or(0),
                "output folder over --max-disk with nothing left to remove (live sessions, or ended ones that could not be removed): refusing new publishes"
            );
        } else if !s.full && ctx.disk_full() {
            tracing::info!(
                bytes = s.bytes,
                "output folder under --max-disk again: accepting publishes"
            );
        }
        ctx.set_disk_full(s.full);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(root: &Path, stream: &str, session: &str, bytes: usize) {
        let d = root.join(stream).join(session).join("360p");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("0.m4s"), vec![0u8; bytes]).unwrap();
        std::fs::write(root.join(stream).join("index.m3u8"), "#EXTM3U\n").unwrap();
    }

    fn keep(d: Duration) -> Retention {
        Retention {
            ended: d,
            recordings: d,
        }
    }

    /// A finished recording that ended `ago`.
    fn recording(root: &Path, stream: &str, session: &str, bytes: usize, ago: Duration) {
        self::session(root, stream, session, bytes);
        let ended = SystemTime::now() - ago;
        let meta = api_types::RecordingMeta {
            stream: stream.into(),
            session: session.into(),
            started_at_ms: vod::ms_since_epoch(ended - Duration::from_secs(20)),
            ended_at_ms: vod::ms_since_epoch(ended),
            duration_s: 20.0,
            renditions: vec![],
        };
        std::fs::write(
            root.join(stream).join(session).join(api_types::layout::RECORDING_META),
            serde_json::to_vec(&meta).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn recordings_keep_their_own_retention_from_their_end() {
        let d = tempfile::tempdir().unwrap();
        recording(d.path(), "rec", "r1", 10, Duration::from_secs(30));
        recording(d.path(), "rec", "r2", 10, Duration::from_secs(7200));
        session(d.path(), "rec", "plain", 10);
        let retention = Retention {
            ended: Duration::ZERO,
            recordings: Duration::from_secs(3600),
        };
        let s = sweep(d.path(), live(&[]), retention, None);
        assert!(!d.path().join("rec/plain").exists(), "unrecorded: --retain-ended");
        assert!(
            !d.path().join("rec/r2").exists(),
            "ended two hours ago (its files are new)"
        );
        assert!(d.path().join("rec/r1/360p/0.m4s").exists());
        assert_eq!((s.removed, s.recordings), (2, 1));
        assert!(s.recording_bytes > 10, "{s:?}");
    }

    #[test]
    fn max_disk_takes_unrecorded_sessions_before_recordings() {
        let d = tempfile::tempdir().unwrap();
        // The recording is the oldest, yet goes last.
        recording(d.path(), "a", "r1", 1000, Duration::from_secs(600));
        session(d.path(), "a", "s1", 1000);
        let s = sweep(d.path(), live(&[]), keep(Duration::from_secs(3600)), Some(1500));
        assert!(!d.path().join("a/s1").exists() && d.path().join("a/r1").exists());
        assert_eq!(s.recordings, 1);
        let s = sweep(d.path(), live(&[]), keep(Duration::from_secs(3600)), Some(100));
        assert!(!d.path().join("a").exists());
        assert_eq!((s.recordings, s.full), (0, false));
    }

    fn live(pairs: &[(&str, &str)]) -> impl FnOnce() -> Vec<(String, String)> {
        let v: Vec<_> = pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        move || v
    }

    #[test]
    fn ended_sessions_go_after_the_retention_even_when_the_stream_is_live_again() {
        let d = tempfile::tempdir().unwrap();
        session(d.path(), "golive", "s1", 10);
        session(d.path(), "golive", "s2", 10);
        session(d.path(), "ended", "s3", 10);
        let s = sweep(
            d.path(),
            live(&[("golive", "s2")]),
            keep(Duration::from_secs(3600)),
            None,
        );
        assert_eq!(s.removed, 0, "fresh output is kept");
        assert!(d.path().join("golive/s1").exists() && d.path().join("ended/s3").exists());

        let s = sweep(d.path(), live(&[("golive", "s2")]), keep(Duration::ZERO), None);
        assert_eq!(s.removed, 2);
        assert!(
            !d.path().join("golive/s1").exists(),
            "the live stream's old session goes"
        );
        assert!(d.path().join("golive/s2/360p/0.m4s").exists(), "the live session stays");
        assert!(d.path().join("golive/index.m3u8").exists());
        assert!(!d.path().join("ended").exists(), "an ended stream's folder goes");
        assert!(!s.full);
    }

    #[test]
    fn max_disk_removes_the_oldest_ended_sessions_first_then_reports_full() {
        let d = tempfile::tempdir().unwrap();
        session(d.path(), "a", "s1", 1000);
        // Distinct mtimes: s1 ended before s2.
        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(d.path().join("a/s1/360p/0.m4s"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        for p in ["a/s1/360p", "a/s1"] {
            std::fs::File::open(d.path().join(p))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        session(d.path(), "a", "s2", 1000);
        session(d.path(), "b", "s3", 1000);
        let hour = keep(Duration::from_secs(3600));
        // 3000 bytes of segments (plus playlists); bound 2500: only s1 goes.
        let s = sweep(d.path(), live(&[("b", "s3")]), hour, Some(2500));
        assert_eq!(s.removed, 1);
        assert!(!d.path().join("a/s1").exists() && d.path().join("a/s2").exists());
        assert!(!s.full && s.bytes <= 2500, "{s:?}");
        // Bound 500: s2 goes too, and the live s3 alone is over: full.
        let s = sweep(d.path(), live(&[("b", "s3")]), hour, Some(500));
        assert!(!d.path().join("a").exists());
        assert!(
            d.path().join("b/s3/360p/0.m4s").exists(),
            "live sessions are never removed"
        );
        assert!(s.full, "{s:?}");
    }
}
