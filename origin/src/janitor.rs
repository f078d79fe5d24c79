//! Removes what the origin no longer serves: session folders of streams
//! that are not being published, once they are older than the retention.
//!
//! The live session's old segments are deleted by the packager itself (after
//! a grace period). This sweep handles the rest: ended sessions, sessions of
//! an origin that crashed, and multivariant playlists pointing at them.

use crate::publish::OriginContext;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Newest modification time of anything directly in `dir` or one level down.
fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = std::fs::metadata(dir).ok()?.modified().ok();
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let m = entry.metadata().ok().and_then(|m| m.modified().ok());
        newest = newest.max(m);
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            for inner in std::fs::read_dir(entry.path()).into_iter().flatten().flatten() {
                newest = newest.max(inner.metadata().ok().and_then(|m| m.modified().ok()));
            }
        }
    }
    newest
}

/// One sweep: deletes session folders (and then empty stream folders) of
/// streams not live on this origin, untouched for `retention`.
pub fn sweep(output_dir: &Path, live: &[String], retention: Duration) {
    let Ok(streams) = std::fs::read_dir(output_dir) else {
        return;
    };
    let now = SystemTime::now();
    for stream in streams.flatten() {
        let name = stream.file_name().to_string_lossy().into_owned();
        if live.contains(&name) || !stream.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let stale = newest_mtime(&stream.path()).is_none_or(|m| now.duration_since(m).unwrap_or_default() > retention);
        if stale {
            match std::fs::remove_dir_all(stream.path()) {
                Ok(()) => tracing::info!(stream = %name, "removed ended stream output"),
                Err(e) => tracing::warn!(stream = %name, error = %e, "cannot remove ended stream output"),
            }
        }
    }
}

pub async fn run(ctx: Arc<OriginContext>, retention: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(5).min(retention));
    loop {
        tick.tick().await;
        let (dir, live) = (ctx.output_dir.clone(), ctx.live_streams());
        let _ = tokio::task::spawn_blocking(move || sweep(&dir, &live, retention)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_stale_streams_that_are_not_live() {
        let d = tempfile::tempdir().unwrap();
        for s in ["live1", "ended"] {
            std::fs::create_dir_all(d.path().join(s).join("sess/720p")).unwrap();
            std::fs::write(d.path().join(s).join("index.m3u8"), "#EXTM3U\n").unwrap();
        }
        sweep(d.path(), &["live1".into()], Duration::from_secs(3600));
        assert!(d.path().join("ended").exists(), "fresh output is kept");
        sweep(d.path(), &["live1".into()], Duration::ZERO);
        assert!(!d.path().join("ended").exists());
        assert!(d.path().join("live1/index.m3u8").exists());
    }
}
