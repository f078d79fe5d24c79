//! The router API's dashboard driven by headless Chromium
//! (`e2e/browser/dashboard.mjs`): sign in, create a stream, publish to it with
//! ffmpeg, see it live with its viewers (fed by `PUT /viewers` from here, as an
//! edge would) and its thumbnail (from the edge), set its playback policy, mint a playback URL, open the
//! preview, disable it and see it go. Writes the screenshot to
//! `target/dashboard.png` (copy it to `docs/dashboard.png` to refresh the docs).

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::Process;
use testkit::stack::{ADMIN_TOKEN, AGENT_TOKEN, Stack};

/// The JSON lines the driver printed so far.
fn steps(p: &Process) -> Vec<Value> {
    p.log()
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits for the driver's `step`, feeding viewer reports meanwhile.
fn wait_step(p: &mut Process, step: &str, timeout: Duration, mut tick: impl FnMut()) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = steps(p).into_iter().find(|s| s["step"] == step) {
            return s;
        }
        assert!(
            p.is_running() && Instant::now() < deadline,
            "the dashboard never reached {step}; the driver said:\n{}",
            p.log()
        );
        tick();
        // The poll interval, not a readiness sleep.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `curl` against the router, as an edge or an operator would.
fn curl(router: std::net::SocketAddr, token: &str, method: &str, path: &str, body: Option<&str>) -> String {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-fsS", "-m", "5", "-X", method, "-H"])
        .arg(format!("Authorization: Bearer {token}"));
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "-d", b]);
    }
    let out = cmd.arg(format!("http://{router}{path}")).output().expect("run curl");
    assert!(
        out.status.success(),
        "{method} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dashboard_manages_a_live_stream() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci --prefix e2e/browser` (scripts/setup.sh does)"
    );
    let mut stack = Stack::new();
    let rtmp = stack.add_origin("origin-a").rtmp;
    let edge = stack.add_edge(&["--cache-size", "64MiB"]);
    // The router again, on the same address, with the dashboard's public URLs.
    stack.router_process = None;
    let listen = stack.router.to_string();
    let redis = stack.redis.url();
    let edge_url = format!("http://{edge}");
    let rtmp_url = format!("rtmp://{rtmp}/live");
    stack.router_process = Some(Process::spawn(
        "router-api",
        testkit::bin_path("router-api"),
        [
            "--listen",
            &listen,
            "--redis",
            &redis,
            "--report-ttl",
            "3s",
            "--public-edge-url",
            &edge_url,
            "--public-rtmp-url",
            &rtmp_url,
            "--playback-key",
            "k1:0123456789abcdef0123456789abcdef",
        ],
        &[("ROUTER_ADMIN_TOKEN", ADMIN_TOKEN), ("ROUTER_AGENT_TOKEN", AGENT_TOKEN)],
    ));
    testkit::wait_until("router-api ready again", Duration::from_secs(10), || {
        matches!(testkit::http_get(stack.router, "/readyz"), Some((200, _)))
    });

    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let url = format!("http://{}/dashboard", stack.router);
    let script = dir.join("dashboard.mjs");
    let shot_arg = shot.to_string_lossy().into_owned();
    let mut driver = Process::spawn(
        "chromium",
        "node",
        [script.to_str().unwrap(), &url, ADMIN_TOKEN, &shot_arg, "180"],
        &[],
    );

    let signed_in = wait_step(&mut driver, "signed-in", Duration::from_secs(30), || {});
    assert_eq!(
        signed_in["stored"]["local"],
        serde_json::json!([]),
        "nothing in localStorage"
    );
    assert_eq!(
        signed_in["stored"]["session"],
        serde_json::json!(["dionysia.adminToken"])
    );
    let spare = wait_step(&mut driver, "spare", Duration::from_secs(30), || {});
    assert_ne!(spare["spareKey"], spare["rotatedKey"], "rotation shows a new key");
    assert!(
        !curl(stack.router, ADMIN_TOKEN, "GET", "/admin/streams", None).contains("spare"),
        "spare was deleted"
    );

    let created = wait_step(&mut driver, "created", Duration::from_secs(30), || {});
    assert_eq!(created["server"], rtmp_url.as_str(), "OBS settings shown");
    let key = created["key"].as_str().expect("key shown once").to_string();
    let _publisher = testkit::stack::publish(rtmp, &key, 120);

    // Viewer reports, as an edge sends them every couple of seconds.
    let mut last_report = Instant::now() - Duration::from_secs(10);
    let mut report = || {
        if last_report.elapsed() >= Duration::from_secs(2) {
            curl(
                stack.router,
                AGENT_TOKEN,
                "PUT",
                "/viewers/edge-test",
                Some(r#"{"streams":{"golive":3}}"#),
            );
            last_report = Instant::now();
        }
    };
    let live = wait_step(&mut driver, "live", Duration::from_secs(90), &mut report);
    assert_eq!(live["origins"], "origin-a");
    assert_eq!(live["viewers"], "3");
    assert_eq!(
        live["thumbnail"],
        serde_json::json!([160, 90]),
        "the small live thumbnail, from the edge"
    );
    assert!(live["renditions"].as_str().unwrap().contains("kb/s"), "{live}");

    let minted = wait_step(&mut driver, "minted", Duration::from_secs(30), &mut report);
    let minted_url = minted["url"].as_str().unwrap();
    assert!(
        minted_url.starts_with(&format!("{edge_url}/t/k1.")) && minted_url.ends_with("/golive/index.m3u8"),
        "{minted_url}"
    );
    let preview = wait_step(&mut driver, "preview", Duration::from_secs(30), &mut report);
    // A token stream: the preview plays with a token minted for it.
    let src = preview["src"].as_str().unwrap();
    assert!(src.starts_with(&format!("{edge_url}/watch/golive?token=k1.")), "{src}");

    let done = wait_step(&mut driver, "done", Duration::from_secs(60), &mut report);
    assert_eq!(done["pageErrors"], serde_json::json!([]), "no errors in the page");
    let info: Value =
        serde_json::from_str(&curl(stack.router, ADMIN_TOKEN, "GET", "/admin/streams/golive", None)).unwrap();
    assert_eq!(info["enabled"], false);
    assert_eq!(info["playback"], "token");
    assert_eq!(info["live"], false);
    assert!(shot.exists(), "screenshot written");
}
