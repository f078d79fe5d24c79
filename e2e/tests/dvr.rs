//! DVR through the edge in a browser: ffmpeg publishes to an origin whose
//! profile has a 60 s time-shift window (`origin/tests/dvr-profiles.toml`,
//! low-latency HLS), and headless Chromium plays the edge's player page
//! (`e2e/browser/dvr.mjs` drives it). Once the window has filled, the page's
//! seek bar goes back to the start of the window (about a minute behind
//! live) and playback goes on there; "Go live" then brings it back to the
//! live edge, latency back near what it was. A live-only stream beside it
//! shows no seek bar. The same with plain HLS and the same window
//! (`dvr-plain`), whose delta updates the page also asks for.

use serde::Deserialize;
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::stack::{H264, Stack, ffmpeg_publish};
use testkit::{Process, http_get, wait_until};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Sample {
    t: f64,
    phase: String,
    current_time: f64,
    state: Option<String>,
    latency: Option<f64>,
    behind: Option<f64>,
    dvr_window: Option<f64>,
    dvr_visible: bool,
    seek_start: f64,
    seek_end: f64,
    restarts: u32,
    errors: Vec<String>,
    page_errors: Vec<String>,
}

/// Runs `dvr.mjs` on `url` to its end (at most `seconds`); its samples.
fn drive(url: &str, seconds: u32, min_window: u32) -> (Vec<Sample>, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci --prefix e2e/browser` (scripts/setup.sh does)"
    );
    let script = dir.join("dvr.mjs");
    let (secs, min) = (seconds.to_string(), min_window.to_string());
    let args = [script.as_os_str(), url.as_ref(), secs.as_ref(), min.as_ref()];
    let mut p = Process::spawn("chromium-dvr", "node", args, &[]);
    let deadline = Instant::now() + Duration::from_secs(u64::from(seconds) + 30);
    while p.is_running() && Instant::now() < deadline {
        // The poll interval of a bounded wait for the driver's exit.
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = p.log();
    let samples = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (samples, log)
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(6)..].join("\n")
}

#[test]
fn the_player_seeks_back_in_the_dvr_window_and_goes_live_again() {
    let mut stack = Stack::new();
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../origin/tests/dvr-profiles.toml");
    let rtmp = stack.add_origin_profiles("origin-dvr", &profiles, &[]).rtmp;
    let edge = stack.add_edge(&["--cache-size", "64MiB"]);
    let dvr_key = stack.create_stream_with("timeshift", Some("dvr"));
    let plain_key = stack.create_stream_with("timeshiftplain", Some("dvr-plain"));
    let live_key = stack.create_stream_with("liveonly", Some("ll-passthrough"));
    let _dvr_pub = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{dvr_key}"), "flv", 200, H264);
    let _plain_pub = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{plain_key}"), "flv", 200, H264);
    let _live_pub = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{live_key}"), "flv", 60, H264);
    for s in ["timeshift", "timeshiftplain", "liveonly"] {
        wait_until("the stream playable on the edge", Duration::from_secs(30), || {
            matches!(http_get(edge, &format!("/{s}/index.m3u8")), Some((200, _)))
        });
    }

    // A live-only window: the page plays as before, without a seek bar (the
    // driver never finds one, so it stays in its first phase).
    let (samples, log) = drive(&format!("http://{edge}/watch/liveonly"), 25, 50);
    let playing: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.state.as_deref() == Some("playing"))
        .collect();
    assert!(playing.len() >= 10, "plays: {}", tail(&log));
    assert!(
        samples
            .iter()
            .all(|s| !s.dvr_visible && s.dvr_window.is_none() && s.phase == "live"),
        "no DVR controls for a live-only stream: {}",
        tail(&log)
    );

    // The DVR streams: LL-HLS, then plain HLS (its window filled meanwhile).
    for name in ["timeshift", "timeshiftplain"] {
        let (samples, log) = drive(&format!("http://{edge}/watch/{name}"), 150, 57);
        check_dvr(name, &samples, &log);
    }
}

/// A DVR stream's run of the driver: live, then a minute back, then live
/// again.
fn check_dvr(name: &str, samples: &[Sample], log: &str) {
    let phase = |p: &str| -> Vec<&Sample> { samples.iter().filter(|s| s.phase == p).collect() };
    let (live, dvr, again) = (phase("live"), phase("dvr"), phase("golive"));
    assert!(
        !dvr.is_empty() && !again.is_empty(),
        "the driver got through: {}",
        tail(log)
    );
    let at_live = live.last().unwrap();
    println!("{name}: at the live edge: {at_live:?}");
    let normal = at_live.latency.expect("latency shown");
    // The page saw the window (the driver waited for 57 s of it); the seek
    // bar covers it up to the live sync position (hold-back behind the end).
    assert!(at_live.dvr_window.unwrap() >= 57.0, "{at_live:?}");
    assert!(
        at_live.dvr_visible && at_live.seek_end - at_live.seek_start >= 45.0,
        "{at_live:?}"
    );
    // Seeked back: playback goes on about a minute behind live.
    let back: Vec<&&Sample> = dvr.iter().filter(|s| s.t - dvr[0].t >= 6.0).collect();
    assert!(back.len() >= 10, "{}", tail(log));
    for s in &back {
        assert!(s.behind.unwrap_or(0.0) >= 40.0, "still in the past: {s:?}");
        assert!(s.latency.unwrap_or(0.0) >= normal + 40.0, "{s:?} (live: {normal} s)");
    }
    let (first, last) = (back.first().unwrap(), back.last().unwrap());
    assert!(
        last.current_time - first.current_time >= (last.t - first.t) * 0.7,
        "plays on in the past: {first:?} -> {last:?}"
    );
    assert_eq!(last.state.as_deref(), Some("playing"), "{last:?}");
    println!("{name}: in the past: {last:?}");
    // Go live: back near the latency it had.
    for s in &again {
        println!(
            "{name}: go live: t {:.1} pos {:.1} latency {:?} behind {:?} state {:?} window {:.1}..{:.1}",
            s.t, s.current_time, s.latency, s.behind, s.state, s.seek_start, s.seek_end
        );
    }
    let back_live: Vec<&&Sample> = again.iter().filter(|s| s.t - again[0].t >= 8.0).collect();
    assert!(!back_live.is_empty(), "{}", tail(log));
    for s in &back_live {
        let l = s.latency.unwrap_or(f64::MAX);
        assert!(l <= normal + 4.0, "back to live: {s:?} (was {normal} s)");
        assert!(s.behind.unwrap_or(f64::MAX) <= 6.0, "{s:?}");
    }
    let end = samples.last().unwrap();
    assert_eq!(end.state.as_deref(), Some("playing"), "{end:?}");
    assert_eq!(end.restarts, 0, "no fatal error: {:?}", end.errors);
    assert!(end.page_errors.is_empty(), "{:?}", end.page_errors);
    println!("{name}: live again: {end:?}");
}
