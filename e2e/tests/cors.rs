//! CORS with a real browser: a page served from another loopback origin
//! fetches playlists and a segment from the edge with a header of its own
//! (as a player sending a token does), which makes Chromium send a
//! preflight `OPTIONS` first. The real router API, origin and edge binaries
//! on loopback, the origin serving a prepared output folder.

use e2e::Player;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::{Process, Redis, bin_path, free_addr, http_get, wait_until};

const ADMIN: &str = "admin-token-0123456789";
const AGENT: &str = "agent-token-0123456789";

fn prepare(out: &Path) {
    let dir = out.join("live/s1/720p");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("1.m4s"), vec![1u8; 50_000]).unwrap();
    std::fs::write(
        dir.join("index.m3u8"),
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:2.000,\n1.m4s\n",
    )
    .unwrap();
    std::fs::write(
        out.join("live/index.m3u8"),
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\ns1/720p/index.m3u8\n",
    )
    .unwrap();
}

/// The page: three fetches with a custom header; each result published as
/// one string in `window.dionysia.live`, which `watch.mjs` prints.
fn page(edge: SocketAddr) -> String {
    format!(
        r#"<!doctype html><html><body><video id="video"></video><script>
(async () => {{
  const out = [];
  for (const path of ["/live/s1/720p/index.m3u8", "/live/s1/720p/index.m3u8", "/live/s1/720p/1.m4s"]) {{
    try {{
      const r = await fetch("http://{edge}" + path, {{ cache: "no-store", headers: {{ "X-Player-Token": "t0ken" }} }});
      const body = await r.arrayBuffer();
      out.push([path, r.status, r.headers.get("x-cache-status"), r.headers.get("age"),
                r.headers.get("content-length"), body.byteLength].join(" "));
    }} catch (e) {{ out.push(path + " failed " + e); }}
  }}
  window.dionysia = {{ state: "done", live: out }};
}})();
</script></body></html>"#
    )
}

/// Serves `body` to every request on `listener` until the test ends (the
/// thread stops after 60 s or 100 requests).
fn serve_page(listener: TcpListener, body: String) {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        listener.set_nonblocking(false).unwrap();
        for stream in listener.incoming().take(100) {
            if Instant::now() > deadline {
                break;
            }
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

#[test]
fn a_page_on_another_origin_sending_its_own_header_can_play() {
    let redis = Redis::start();
    let router = free_addr();
    let _router = Process::spawn(
        "router-api",
        bin_path("router-api"),
        [
            "--listen",
            &router.to_string(),
            "--redis",
            &redis.url(),
            "--report-ttl",
            "10m",
        ],
        &[("ROUTER_ADMIN_TOKEN", ADMIN), ("ROUTER_AGENT_TOKEN", AGENT)],
    );
    wait_until("router-api ready", Duration::from_secs(10), || {
        matches!(http_get(router, "/readyz"), Some((200, _)))
    });
    let out = tempfile::tempdir().unwrap();
    prepare(out.path());
    let (origin, rtmp) = (free_addr(), free_addr());
    let _origin = Process::spawn(
        "origin",
        bin_path("origin"),
        [
            "--origin-id",
            "origin-a",
            "--rtmp-listen",
            &rtmp.to_string(),
            "--http-listen",
            &origin.to_string(),
            "--output-dir",
            out.path().to_str().unwrap(),
            "--router",
            &format!("http://{router}"),
            "--retain-ended",
            "1h",
        ],
        &[("ROUTER_AGENT_TOKEN", AGENT)],
    );
    wait_until("origin ready", Duration::from_secs(10), || {
        matches!(http_get(origin, "/healthz"), Some((200, _)))
    });
    let report = format!(
        r#"{{"host":"{origin}","manifest":"live/index.m3u8","session":"s1","renditions":[{{"name":"720p"}}]}}"#
    );
    let put = std::process::Command::new("curl")
        .args(["-fsS", "-X", "PUT", "-H", &format!("Authorization: Bearer {AGENT}")])
        .args(["-H", "content-type: application/json", "-d", &report])
        .arg(format!("http://{router}/origins/origin-a/streams/live"))
        .output()
        .unwrap();
    assert!(put.status.success());
    let edge = free_addr();
    let edge_p = Process::spawn(
        "edge",
        bin_path("edge"),
        ["--listen", &edge.to_string(), "--router", &format!("http://{router}")],
        &[],
    );
    wait_until("edge ready", Duration::from_secs(10), || {
        matches!(http_get(edge, "/healthz"), Some((200, _)))
    });

    // The page's origin: another port on loopback is another origin.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let page_addr = listener.local_addr().unwrap();
    serve_page(listener, page(edge));

    let mut browser = Player::open(&format!("http://{page_addr}/"), 20);
    let sample = browser.wait_for("the page's fetches done", Duration::from_secs(20), |s| {
        s.state.as_deref() == Some("done")
    });
    let results = sample.live;
    assert_eq!(results.len(), 3, "{results:?}");
    for (i, r) in results.iter().enumerate() {
        let f: Vec<&str> = r.split(' ').collect();
        assert_eq!(f.len(), 6, "the fetch failed: {r}");
        assert_eq!(f[1], "200", "{r}");
        // The exposed headers are readable by the page.
        assert!(f[2] == "MISS" || f[2] == "HIT", "X-Cache-Status not exposed: {r}");
        assert_ne!(f[3], "null", "Age not exposed: {r}");
        assert_eq!(f[4], f[5], "Content-Length not exposed or wrong: {r}");
        if i == 1 {
            assert_eq!(f[2], "HIT", "the second playlist fetch is a hit: {r}");
        }
    }
    // The browser did preflight (the custom header), and the edge answered it.
    let metrics = http_get(edge, "/metrics").unwrap().1;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("edge_requests_total{cache_status=\"PREFLIGHT\"") && !l.ends_with(" 0")),
        "no preflight reached the edge:\n{metrics}"
    );
    assert!(!edge_p.log().contains("panicked"));
}
