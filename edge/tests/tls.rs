//! The edge over HTTPS: HTTP/2 and HTTP/1.1 chosen by ALPN, the same bytes,
//! caching, stickiness and CORS as over plain HTTP, certificate reloads
//! (SIGHUP, changed files, a broken new pair), and the limits on TLS clients
//! that never finish. The real edge, origin and router API binaries on
//! loopback, Redis, and origin output folders prepared on disk (no encoder:
//! these tests are about the edge's HTTP). Clients: curl (`--http2`,
//! `--http1.1`, checking the served certificate against the test's CA file)
//! and OpenSSL (the edge's own TLS library) for handshakes and fingerprints.

use pingora_core::tls::hash::MessageDigest;
use pingora_core::tls::ssl::{SslConnector, SslMethod, SslVerifyMode};
use pingora_core::tls::tokio_ssl::SslStream;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};
use testkit::{Process, Redis, bin_path, free_addr, http_get, wait_until, wait_until_async};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN: &str = "admin-token-0123456789";
const AGENT: &str = "agent-token-0123456789";
/// A segment larger than HTTP/2's initial flow-control window (64 KiB) and
/// the socket buffers: a viewer that stops reading stalls the edge's write.
const BIG: usize = 4 << 20;

/// A self-signed pair for `localhost` and 127.0.0.1; returns (cert, key).
fn make_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    testkit::self_signed_pair(dir, name)
}

/// SHA-256 fingerprint of a PEM certificate file, as OpenSSL prints it.
fn file_fingerprint(cert: &Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().split_once('=').expect("a fingerprint").1.to_string()
}

/// Copies a pair over `live` as a renewal does: each file written beside its
/// target and renamed over it.
fn install(pair: &(PathBuf, PathBuf), live: &(PathBuf, PathBuf)) {
    for (from, to) in [(&pair.0, &live.0), (&pair.1, &live.1)] {
        let tmp = to.with_extension("new");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
}

/// One stream's output as an origin writes it: multivariant playlist, one
/// rendition with a media playlist, init and 20 kB segments 1..=20 (segment
/// `n` is 20 000 bytes of `n`), and segment 21 of [`BIG`] bytes.
fn prepare(out: &Path, stream: &str, session: &str) {
    let dir = out.join(stream).join(session).join("720p");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("init.mp4"), vec![7u8; 1000]).unwrap();
    for n in 1..=20u32 {
        std::fs::write(dir.join(format!("{n}.m4s")), vec![n as u8; 20_000]).unwrap();
    }
    std::fs::write(dir.join("21.m4s"), vec![21u8; BIG]).unwrap();
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

/// Redis, the router API (reports live for 10 minutes) and two origins
/// serving prepared folders: stream `live` is session `s1` on origin-a and
/// `s2` on origin-b.
struct Fixture {
    _redis: Redis,
    router: SocketAddr,
    _router: Process,
    _origins: Vec<(Process, tempfile::TempDir)>,
    dir: tempfile::TempDir,
}

/// An edge with a TLS listener.
struct Edge {
    plain: SocketAddr,
    tls: SocketAddr,
    p: Process,
    /// The pair the edge was started with (its files are the `live` pair).
    ca: PathBuf,
    live: (PathBuf, PathBuf),
}

impl Fixture {
    fn start() -> Fixture {
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
        let mut origins = Vec::new();
        for (id, session) in [("origin-a", "s1"), ("origin-b", "s2")] {
            let out = tempfile::tempdir().unwrap();
            prepare(out.path(), "live", session);
            let (http, rtmp) = (free_addr(), free_addr());
            let p = Process::spawn(
                id,
                bin_path("origin"),
                [
                    "--origin-id",
                    id,
                    "--rtmp-listen",
                    &rtmp.to_string(),
                    "--http-listen",
                    &http.to_string(),
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
                matches!(http_get(http, "/healthz"), Some((200, _)))
            });
            report(router, id, "live", &http.to_string(), session);
            origins.push((p, out));
        }
        Fixture {
            _redis: redis,
            router,
            _router: router_p,
            _origins: origins,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Starts an edge with a fresh pair named `name` and the extra flags.
    fn edge(&self, name: &str, extra: &[&str]) -> Edge {
        let pair = make_pair(self.dir.path(), name);
        let live = (
            self.dir.path().join(format!("{name}-live.crt")),
            self.dir.path().join(format!("{name}-live.key")),
        );
        install(&pair, &live);
        let (plain, tls) = (free_addr(), free_addr());
        let mut args: Vec<String> = [
            "--listen",
            &plain.to_string(),
            "--tls-listen",
            &tls.to_string(),
            "--tls-cert",
            live.0.to_str().unwrap(),
            "--tls-key",
            live.1.to_str().unwrap(),
            "--router",
            &format!("http://{}", self.router),
            "--cache-size",
            "64MiB",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let p = Process::spawn("edge", bin_path("edge"), &args, &[]);
        wait_until("edge ready", Duration::from_secs(10), || {
            matches!(http_get(plain, "/healthz"), Some((200, _)))
        });
        Edge {
            plain,
            tls,
            p,
            ca: pair.0,
            live,
        }
    }
}

/// A discovery report, as an agent sends it.
fn report(router: SocketAddr, origin_id: &str, stream: &str, host: &str, session: &str) {
    let body = serde_json::json!({
        "host": host, "manifest": format!("{stream}/index.m3u8"), "session": session,
        "renditions": [{"name": "720p"}],
    });
    let out = std::process::Command::new("curl")
        .args(["-fsS", "-X", "PUT", "-H", &format!("Authorization: Bearer {AGENT}")])
        .args(["-H", "content-type: application/json", "-d", &body.to_string()])
        .arg(format!("http://{router}/origins/{origin_id}/streams/{stream}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "report: {}", String::from_utf8_lossy(&out.stderr));
}

/// One answer as curl saw it.
#[derive(Debug)]
struct Answer {
    /// curl's `%{http_version}`: `2`, `1.1`.
    version: String,
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// `curl` of `url` with `args` (e.g. `--http2`, `--cacert FILE`,
/// `--interface 127.0.0.9`), within 10 s.
fn curl(url: &str, args: &[&str]) -> Answer {
    let dir = tempfile::tempdir().unwrap();
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let out = std::process::Command::new("curl")
        // -L: the edge redirects a multivariant playlist into a playback
        // session; the last head is the answer.
        .args(["-sS", "-L", "--max-time", "10", "-w", "%{http_version}", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = std::fs::read_to_string(&head).unwrap();
    let last = head.rfind("HTTP/").map_or(&head[..], |i| &head[i..]);
    let mut lines = last.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        version: String::from_utf8(out.stdout).unwrap(),
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

impl Edge {
    fn https(&self, path: &str) -> String {
        // The certificate names 127.0.0.1: curl checks it against `ca`.
        format!("https://{}{path}", self.tls)
    }

    fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.plain)
    }

    fn metric(&self, prefix: &str) -> f64 {
        let text = http_get(self.plain, "/metrics").map(|r| r.1).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(prefix).map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0.0)
    }

    fn assert_no_panic(&self) {
        let log = self.p.log();
        assert!(!log.contains("panicked"), "edge panicked:\n{log}");
    }
}

/// A TLS connection offering `alpn` (wire format), not checking the
/// certificate (the tests compare its fingerprint instead).
async fn tls_connect(addr: SocketAddr, alpn: &[u8]) -> SslStream<TcpStream> {
    let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    b.set_alpn_protos(alpn).unwrap();
    let ssl = b.build().configure().unwrap().into_ssl("localhost").unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = SslStream::new(ssl, tcp).unwrap();
    tokio::time::timeout(Duration::from_secs(5), Pin::new(&mut s).connect())
        .await
        .expect("handshake in time")
        .expect("handshake");
    s
}

/// The fingerprint of the certificate a new handshake gets.
async fn served_fingerprint(addr: SocketAddr) -> String {
    let s = tls_connect(addr, b"\x08http/1.1").await;
    let cert = s.ssl().peer_certificate().expect("a certificate");
    let digest = cert.digest(MessageDigest::sha256()).unwrap();
    digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// How long the edge kept a connection that does `then` and nothing more
/// (bounded at `bound`): the time until the edge closed it.
async fn kept<S: AsyncReadExt + Unpin>(mut s: S, start: Instant, bound: Duration) -> Duration {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(bound.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            // The server's own frames (HTTP/2 SETTINGS) are not an answer.
            Ok(Ok(n)) if n > 0 => continue,
            _ => return start.elapsed(),
        }
    }
}

#[test]
fn h2_and_http11_over_tls_serve_the_same_bytes_cache_and_stickiness_as_plain_http() {
    let f = Fixture::start();
    let edge = f.edge("a", &[]);
    let ca = edge.ca.to_str().unwrap().to_string();
    let h2 = ["--http2", "--cacert", ca.as_str()];
    let h1 = ["--http1.1", "--cacert", ca.as_str()];

    // A segment: first a miss over h2, then a hit over h2, over HTTP/1.1 on
    // TLS (the fast path) and over plain HTTP: the same bytes every time.
    let seg = "/live/s1/720p/5.m4s";
    let first = curl(&edge.https(seg), &h2);
    assert_eq!((first.version.as_str(), first.status), ("2", 200), "{first:?}");
    assert_eq!(first.headers["x-cache-status"], "MISS");
    assert_eq!(first.body, vec![5u8; 20_000]);
    assert_eq!(first.headers["access-control-allow-origin"], "*", "CORS over h2");
    let again = curl(&edge.https(seg), &h2);
    assert_eq!(again.version, "2");
    assert_eq!(again.headers["x-cache-status"], "HIT", "{again:?}");
    assert!(again.headers.contains_key("age"));
    assert_eq!(again.body, first.body);
    let tls1 = curl(&edge.https(seg), &h1);
    assert_eq!((tls1.version.as_str(), tls1.status), ("1.1", 200));
    assert_eq!(tls1.headers["x-cache-status"], "HIT");
    assert_eq!(
        tls1.headers["access-control-allow-origin"], "*",
        "CORS over HTTP/1.1 on TLS"
    );
    assert_eq!(tls1.body, first.body);
    let plain = curl(&edge.http(seg), &[]);
    assert_eq!(plain.headers["x-cache-status"], "HIT");
    assert_eq!(plain.body, first.body);

    // A media playlist and the init segment: h2 and plain agree byte for byte.
    for path in [
        "/live/s1/720p/index.m3u8",
        "/live/s1/720p/init.mp4",
        "/live/s2/720p/9.m4s",
    ] {
        let (a, b) = (curl(&edge.https(path), &h2), curl(&edge.http(path), &[]));
        assert_eq!((a.status, b.status), (200, 200), "{path}");
        assert_eq!(a.body, b.body, "{path}");
        assert_eq!(a.headers.get("content-type"), b.headers.get("content-type"), "{path}");
    }

    // Stickiness: a viewer (a source address) gets the same origin's
    // multivariant playlist over h2, HTTP/1.1 on TLS and plain HTTP; over
    // several viewers both origins are used.
    let mut sessions = std::collections::BTreeSet::new();
    for last in 2..=13 {
        let ip = format!("127.0.0.{last}");
        let src = ["--interface", ip.as_str()];
        let bodies: Vec<Vec<u8>> = [
            curl(&edge.https("/live/index.m3u8"), &[&h2[..], &src[..]].concat()),
            curl(&edge.https("/live/index.m3u8"), &[&h1[..], &src[..]].concat()),
            curl(&edge.http("/live/index.m3u8"), &src),
            curl(&edge.https("/live/index.m3u8"), &[&h2[..], &src[..]].concat()),
        ]
        .into_iter()
        .map(|a| {
            assert_eq!(a.status, 200, "{a:?}");
            a.body
        })
        .collect();
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "viewer {ip}: one origin for every protocol"
        );
        let text = String::from_utf8(bodies[0].clone()).unwrap();
        sessions.insert(if text.contains("s1/720p") { "s1" } else { "s2" });
    }
    assert_eq!(sessions.len(), 2, "viewers spread over both origins");

    // Errors are the proxy's over h2 too: an unknown stream is 404.
    assert_eq!(curl(&edge.https("/nope/index.m3u8"), &h2).status, 404);
    // Each curl above was one connection, counted by the protocol ALPN chose.
    assert!(edge.metric("edge_tls_connections_total{protocol=\"h2\"}") >= 20.0);
    assert!(edge.metric("edge_tls_connections_total{protocol=\"http/1.1\"}") >= 12.0);
    edge.assert_no_panic();
}

#[tokio::test]
async fn the_certificate_reloads_on_sighup_and_on_file_change_and_a_bad_pair_keeps_the_old_one() {
    let f = Fixture::start();

    // SIGHUP (the files are not watched in between: a one-hour interval).
    let edge = f.edge("hup", &["--tls-watch-interval", "1h"]);
    let first = file_fingerprint(&edge.live.0);
    assert_eq!(served_fingerprint(edge.tls).await, first);
    let next = make_pair(f.dir.path(), "hup-next");
    install(&next, &edge.live);
    let next_fp = file_fingerprint(&next.0);
    assert_eq!(served_fingerprint(edge.tls).await, first, "no reload before SIGHUP");
    edge.p.signal(libc::SIGHUP);
    wait_until_async("the new certificate after SIGHUP", Duration::from_secs(10), || async {
        (served_fingerprint(edge.tls).await == next_fp).then_some(())
    })
    .await;
    assert_eq!(edge.metric("edge_tls_reloads_total{result=\"ok\"}"), 1.0);

    // A broken pair (the key of another certificate), then SIGHUP: refused,
    // logged, and the previous pair keeps serving.
    let other = make_pair(f.dir.path(), "hup-other");
    install(&(other.0.clone(), edge.live.1.clone()), &edge.live);
    edge.p.signal(libc::SIGHUP);
    wait_until("the refused reload", Duration::from_secs(10), || {
        edge.metric("edge_tls_reloads_total{result=\"error\"}") == 1.0
    });
    assert!(edge.p.log().contains("keeping the previous pair"), "{}", edge.p.log());
    assert_eq!(served_fingerprint(edge.tls).await, next_fp);
    let a = curl(
        &edge.https("/live/s1/720p/3.m4s"),
        &["--http2", "--cacert", next.0.to_str().unwrap()],
    );
    assert_eq!((a.version.as_str(), a.status), ("2", 200), "served with the kept pair");

    // Changed files, no signal: picked up by the watch.
    let edge2 = f.edge("watch", &["--tls-watch-interval", "100ms"]);
    let renewed = make_pair(f.dir.path(), "watch-next");
    install(&renewed, &edge2.live);
    let renewed_fp = file_fingerprint(&renewed.0);
    wait_until_async(
        "the new certificate after a file change",
        Duration::from_secs(10),
        || async { (served_fingerprint(edge2.tls).await == renewed_fp).then_some(()) },
    )
    .await;
    // A garbage key file: refused once, the renewed pair stays.
    std::fs::write(edge2.live.1.with_extension("new"), b"not a key\n").unwrap();
    std::fs::rename(edge2.live.1.with_extension("new"), &edge2.live.1).unwrap();
    wait_until("the refused reload", Duration::from_secs(10), || {
        edge2.metric("edge_tls_reloads_total{result=\"error\"}") == 1.0
    });
    assert_eq!(served_fingerprint(edge2.tls).await, renewed_fp);
    // The refused pair is not retried until it changes again.
    let errors_now = edge2.metric("edge_tls_reloads_total{result=\"error\"}");
    let a = curl(
        &edge2.https("/live/s1/720p/4.m4s"),
        &["--http1.1", "--cacert", renewed.0.to_str().unwrap()],
    );
    assert_eq!(a.status, 200);
    assert_eq!(edge2.metric("edge_tls_reloads_total{result=\"error\"}"), errors_now);
    for e in [&edge, &edge2] {
        e.assert_no_panic();
    }
}

#[tokio::test]
async fn tls_clients_that_never_finish_are_dropped_by_the_limits_while_a_fetch_works() {
    let f = Fixture::start();
    let edge = f.edge("slow", &["--http-head-timeout", "1s", "--http-idle-timeout", "2s"]);
    let ca = edge.ca.to_str().unwrap().to_string();
    let bound = Duration::from_secs(10);

    // Each hostile client, started now: the time the edge kept it.
    let start = Instant::now();
    let tls = edge.tls;
    // Connects and never sends a ClientHello.
    let silent = tokio::spawn(async move { kept(TcpStream::connect(tls).await.unwrap(), start, bound).await });
    // Sends the first bytes of a ClientHello record, then nothing.
    let partial = tokio::spawn(async move {
        let mut s = TcpStream::connect(tls).await.unwrap();
        s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]).await.unwrap();
        kept(s, start, bound).await
    });
    // Finishes the handshake choosing h2, never sends the preface.
    let h2_silent = tokio::spawn(async move { kept(tls_connect(tls, b"\x02h2").await, start, bound).await });
    // Chooses HTTP/1.1, never sends a request: the idle limit.
    let h1_idle = tokio::spawn(async move { kept(tls_connect(tls, b"\x08http/1.1").await, start, bound).await });
    // h2 with its preface and SETTINGS, then no request: the idle limit.
    let h2_idle = tokio::spawn(async move {
        let mut s = tls_connect(tls, b"\x02h2").await;
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        kept(s, start, bound).await
    });

    // Meanwhile a viewer fetches over h2 and HTTP/1.1 on TLS, several times.
    let viewer = tokio::task::spawn_blocking(move || {
        let mut worst = Duration::ZERO;
        for i in 0..10 {
            let t = Instant::now();
            let flag = if i % 2 == 0 { "--http2" } else { "--http1.1" };
            let a = curl(
                &format!("https://{tls}/live/s1/720p/{}.m4s", 1 + i % 3),
                &[flag, "--cacert", &ca],
            );
            assert_eq!(a.status, 200, "{a:?}");
            worst = worst.max(t.elapsed());
        }
        worst
    });

    let (silent, partial, h2_silent) = (silent.await.unwrap(), partial.await.unwrap(), h2_silent.await.unwrap());
    let (h1_idle, h2_idle) = (h1_idle.await.unwrap(), h2_idle.await.unwrap());
    let worst = viewer.await.unwrap();
    for (what, kept, low, high) in [
        ("no ClientHello", silent, 0.9, 5.0),
        ("half a ClientHello", partial, 0.9, 5.0),
        ("h2 without its preface", h2_silent, 0.9, 5.0),
        ("HTTP/1.1 on TLS, idle", h1_idle, 1.9, 7.0),
        ("h2, idle", h2_idle, 1.9, 7.0),
    ] {
        let secs = kept.as_secs_f64();
        eprintln!("{what}: kept {secs:.2} s");
        assert!((low..high).contains(&secs), "{what}: kept {secs:.2} s");
    }
    assert!(
        worst < Duration::from_secs(3),
        "the viewer's slowest fetch took {worst:?}"
    );
    assert!(edge.metric("edge_tls_handshakes_failed_total{reason=\"timeout\"}") >= 2.0);
    assert!(edge.metric("edge_connections_timed_out_total{limit=\"head\"}") >= 3.0);
    edge.assert_no_panic();
}

/// An HTTP/2 HEADERS frame (stream 1, END_STREAM | END_HEADERS) for
/// `GET https://localhost{path}`, HPACK-encoded by hand: indexed `:method
/// GET` and `:scheme https`, then `:path` and `:authority` as literals
/// without indexing (RFC 7541, 6.2.2).
fn h2_get(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x87];
    for (name_index, value) in [(0x04u8, path), (0x01, "localhost")] {
        assert!(value.len() < 127);
        block.push(name_index);
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    let len = block.len() as u32;
    let mut frame = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, 0x01, 0x05, 0, 0, 0, 1];
    frame.extend(block);
    frame
}

#[tokio::test]
async fn an_h2_viewer_that_stops_reading_is_cut_by_the_write_timeout() {
    let f = Fixture::start();
    let edge = f.edge("stall", &["--http-write-timeout", "1s", "--http-idle-timeout", "2s"]);
    let seg = "/live/s1/720p/21.m4s";
    // Cached first, so the edge writes from its cache.
    assert_eq!(curl(&edge.http(seg), &[]).body.len(), BIG);
    // An HTTP/2 viewer that asks for it and never opens its flow-control
    // window beyond the initial 64 KiB (no WINDOW_UPDATE): the edge's write
    // makes no progress.
    let mut s = tls_connect(edge.tls, b"\x02h2").await;
    let start = Instant::now();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    s.write_all(&h2_get(seg)).await.unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let bound = Duration::from_secs(15);
    while start.elapsed() < bound {
        match tokio::time::timeout(bound.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got += n,
            _ => break,
        }
    }
    let kept = start.elapsed().as_secs_f64();
    // The write timeout ends the stream, then the idle limit the connection.
    assert!((2.5..10.0).contains(&kept), "kept {kept:.2} s");
    assert!(got < BIG / 2, "the viewer got {got} bytes without opening its window");
    // Meanwhile and after, the segment is served whole over h2.
    let a = curl(&edge.https(seg), &["--http2", "--cacert", edge.ca.to_str().unwrap()]);
    assert_eq!((a.version.as_str(), a.body.len()), ("2", BIG));
    assert!(
        edge.metric("edge_client_aborts_total{kind=\"timeout\"}") >= 1.0,
        "{}",
        edge.p.log()
    );
    edge.assert_no_panic();
}

#[tokio::test]
async fn tls_connections_count_against_the_connection_cap() {
    let f = Fixture::start();
    let edge = f.edge("cap", &["--http-max-connections", "2", "--http-head-timeout", "5s"]);
    // Two TLS connections hold the two permits...
    let held = [
        tls_connect(edge.tls, b"\x02h2").await,
        tls_connect(edge.tls, b"\x08http/1.1").await,
    ];
    // ...so a third is closed before its handshake, and counted.
    let start = Instant::now();
    let mut s = TcpStream::connect(edge.tls).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0, "nothing answered before a handshake");
    assert!(start.elapsed() < Duration::from_secs(2));
    // A permit comes back when a connection ends (the metrics page needs one).
    drop(held);
    wait_until_async("a permit back", Duration::from_secs(5), || async {
        let ca = edge.ca.clone();
        let url = edge.https("/healthz");
        let ok = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-sf", "--http2", "--max-time", "3", "--cacert"])
                .arg(ca)
                .arg(url)
                .status()
                .is_ok_and(|s| s.success())
        })
        .await
        .unwrap();
        ok.then_some(())
    })
    .await;
    assert!(edge.metric("edge_connections_refused_total ") >= 1.0);
    edge.assert_no_panic();
}

#[test]
fn the_tls_settings_are_documented_in_help() {
    testkit::assert_help_documents(
        bin_path("edge"),
        &[
            "--tls-listen",
            "EDGE_TLS_LISTEN",
            "--tls-cert",
            "EDGE_TLS_CERT",
            "--tls-key",
            "EDGE_TLS_KEY",
            "--tls-watch-interval",
            "EDGE_TLS_WATCH_INTERVAL",
            "SIGHUP",
        ],
    );
    // A listener without its pair is refused before anything starts.
    let out = std::process::Command::new(bin_path("edge"))
        .args(["--tls-listen", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-cert"));
}

/// `(msn, part)` of a playlist's preload hint.
fn preload_hint(playlist: &str) -> Option<(u64, u64)> {
    let uri = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))?;
    let (n, p) = uri.trim_end_matches('"').trim_end_matches(".m4s").split_once('.')?;
    Some((n.parse().ok()?, p.parse().ok()?))
}

#[test]
fn low_latency_hls_over_h2_through_the_edge() {
    // The real chain: ffmpeg publishing, the origin packaging LL-HLS (test
    // profile `ll`: 1 s segments, 1/3 s parts), the discovery agent, the
    // router, and the edge's TLS listener; curl as an HTTP/2 player.
    let mut stack = testkit::stack::Stack::new();
    let rtmp = stack.add_origin("origin-a").rtmp;
    let key = stack.create_stream_with("lowlat", Some("ll"));
    let dir = tempfile::tempdir().unwrap();
    let (cert, key_file) = make_pair(dir.path(), "ll");
    let tls = free_addr();
    let tls_s = tls.to_string();
    stack.add_edge(&[
        "--tls-listen",
        &tls_s,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
        "--cache-size",
        "64MiB",
    ]);
    let _ffmpeg = testkit::stack::publish(rtmp, &key, 60);
    let h2 = ["--http2", "--cacert", cert.to_str().unwrap()];
    let url = |path: &str| format!("https://{tls}{path}");

    let mut master = String::new();
    wait_until("the multivariant playlist over h2", Duration::from_secs(40), || {
        let a = curl(&url("/lowlat/index.m3u8"), &h2);
        master = String::from_utf8_lossy(&a.body).into_owned();
        a.status == 200
    });
    let media = format!(
        "/lowlat/{}",
        master
            .lines()
            .find(|l| l.ends_with("360p/index.m3u8"))
            .expect("a 360p rendition")
    );
    let mut playlist = String::new();
    wait_until("parts and a preload hint", Duration::from_secs(20), || {
        let a = curl(&url(&media), &h2);
        playlist = String::from_utf8_lossy(&a.body).into_owned();
        a.status == 200 && playlist.matches("#EXTINF").count() >= 2 && preload_hint(&playlist).is_some()
    });
    assert!(playlist.contains("CAN-BLOCK-RELOAD=YES"), "{playlist}");

    // A blocking reload for the hinted part, over h2: held until the part is
    // listed, then answered.
    let (msn, part) = preload_hint(&playlist).unwrap();
    let t = Instant::now();
    let a = curl(&url(&format!("{media}?_HLS_msn={msn}&_HLS_part={part}")), &h2);
    let text = String::from_utf8_lossy(&a.body).into_owned();
    assert_eq!((a.version.as_str(), a.status), ("2", 200), "{a:?}");
    assert!(
        text.contains(&format!("URI=\"{msn}.{part}.m4s\"")),
        "the answer lists part {msn}.{part}:\n{text}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "held {:?}", t.elapsed());

    // The part it now hints, asked for before it exists: held, then whole.
    let (msn, part) = preload_hint(&text).expect("a new hint");
    let base = media.trim_end_matches("index.m3u8");
    let a = curl(&url(&format!("{base}{msn}.{part}.m4s")), &h2);
    assert_eq!((a.version.as_str(), a.status), ("2", 200), "{a:?}");
    assert!(a.body.len() > 100, "a whole part");
    // Asked again: the edge's cache answers (parts are immutable).
    let again = curl(&url(&format!("{base}{msn}.{part}.m4s")), &h2);
    assert_eq!(again.body, a.body);
    assert_eq!(again.headers["x-cache-status"], "HIT");
}
