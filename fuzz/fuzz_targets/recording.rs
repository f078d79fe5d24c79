//! Fuzz target: the discovery agent's reading of `recording.json`
//! (`discovery/src/recordings.rs`, compiled in from its source: discovery is
//! a binary crate). The input is the file's bytes, written where the layout
//! puts it, beside a VOD playlist; `candidates` and `judge` read the folder
//! as the agent does.
#![no_main]

#[path = "../../discovery/src/recordings.rs"]
#[allow(dead_code)]
mod recordings;

use std::sync::OnceLock;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"));
    let stream = dir.path().join("s");
    let session = stream.join("18c0ffee00000001");
    std::fs::create_dir_all(&session).expect("folders");
    std::fs::write(session.join("vod.m3u8"), "#EXTM3U\n").expect("write");
    std::fs::write(session.join("recording.json"), data).expect("write");
    let found = recordings::candidates(&stream);
    assert_eq!(found.len(), 1);
    if let Ok(report) = recordings::judge(&stream, "s", "18c0ffee00000001", "127.0.0.1:8080") {
        // What the agent sends is what the router accepts.
        assert!(report.ended_at_ms >= report.started_at_ms);
        assert!(report.duration_s.is_finite() && report.duration_s > 0.0);
        assert!(report.renditions.len() <= api_types::MAX_RENDITIONS);
    }
});
