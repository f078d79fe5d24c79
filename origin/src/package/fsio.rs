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
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(contents)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
