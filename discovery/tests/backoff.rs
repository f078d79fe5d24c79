//! A discovery agent whose reports the router refuses backs off and says so:
//! the real agent binary, the real router API on a real Redis, a folder
//! written the way the origin writes it and kept live by a bounded ticker.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use testkit::{Process, Redis, bin_path, free_addr, http_get, wait_until};

const ADMIN: &str = "admin-token-0123456789";
const AGENT: &str = "agent-token-0123456789";

fn write_atomic(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn media_playlist(seq: u64) -> String {
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{seq}\n#EXT-X-MAP:URI=\"init.mp4\"\n"
    );
    for n in seq..seq + 3 {
        s.push_str(&format!("#EXTINF:1.000,\n{n}.m4s\n"));
    }
    s
}

/// A live stream `name` with `renditions` renditions in `root`, its media
/// playlists rewritten every 250 ms until the sender is dropped (at most
/// 60 s).
fn live_stream(root: &Path, name: &str, renditions: usize) -> mpsc::Sender<()> {
    let names: Vec<String> = (0..renditions).map(|i| format!("r{i}")).collect();
    let mut master = String::from("#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for r in &names {
        write_atomic(
            &root.join(name).join("s1").join(r).join("index.m3u8"),
            &media_playlist(0),
        );
        master.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.64001e\"\ns1/{r}/index.m3u8\n"
        ));
    }
    write_atomic(&root.join(name).join("index.m3u8"), &master);
    let (stop, stopped) = mpsc::channel::<()>();
    let dir = root.join(name).join("s1");
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seq = 0;
        while Instant::now() < deadline
            && matches!(
                stopped.recv_timeout(Duration::from_millis(250)),
                Err(mpsc::RecvTimeoutError::Timeout)
            )
        {
            seq += 1;
            for r in &names {
                write_atomic(&dir.join(r).join("index.m3u8"), &media_playlist(seq));
            }
        }
    });
    stop
}

fn start_agent(origin: &str, dir: &Path, router: SocketAddr, token: &str) -> (Process, SocketAddr) {
    let listen = free_addr();
    let process = Process::spawn(
        "discovery",
        bin_path("discovery"),
        [
            "--origin-id",
            origin,
            "--output-dir",
            dir.to_str().unwrap(),
            "--advertise",
            "127.0.0.1:9",
            "--router",
            &format!("http://{router}"),
            "--listen",
            &listen.to_string(),
            "--http-head-timeout",
            "1s",
        ],
        &[("ROUTER_AGENT_TOKEN", token)],
    );
    wait_until("discovery /healthz", Duration::from_secs(10), || {
        matches!(http_get(listen, "/healthz"), Some((200, _)))
    });
    (process, listen)
}

/// Report requests the router answered with `status`, from its metrics.
fn reports_answered(router: SocketAddr, status: u16) -> f64 {
    let text = http_get(router, "/metrics").unwrap().1;
    let status = format!("status=\"{status}\"");
    text.lines()
        .filter(|l| {
            l.starts_with("router_http_requests_total{")
                && l.contains("route=\"/origins/{origin}/streams/{name}\"")
                && l.contains(&status)
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[test]
fn a_refused_agent_backs_off_and_says_so() {
    let redis = Redis::start();
    let router = free_addr();
    let _router = Process::spawn(
        "router-api",
        bin_path("router-api"),
        ["--listen", &router.to_string(), "--redis", &redis.url()],
        &[("ROUTER_ADMIN_TOKEN", ADMIN), ("ROUTER_AGENT_TOKEN", AGENT)],
    );
    wait_until("router-api ready", Duration::from_secs(10), || {
        matches!(http_get(router, "/readyz"), Some((200, _)))
    });
    // One agent with a rotated-away token; one whose stream has more
    // renditions than the router accepts.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _ticks_a = live_stream(a.path(), "tokened", 2);
    let _ticks_b = live_stream(b.path(), "ladder", api_types::MAX_RENDITIONS + 1);
    let started = Instant::now();
    let (mut stale_token, stale_listen) = start_agent("origin-a", a.path(), router, "rotated-token-0123456789");
    let (mut big_ladder, big_listen) = start_agent("origin-b", b.path(), router, AGENT);

    // Both say so, in /readyz, /healthz and a metric, within a few seconds.
    for listen in [stale_listen, big_listen] {
        wait_until(
            "the agent says it is refused",
            Duration::from_secs(5),
            || matches!(http_get(listen, "/readyz"), Some((503, body)) if body.contains("\"status\":\"refused\"")),
        );
        let (status, health) = http_get(listen, "/healthz").unwrap();
        assert_eq!(status, 200);
        assert!(health.contains("\"streams_refused\":1"), "{health}");
        let metrics = http_get(listen, "/metrics").unwrap().1;
        assert!(metrics.contains("discovery_streams_refused 1"), "{metrics}");
    }

    // Count what each sends in 10 s: a handful, not tens of thousands.
    let until = started + Duration::from_secs(10);
    wait_until("ten seconds of refused reports", Duration::from_secs(12), || {
        Instant::now() >= until
    });
    let (unauthorized, bad_request) = (reports_answered(router, 401), reports_answered(router, 400));
    println!("refused reports in 10 s: {unauthorized} (401, rotated token), {bad_request} (400, too many renditions)");
    assert!(
        (2.0..=8.0).contains(&unauthorized),
        "{unauthorized} refused reports (401) in 10 s"
    );
    assert!(
        (2.0..=8.0).contains(&bad_request),
        "{bad_request} refused reports (400) in 10 s"
    );

    // The metrics port has the HTTP limits too: a dribbled head is cut.
    let mut s = std::net::TcpStream::connect(stale_listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let t = Instant::now();
    use std::io::{Read, Write};
    s.write_all(b"GET /metr").unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "no answer to half a head");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "a half head was kept {:?}",
        t.elapsed()
    );

    for p in [&mut stale_token, &mut big_ladder] {
        assert!(!p.log().contains("panicked"), "{}", p.log());
        p.stop();
    }
}
