//! Fuzz target: the discovery agent's playlist reading
//! (`discovery/src/inspect.rs`, compiled in from its source: discovery is a
//! binary crate). The input is a multivariant playlist and a media playlist
//! separated by a NUL byte, written where the layout puts them; `inspect`
//! reads the folder as the agent does.
#![no_main]

#[path = "../../discovery/src/inspect.rs"]
#[allow(dead_code)]
mod inspect;

use std::sync::OnceLock;
use std::time::SystemTime;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"));
    let (master, media) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let stream = dir.path().join("s");
    let rendition = stream.join("18c0ffee00000001/720p");
    std::fs::create_dir_all(&rendition).expect("folders");
    std::fs::write(stream.join("index.m3u8"), master).expect("write");
    std::fs::write(rendition.join("index.m3u8"), media).expect("write");
    let ctx = inspect::Context {
        output_dir: dir.path(),
        advertise: "127.0.0.1:8080",
        stale_after: None,
    };
    let _ = inspect::inspect(&ctx, "s", SystemTime::now());
    let _ = m3u8_rs::parse_media_playlist_res(media);
});
