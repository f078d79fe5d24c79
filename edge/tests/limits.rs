//! The edge (and the origin's HTTP server behind it) under slow, odd and
//! hostile clients, while a real viewer is being served: the real edge,
//! origin and router API binaries on loopback, Redis, and an origin output
//! folder prepared on disk (no encoder: these tests are about HTTP).
//!
//! Every test checks that the viewer's requests stay fast (a generous bound,
//! not a benchmark), that the hostile connections are closed within the
//! configured limits (short ones, set by flags), that memory and file
//! descriptors come back, and that nothing panicked.

use reqwest::Client;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use testkit::{Process, Redis, bin_path, free_addr, http_get, wait_until, wait_until_async};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN: &str = "admin-token-0123456789";
const AGENT: &str = "agent-token-0123456789";
/// The size of the big segments a stalled or aborting viewer asks for:
/// more than the kernel's largest socket buffers, so a viewer that stops
/// reading stalls the writer.
const BIG: usize = 8 << 20;
/// The big segments of stream `live`: 1 is fetched (warm) first; 90 and 91
/// are misses.
const BIG_SEGMENTS: [u32; 3] = [1, 90, 91];
/// Segments numbered from here are never fetched before a test asks.
const COLD_FROM: u32 = 100;

/// Redis, the router API (reports live for 10 minutes), an origin serving a
/// prepared folder, and an edge with the given flags.
struct Fixture {
    _redis: Redis,
    router: SocketAddr,
    _router: Process,
    origin: SocketAddr,
    origin_p: Process,
    _out: tempfile::TempDir,
    edge: SocketAddr,
    edge_p: Process,
    client: Client,
}

/// One stream's output as the origin writes it: a multivariant playlist,
/// one rendition with a media playlist, an init segment, segments
/// 1..COLD_FROM+50 (the `big` ones of [`BIG`] bytes, the others 20 kB).
fn prepare(out: &Path, stream: &str, session: &str, big: &[u32]) {
    let dir = out.join(stream).join(session).join("720p");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("init.mp4"), vec![7u8; 1000]).unwrap();
    let big_body: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    for n in 1..COLD_FROM + 50 {
        let body = if big.contains(&n) {
            big_body.clone()
        } else {
            vec![n as u8; 20_000]
        };
        std::fs::write(dir.join(format!("{n}.m4s")), body).unwrap();
    }
    let mut pl = String::from(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-MAP:URI=\"init.mp4\"\n",
    );
    for n in 1..=3 {
        pl.push_str(&format!("#EXTINF:2.000,\n{n}.m4s\n"));
    }
    std::fs::write(dir.join("index.m3u8"), pl).unwrap();
    std::fs::write(
        out.join(stream).join("index.m3u8"),
        format!(
            "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.64001e\"\n{session}/720p/index.m3u8\n"
        ),
    )
    .unwrap();
}

impl Fixture {
    fn start(edge_flags: &[&str]) -> Fixture {
        let redis = Redis::start();
        let router = free_addr();
        let router_p = Process::spawn(
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
        prepare(out.path(), "live", "s1", &BIG_SEGMENTS);
        for stream in ["two", "fresh"] {
            prepare(out.path(), stream, "s1", &[]);
        }
        let (origin, rtmp) = (free_addr(), free_addr());
        let origin_p = Process::spawn(
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
                "--http-head-timeout",
                "2s",
                "--http-idle-timeout",
                "3s",
                "--http-write-timeout",
                "2s",
            ],
            &[("ROUTER_AGENT_TOKEN", AGENT)],
        );
        wait_until("origin ready", Duration::from_secs(10), || {
            matches!(http_get(origin, "/healthz"), Some((200, _)))
        });
        let edge = free_addr();
        let mut args: Vec<String> = [
            "--listen",
            &edge.to_string(),
            "--router",
            &format!("http://{router}"),
            "--cache-size",
            "64MiB",
            "--log",
            "info",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(edge_flags.iter().map(|s| s.to_string()));
        let edge_p = Process::spawn("edge", bin_path("edge"), &args, &[]);
        wait_until("edge ready", Duration::from_secs(10), || {
            matches!(http_get(edge, "/healthz"), Some((200, _)))
        });
        let f = Fixture {
            _redis: redis,
            router,
            _router: router_p,
            origin,
            origin_p,
            _out: out,
            edge,
            edge_p,
            client: Client::builder().timeout(Duration::from_secs(5)).build().unwrap(),
        };
        f.report("origin-a", "live", &origin.to_string(), "s1");
        f
    }

    /// A discovery report, as an agent sends it.
    fn report(&self, origin_id: &str, stream: &str, host: &str, session: &str) {
        let body = serde_json::json!({
            "host": host, "manifest": format!("{stream}/index.m3u8"), "session": session,
            "renditions": [{"name": "720p"}],
        });
        let out = std::process::Command::new("curl")
            .args(["-fsS", "-X", "PUT", "-H", &format!("Authorization: Bearer {AGENT}")])
            .args(["-H", "content-type: application/json", "-d", &body.to_string()])
            .arg(format!("http://{}/origins/{origin_id}/streams/{stream}", self.router))
            .output()
            .unwrap();
        assert!(out.status.success(), "report: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.edge)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// Nothing in the edge's and origin's logs says a task panicked.
    fn assert_no_panic(&self) {
        for (name, log) in [("edge", self.edge_p.log()), ("origin", self.origin_p.log())] {
            assert!(!log.contains("panicked"), "{name} panicked:\n{log}");
        }
    }
}

/// The value of the metric line starting with `prefix` (labels included).
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0.0)
}

/// Resident memory (kB) and open file descriptors of a process.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    (rss, fds)
}

/// A player fetching the media playlist and a segment every 100 ms until
/// `stop`: the slowest answer and how many answers were not 200.
fn viewer(client: Client, base: String, stop: Instant) -> tokio::task::JoinHandle<(Duration, u32)> {
    tokio::spawn(async move {
        let (mut worst, mut bad) = (Duration::ZERO, 0);
        let mut n = 0u32;
        while Instant::now() < stop {
            for path in ["/live/s1/720p/index.m3u8", "/live/s1/720p/2.m4s", "/live/index.m3u8"] {
                let t = Instant::now();
                let ok = match client.get(format!("{base}{path}")).send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                worst = worst.max(t.elapsed());
                bad += u32::from(!ok);
            }
            n += 1;
            // The player's reload interval, bounded by `stop`.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(n > 5, "the viewer ran");
        (worst, bad)
    })
}

/// A player on one keep-alive connection, fetching the media playlist and
/// a segment every 100 ms until `stop`: the slowest answer and how many
/// answers were not 200.
async fn one_connection_viewer(mut s: TcpStream, stop: Instant) -> (Duration, u32) {
    let (mut worst, mut bad) = (Duration::ZERO, 0);
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < stop {
        for path in ["/live/s1/720p/index.m3u8", "/live/s1/720p/2.m4s"] {
            let t = Instant::now();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: e\r\n\r\n").as_bytes())
                .await
                .unwrap();
            // Head, then Content-Length bytes of body.
            let mut got: Vec<u8> = Vec::new();
            let (status, body_len, head_len) = loop {
                let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                    .await
                    .expect("the viewer's answer in time")
                    .unwrap();
                assert!(n > 0, "the viewer's connection was closed");
                got.extend_from_slice(&buf[..n]);
                if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    break (head.lines().next().unwrap().to_string(), len, end + 4);
                }
            };
            while got.len() < head_len + body_len {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "the viewer's connection was closed");
                got.extend_from_slice(&buf[..n]);
            }
            worst = worst.max(t.elapsed());
            bad += u32::from(!status.contains(" 200 "));
        }
        // The player's reload interval, bounded by `stop`.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (worst, bad)
}

/// A client that sends a request head one byte every 200 ms; returns how
/// long the server kept it (bounded at `bound`).
async fn dribble(addr: SocketAddr, bound: Duration) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = b"GET /live/s1/720p/index.m3u8 HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut buf = [0u8; 256];
    for b in head.iter().cycle().take(10_000) {
        if start.elapsed() > bound || s.write_all(&[*b]).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => panic!("a dribbled head got an answer"),
            Err(_) => {}
        }
    }
    start.elapsed()
}

/// A client that connects and sends nothing; returns how long the server
/// kept it (bounded at `bound`).
async fn idle(addr: SocketAddr, bound: Duration) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(bound, s.read(&mut buf)).await;
    start.elapsed()
}

/// A client with a tiny receive buffer that asks for the big segment and
/// does not read; the socket, to be read once the server gave up.
async fn stall(addr: SocketAddr, path: &str, extra: &str) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes())
        .await
        .unwrap();
    s
}

/// Reads what the server sent before it closed; bounded.
async fn drain(mut s: TcpStream) -> usize {
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => total += n,
            _ => break,
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_idle_and_unread_connections_are_closed_while_a_viewer_plays() {
    let f = Fixture::start(&[
        "--http-head-timeout",
        "2s",
        "--http-idle-timeout",
        "3s",
        "--http-write-timeout",
        "2s",
    ]);
    // Warm: the big segment is a hit (answered by the fast path), and the
    // viewer's objects are cached.
    assert_eq!(f.get("/live/s1/720p/1.m4s").await.bytes().await.unwrap().len(), BIG);
    let base = footprint(f.edge_p.pid());
    let origin_base = footprint(f.origin_p.pid());

    let stop = Instant::now() + Duration::from_secs(12);
    let player = viewer(f.client.clone(), format!("http://{}", f.edge), stop);
    let bound = Duration::from_secs(12);
    let mut dribblers = tokio::task::JoinSet::new();
    for i in 0..400 {
        // Three in four on the edge, the rest on the origin's HTTP server.
        let addr = if i % 4 == 0 { f.origin } else { f.edge };
        dribblers.spawn(dribble(addr, bound));
    }
    let mut idlers = tokio::task::JoinSet::new();
    for i in 0..100 {
        let addr = if i % 4 == 0 { f.origin } else { f.edge };
        idlers.spawn(idle(addr, bound));
    }
    let mut stalled = vec![];
    for _ in 0..40 {
        stalled.push(stall(f.edge, "/live/s1/720p/1.m4s", "").await);
    }
    // Pingora's path too: ranges of the cached object, and a miss.
    for _ in 0..5 {
        stalled.push(stall(f.edge, "/live/s1/720p/1.m4s", "Range: bytes=0-8000000\r\n").await);
    }
    stalled.push(stall(f.edge, "/live/s1/720p/91.m4s", "").await);
    let mut origin_stalled = vec![];
    for _ in 0..10 {
        origin_stalled.push(stall(f.origin, "/live/s1/720p/1.m4s", "").await);
    }
    let peak = footprint(f.edge_p.pid());

    // Head deadline 2 s (checked every 0.5 s); a generous margin for a
    // shared machine. A dribbler that had been kept would run to `bound`.
    while let Some(kept) = dribblers.join_next().await {
        let kept = kept.unwrap();
        assert!(kept < Duration::from_secs(5), "a dribbling client was kept {kept:?}");
    }
    while let Some(kept) = idlers.join_next().await {
        let kept = kept.unwrap();
        assert!(
            kept >= Duration::from_millis(2500) && kept < Duration::from_secs(7),
            "an idle connection was kept {kept:?} (idle limit 3 s)"
        );
    }
    // Stalled readers: closed by the write timeout, long before the whole
    // segment was delivered.
    let started = Instant::now();
    wait_until_async(
        "the stalled viewers closed by the write timeout",
        Duration::from_secs(10),
        || async {
            (metric(&f.metrics().await, "edge_connections_timed_out_total{limit=\"write\"}") >= 40.0).then_some(())
        },
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(8));
    for s in stalled.into_iter().chain(origin_stalled) {
        let got = drain(s).await;
        assert!(
            got < BIG,
            "a stalled viewer got the whole segment ({got} bytes): not closed"
        );
    }

    let (worst, bad) = player.await.unwrap();
    assert_eq!(bad, 0, "the viewer's requests all succeeded");
    assert!(worst < Duration::from_secs(1), "the viewer waited {worst:?}");

    // Everything comes back: connections, descriptors, memory.
    wait_until_async(
        "the edge back to its own connections",
        Duration::from_secs(10),
        || async { (metric(&f.metrics().await, "edge_connections_open") <= 3.0).then_some(()) },
    )
    .await;
    let after = footprint(f.edge_p.pid());
    let origin_after = footprint(f.origin_p.pid());
    assert!(after.1 <= base.1 + 10, "edge fds: {base:?} -> {after:?}");
    assert!(
        origin_after.1 <= origin_base.1 + 10,
        "origin fds: {origin_base:?} -> {origin_after:?}"
    );
    assert!(peak.0 < base.0 + 200_000, "edge memory: {base:?} -> peak {peak:?}");
    assert!(after.0 < base.0 + 200_000, "edge memory: {base:?} -> {after:?}");
    let m = f.metrics().await;
    assert!(
        metric(&m, "edge_connections_timed_out_total{limit=\"head\"}") >= 290.0,
        "{m}"
    );
    assert!(
        metric(&m, "edge_connections_timed_out_total{limit=\"idle\"}") >= 70.0,
        "{m}"
    );
    f.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_connection_cap_connections_are_refused_clearly() {
    let f = Fixture::start(&["--http-max-connections", "40"]);
    assert_eq!(f.get("/live/s1/720p/index.m3u8").await.status(), 200);
    // The viewer plays (holding its connection) past the whole check below:
    // were it to leave first, its freed slot would let the probes in (seen
    // once, on a loaded machine, with 5 s).
    let stop = Instant::now() + Duration::from_secs(15);
    // The viewer's one keep-alive connection is open before the cap is
    // reached (reqwest's pool may open a new connection at any request, so
    // this viewer speaks HTTP/1.1 itself).
    let conn = TcpStream::connect(f.edge).await.unwrap();
    let player = tokio::spawn(one_connection_viewer(conn, stop));
    // Idle connections up to the cap and past it (those are refused too).
    let mut held = vec![];
    for _ in 0..40 {
        held.push(TcpStream::connect(f.edge).await.unwrap());
    }
    wait_until_async("the edge at its cap", Duration::from_secs(10), || async {
        let text = http_get(f.edge, "/healthz");
        // A new connection is refused: the probe gets no 200.
        (!matches!(text, Some((200, _)))).then_some(())
    })
    .await;
    let mut refused = 0;
    for _ in 0..20 {
        let mut s = TcpStream::connect(f.edge).await.unwrap();
        let _ = s
            .write_all(b"GET /live/s1/720p/index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut text = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut text)).await;
        let text = String::from_utf8_lossy(&text);
        if text.starts_with("HTTP/1.1 503") {
            assert!(text.to_ascii_lowercase().contains("retry-after: 1"), "{text}");
            refused += 1;
        }
    }
    assert!(refused >= 15, "{refused} of 20 connections past the cap got a 503");
    let (worst, bad) = player.await.unwrap();
    assert_eq!(bad, 0);
    assert!(worst < Duration::from_secs(1), "the viewer waited {worst:?}");
    drop(held);
    // Once the held connections close, new ones are served again.
    wait_until_async("a new connection served again", Duration::from_secs(5), || async {
        let c = Client::new();
        let r = c.get(f.url("/live/s1/720p/index.m3u8")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    assert!(metric(&f.metrics().await, "edge_connections_refused_total") >= 15.0);
    f.assert_no_panic();
}

/// The status line the edge answers `head` with, on a fresh connection.
async fn status_line(addr: SocketAddr, head: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(head).await;
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !got.windows(2).any(|w| w == b"\r\n") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&got);
    text.lines().next().unwrap_or("(closed without an answer)").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn odd_heads_get_the_same_answer_from_a_cold_and_a_warm_object() {
    let f = Fixture::start(&[]);
    let warm = "/live/s1/720p/2.m4s";
    assert_eq!(f.get(warm).await.status(), 200);
    let hit = f.get(warm).await;
    assert_eq!(hit.headers()["x-cache-status"], "HIT");

    // `{P}` is the path; every head is sent to a never-fetched object and to
    // the warm one.
    let long = "a".repeat(20_000);
    let many: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    let heads: Vec<(&str, String)> = vec![
        ("plain", "GET {P} HTTP/1.1\r\nHost: e\r\n\r\n".into()),
        (
            "duplicate Host",
            "GET {P} HTTP/1.1\r\nHost: e\r\nHost: f\r\n\r\n".into(),
        ),
        ("missing Host", "GET {P} HTTP/1.1\r\nUser-Agent: t\r\n\r\n".into()),
        ("obs-fold", "GET {P} HTTP/1.1\r\nHost: e\r\nX-A: b\r\n c\r\n\r\n".into()),
        (
            "Content-Length and Transfer-Encoding",
            "GET {P} HTTP/1.1\r\nHost: e\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
        ),
        (
            "two Content-Lengths",
            "GET {P} HTTP/1.1\r\nHost: e\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello".into(),
        ),
        (
            "the same Content-Length twice",
            "GET {P} HTTP/1.1\r\nHost: e\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n".into(),
        ),
        ("space before colon", "GET {P} HTTP/1.1\r\nHost : e\r\n\r\n".into()),
        ("HTTP/1.0 without Host", "GET {P} HTTP/1.0\r\n\r\n".into()),
        ("lower-case method", "get {P} HTTP/1.1\r\nHost: e\r\n\r\n".into()),
        ("unknown method", "BREW {P} HTTP/1.1\r\nHost: e\r\n\r\n".into()),
        ("absolute form", "GET http://e{P} HTTP/1.1\r\nHost: e\r\n\r\n".into()),
        ("bare line feeds", "GET {P} HTTP/1.1\nHost: e\n\n".into()),
        (
            "control byte in a value",
            "GET {P} HTTP/1.1\r\nHost: e\r\nX-A: a\x01b\r\n\r\n".into(),
        ),
        (
            "a 20 KB header",
            format!("GET {{P}} HTTP/1.1\r\nHost: e\r\nX-Long: {long}\r\n\r\n"),
        ),
        ("40 headers", format!("GET {{P}} HTTP/1.1\r\nHost: e\r\n{many}\r\n")),
        ("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".into()),
    ];
    for (cold, (what, head)) in (COLD_FROM..).zip(heads.iter()) {
        let cold_path = format!("/live/s1/720p/{cold}.m4s");
        let on_cold = status_line(f.edge, head.replace("{P}", &cold_path).as_bytes()).await;
        let on_warm = status_line(f.edge, head.replace("{P}", warm).as_bytes()).await;
        assert_eq!(
            on_cold, on_warm,
            "{what}: a cold and a warm object answered differently"
        );
        match *what {
            "plain" | "40 headers" | "HTTP/1.0 without Host" => assert!(on_cold.contains(" 200 "), "{what}: {on_cold}"),
            "duplicate Host" | "missing Host" | "obs-fold" => assert!(on_cold.contains(" 400 "), "{what}: {on_cold}"),
            "a 20 KB header" => assert!(on_cold.contains(" 431 "), "{what}: {on_cold}"),
            _ => {}
        }
    }
    f.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_origin_whose_name_does_not_resolve_is_passed_over() {
    let f = Fixture::start(&[]);
    // "gone": its only origin's name does not resolve (RFC 6761 .invalid).
    f.report("origin-gone", "gone", "origin-gone.invalid:8080", "s9");
    // "two": a live origin and one whose name does not resolve, so that
    // some viewers are placed on it.
    f.report("origin-a", "two", &f.origin.to_string(), "s1");
    f.report("origin-gone", "two", "origin-gone.invalid:8080", "s9");
    wait_until_async("the edge sees the streams", Duration::from_secs(5), || async {
        (f.get("/gone/index.m3u8").await.status() != 404).then_some(())
    })
    .await;

    // No origin left: a clear 502, not a dropped connection.
    for path in ["/gone/index.m3u8", "/gone/s9/720p/index.m3u8", "/gone/s9/720p/1.m4s"] {
        let r = f.get(path).await;
        assert_eq!(r.status(), 502, "{path}");
    }
    // A media playlist of the unresolvable origin's session: a redirect to
    // the same rendition of the live one, which plays.
    let r = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(f.url("/two/s9/720p/index.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/two/s1/720p/index.m3u8");
    assert_eq!(f.get("/two/s9/720p/index.m3u8").await.status(), 200, "followed");
    // New viewers (many addresses) are placed on the live origin only: the
    // unresolvable one is passed over like one refusing connections.
    for last in 2..40u8 {
        let c = Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, last]))
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let r = c.get(f.url("/two/index.m3u8")).send().await.unwrap();
        assert_eq!(r.status(), 200, "viewer 127.0.0.{last}");
        assert!(r.text().await.unwrap().contains("s1/720p/index.m3u8"));
    }
    let log = f.edge_p.log();
    assert!(log.contains("does not resolve"), "{log}");
    f.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_names_cost_the_router_little_and_new_streams_play_within_a_second() {
    let f = Fixture::start(&[]);
    let router_requests = |route: &'static str| {
        let text = http_get(f.router, "/metrics").unwrap().1;
        let route = format!("route=\"{route}\"");
        text.lines()
            .filter(|l| l.starts_with("router_http_requests_total{") && l.contains(&route))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>()
    };
    assert_eq!(f.get("/live/s1/720p/index.m3u8").await.status(), 200);
    let (one0, all0) = (router_requests("/streams/{name}"), router_requests("/streams"));

    let started = Instant::now();
    let stop = started + Duration::from_secs(6);
    let player = viewer(f.client.clone(), format!("http://{}", f.edge), stop);
    let n = Arc::new(AtomicU64::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for w in 0..30u64 {
        let (c, base, n) = (f.client.clone(), format!("http://{}", f.edge), n.clone());
        flood.spawn(async move {
            for i in 0..100u64 {
                let r = c.get(format!("{base}/rnd-{w}-{i}/index.m3u8")).send().await.unwrap();
                assert_eq!(r.status(), 404);
                n.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while let Some(r) = flood.join_next().await {
        r.unwrap();
    }
    let flood_secs = started.elapsed().as_secs_f64();
    assert_eq!(n.load(Ordering::Relaxed), 3000);
    let (one1, all1) = (router_requests("/streams/{name}"), router_requests("/streams"));
    println!(
        "3000 random names in {flood_secs:.1} s cost the router {} stream look-ups and {} live-set requests",
        one1 - one0,
        all1 - all0
    );
    // The viewer's own stream is looked up once a second; random names never.
    assert!(
        one1 - one0 <= flood_secs.ceil() + 2.0,
        "{} stream look-ups in {flood_secs:.1} s: random names were looked up",
        one1 - one0
    );
    assert!(
        all1 - all0 <= flood_secs.ceil() + 2.0,
        "{} live-set requests in {flood_secs:.1} s",
        all1 - all0
    );

    // A stream reported now is playable within about a second.
    let reported = Instant::now();
    f.report("origin-a", "fresh", &f.origin.to_string(), "s1");
    wait_until_async("the new stream playable", Duration::from_secs(5), || async {
        (f.get("/fresh/index.m3u8").await.status() == 200).then_some(())
    })
    .await;
    let took = reported.elapsed();
    println!("a new stream was playable {took:?} after its report");
    assert!(
        took < Duration::from_millis(1800),
        "a new stream took {took:?} to be playable"
    );

    let (worst, bad) = player.await.unwrap();
    assert_eq!(bad, 0);
    assert!(worst < Duration::from_secs(1), "the viewer waited {worst:?}");
    let m = f.metrics().await;
    assert!(
        metric(&m, "edge_route_lookups_total{source=\"unknown\"}") >= 3000.0,
        "{m}"
    );
    f.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn preflights_are_answered_on_every_playback_path() {
    let f = Fixture::start(&[]);
    let c = Client::new();
    for path in [
        "/live/index.m3u8",
        "/live/s1/720p/index.m3u8",
        "/live/s1/720p/init.mp4",
        "/live/s1/720p/2.m4s",
    ] {
        let r = c
            .request(reqwest::Method::OPTIONS, f.url(path))
            .header("origin", "http://127.0.0.1:1")
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "x-player-token, range")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{path}");
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(h["access-control-allow-methods"], "GET, HEAD, OPTIONS");
        assert_eq!(h["access-control-allow-headers"], "x-player-token, range");
        assert_eq!(h["access-control-max-age"], "86400");
        assert!(h.get("content-length").is_none(), "a 204 has no Content-Length");
    }
    // Misses and hits alike expose what players read.
    for _ in 0..2 {
        let r = f.get("/live/s1/720p/3.m4s").await;
        assert_eq!(
            r.headers()["access-control-expose-headers"],
            "Age, X-Cache-Status, Content-Length"
        );
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
    }
    // Something not ours to preflight.
    let r = c
        .request(reqwest::Method::OPTIONS, f.url("/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// A request for the big segment, abandoned after a few kilobytes with
/// unread data (the kernel resets the connection).
async fn abandon(addr: SocketAddr, head: &str) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(8192).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    while got < 8192 {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got += n,
            _ => break,
        }
    }
    assert!(got > 0, "the segment started");
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn viewers_leaving_mid_segment_are_not_errors() {
    let f = Fixture::start(&[]);
    let stop = Instant::now() + Duration::from_secs(4);
    let player = viewer(f.client.clone(), format!("http://{}", f.edge), stop);
    let seg = "/live/s1/720p/1.m4s";
    // A miss (pingora's path, filling the cache), hits (the fast path), and
    // ranges of the cached object (pingora's hit path).
    abandon(f.edge, "GET /live/s1/720p/90.m4s HTTP/1.1\r\nHost: e\r\n\r\n").await;
    for _ in 0..5 {
        abandon(f.edge, &format!("GET {seg} HTTP/1.1\r\nHost: e\r\n\r\n")).await;
        abandon(
            f.edge,
            &format!("GET {seg} HTTP/1.1\r\nHost: e\r\nRange: bytes=0-3000000\r\n\r\n"),
        )
        .await;
    }
    let (worst, bad) = player.await.unwrap();
    assert_eq!(bad, 0);
    assert!(worst < Duration::from_secs(1), "the viewer waited {worst:?}");
    let m = wait_until_async("the aborts counted", Duration::from_secs(10), || async {
        let m = f.metrics().await;
        let aborts: f64 = ["closed", "reset", "timeout"]
            .iter()
            .map(|k| metric(&m, &format!("edge_client_aborts_total{{kind=\"{k}\"}}")))
            .sum();
        (aborts >= 10.0).then_some(m)
    })
    .await;
    for line in m.lines().filter(|l| !l.starts_with('#')) {
        assert!(!line.contains("status=\"5"), "a 5xx in the edge's metrics: {line}");
    }
    let log = f.edge_p.log();
    for line in log.lines() {
        assert!(!line.contains("ERROR"), "an ERROR line for a viewer leaving: {line}");
    }
    f.assert_no_panic();
}

#[test]
fn the_limits_are_documented_in_help() {
    testkit::assert_help_documents(
        bin_path("edge"),
        &[
            "--http-head-timeout",
            "EDGE_HTTP_HEAD_TIMEOUT",
            "--http-idle-timeout",
            "EDGE_HTTP_IDLE_TIMEOUT",
            "--http-write-timeout",
            "EDGE_HTTP_WRITE_TIMEOUT",
            "--http-max-connections",
            "EDGE_HTTP_MAX_CONNECTIONS",
            "--resolve-ttl",
            "EDGE_RESOLVE_TTL",
        ],
    );
    for service in ["origin", "router-api", "discovery"] {
        testkit::assert_help_documents(
            bin_path(service),
            &[
                "--http-head-timeout",
                "HTTP_HEAD_TIMEOUT",
                "--http-idle-timeout",
                "HTTP_IDLE_TIMEOUT",
                "--http-write-timeout",
                "HTTP_WRITE_TIMEOUT",
                "--http-max-connections",
                "HTTP_MAX_CONNECTIONS",
            ],
        );
    }
}
