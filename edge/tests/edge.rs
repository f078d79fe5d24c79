//! The edge end to end: real origins (ffmpeg publishing, GStreamer
//! transcoding), real discovery agents, the real router API on a real Redis,
//! and the edge in front, all on loopback.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::{Process, http_get, wait_until_async};

use testkit::stack::{AGENT_TOKEN as AGENT, OriginNode as Origin, start_router};

/// Transcoding takes the cores: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The stack (testkit's) with an edge, and an HTTP client for viewers.
struct Stack {
    inner: testkit::stack::Stack,
    redis: String,
    router: SocketAddr,
    edge: SocketAddr,
    client: Client,
}

impl std::ops::Deref for Stack {
    type Target = testkit::stack::Stack;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Stack {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl Stack {
    fn start(origins: &[&str]) -> Stack {
        let mut inner = testkit::stack::Stack::new();
        for id in origins {
            inner.add_origin(id);
        }
        let edge = inner.add_edge(&["--cache-size", "64MiB"]);
        let (redis, router) = (inner.redis.url(), inner.router);
        Stack {
            inner,
            redis,
            router,
            edge,
            client: Client::new(),
        }
    }

    async fn create_stream(&self, name: &str) -> String {
        self.inner.create_stream(name)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.edge)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap()
    }

    async fn wait_playable(&self, stream: &str) -> String {
        wait_until_async(
            "the stream playable through the edge",
            Duration::from_secs(20),
            || async {
                let r = self
                    .client
                    .get(self.url(&format!("/{stream}/index.m3u8")))
                    .send()
                    .await
                    .ok()?;
                if r.status() != 200 {
                    return None;
                }
                r.text().await.ok()
            },
        )
        .await
    }
}

fn publish(origin: &Origin, key: &str, secs: u32) -> Process {
    testkit::stack::publish(origin.rtmp, key, secs)
}

/// Copies one stream's live output from one origin's folder to another's,
/// renaming its session (`{session}` becomes `{session}m`), until dropped (at
/// most 90 s). Each file is copied to a dot-name and renamed, like the
/// origin's own writes, so the second origin never serves half a file.
struct Mirror {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Mirror {
    fn start(from: &std::path::Path, to: &std::path::Path, stream: &str) -> Mirror {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (from, to, flag) = (from.join(stream), to.join(stream), stop.clone());
        let thread = std::thread::spawn(move || {
            let copy = |src: &std::path::Path, dst: &std::path::Path, rewrite: Option<(&str, &str)>| {
                let Ok(mut bytes) = std::fs::read(src) else { return };
                if let Some((a, b)) = rewrite {
                    bytes = String::from_utf8_lossy(&bytes).replace(a, b).into_bytes();
                }
                if std::fs::read(dst).is_ok_and(|old| old == bytes) {
                    return;
                }
                let tmp = dst.with_file_name(format!(".{}.tmp", dst.file_name().unwrap().to_string_lossy()));
                if std::fs::write(&tmp, &bytes).is_ok() {
                    let _ = std::fs::rename(&tmp, dst);
                }
            };
            let start = Instant::now();
            while !flag.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(90) {
                for session in std::fs::read_dir(&from).into_iter().flatten().flatten() {
                    if !session.path().is_dir() {
                        continue;
                    }
                    let name = session.file_name().to_string_lossy().into_owned();
                    let renamed = format!("{name}m");
                    for rendition in std::fs::read_dir(session.path()).into_iter().flatten().flatten() {
                        let dst_dir = to.join(&renamed).join(rendition.file_name());
                        let _ = std::fs::create_dir_all(&dst_dir);
                        for file in std::fs::read_dir(rendition.path()).into_iter().flatten().flatten() {
                            let file_name = file.file_name().to_string_lossy().into_owned();
                            if !file_name.starts_with('.') {
                                copy(&file.path(), &dst_dir.join(&file_name), None);
                            }
                        }
                    }
                    // The multivariant playlist last, once its media playlists exist.
                    copy(
                        &from.join("index.m3u8"),
                        &to.join("index.m3u8"),
                        Some((&name, &renamed)),
                    );
                }
                // The copy's pace (segments come every second), bounded by the mirror's 90 s.
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Mirror {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `origin_http_requests_total{kind,status="200"}` of one origin.
fn origin_requests(origin: &Origin, kind: &str) -> u64 {
    let metrics = http_get(origin.http, "/metrics").map(|r| r.1).unwrap_or_default();
    let needle = format!("origin_http_requests_total{{kind=\"{kind}\",status=\"200\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |v| v.parse().unwrap())
}

/// The 360p media playlist path (on the edge) listed by a multivariant playlist.
fn rendition_path(stream: &str, master: &str, rendition: &str) -> String {
    let uri = master
        .lines()
        .find(|l| l.ends_with(&format!("/{rendition}/index.m3u8")))
        .expect("rendition listed");
    format!("/{stream}/{uri}")
}

fn segments(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| l.ends_with(".m4s"))
        .map(str::to_string)
        .collect()
}

fn sibling(playlist_path: &str, file: &str) -> String {
    format!("{}/{file}", playlist_path.rsplit_once('/').unwrap().0)
}

#[tokio::test]
async fn caches_segments_collapses_misses_and_expires_playlists() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start(&["origin-a"]);
    let origin = &stack.origins[0];
    let key = stack.create_stream("golive").await;
    let _ffmpeg = publish(origin, &key, 30);
    let master = stack.wait_playable("golive").await;
    let playlist_path = rendition_path("golive", &master, "360p");

    // 200 viewers ask for a segment the edge has never fetched, at once.
    let playlist = stack.get(&playlist_path).await.text().await.unwrap();
    let newest = segments(&playlist).pop().unwrap();
    let seg_path = sibling(&playlist_path, &newest);
    let before = origin_requests(origin, "segment");
    let client = Arc::new(Client::builder().pool_max_idle_per_host(256).build().unwrap());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (c, url) = (client.clone(), stack.url(&seg_path));
        set.spawn(async move {
            let r = c.get(url).timeout(Duration::from_secs(10)).send().await.unwrap();
            (r.status(), r.bytes().await.unwrap().len())
        });
    }
    let mut sizes = std::collections::HashSet::new();
    while let Some(res) = set.join_next().await {
        let (status, len) = res.unwrap();
        assert_eq!(status, StatusCode::OK);
        sizes.insert(len);
    }
    assert_eq!(sizes.len(), 1, "every viewer got the same segment: {sizes:?}");
    assert_eq!(
        origin_requests(origin, "segment") - before,
        1,
        "the origin saw one request for it"
    );

    // Then it is a hit, with an Age.
    let hit = stack.get(&seg_path).await;
    assert_eq!(hit.headers()["x-cache-status"], "HIT");
    assert!(hit.headers().contains_key("age"));
    assert_eq!(hit.headers()["cache-control"], "public, max-age=31536000, immutable");

    // A hit is the very bytes the miss brought, with their length. HEAD gets
    // the headers alone. A byte range is cut from the cached copy (206).
    let whole = hit.bytes().await.unwrap();
    assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [whole.len()]);
    let head = stack.client.head(stack.url(&seg_path)).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["x-cache-status"], "HIT");
    assert_eq!(head.headers()["content-length"], whole.len().to_string().as_str());
    assert!(head.bytes().await.unwrap().is_empty());
    let part = stack
        .client
        .get(stack.url(&seg_path))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["x-cache-status"], "HIT");
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-199/{}", whole.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), whole.slice(100..200));
    assert_eq!(
        origin_requests(origin, "segment") - before,
        1,
        "hits, HEAD and ranges all came from the cache"
    );

    // A media playlist is fresh for --playlist-ttl (500 ms), then refetched.
    let first = wait_until_async("a playlist miss", Duration::from_secs(3), || async {
        let r = stack.get(&playlist_path).await;
        (r.headers()["x-cache-status"] != "HIT").then(Instant::now)
    })
    .await;
    assert_eq!(stack.get(&playlist_path).await.headers()["x-cache-status"], "HIT");
    let fetched_again = wait_until_async("the playlist to expire", Duration::from_secs(3), || async {
        let r = stack.get(&playlist_path).await;
        (r.headers()["x-cache-status"] != "HIT").then(|| first.elapsed())
    })
    .await;
    assert!(
        fetched_again >= Duration::from_millis(450) && fetched_again <= Duration::from_millis(900),
        "playlist refetched after {fetched_again:?}"
    );

    // An error is never cached: a segment asked for too early is a 404, then
    // a 200 once the origin has it.
    let n: u64 = newest.trim_end_matches(".m4s").parse().unwrap();
    let future = sibling(&playlist_path, &format!("{}.m4s", n + 3));
    assert_eq!(stack.get(&future).await.status(), 404);
    wait_until_async("the future segment to exist", Duration::from_secs(10), || async {
        (stack.get(&future).await.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_viewer_sticks_to_one_origin_and_moves_when_it_dies() {
    let _serial = SERIAL.lock().await;
    let mut stack = Stack::start(&["origin-a", "origin-b"]);
    let key = stack.create_stream("golive").await;
    // One key is live on one origin at a time (the router's claim), so the
    // second origin holds the stream as a mirror of the first's output under
    // a session of its own: for the edge, two origins holding one stream.
    let _pa = publish(&stack.origins[0], &key, 40);
    let _mirror = Mirror::start(stack.origins[0].out.path(), stack.origins[1].out.path(), "golive");
    wait_until_async("both origins routed", Duration::from_secs(20), || async {
        let v: Value = stack
            .client
            .get(format!("http://{}/streams/golive", stack.router))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["origins"].as_array()?.len() == 2).then_some(())
    })
    .await;
    let route: Value = stack
        .client
        .get(format!("http://{}/streams/golive", stack.router))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let master = stack.wait_playable("golive").await;
    let playlist_path = rendition_path("golive", &master, "360p");
    let session = playlist_path.split('/').nth(2).unwrap().to_string();
    let holder = route["origins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["session"] == session)
        .unwrap()["origin"]
        .as_str()
        .unwrap()
        .to_string();
    let (chosen, other) = if holder == stack.origins[0].id { (0, 1) } else { (1, 0) };

    // The same viewer asks again: same origin. Its media requests all go there.
    assert_eq!(stack.wait_playable("golive").await, master);
    let other_before =
        origin_requests(&stack.origins[other], "segment") + origin_requests(&stack.origins[other], "playlist");
    for _ in 0..3 {
        let pl = stack.get(&playlist_path).await.text().await.unwrap();
        let seg = segments(&pl).pop().unwrap();
        assert_eq!(stack.get(&sibling(&playlist_path, &seg)).await.status(), 200);
    }
    assert!(origin_requests(&stack.origins[chosen], "segment") > 0);
    let other_after =
        origin_requests(&stack.origins[other], "segment") + origin_requests(&stack.origins[other], "playlist");
    assert_eq!(other_after, other_before, "the other origin served this viewer nothing");

    // The viewer's origin dies; its playlist URL now leads to the other origin.
    stack.origins[chosen].process.kill();
    let died = Instant::now();
    let moved = wait_until_async("the viewer to move", Duration::from_secs(10), || async {
        let r = stack
            .client
            .get(stack.url(&playlist_path))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        let final_path = r.url().path().to_string();
        let text = r.text().await.ok()?;
        (final_path != playlist_path).then_some((final_path, text))
    })
    .await;
    let (new_path, text) = moved;
    println!("viewer moved to {new_path} {:?} after its origin died", died.elapsed());
    let seg = segments(&text).pop().unwrap();
    assert_eq!(stack.get(&sibling(&new_path, &seg)).await.status(), 200);
}

#[tokio::test]
async fn a_router_outage_costs_playing_viewers_nothing() {
    let _serial = SERIAL.lock().await;
    let mut stack = Stack::start(&["origin-a"]);
    let key = stack.create_stream("golive").await;
    let _ffmpeg = publish(&stack.origins[0], &key, 30);
    let master = stack.wait_playable("golive").await;
    let playlist_path = rendition_path("golive", &master, "360p");

    // A viewer plays for 8 s; the router API is down from 1 s to 6 s.
    let start = Instant::now();
    let mut router_stopped = false;
    let mut router_restarted = false;
    let mut fetches = 0;
    // A player polling four times a second.
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    while start.elapsed() < Duration::from_secs(8) {
        poll.tick().await;
        if !router_stopped && start.elapsed() > Duration::from_secs(1) {
            stack.router_process.take().unwrap().stop();
            router_stopped = true;
        }
        if router_stopped && !router_restarted && start.elapsed() > Duration::from_secs(6) {
            stack.router_process = Some(start_router(stack.router, &stack.redis));
            router_restarted = true;
        }
        let pl = stack.get(&playlist_path).await;
        assert_eq!(pl.status(), 200, "playlist failed at {:?}", start.elapsed());
        let seg = segments(&pl.text().await.unwrap()).pop().unwrap();
        let s = stack.get(&sibling(&playlist_path, &seg)).await;
        assert_eq!(s.status(), 200, "segment failed at {:?}", start.elapsed());
        assert_eq!(stack.get("/golive/index.m3u8").await.status(), 200);
        fetches += 1;
    }
    assert!(fetches > 10);
    let metrics = http_get(stack.edge, "/metrics").unwrap().1;
    assert!(
        metrics.contains(r#"edge_route_lookups_total{source="stale"}"#),
        "stale routes were used:\n{metrics}"
    );
}

#[tokio::test]
async fn bad_paths_methods_and_unknown_streams_are_refused() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start(&[]);
    for method in [reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let r = stack
            .client
            .request(method, stack.url("/golive/index.m3u8"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["x-cache-status"], "PASS");
    }
    for path in [
        "/",
        "/golive",
        "/../etc/passwd",
        "/golive/..%2f..%2fetc/passwd",
        "/%2e%2e/index.m3u8",
        "/Golive/index.m3u8",
        "/golive/s/r/x.txt",
    ] {
        assert_eq!(stack.get(path).await.status(), 404, "{path}");
    }
    let started = Instant::now();
    let unknown = stack.get("/nosuchstream/index.m3u8").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.headers()["cache-control"], "no-store");
    assert!(started.elapsed() < Duration::from_secs(1));
    let huge = stack
        .client
        .get(stack.url("/golive/index.m3u8"))
        .header("x-big", "a".repeat(200_000))
        .send()
        .await;
    if let Ok(r) = huge {
        assert!(r.status().is_client_error(), "huge header answered {}", r.status());
    }
    assert_eq!(stack.get("/healthz").await.status(), 200);
    let metrics = stack.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("edge_requests_total"), "{metrics}");
}

/// Viewer connections get `--send-buffer` (default 256 KiB) instead of the
/// kernel's autotuning. Read back with `ss` from the edge's accepted socket.
#[tokio::test]
async fn viewer_connections_get_the_configured_send_buffer() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start(&[]);
    // A keep-alive connection stays open in the client's pool.
    assert_eq!(stack.get("/healthz").await.status(), 200);
    let out = std::process::Command::new("ss")
        .args([
            "-tmnH",
            "state",
            "established",
            "sport",
            "=",
            &format!(":{}", stack.edge.port()),
        ])
        .output()
        .expect("ss (iproute2, installed by scripts/setup.sh)");
    let text = String::from_utf8_lossy(&out.stdout);
    let sndbuf = text
        .split(|c: char| c == ',' || c == '(' || c.is_whitespace())
        .find_map(|f| f.strip_prefix("tb")?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no send buffer in ss output: {text}"));
    // The kernel doubles what is asked (for its bookkeeping), up to twice
    // net.core.wmem_max.
    let wmem_max: u64 = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(sndbuf, 2 * (256 * 1024).min(wmem_max), "ss: {text}");
}

#[test]
fn help_documents_every_setting() {
    testkit::assert_help_documents(
        env!("CARGO_BIN_EXE_edge"),
        &[
            "--listen",
            "--router",
            "--cache-size",
            "--playlist-ttl",
            "--shutdown-timeout",
            "--shutdown-grace",
            "--connect-timeout",
            "--read-timeout",
            "--multivariant-ttl",
            "--segment-ttl",
            "--route-ttl",
            "--route-stale",
            "--router-timeout",
            "--cache-lock-timeout",
            "--write-buffer",
            "--send-buffer",
            "--threads",
            "--log",
        ],
    );
}

/// An origin that dies in the middle of a body: the edge must not keep the
/// truncated body as a complete object. This server is a fault injector
/// standing in for a crashing origin, not a copy of ours.
#[tokio::test]
async fn a_truncated_upstream_body_is_never_cached() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start(&[]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let broken = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let accepted = accepted.clone();
        // Serves at most 10 connections; the thread ends with the test process.
        std::thread::spawn(move || {
            for mut s in listener.incoming().take(10).flatten() {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = std::io::Read::read(&mut s, &mut buf);
                let head = "HTTP/1.1 200 OK\r\ncontent-type: video/iso.segment\r\ncontent-length: 100000\r\n\r\n";
                let _ = std::io::Write::write_all(&mut s, head.as_bytes());
                let _ = std::io::Write::write_all(&mut s, &[7u8; 50_000]);
                // Hang up 50 000 bytes short.
            }
        });
    }
    let put = stack
        .client
        .put(format!("http://{}/origins/broken/streams/broken", stack.router))
        .bearer_auth(AGENT)
        .json(&json!({"host": broken.to_string(), "manifest": "broken/index.m3u8", "session": "s1", "renditions": [{"name": "720p"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    for attempt in 0..2 {
        let r = stack
            .client
            .get(stack.url("/broken/s1/720p/1.m4s"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Ok(r) = r {
            assert_ne!(
                r.headers().get("x-cache-status").map(|v| v.to_str().unwrap()),
                Some("HIT"),
                "attempt {attempt}"
            );
            let body = r.bytes().await;
            assert!(
                body.map_or(true, |b| b.len() < 100_000),
                "attempt {attempt} got a complete body"
            );
        }
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "each attempt went to the origin"
    );
}

/// One response read off a raw connection: status, lower-cased headers, body
/// (`Content-Length` bytes; none for HEAD).
struct RawResponse {
    status: u16,
    headers: std::collections::HashMap<String, String>,
    body: Vec<u8>,
}

fn read_response(conn: &mut std::io::BufReader<std::net::TcpStream>, head_only: bool) -> RawResponse {
    use std::io::{BufRead, Read};
    let mut status_line = String::new();
    conn.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let mut headers = std::collections::HashMap::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').expect("header");
        headers.insert(k.to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers.get("content-length").map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; if head_only { 0 } else { len }];
    conn.read_exact(&mut body).expect("body");
    RawResponse { status, headers, body }
}

/// Plain hits are answered in front of pingora's HTTP session (`hits`);
/// everything else on the same keep-alive connection goes through pingora,
/// and the connection carries on either way. The origin is a real one
/// serving files written into its output folder.
#[tokio::test]
async fn hits_and_proxied_requests_share_keep_alive_connections() {
    use std::io::{BufReader, Read, Write};
    let _serial = SERIAL.lock().await;
    let mut stack = Stack::start(&["o1"]);
    let origin = &stack.origins[0];
    let dir = origin.out.path().join("hits/s1/720p");
    std::fs::create_dir_all(&dir).unwrap();
    let segment: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("1.m4s"), &segment).unwrap();
    let put = stack
        .client
        .put(format!("http://{}/origins/static/streams/hits", stack.router))
        .bearer_auth(AGENT)
        .json(&json!({"host": origin.http.to_string(), "manifest": "hits/index.m3u8", "session": "s1", "renditions": [{"name": "720p"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let path = "/hits/s1/720p/1.m4s";
    let get = format!("GET {path} HTTP/1.1\r\nHost: edge\r\n\r\n");

    let tcp = std::net::TcpStream::connect(stack.edge).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut conn = BufReader::new(tcp.try_clone().unwrap());
    let send = |raw: &str| (&tcp).write_all(raw.as_bytes()).unwrap();

    send(&get);
    let miss = read_response(&mut conn, false);
    assert_eq!((miss.status, miss.headers["x-cache-status"].as_str()), (200, "MISS"));
    assert_eq!(miss.body, segment);

    send(&get);
    let hit = read_response(&mut conn, false);
    assert_eq!((hit.status, hit.headers["x-cache-status"].as_str()), (200, "HIT"));
    assert_eq!(hit.body, segment);
    assert_eq!(hit.headers["content-length"], segment.len().to_string());
    assert!(hit.headers.contains_key("age") && hit.headers.contains_key("date"));
    assert_eq!(hit.headers["content-type"], miss.headers["content-type"]);

    // HEAD: the head only (a body would garble the next response).
    send(&format!("HEAD {path} HTTP/1.1\r\nHost: edge\r\n\r\n"));
    let head = read_response(&mut conn, true);
    assert_eq!(
        (head.status, head.headers["content-length"].clone()),
        (200, segment.len().to_string())
    );

    // Through pingora: a range of the cached object, and a refused method.
    send(&format!(
        "GET {path} HTTP/1.1\r\nHost: edge\r\nRange: bytes=10-19\r\n\r\n"
    ));
    let range = read_response(&mut conn, false);
    assert_eq!((range.status, range.body.as_slice()), (206, &segment[10..20]));
    send(&format!(
        "POST {path} HTTP/1.1\r\nHost: edge\r\nContent-Length: 0\r\n\r\n"
    ));
    assert_eq!(read_response(&mut conn, false).status, 405);

    // Two pipelined requests in one write: two answers, in order.
    send(&format!("{get}HEAD {path} HTTP/1.1\r\nHost: edge\r\n\r\n"));
    let first = read_response(&mut conn, false);
    let second = read_response(&mut conn, true);
    assert_eq!((first.status, first.body.len()), (200, segment.len()));
    assert_eq!((second.status, second.headers["x-cache-status"].as_str()), (200, "HIT"));

    // `Connection: close` is answered (by pingora), then the edge hangs up.
    send(&format!(
        "GET {path} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n"
    ));
    let last = read_response(&mut conn, false);
    assert_eq!((last.status, last.body.len()), (200, segment.len()));
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).expect("the edge closes the connection");
    assert!(rest.is_empty());

    // Every request above but the first was served from the cache.
    assert_eq!(origin_requests(origin, "segment"), 1);

    // A malformed head and an oversized one get client errors, not 5xx.
    for raw in [
        "GARBAGE\r\n\r\n".to_string(),
        format!("GET {path} HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(40_000)),
    ] {
        let mut c = std::net::TcpStream::connect(stack.edge).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.write_all(raw.as_bytes());
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        let status = answer.split(' ').nth(1).unwrap_or("");
        assert!(!status.starts_with('5'), "{raw:.40} answered {answer:.80}");
    }

    // At shutdown an idle keep-alive connection is closed at once (within
    // the idle clock's tick), not kept to the end of the shutdown timeout.
    let idle = std::net::TcpStream::connect(stack.edge).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut idle_conn = BufReader::new(idle.try_clone().unwrap());
    (&idle).write_all(get.as_bytes()).unwrap();
    assert_eq!(read_response(&mut idle_conn, false).status, 200);
    let (edge, _) = stack.inner.edge.as_mut().unwrap();
    edge.signal(libc::SIGTERM);
    let started = Instant::now();
    let mut rest = Vec::new();
    idle_conn.read_to_end(&mut rest).expect("closed, not timed out");
    assert!(rest.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed after {:?}",
        started.elapsed()
    );
}

/// The sum of the metric lines of `text` that start with `series`.
fn metric_sum(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// Made-up sessions and renditions of a live stream (what a stranger can
/// send) are answered at once and never held by the failover wait (which
/// waits only for a rendition the stream has, with no live session to go
/// to), and a flood of them costs the router a bounded number of look-ups
/// (the re-check of an unknown session is coalesced), while the stream
/// keeps playing.
#[tokio::test]
async fn made_up_sessions_are_answered_at_once_and_never_held() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start(&["origin-a"]);
    let key = stack.create_stream("golive").await;
    let _p = publish(&stack.origins[0], &key, 60);
    let master = stack.wait_playable("golive").await;
    let live = rendition_path("golive", &master, "360p");
    let session = live.split('/').nth(2).unwrap().to_string();
    let router_lookups = || async {
        let text = reqwest::get(format!("http://{}/metrics", stack.router))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // Labels are in name order: `method` comes before `route`.
        let count = |route: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with("router_http_requests_total{") && l.contains(route))
                .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
                .sum()
        };
        (
            count("route=\"/streams/{name}\""),
            count("route=\"/recordings/{name}/{session}\""),
        )
    };
    let before = router_lookups().await;
    let started = Instant::now();
    // A made-up rendition of a made-up session: 404 at once, not held.
    let r = stack.get("/golive/made0up0session/nosuch/index.m3u8").await;
    assert_eq!(r.status(), 404);
    // A real rendition of a made-up session: the live session at once.
    let r = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(stack.url("/golive/made0up0session/360p/index.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], format!("/golive/{session}/360p/index.m3u8"));
    // 300 made-up sessions' media: all 404, quickly.
    for i in 0..300 {
        let r = stack.get(&format!("/golive/made0up{i}/360p/1.m4s")).await;
        assert_eq!(r.status(), 404, "made0up{i}");
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "made-up paths took {elapsed:?}");
    let metrics = stack.get("/metrics").await.text().await.unwrap();
    assert_eq!(metric_sum(&metrics, "edge_held_requests"), 0.0, "{metrics}");
    assert_eq!(metric_sum(&metrics, "edge_failover_waits_total"), 0.0, "{metrics}");
    // The re-checks of unknown sessions are coalesced: a handful of router
    // look-ups a second, not one per request (302 requests were sent).
    let after = router_lookups().await;
    let (lookups, recordings) = (after.0 - before.0, after.1 - before.1);
    assert!(lookups >= 1.0, "the unknown sessions were checked again: {after:?}");
    assert!(
        lookups <= 5.0 * elapsed.as_secs_f64() + 5.0,
        "{lookups} router look-ups for 302 requests in {elapsed:?}"
    );
    println!(
        "302 made-up paths answered in {elapsed:?}: {lookups} router route look-ups, {recordings} recording look-ups"
    );
    // The stream plays on.
    let r = stack.get(&live).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("#EXTINF"));
}
