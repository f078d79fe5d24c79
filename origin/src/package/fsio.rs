//! Atomic file creation and replacement for every object the packager
//! writes: playlists, init segments and media segments.
//!
//! Players, the HTTP server, the edge and the discovery agent read while the
//! packager writes. Writing a temporary file in the same folder and renaming
//! it into place makes every reader see either nothing (404) or the old
//! object, or the complete new one, never a truncated or half-written file
//! (rename(2) is atomic within a filesystem). An edge caches a 200 for a
//! long time, so a short segment served once would be served to everyone.
//!
//! Temporary names start with a dot, which no playlist or segment URI does:
//! the HTTP server's path check refuses them.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `contents` atomically.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("path has no parent folder"))?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?;
    // A dot-prefixed temporary name: never a valid playlist or segment URI.
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(contents))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        // Do not leave a half-written temporary file behind (disk full).
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader polling names ahead of the writer (as a player polls the
    /// next segment) sees nothing or the whole object, never a short one.
    /// With `std::fs::write` (truncate, then write) this fails at once.
    #[test]
    fn a_reader_polling_ahead_never_sees_a_partial_object() {
        const OBJECTS: usize = 100;
        const SIZE: usize = 1 << 20;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_path_buf();
        let reader = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                let mut reads = 0u64;
                for n in 0..OBJECTS {
                    let path = dir.join(format!("{n}.m4s"));
                    loop {
                        assert!(std::time::Instant::now() < deadline, "{n}.m4s never appeared");
                        match std::fs::read(&path) {
                            Ok(bytes) => {
                                reads += 1;
                                assert_eq!(bytes.len(), SIZE, "{n}.m4s read short");
                                break;
                            }
                            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
                        }
                    }
                }
                reads
            })
        };
        let data = vec![7u8; SIZE];
        for n in 0..OBJECTS {
            write_atomic(&dir.join(format!("{n}.m4s")), &data).unwrap();
        }
        assert_eq!(reader.join().unwrap(), OBJECTS as u64);
    }

    #[test]
    fn replaces_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("index.m3u8");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["index.m3u8"]);
    }

    /// A write that fails (here the rename: a folder holds the name) leaves
    /// no temporary file behind.
    #[test]
    fn a_failed_write_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("index.m3u8");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("inside"), b"x").unwrap();
        assert!(write_atomic(&p, b"one").is_err());
        assert!(!d.path().join(".index.m3u8.tmp").exists(), "the temporary is left");
    }
}
