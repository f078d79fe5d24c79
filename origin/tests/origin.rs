//! The origin end to end: ffmpeg publishes over RTMP and SRT to the real
//! origin binary, which asks the real router API (on a real Redis); ffprobe
//! and plain HTTP read the HLS back from the origin's HTTP server.

use reqwest::Client;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::{Process, Redis, bin_path, free_addr, http_get, probe, wait_until, wait_until_async};

const ADMIN: &str = "admin-token-0123456789";
const AGENT: &str = "agent-token-0123456789";

/// Transcoding takes both cores: run the tests of this file one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Stack {
    _redis: Redis,
    _router: Process,
    router: SocketAddr,
    origin: Process,
    rtmp: SocketAddr,
    srt: SocketAddr,
    http: SocketAddr,
    out: tempfile::TempDir,
}

impl Stack {
    fn start() -> Stack {
        let redis = Redis::start();
        let router = free_addr();
        let router_proc = Process::spawn(
            "router-api",
            bin_path("router-api"),
            ["--listen", &router.to_string(), "--redis", &redis.url()],
            &[("ROUTER_ADMIN_TOKEN", ADMIN), ("ROUTER_AGENT_TOKEN", AGENT)],
        );
        wait_until("router-api ready", Duration::from_secs(10), || {
            matches!(http_get(router, "/readyz"), Some((200, _)))
        });
        let (rtmp, srt, http) = (free_addr(), free_addr(), free_addr());
        let out = tempfile::tempdir().unwrap();
        let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/profiles.toml");
        let origin = Process::spawn(
            "origin",
            env!("CARGO_BIN_EXE_origin"),
            [
                "--origin-id",
                "origin-a",
                "--rtmp-listen",
                &rtmp.to_string(),
                "--srt-listen",
                &srt.to_string(),
                "--http-listen",
                &http.to_string(),
                "--output-dir",
                out.path().to_str().unwrap(),
                "--router",
                &format!("http://{router}"),
                "--profiles",
                profiles.to_str().unwrap(),
                "--segment-grace",
                "2s",
            ],
            &[("ROUTER_AGENT_TOKEN", AGENT)],
        );
        wait_until("origin ready", Duration::from_secs(10), || {
            matches!(http_get(http, "/healthz"), Some((200, _)))
        });
        Stack {
            _redis: redis,
            _router: router_proc,
            router,
            origin,
            rtmp,
            srt,
            http,
            out,
        }
    }

    async fn create_stream(&self, name: &str, profile: &str) -> String {
        let v: Value = Client::new()
            .post(format!("http://{}/admin/streams", self.router))
            .bearer_auth(ADMIN)
            .json(&json!({"name": name, "profile": profile}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["key"].as_str().unwrap().to_string()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.http)
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = Client::new().get(self.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Waits for the multivariant playlist of `stream` and returns it.
    async fn wait_playable(&self, stream: &str, within: Duration) -> String {
        wait_until_async(&format!("{stream} to be playable"), within, || async {
            let (s, body) = self.get(&format!("{stream}/index.m3u8")).await;
            (s == 200).then_some(body)
        })
        .await
    }

    fn metrics(&self) -> String {
        http_get(self.http, "/metrics").unwrap().1
    }

    fn log(&self) -> String {
        self.origin.log()
    }
}

use testkit::stack::{H264, ffmpeg_publish};

/// The variant and audio URIs of a multivariant playlist.
fn media_uris(master: &str) -> Vec<String> {
    let Ok(m) = m3u8_rs::parse_master_playlist_res(master.as_bytes()) else {
        return vec![];
    };
    let mut uris: Vec<String> = m.variants.iter().map(|v| v.uri.clone()).collect();
    uris.extend(m.alternatives.iter().filter_map(|a| a.uri.clone()));
    uris
}

fn wait_exit(p: &mut Process, within: Duration) {
    wait_until("ffmpeg to exit", within, || !p.is_running());
}

#[tokio::test]
async fn rtmp_publish_is_transcoded_packaged_and_served() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start();
    let key = stack.create_stream("golive", "default").await;
    let mut ffmpeg = ffmpeg_publish(&format!("rtmp://{}/live/{key}", stack.rtmp), "flv", 8, H264);
    let master = stack.wait_playable("golive", Duration::from_secs(10)).await;
    assert!(!master.contains(&key), "the key never appears in playback paths");

    // ffprobe, as a player, finds every rendition with its size and codec.
    let streams = probe::streams(&stack.url("golive/index.m3u8"));
    assert_eq!(
        probe::h264_sizes(&streams),
        [(320, 180), (426, 240), (640, 360)],
        "{streams:?}"
    );
    assert!(streams.iter().any(|s| s.codec == "aac"), "{streams:?}");

    let m = m3u8_rs::parse_master_playlist_res(master.as_bytes()).unwrap();
    assert!(m.independent_segments);
    for v in &m.variants {
        assert!(v.codecs.as_deref().unwrap().starts_with("avc1."), "{master}");
        assert!(
            v.average_bandwidth.is_some() && v.frame_rate == Some(15.0) && v.audio.is_some(),
            "{master}"
        );
    }

    // While live: per-rendition counters and the live gauge.
    let metrics = stack.metrics();
    for m in [
        r#"origin_segments_written_total{rendition="240p",stream="golive"}"#,
        "origin_streams_live 1",
        "origin_frames_in_total",
        "origin_encoder_lag_seconds",
    ] {
        assert!(metrics.contains(m), "{m} missing:\n{metrics}");
    }

    ffmpeg.stop_with(Duration::from_secs(15));
    wait_exit(&mut ffmpeg, Duration::from_secs(15));
    let ended = Instant::now();
    // Unpublish: every media playlist ends within a second.
    let uris = media_uris(&master);
    wait_until_async("EXT-X-ENDLIST in every playlist", Duration::from_secs(2), || async {
        for u in &uris {
            if !stack.get(&format!("golive/{u}")).await.1.contains("#EXT-X-ENDLIST") {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(
        ended.elapsed() < Duration::from_secs(1),
        "ENDLIST after {:?}",
        ended.elapsed()
    );

    // Live HLS rules, per media playlist.
    let mut first_keyframes = HashSet::new();
    for u in &uris {
        let (_, text) = stack.get(&format!("golive/{u}")).await;
        let p = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(p.target_duration, 1, "{u}");
        assert!(p.segments.iter().all(|s| s.program_date_time.is_some()), "{u}");
        let n = p.segments.len();
        for (i, s) in p.segments.iter().enumerate() {
            if i + 1 < n {
                assert!(
                    (s.duration - 1.0).abs() < 0.1,
                    "{u}: segment {} lasts {}",
                    s.uri,
                    s.duration
                );
            }
            assert!(s.duration.round() as u64 <= p.target_duration, "{u}: {}", s.duration);
        }
        // Segments are served immutable; playlists briefly.
        let seg = Client::new()
            .get(stack.url(&format!("golive/{}", u.replace("index.m3u8", &p.segments[0].uri))))
            .send()
            .await
            .unwrap();
        assert_eq!(seg.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(seg.headers()["content-type"], "video/iso.segment");
        assert_eq!(seg.headers()["access-control-allow-origin"], "*");
        // Keyframes line up: each video rendition's listed segment starts with
        // a keyframe at the same time as the others'.
        if u.contains('p') && !u.contains("audio") {
            let dir = Path::new(u).parent().unwrap().to_str().unwrap().to_string();
            first_keyframes.insert(first_frame(&stack, &dir, &p.segments[1].uri).await);
        }
    }
    assert_eq!(
        first_keyframes.len(),
        1,
        "renditions' segments start at different frames: {first_keyframes:?}"
    );
    let playlist = Client::new()
        .get(stack.url(&format!("golive/{}", uris[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(playlist.headers()["cache-control"], "public, max-age=1");

    let metrics = stack.metrics();
    assert!(metrics.contains("origin_streams_live 0"), "{metrics}");
    assert!(
        !metrics.contains(r#"stream="golive""#),
        "an ended stream's series are dropped: {metrics}"
    );
}

/// `(key_frame, pts)` of the first video frame of `init.mp4 + segment`.
async fn first_frame(stack: &Stack, dir: &str, segment: &str) -> (bool, String) {
    let init = Client::new()
        .get(stack.url(&format!("golive/{dir}/init.mp4")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let seg = Client::new()
        .get(stack.url(&format!("golive/{dir}/{segment}")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(&init).unwrap();
    f.write_all(&seg).unwrap();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-read_intervals",
            "%+#1",
            "-show_entries",
            "frame=key_frame,pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(f.path())
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let (key, pts) = line.split_once(',').unwrap_or(("0", ""));
    assert_eq!(key, "1", "{dir}/{segment} does not start with a keyframe: {line}");
    (key == "1", pts.to_string())
}

#[tokio::test]
async fn srt_publish_is_packaged_and_served() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start();
    let key = stack.create_stream("viasrt", "passthrough").await;
    let url = format!("srt://{}?streamid={key}", stack.srt);
    let mut ffmpeg = ffmpeg_publish(&url, "mpegts", 6, H264);
    let master = stack.wait_playable("viasrt", Duration::from_secs(10)).await;
    let uris = media_uris(&master);
    assert!(
        uris.iter().any(|u| u.ends_with("/source/index.m3u8")),
        "passthrough keeps the source: {master}"
    );
    let streams = probe::streams(&stack.url("viasrt/index.m3u8"));
    assert_eq!(probe::h264_sizes(&streams), [(640, 360)], "{streams:?}");
    assert!(streams.iter().any(|s| s.codec == "aac"), "{streams:?}");
    wait_exit(&mut ffmpeg, Duration::from_secs(20));
    wait_until_async("SRT stream to end", Duration::from_secs(5), || async {
        stack
            .get(&format!("viasrt/{}", uris[0]))
            .await
            .1
            .contains("#EXT-X-ENDLIST")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn wrong_keys_and_second_publishers_are_refused() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start();
    let key = stack.create_stream("golive", "default").await;

    let mut bad = ffmpeg_publish(&format!("rtmp://{}/live/not-a-key", stack.rtmp), "flv", 5, H264);
    wait_exit(&mut bad, Duration::from_secs(10));
    assert!(
        bad.log().to_lowercase().contains("error") || !bad.log().is_empty(),
        "ffmpeg saw the refusal"
    );
    let mut bad_srt = ffmpeg_publish(&format!("srt://{}?streamid=not-a-key", stack.srt), "mpegts", 3, H264);
    wait_exit(&mut bad_srt, Duration::from_secs(15));
    assert!(
        std::fs::read_dir(stack.out.path()).unwrap().next().is_none(),
        "nothing was written"
    );
    wait_until("refusals counted", Duration::from_secs(5), || {
        stack
            .metrics()
            .contains(r#"origin_publishers_refused_total{reason="key_refused"} 2"#)
    });
    assert!(stack.log().contains("stream key refused"), "{}", stack.log());
    assert!(!stack.log().contains("not-a-key"), "the key is never logged");

    let _first = ffmpeg_publish(&format!("rtmp://{}/live/{key}", stack.rtmp), "flv", 10, H264);
    stack.wait_playable("golive", Duration::from_secs(10)).await;
    let mut second = ffmpeg_publish(&format!("rtmp://{}/live/{key}", stack.rtmp), "flv", 10, H264);
    wait_exit(&mut second, Duration::from_secs(10));
    assert!(stack.log().contains("already being published"), "{}", stack.log());
    // The first publisher is unaffected: its playlist keeps growing.
    assert_still_growing(&stack, "golive").await;
}

/// The first media playlist of `stream` gains a segment within 3 s.
async fn assert_still_growing(stack: &Stack, stream: &str) {
    let master = stack.get(&format!("{stream}/index.m3u8")).await.1;
    let uri = format!("{stream}/{}", media_uris(&master)[0]);
    let last = |text: String| {
        m3u8_rs::parse_media_playlist_res(text.as_bytes())
            .ok()
            .and_then(|p| p.segments.last().map(|s| s.uri.clone()))
    };
    let before = last(stack.get(&uri).await.1);
    wait_until_async(&format!("{stream} to keep growing"), Duration::from_secs(3), || async {
        let now = last(stack.get(&uri).await.1);
        (now != before).then_some(())
    })
    .await;
}

#[tokio::test]
async fn misbehaving_publishers_are_dropped_alone() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start();
    let key = stack.create_stream("golive", "default").await;
    let other = stack.create_stream("other", "default").await;
    let _good = ffmpeg_publish(&format!("rtmp://{}/live/{key}", stack.rtmp), "flv", 12, H264);
    stack.wait_playable("golive", Duration::from_secs(10)).await;

    // Garbage instead of a handshake.
    let mut s = TcpStream::connect(stack.rtmp).unwrap();
    s.write_all(&[0x42; 4096]).unwrap();
    // A valid C0+C1, then a truncated chunk and a hang-up.
    let mut s2 = TcpStream::connect(stack.rtmp).unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 1536]);
    s2.write_all(&c0c1).unwrap();
    s2.write_all(&[0x03, 0x00, 0x00]).unwrap();
    drop(s2);
    // A codec we do not take (Sorenson H.263 in FLV).
    let mut h263 = ffmpeg_publish(
        &format!("rtmp://{}/live/{other}", stack.rtmp),
        "flv",
        5,
        &["-c:v", "flv1"],
    );
    wait_exit(&mut h263, Duration::from_secs(10));
    wait_until("codec refusal logged", Duration::from_secs(5), || {
        stack.log().contains("video codec id 2 is not supported")
    });

    assert_still_growing(&stack, "golive").await;
    assert!(stack.origin_running());
    // The refused publisher's stream ended cleanly and can publish again.
    let _retry = ffmpeg_publish(&format!("rtmp://{}/live/{other}", stack.rtmp), "flv", 4, H264);
    stack.wait_playable("other", Duration::from_secs(10)).await;
}

impl Stack {
    fn origin_running(&self) -> bool {
        http_get(self.http, "/healthz").is_some()
    }
}

#[tokio::test]
async fn sd_rungs_of_an_hd_source_keep_its_colours() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start();
    let key = stack.create_stream("golive", "sd-only").await;
    // 1280x720 without colour signalling: HD, so BT.709 by convention. An SD
    // rung must not quietly turn it into BT.601 (that once happened, and the
    // pixel-by-pixel conversion was most of the scaling cost).
    let mut video = vec!["-vf", "scale=1280:720"];
    video.extend_from_slice(H264);
    let mut ffmpeg = ffmpeg_publish(&format!("rtmp://{}/live/{key}", stack.rtmp), "flv", 4, &video);
    stack.wait_playable("golive", Duration::from_secs(10)).await;
    let streams = probe::streams(&stack.url("golive/index.m3u8"));
    assert_eq!(probe::h264_sizes(&streams), [(320, 180)], "{streams:?}");
    let video = streams.iter().find(|s| s.codec == "h264").unwrap();
    assert_eq!(video.color_space.as_deref(), Some("bt709"), "{streams:?}");
    wait_exit(&mut ffmpeg, Duration::from_secs(15));
}

#[tokio::test]
async fn republish_gets_a_new_session_and_no_segment_path_repeats() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start();
    let key = stack.create_stream("golive", "default").await;
    let mut seen: Vec<HashSet<String>> = vec![];
    let mut sessions = vec![];
    for _ in 0..2 {
        let mut ffmpeg = ffmpeg_publish(&format!("rtmp://{}/live/{key}", stack.rtmp), "flv", 4, H264);
        let master = wait_until_async("a new session", Duration::from_secs(10), || async {
            let (s, body) = stack.get("golive/index.m3u8").await;
            let session = media_uris(&body).first()?.split('/').next()?.to_string();
            (s == 200 && !sessions.contains(&session)).then_some(body)
        })
        .await;
        let uris = media_uris(&master);
        sessions.push(uris[0].split('/').next().unwrap().to_string());
        wait_exit(&mut ffmpeg, Duration::from_secs(15));
        let mut paths = HashSet::new();
        for u in &uris {
            let (_, text) = stack.get(&format!("golive/{u}")).await;
            let p = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
            for s in p.segments {
                paths.insert(format!("{}/{}", Path::new(u).parent().unwrap().display(), s.uri));
            }
        }
        seen.push(paths);
    }
    assert_ne!(sessions[0], sessions[1]);
    assert!(seen[0].is_disjoint(&seen[1]), "a segment path was reused");
}

#[tokio::test]
async fn http_refuses_paths_outside_the_output_and_bad_methods() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start();
    let secret: PathBuf = stack.out.path().parent().unwrap().join("secret.m3u8");
    std::fs::write(&secret, "#EXTM3U\n").ok();
    for path in [
        "/../secret.m3u8",
        "/%2e%2e/secret.m3u8",
        "/..%2fsecret.m3u8",
        "/golive/..%2f..%2fsecret.m3u8",
        "/golive/%2e%2e/%2e%2e/secret.m3u8",
        "/.hidden/index.m3u8",
        "/golive/s/r/..%5c..%5csecret.m3u8",
        "/etc/passwd",
    ] {
        let mut s = TcpStream::connect(stack.http).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
        let mut resp = String::new();
        std::io::Read::read_to_string(&mut s, &mut resp).unwrap();
        assert!(
            resp.starts_with("HTTP/1.0 404") || resp.starts_with("HTTP/1.1 404") || resp.starts_with("HTTP/1.1 400"),
            "{path}: {resp}"
        );
        assert!(!resp.contains("#EXTM3U"), "{path} escaped the output folder");
    }
    let post = Client::new().post(stack.url("golive/index.m3u8")).send().await.unwrap();
    assert_eq!(post.status(), 405);
    let missing = Client::new().get(stack.url("golive/index.m3u8")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["cache-control"], "no-store");
    let preflight = Client::new()
        .request(reqwest::Method::OPTIONS, stack.url("golive/index.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let _ = std::fs::remove_file(secret);
}

#[test]
fn help_documents_every_setting() {
    testkit::assert_help_documents(
        env!("CARGO_BIN_EXE_origin"),
        &[
            "--origin-id",
            "--rtmp-listen",
            "--srt-listen",
            "--http-listen",
            "--output-dir",
            "--router",
            "ROUTER_AGENT_TOKEN",
            "--profiles",
            "--retain-ended",
            "--max-disk",
            "ORIGIN_MAX_DISK",
            "--claim-grace",
            "--max-held-requests",
            "ORIGIN_MAX_HELD_REQUESTS",
        ],
    );
}
