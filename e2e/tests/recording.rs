//! A recording end to end: Record turned on in the router's dashboard
//! (headless Chromium, `e2e/browser/recording.mjs`), a 20 s publish through
//! the real origin, the recording listed by the router within 10 s of the
//! publish's end (through the real discovery agent), then played through the
//! edge as a VOD: ffprobe sees the whole duration, and Chromium plays it with
//! hls.js on the player page (`/watch/{stream}?vod={session}`, the
//! dashboard's Play link), seeks to the middle and plays to the end.

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::Process;
use testkit::stack::{ADMIN_TOKEN, AGENT_TOKEN, Stack};

const STREAM: &str = "recorded";
const SECONDS: f64 = 20.0;

/// The JSON lines the driver printed so far.
fn steps(p: &Process) -> Vec<Value> {
    p.log()
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits for the driver's `step`.
fn wait_step(p: &mut Process, step: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = steps(p).into_iter().find(|s| s["step"] == step) {
            return s;
        }
        assert!(
            p.is_running() && Instant::now() < deadline,
            "the driver never reached {step}; it said:\n{}",
            p.log()
        );
        // The poll interval, not a readiness sleep.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The media duration ffprobe reads from `url`, in seconds.
fn probed_duration(url: &str) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", url])
        .output()
        .expect("run ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe: {text} {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn a_recorded_stream_is_listed_and_plays_through_the_edge_as_vod() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci --prefix e2e/browser` (scripts/setup.sh does)"
    );
    let mut stack = Stack::new();
    let rtmp = stack.add_origin("origin-a").rtmp;
    let edge = stack.add_edge(&["--cache-size", "64MiB"]);
    // The router again, on the same address, with the edge's public URL for
    // the dashboard's links.
    stack.router_process = None;
    let router = stack.router;
    testkit::wait_until("the first router gone", Duration::from_secs(10), || {
        testkit::http_get(router, "/readyz").is_none()
    });
    let edge_url = format!("http://{edge}");
    stack.router_process = Some(Process::spawn(
        "router-api",
        testkit::bin_path("router-api"),
        [
            "--listen",
            &router.to_string(),
            "--redis",
            &stack.redis.url(),
            "--report-ttl",
            "3s",
            "--public-edge-url",
            &edge_url,
        ],
        &[("ROUTER_ADMIN_TOKEN", ADMIN_TOKEN), ("ROUTER_AGENT_TOKEN", AGENT_TOKEN)],
    ));
    testkit::wait_until("router-api ready again", Duration::from_secs(10), || {
        matches!(testkit::http_get(router, "/readyz"), Some((200, _)))
    });
    let key = stack.create_stream(STREAM);

    let script = dir.join("recording.mjs");
    let url = format!("http://{router}/dashboard");
    let mut driver = Process::spawn(
        "chromium",
        "node",
        [script.to_str().unwrap(), &url, ADMIN_TOKEN, STREAM, "240"],
        &[],
    );
    wait_step(&mut driver, "record-on", Duration::from_secs(40));
    let (_, info) = testkit::http_get(router, &format!("/streams/{STREAM}/recordings")).unwrap();
    assert_eq!(info.trim(), "[]");

    // 20 s recorded.
    let mut publisher = testkit::stack::publish(rtmp, &key, SECONDS as u32);
    testkit::wait_until("the publish to end", Duration::from_secs(60), || {
        !publisher.is_running()
    });
    let ended = Instant::now();
    let mut listed = Value::Null;
    testkit::wait_until("the recording listed", Duration::from_secs(10), || {
        let Some((200, body)) = testkit::http_get(router, &format!("/streams/{STREAM}/recordings")) else {
            return false;
        };
        listed = serde_json::from_str(&body).unwrap_or(Value::Null);
        listed.as_array().is_some_and(|a| !a.is_empty())
    });
    let listed_after = ended.elapsed();
    eprintln!("listed {listed_after:?} after the publisher ended");
    let rec = &listed[0];
    let session = rec["session"].as_str().unwrap();
    let duration = rec["duration_s"].as_f64().unwrap();
    assert!((duration - SECONDS).abs() < 2.0, "the whole 20 s: {rec}");
    assert_eq!(rec["url"], format!("/{STREAM}/{session}/vod.m3u8"));
    assert!(rec["ended_at_ms"].as_u64() >= rec["started_at_ms"].as_u64());

    // ffprobe through the edge: the whole duration.
    let vod_url = format!("{edge_url}/{STREAM}/{session}/vod.m3u8");
    let probed = probed_duration(&vod_url);
    assert!((probed - SECONDS).abs() < 2.0, "ffprobe read {probed} s");
    // The same recording as a static DASH MPD over the same segments,
    // through the edge: ffprobe's DASH demuxer reads the whole duration.
    let mpd_url = format!("{edge_url}/{STREAM}/{session}/manifest.mpd");
    let probed = probed_duration(&mpd_url);
    assert!(
        (probed - SECONDS).abs() < 2.0,
        "ffprobe read {probed} s of the static MPD"
    );
    let streams = testkit::probe::streams(&vod_url);
    assert!(streams.iter().any(|s| s.codec == "h264"), "{streams:?}");

    // Chromium, from the dashboard's Play link to the player page.
    let listed_step = wait_step(&mut driver, "listed", Duration::from_secs(30));
    assert_eq!(
        listed_step["play"],
        format!("{edge_url}/watch/{STREAM}?vod={session}"),
        "{listed_step}"
    );
    assert_eq!(listed_step["vod"], vod_url);
    let playing = wait_step(&mut driver, "playing", Duration::from_secs(60));
    assert!(playing["engine"].as_str().unwrap().starts_with("hls.js"), "{playing}");
    assert_eq!(playing["vod"], session);
    let played = playing["duration"].as_f64().unwrap();
    assert!((played - SECONDS).abs() < 2.0, "the browser's duration: {playing}");
    let seeked = wait_step(&mut driver, "seeked", Duration::from_secs(30));
    let at = seeked["currentTime"].as_f64().unwrap();
    assert!(at >= played / 2.0 && at < played, "{seeked}");
    let done = wait_step(&mut driver, "ended", Duration::from_secs(60));
    assert_eq!(done["ended"], true);
    assert_eq!(done["pageErrors"], serde_json::json!([]), "no errors in the page");
}
