//! Low-latency HLS as a viewer sees it: ffmpeg publishes to an origin whose
//! profile has parts, headless Chromium plays the edge's player page, and
//! the page runs hls.js in low-latency mode: it loads parts, does not stall,
//! and shows a latency well under plain HLS on the same page. A plain profile
//! (the same ladder without parts) plays on the same page in plain mode, and
//! ffprobe plays the LL stream through the edge.
//!
//! The profiles are this test's own (written to a temporary file): two small
//! rungs with the production segment length (2 s), so that the figures compare
//! with `loadtest/bench/latency.sh`.

use e2e::{Player, Sample};
use std::process::Command;
use std::time::Duration;
use testkit::stack::{ADMIN_TOKEN, Stack};
use testkit::{http_get, wait_until};

const PROFILES: &str = r#"
[profiles.ll]
segment_duration = "2s"
part_target = "334ms"
audio_bitrate_kbps = 64
rungs = [
  { name = "360p", height = 360, video_bitrate_kbps = 500, fps = 15, preset = "ultrafast" },
  { name = "180p", height = 180, video_bitrate_kbps = 200, fps = 15, preset = "ultrafast" },
]

[profiles.plain]
segment_duration = "2s"
audio_bitrate_kbps = 64
rungs = [
  { name = "360p", height = 360, video_bitrate_kbps = 500, fps = 15, preset = "ultrafast" },
  { name = "180p", height = 180, video_bitrate_kbps = 200, fps = 15, preset = "ultrafast" },
]
"#;

/// How long playback is watched once it has settled.
const WINDOW: f64 = 20.0;

/// Creates `name` with `profile` and returns its key.
fn create(stack: &Stack, name: &str, profile: &str) -> String {
    let out = Command::new("curl")
        .args(["-fsS", "-H", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .args(["-H", "content-type: application/json"])
        .args(["-d", &format!(r#"{{"name":"{name}","profile":"{profile}"}}"#)])
        .arg(format!("http://{}/admin/streams", stack.router))
        .output()
        .expect("run curl");
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    body["key"]
        .as_str()
        .unwrap_or_else(|| panic!("no key in {}", String::from_utf8_lossy(&out.stdout)))
        .to_string()
}

/// The first media playlist the edge lists for `stream`, and its text.
fn first_media_playlist(edge: std::net::SocketAddr, stream: &str) -> (String, String) {
    let (status, master) = http_get(edge, &format!("/{stream}/index.m3u8")).expect("multivariant");
    assert_eq!(status, 200, "{master}");
    let uri = master
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no variant in {master}"))
        .to_string();
    let path = if uri.starts_with('/') {
        uri
    } else {
        format!("/{stream}/{uri}")
    };
    let (status, body) = http_get(edge, &path).expect("media playlist");
    assert_eq!(status, 200, "{path}: {body}");
    (path, body)
}

/// What one stream looked like on the page over [`WINDOW`] seconds of
/// settled playback.
struct Watched {
    start: Sample,
    end: Sample,
    latencies: Vec<f64>,
}

impl Watched {
    fn median_latency(&self) -> f64 {
        let mut l = self.latencies.clone();
        assert!(!l.is_empty(), "no latency shown");
        l.sort_by(f64::total_cmp);
        l[l.len() / 2]
    }
}

/// Plays `/watch/{stream}` until playback has run 5 s, then watches it for
/// [`WINDOW`] more seconds of media.
fn watch(edge: std::net::SocketAddr, stream: &str) -> Watched {
    let mut player = Player::open(&format!("http://{edge}/watch/{stream}"), 90);
    let first = player.wait_for("playback", Duration::from_secs(30), |s| {
        s.current_time > 0.5 && s.state.as_deref() == Some("playing")
    });
    let start = player.wait_for("5 s of playback", Duration::from_secs(20), |s| {
        s.current_time >= first.current_time + 5.0 && s.latency.is_some()
    });
    let end = player.wait_for(
        "the window's media to play",
        Duration::from_secs_f64(WINDOW * 2.0),
        |s| s.current_time >= start.current_time + WINDOW,
    );
    let latencies = player
        .samples()
        .iter()
        .filter(|s| s.t >= start.t && s.t <= end.t)
        .filter_map(|s| s.latency)
        .collect();
    assert!(end.page_errors.is_empty(), "{:?}", end.page_errors);
    Watched { start, end, latencies }
}

/// ffprobe reads `secs` seconds of `url` and counts the video packets.
fn video_packets(url: &str, secs: u32) -> u64 {
    let out = Command::new("timeout")
        .args([
            "60",
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
        ])
        .args(["-read_intervals", &format!("%+{secs}")])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "json", url])
        .output()
        .expect("run ffprobe");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    json["streams"][0]["nb_read_packets"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "ffprobe read nothing from {url}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

#[test]
fn the_page_plays_ll_hls_from_parts_without_stalls_and_well_under_plain_latency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profiles = dir.path().join("profiles.toml");
    std::fs::write(&profiles, PROFILES).expect("write profiles");
    let mut stack = Stack::new();
    stack.add_origin_profiles("origin-ll", &profiles, &[]);
    let edge = stack.add_edge(&["--cache-size", "64MiB"]);
    let rtmp = stack.origins[0].rtmp;

    // --- LL ------------------------------------------------------------------
    let key = create(&stack, "lowlat", "ll");
    let _ll = testkit::stack::publish(rtmp, &key, 100);
    wait_until(
        "the LL stream to be playable on the edge",
        Duration::from_secs(30),
        || matches!(http_get(edge, "/lowlat/index.m3u8"), Some((200, _))),
    );
    let (media, text) = first_media_playlist(edge, "lowlat");
    assert!(text.contains("#EXT-X-PART-INF:"), "{media} has parts: {text}");
    assert!(text.contains("#EXT-X-PART:"), "{text}");

    // ffprobe plays it through the edge (whole segments: it ignores parts),
    // once the first segment is whole (an LL stream is playable from its
    // first second of parts, before that).
    wait_until("a whole segment listed", Duration::from_secs(20), || {
        http_get(edge, &media).is_some_and(|(_, pl)| pl.contains("#EXTINF:"))
    });
    let streams = testkit::probe::streams(&format!("http://{edge}/lowlat/index.m3u8"));
    assert_eq!(
        testkit::probe::h264_sizes(&streams),
        [(320, 180), (640, 360)],
        "{streams:?}"
    );
    assert!(streams.iter().any(|s| s.codec == "aac"), "{streams:?}");
    let packets = video_packets(&format!("http://{edge}{media}"), 4);
    assert!(packets >= 45, "ffprobe read {packets} video packets of 4 s at 15 fps");

    let ll = watch(edge, "lowlat");
    let (s, e) = (&ll.start, &ll.end);
    println!(
        "LL: mode {:?}, {} parts loaded in the window, {} listed, latency median {:.2} s (hls.js {:?}, target {:?}), stalls {}",
        e.mode,
        e.part_loads - s.part_loads,
        e.part_list,
        ll.median_latency(),
        e.hls_latency,
        e.target_latency,
        e.stalls - s.stalls
    );
    assert_eq!(e.mode.as_deref(), Some("ll"), "{e:?}");
    assert_eq!(e.engine.as_deref().map(|x| x.starts_with("hls.js")), Some(true));
    assert!(e.part_list > 0, "hls.js sees the playlist's parts: {e:?}");
    // A part is a third of a second; video and audio each load theirs.
    assert!(
        e.part_loads - s.part_loads >= (WINDOW * 2.0) as u64,
        "hls.js played from parts: {} loaded in {WINDOW} s",
        e.part_loads - s.part_loads
    );
    assert_eq!(e.stalls, s.stalls, "no stall in the window: {e:?}");
    assert_eq!(e.restarts, 0, "{:?}", e.errors);
    let ll_latency = ll.median_latency();
    assert!(ll_latency < 4.0, "LL latency {ll_latency:.2} s");
    drop(_ll);

    // --- plain, on the same page --------------------------------------------
    let key = create(&stack, "plainlat", "plain");
    let _plain = testkit::stack::publish(rtmp, &key, 100);
    wait_until(
        "the plain stream to be playable on the edge",
        Duration::from_secs(30),
        || matches!(http_get(edge, "/plainlat/index.m3u8"), Some((200, _))),
    );
    let (_, text) = first_media_playlist(edge, "plainlat");
    assert!(!text.contains("#EXT-X-PART"), "{text}");
    let plain = watch(edge, "plainlat");
    let (s, e) = (&plain.start, &plain.end);
    let plain_latency = plain.median_latency();
    println!(
        "plain: mode {:?}, latency median {plain_latency:.2} s (hls.js {:?}, target {:?}), stalls {}",
        e.mode,
        e.hls_latency,
        e.target_latency,
        e.stalls - s.stalls
    );
    assert_eq!(e.mode.as_deref(), Some("plain"), "{e:?}");
    assert_eq!(e.part_loads, 0, "{e:?}");
    assert_eq!(e.stalls, s.stalls, "no stall in the window: {e:?}");
    assert_eq!(e.restarts, 0, "{:?}", e.errors);
    assert!(
        ll_latency + 1.0 < plain_latency,
        "LL ({ll_latency:.2} s) well under plain ({plain_latency:.2} s)"
    );
}
