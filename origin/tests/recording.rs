//! Recordings at the origin: a stream with `record` set (PATCHed through the
//! router API) publishes ~20 s with ffmpeg; after the publisher leaves, its
//! session's VOD playlists and `recording.json` appear within 10 s, ffprobe
//! plays the recording from the origin with the whole duration and seeks to
//! its middle; an unrecorded session beside it leaves no VOD. A recorded
//! session cut by a crash (SIGKILL) is finalized when the origin starts
//! again on the same folder, the first recording survives that restart, and
//! with a short `--recording-retention` the janitor removes it after it; a
//! recorded session ended by the origin's shutdown is finalized by it.

use api_types::RecordingMeta;
use reqwest::Client;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::stack::{ADMIN_TOKEN, AGENT_TOKEN, H264, Stack, ffmpeg_publish};
use testkit::{Process, bin_path, http_get, wait_until, wait_until_async};

const RETENTION: &str = "40s";

fn profiles() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dvr-profiles.toml")
}

/// The origin again, on the same ports and output folder.
fn restart_origin(router: SocketAddr, rtmp: SocketAddr, http: SocketAddr, out: &Path) -> Process {
    let p = Process::spawn(
        "origin",
        bin_path("origin"),
        [
            "--origin-id",
            "origin-rec",
            "--rtmp-listen",
            &rtmp.to_string(),
            "--http-listen",
            &http.to_string(),
            "--output-dir",
            out.to_str().unwrap(),
            "--router",
            &format!("http://{router}"),
            "--profiles",
            profiles().to_str().unwrap(),
            "--recording-retention",
            RETENTION,
        ],
        &[("ROUTER_AGENT_TOKEN", AGENT_TOKEN)],
    );
    wait_until("origin ready again", Duration::from_secs(20), || {
        matches!(http_get(http, "/healthz"), Some((200, _)))
    });
    p
}

fn set_record(router: SocketAddr, name: &str) {
    let out = Command::new("curl")
        .args([
            "-fsS",
            "-X",
            "PATCH",
            "-H",
            &format!("Authorization: Bearer {ADMIN_TOKEN}"),
        ])
        .args(["-H", "content-type: application/json", "-d", r#"{"record":true}"#])
        .arg(format!("http://{router}/admin/streams/{name}"))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "PATCH: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"record\":true"));
}

/// The session of the stream's live multivariant playlist.
async fn live_session(client: &Client, http: SocketAddr, stream: &str) -> String {
    wait_until_async("a playable stream", Duration::from_secs(30), || async {
        let r = client
            .get(format!("http://{http}/{stream}/index.m3u8"))
            .send()
            .await
            .ok()?;
        let text = r.text().await.ok()?;
        let uri = text
            .lines()
            .find(|l| l.ends_with("/index.m3u8") && !l.starts_with('#'))?;
        Some(uri.split('/').next()?.to_string())
    })
    .await
}

fn read_meta(dir: &Path) -> Option<RecordingMeta> {
    serde_json::from_slice(&std::fs::read(dir.join("recording.json")).ok()?).ok()
}

/// ffprobe's (start_time, duration) of an HLS URL.
fn probe_format(url: &str) -> (f64, f64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=start_time,duration",
            "-of",
            "json",
            url,
        ])
        .output()
        .expect("run ffprobe");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let f = |k: &str| json["format"][k].as_str().and_then(|v| v.parse().ok());
    match (f("start_time"), f("duration")) {
        (Some(s), Some(d)) => (s, d),
        _ => panic!("ffprobe: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// The time of the first video packet of `init` + `segment`, as ffprobe
/// reads it: where a player that seeks into that segment starts.
fn first_packet(init: &[u8], segment: &[u8]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seek.mp4");
    std::fs::write(&file, [init, segment].concat()).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1"])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .expect("run ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no packet: {}", String::from_utf8_lossy(&out.stderr)))
}

fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} "))?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recorded_session_becomes_a_vod_survives_a_restart_and_goes_after_its_retention() {
    let mut stack = Stack::new();
    let router = stack.router;
    let node = stack.add_origin_profiles("origin-rec", &profiles(), &["--recording-retention", RETENTION]);
    let (rtmp, http, out) = (node.rtmp, node.http, node.out.path().to_path_buf());
    let rec_key = stack.create_stream_with("rec", Some("ll-passthrough"));
    set_record(router, "rec");
    let plain_key = stack.create_stream_with("norec", Some("ll-passthrough"));
    let mut rec_pub = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{rec_key}"), "flv", 20, H264);
    let mut plain_pub = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{plain_key}"), "flv", 20, H264);
    let client = Client::new();
    let session = live_session(&client, http, "rec").await;
    let plain_session = live_session(&client, http, "norec").await;
    let dir = out.join("rec").join(&session);
    wait_until("the publishers leave", Duration::from_secs(60), || {
        !rec_pub.is_running() && !plain_pub.is_running()
    });
    let left = Instant::now();

    // The recording appears within 10 s of the publisher leaving.
    let meta = wait_until_async("recording.json", Duration::from_secs(10), || async { read_meta(&dir) }).await;
    eprintln!("recording after {:?}: {meta:?}", left.elapsed());
    assert_eq!((meta.stream.as_str(), meta.session.as_str()), ("rec", session.as_str()));
    assert!((18.0..=22.0).contains(&meta.duration_s), "{meta:?}");
    let wall = (meta.ended_at_ms - meta.started_at_ms) as f64 / 1000.0;
    assert!(wall >= meta.duration_s - 1.0, "{meta:?}");
    assert!(meta.renditions.iter().any(|r| r.name == "source") && meta.renditions.iter().any(|r| r.name == "audio"));
    // Every segment of the session kept; the VOD lists them all, no parts.
    let media = std::fs::read_to_string(dir.join("source/vod.m3u8")).unwrap();
    let parsed = m3u8_rs::parse_media_playlist_res(media.as_bytes()).unwrap();
    assert!(parsed.end_list && parsed.playlist_type == Some(m3u8_rs::MediaPlaylistType::Vod));
    assert_eq!(parsed.media_sequence, 0, "from the session's first segment");
    assert!(!media.contains("#EXT-X-PART") && !media.contains("PRELOAD") && !media.contains("SERVER-CONTROL"));
    for s in &parsed.segments {
        assert!(
            dir.join("source").join(&s.uri).is_file(),
            "{} listed, not on disk",
            s.uri
        );
    }
    let vod_secs: f32 = parsed.segments.iter().map(|s| s.duration).sum();
    assert!(
        (vod_secs as f64 - meta.duration_s).abs() < 1.5,
        "{vod_secs} vs {meta:?}"
    );

    // ffprobe plays it from the origin: the whole duration, and a seek to the middle.
    let url = format!("http://{http}/rec/{session}/vod.m3u8");
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.apple.mpegurl");
    let (_, duration) = probe_format(&url);
    assert!(
        (duration - meta.duration_s).abs() <= 1.5,
        "ffprobe {duration} s, recorded {meta:?}"
    );
    // Seeking to the middle: what a player does is load the init segment
    // and the segment the VOD playlist puts there. (ffmpeg 5.1's HLS
    // demuxer cannot seek in fMP4 HLS at all, its own output included, so
    // `ffprobe -read_intervals` on the playlist is no test.)
    let middle = parsed.segments.len() / 2;
    let before: f64 = parsed.segments[..middle].iter().map(|s| f64::from(s.duration)).sum();
    let fetch = |name: String| {
        let client = client.clone();
        async move {
            let r = client.get(name).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap().to_vec()
        }
    };
    let base = format!("http://{http}/rec/{session}/source");
    let init = fetch(format!("{base}/init.mp4")).await;
    let zero = first_packet(&init, &fetch(format!("{base}/{}", parsed.segments[0].uri)).await);
    let mid = first_packet(&init, &fetch(format!("{base}/{}", parsed.segments[middle].uri)).await);
    assert!(
        ((mid - zero) - before).abs() < 0.5,
        "segment {middle} starts {} s in, the playlist says {before} s",
        mid - zero
    );

    // The unrecorded session left no VOD (its files wait for --retain-ended).
    let plain_dir = out.join("norec").join(&plain_session);
    wait_until("the unrecorded session ends", Duration::from_secs(10), || {
        std::fs::read_to_string(plain_dir.join("source/index.m3u8")).is_ok_and(|t| t.contains("#EXT-X-ENDLIST"))
    });
    assert!(plain_dir.exists());
    for f in ["vod.m3u8", "recording.json", "source/vod.m3u8", ".recording"] {
        assert!(!plain_dir.join(f).exists(), "{f} in an unrecorded session");
    }
    let (status, _) = http_get(http, &format!("/norec/{plain_session}/vod.m3u8")).unwrap();
    assert_eq!(status, 404);

    // A second recorded session, cut by a crash of the origin.
    let mut again = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{rec_key}"), "flv", 60, H264);
    let crashed = wait_until_async("a new session", Duration::from_secs(30), || async {
        let s = live_session(&client, http, "rec").await;
        (s != session).then_some(s)
    })
    .await;
    let crashed_dir = out.join("rec").join(&crashed);
    wait_until("five segments of the second session", Duration::from_secs(30), || {
        (0..5).all(|n| crashed_dir.join(format!("source/{n}.m4s")).is_file())
    });
    stack.origins[0].process.kill();
    again.kill();
    assert!(read_meta(&crashed_dir).is_none(), "a crash writes nothing");
    let mut origin = restart_origin(router, rtmp, http, &out);

    // The crashed session is finalized from its segments on disk.
    let recovered = read_meta(&crashed_dir).unwrap_or_else(|| panic!("not finalized: {}", origin.log()));
    assert!(recovered.duration_s >= 5.0, "{recovered:?}");
    let (_, d) = probe_format(&format!("http://{http}/rec/{crashed}/vod.m3u8"));
    assert!((d - recovered.duration_s).abs() <= 1.5, "{d} vs {recovered:?}");
    // The first recording survived the restart, and both are counted.
    let (status, _) = http_get(http, &format!("/rec/{session}/vod.m3u8")).unwrap();
    assert_eq!(status, 200);
    let metrics = wait_until_async("recording metrics", Duration::from_secs(10), || async {
        let (_, m) = http_get(http, "/metrics")?;
        (gauge(&m, "origin_recordings")? == 2.0).then_some(m)
    })
    .await;
    assert!(gauge(&metrics, "origin_recording_bytes").unwrap() > 100_000.0);

    // After its retention (from its end), the first recording goes; the
    // second, which ended later, stays a little longer.
    let due = Duration::from_millis(meta.ended_at_ms + 40_000).saturating_sub(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap(),
    );
    wait_until("the first recording removed", due + Duration::from_secs(10), || {
        !dir.exists()
    });
    assert!(crashed_dir.exists(), "{}", origin.log());
    let (status, _) = http_get(http, &format!("/rec/{session}/vod.m3u8")).unwrap();
    assert_eq!(status, 404);

    // A recorded session ended by the origin's own shutdown (SIGTERM) is
    // finalized by the shutdown, not left to the next start.
    let mut third = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{rec_key}"), "flv", 60, H264);
    let last = wait_until_async("a third session", Duration::from_secs(30), || async {
        let s = live_session(&client, http, "rec").await;
        (s != session && s != crashed).then_some(s)
    })
    .await;
    let last_dir = out.join("rec").join(&last);
    wait_until("three segments of the third session", Duration::from_secs(30), || {
        (0..3).all(|n| last_dir.join(format!("source/{n}.m4s")).is_file())
    });
    assert_eq!(origin.stop(), Some(0), "{}", origin.log());
    third.kill();
    let ended = read_meta(&last_dir).unwrap_or_else(|| panic!("not written at shutdown: {}", origin.log()));
    assert!(ended.duration_s >= 2.0, "{ended:?}");
    assert!(last_dir.join("source/vod.m3u8").is_file() && last_dir.join("vod.m3u8").is_file());
}

#[test]
fn help_documents_the_recording_and_dvr_settings() {
    testkit::assert_help_documents(
        env!("CARGO_BIN_EXE_origin"),
        &[
            "--recording-retention",
            "ORIGIN_RECORDING_RETENTION",
            "--dvr-window",
            "ORIGIN_DVR_WINDOW",
        ],
    );
}
