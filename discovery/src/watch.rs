//! Watching the output folder: turns filesystem events into a set of dirty
//! stream names.
//!
//! The set is the only thing events produce, so a burst of events (every
//! segment of every rendition of every stream) costs one entry per stream,
//! and memory stays bounded by the number of stream folders however slow the
//! tracker is.

use crate::settings::WatchMode;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Stream names whose folders changed since the tracker last looked.
#[derive(Default)]
pub struct DirtySet {
    names: Mutex<HashSet<String>>,
    wake: Condvar,
}

impl DirtySet {
    pub fn mark(&self, name: String) {
        self.names.lock().expect("dirty lock").insert(name);
        self.wake.notify_one();
    }

    /// Waits up to `timeout` for dirty names and takes them all.
    pub fn take(&self, timeout: Duration) -> HashSet<String> {
        let guard = self.names.lock().expect("dirty lock");
        let (mut guard, _) = self
            .wake
            .wait_timeout_while(guard, timeout, |n| n.is_empty())
            .expect("dirty lock");
        std::mem::take(&mut *guard)
    }
}

/// Whether an event can change what a stream folder says. Reads do not:
/// opening or closing a file without writing it is an access event, and the
/// tracker's own reads cause them, so counting them would wake the tracker
/// forever. A close after writing is a finished write, and counts.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// The first path component under `root`: the stream folder an event is about.
fn stream_of(root: &Path, path: &Path) -> Option<String> {
    match path.strip_prefix(root).ok()?.components().next()? {
        Component::Normal(s) => s.to_str().map(str::to_owned),
        _ => None,
    }
}

/// Starts watching `root` recursively; events mark their stream dirty. The
/// returned watcher must be kept alive.
pub fn start(
    root: &Path,
    mode: WatchMode,
    poll_interval: Duration,
    dirty: std::sync::Arc<DirtySet>,
) -> notify::Result<Box<dyn Watcher + Send>> {
    // Events carry absolute paths; compare against the canonical root.
    let canonical: PathBuf = root.canonicalize()?;
    let handler = {
        let canonical = canonical.clone();
        move |res: notify::Result<Event>| match res {
            Ok(event) if !changes_content(&event.kind) => {}
            Ok(event) => {
                for p in &event.paths {
                    if let Some(name) = stream_of(&canonical, p) {
                        dirty.mark(name);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "watch error"),
        }
    };
    let poll = || -> notify::Result<Box<dyn Watcher + Send>> {
        let cfg = notify::Config::default().with_poll_interval(poll_interval);
        let mut w = PollWatcher::new(handler.clone(), cfg)?;
        w.watch(&canonical, RecursiveMode::Recursive)?;
        tracing::info!(interval = ?poll_interval, "watching by polling");
        Ok(Box::new(w))
    };
    let inotify = || -> notify::Result<Box<dyn Watcher + Send>> {
        let mut w = RecommendedWatcher::new(handler.clone(), notify::Config::default())?;
        w.watch(&canonical, RecursiveMode::Recursive)?;
        tracing::info!("watching with filesystem events");
        Ok(Box::new(w))
    };
    match mode {
        WatchMode::Poll => poll(),
        WatchMode::Inotify => inotify(),
        WatchMode::Auto => inotify().or_else(|e| {
            tracing::warn!(error = %e, "filesystem events unavailable; falling back to polling");
            poll()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_map_to_stream_folders() {
        let root = Path::new("/out");
        assert_eq!(
            stream_of(root, Path::new("/out/golive/s1/720p/3.m4s")),
            Some("golive".into())
        );
        assert_eq!(stream_of(root, Path::new("/out/golive")), Some("golive".into()));
        assert_eq!(stream_of(root, Path::new("/out")), None);
        assert_eq!(stream_of(root, Path::new("/elsewhere/x")), None);
    }

    #[test]
    fn reads_are_not_changes() {
        use notify::event::{CreateKind, ModifyKind};
        assert!(!changes_content(&EventKind::Access(AccessKind::Open(AccessMode::Any))));
        assert!(!changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!changes_content(&EventKind::Access(AccessKind::Read)));
        assert!(changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(changes_content(&EventKind::Create(CreateKind::File)));
        assert!(changes_content(&EventKind::Modify(ModifyKind::Any)));
    }

    #[test]
    fn dirty_set_dedupes() {
        let d = DirtySet::default();
        d.mark("a".into());
        d.mark("a".into());
        d.mark("b".into());
        assert_eq!(d.take(Duration::ZERO).len(), 2);
        assert!(d.take(Duration::from_millis(1)).is_empty());
    }
}
