//! The discovery agent end to end: the real agent binary watching a folder
//! written the way the origin writes it, reporting to the real router API on
//! a real Redis.

use reqwest::{Client, Method};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::{Process, Redis, bin_path, free_addr, http_get, wait_until, wait_until_async};

const ADMIN: &str = "admin-token-0123456789";
const AGENT: &str = "agent-token-0123456789";

// ----- a folder written like the origin writes it ---------------------------

/// Writes HLS output the way the origin does (multivariant playlist, media
/// playlists per rendition under a session folder, atomic renames), and keeps
/// live streams' media playlists changing from a background thread, bounded
/// in time, until the stream ends or the fixture is dropped.
struct FakeOrigin {
    dir: tempfile::TempDir,
    live: Arc<Mutex<HashMap<String, (String, u64)>>>,
    /// Dropping the sender stops the ticker at once.
    stop: Option<mpsc::Sender<()>>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

const RENDITIONS: [&str; 2] = ["720p", "360p"];

fn write_atomic(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn media_playlist(seq: u64, end: bool) -> String {
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{seq}\n#EXT-X-MAP:URI=\"init.mp4\"\n"
    );
    for n in seq..seq + 3 {
        s.push_str(&format!("#EXTINF:1.000,\n{n}.m4s\n"));
    }
    if end {
        s.push_str("#EXT-X-ENDLIST\n");
    }
    s
}

impl FakeOrigin {
    fn new() -> FakeOrigin {
        let live: Arc<Mutex<HashMap<String, (String, u64)>>> = Arc::default();
        let (stop, stopped) = mpsc::channel::<()>();
        let dir = tempfile::tempdir().unwrap();
        let ticker = {
            let (live, root) = (live.clone(), dir.path().to_path_buf());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(180);
                // One tick every 250 ms (an origin writing segments) until
                // the fixture is dropped or the deadline passes.
                while Instant::now() < deadline
                    && matches!(
                        stopped.recv_timeout(Duration::from_millis(250)),
                        Err(mpsc::RecvTimeoutError::Timeout)
                    )
                {
                    let mut live = live.lock().unwrap();
                    for (name, (session, seq)) in live.iter_mut() {
                        *seq += 1;
                        for r in RENDITIONS {
                            let p = root.join(name).join(session.as_str()).join(r).join("index.m3u8");
                            write_atomic(&p, &media_playlist(*seq, false));
                        }
                    }
                }
            })
        };
        FakeOrigin {
            dir,
            live,
            stop: Some(stop),
            ticker: Some(ticker),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Starts (or restarts with a new session) a stream: media playlists
    /// first, then the multivariant playlist, as the origin does.
    fn publish(&self, name: &str, session: &str) {
        let root = self.dir.path().join(name);
        for r in RENDITIONS {
            write_atomic(
                &root.join(session).join(r).join("index.m3u8"),
                &media_playlist(0, false),
            );
        }
        let mut master = String::from("#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n");
        for (r, (bw, res)) in RENDITIONS.iter().zip([(3_000_000, "1280x720"), (800_000, "640x360")]) {
            master.push_str(&format!(
                "#EXT-X-STREAM-INF:BANDWIDTH={bw},RESOLUTION={res},CODECS=\"avc1.64001f,mp4a.40.2\"\n{session}/{r}/index.m3u8\n"
            ));
        }
        write_atomic(&root.join("index.m3u8"), &master);
        self.live
            .lock()
            .unwrap()
            .insert(name.to_string(), (session.to_string(), 0));
    }

    /// Ends a stream: EXT-X-ENDLIST in every media playlist.
    fn end(&self, name: &str) {
        let (session, seq) = self.live.lock().unwrap().remove(name).expect("stream is live");
        for r in RENDITIONS {
            let p = self.dir.path().join(name).join(&session).join(r).join("index.m3u8");
            write_atomic(&p, &media_playlist(seq + 1, true));
        }
    }

    /// Stops updating a stream without ending it: the origin died.
    fn freeze(&self, name: &str) {
        self.live.lock().unwrap().remove(name).expect("stream is live");
    }
}

impl Drop for FakeOrigin {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

// ----- the real services -----------------------------------------------------

struct Router {
    addr: SocketAddr,
    redis: Redis,
    process: Option<Process>,
    ttl: String,
}

impl Router {
    fn start(ttl: &str) -> Router {
        let mut r = Router {
            addr: free_addr(),
            redis: Redis::start(),
            process: None,
            ttl: ttl.into(),
        };
        r.restart();
        r
    }

    fn restart(&mut self) {
        self.stop();
        let listen = self.addr.to_string();
        let redis = self.redis.url();
        let p = Process::spawn(
            "router-api",
            bin_path("router-api"),
            [
                "--listen",
                &listen,
                "--redis",
                &redis,
                "--report-ttl",
                &self.ttl,
                "--redis-timeout",
                "300ms",
            ],
            &[("ROUTER_ADMIN_TOKEN", ADMIN), ("ROUTER_AGENT_TOKEN", AGENT)],
        );
        let addr = self.addr;
        wait_until("router-api ready", Duration::from_secs(10), || {
            matches!(http_get(addr, "/readyz"), Some((200, _)))
        });
        self.process = Some(p);
    }

    fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Status of `GET /streams/{name}` and its body.
    async fn route(&self, name: &str) -> (u16, Value) {
        let resp = Client::new()
            .get(format!("{}/streams/{name}", self.url()))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn live_names(&self) -> Vec<String> {
        let v: Value = reqwest::get(format!("{}/streams", self.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    }
}

struct Agent {
    process: Process,
    listen: SocketAddr,
}

fn start_agent(origin: &str, dir: &Path, advertise: &str, router: &str, extra: &[&str]) -> Agent {
    let listen = free_addr();
    let (l, d) = (listen.to_string(), dir.to_str().unwrap().to_string());
    let mut args = vec![
        "--origin-id",
        origin,
        "--output-dir",
        &d,
        "--advertise",
        advertise,
        "--router",
        router,
        "--listen",
        &l,
    ];
    args.extend_from_slice(extra);
    let process = Process::spawn(
        "discovery",
        bin_path("discovery"),
        args,
        &[("ROUTER_AGENT_TOKEN", AGENT)],
    );
    wait_until("discovery /healthz", Duration::from_secs(10), || {
        matches!(http_get(listen, "/healthz"), Some((200, _)))
    });
    Agent { process, listen }
}

async fn wait_status(router: &Router, name: &str, status: u16, within: Duration) -> Duration {
    let start = Instant::now();
    wait_until_async(&format!("GET /streams/{name} to answer {status}"), within, || async {
        (router.route(name).await.0 == status).then_some(())
    })
    .await;
    start.elapsed()
}

fn median_and_worst(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], *v.last().unwrap())
}

// ----- tests -------------------------------------------------------------------

#[tokio::test]
async fn streams_appear_and_leave_within_a_second() {
    let router = Router::start("15s");
    let origin = FakeOrigin::new();
    let agent = start_agent("origin-a", &origin.path(), "127.0.0.1:8080", &router.url(), &[]);

    let (mut up, mut down) = (vec![], vec![]);
    for i in 0..50 {
        let name = format!("s{i}");
        origin.publish(&name, &format!("sess{i}"));
        up.push(wait_status(&router, &name, 200, Duration::from_secs(1)).await);
        let (_, route) = router.route(&name).await;
        assert_eq!(route["host"], "127.0.0.1:8080");
        assert_eq!(route["manifest"], format!("{name}/index.m3u8"));
        assert_eq!(route["origins"][0]["session"], format!("sess{i}"));
        assert_eq!(route["origins"][0]["renditions"][1]["resolution"], "640x360");
        origin.end(&name);
        down.push(wait_status(&router, &name, 404, Duration::from_secs(1)).await);
    }
    let ((um, uw), (dm, dw)) = (median_and_worst(up), median_and_worst(down));
    println!("first playlist -> route: median {um:?}, worst {uw:?}; ENDLIST -> gone: median {dm:?}, worst {dw:?}");

    let metrics = http_get(agent.listen, "/metrics").unwrap().1;
    assert!(metrics.contains("discovery_streams_seen_total 50"), "{metrics}");
    assert!(
        metrics.contains("discovery_reports_total{op=\"delete\"} 50"),
        "{metrics}"
    );
    assert!(metrics.contains("discovery_streams_live 0"), "{metrics}");
}

#[tokio::test]
async fn an_agent_with_nothing_changing_stays_idle() {
    let router = Router::start("15s");
    let origin = FakeOrigin::new();
    origin.publish("over", "s1");
    origin.end("over");
    let agent = start_agent("origin-a", &origin.path(), "127.0.0.1:8080", &router.url(), &[]);
    wait_status(&router, "over", 404, Duration::from_secs(2)).await;
    // Its own reads of the folder must not wake it (they once did, forever).
    let before = agent.process.cpu_seconds();
    // A measurement window, not a wait for readiness.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = agent.process.cpu_seconds() - before;
    assert!(used < 0.2, "an idle agent used {used:.2} s of CPU in 2 s");
}

#[tokio::test]
async fn a_new_session_is_reported_at_once() {
    let router = Router::start("15s");
    let origin = FakeOrigin::new();
    let _agent = start_agent(
        "origin-a",
        &origin.path(),
        "127.0.0.1:8080",
        &router.url(),
        &["--heartbeat", "10s"],
    );
    origin.publish("golive", "first");
    wait_status(&router, "golive", 200, Duration::from_secs(1)).await;
    origin.publish("golive", "second");
    wait_until_async("the new session to be routed", Duration::from_secs(1), || async {
        (router.route("golive").await.1["origins"][0]["session"] == "second").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_stream_whose_origin_died_leaves() {
    let router = Router::start("3s");
    let origin = FakeOrigin::new();
    let mut agent = start_agent(
        "origin-a",
        &origin.path(),
        "127.0.0.1:8080",
        &router.url(),
        &["--heartbeat", "1s"],
    );

    // The origin stops writing but the agent runs: gone after 1.5 target
    // durations (1.5 s here), well within the TTL.
    origin.publish("frozen", "s1");
    wait_status(&router, "frozen", 200, Duration::from_secs(1)).await;
    origin.freeze("frozen");
    let took = wait_status(&router, "frozen", 404, Duration::from_secs(3)).await;
    assert!(took >= Duration::from_millis(500), "left too early: {took:?}");

    // The whole machine died (origin and agent): the router's TTL ends it.
    origin.publish("crashed", "s1");
    wait_status(&router, "crashed", 200, Duration::from_secs(1)).await;
    agent.process.kill();
    origin.freeze("crashed");
    wait_status(&router, "crashed", 404, Duration::from_secs(4)).await;
}

#[tokio::test]
async fn router_outage_costs_nothing_and_recovers_within_a_heartbeat() {
    let mut router = Router::start("3s");
    let origin = FakeOrigin::new();
    let agent = start_agent(
        "origin-a",
        &origin.path(),
        "127.0.0.1:8080",
        &router.url(),
        &["--heartbeat", "1s"],
    );
    let names: Vec<String> = (0..10).map(|i| format!("live{i}")).collect();
    for n in &names {
        origin.publish(n, "s1");
    }
    wait_until_async("all streams routed", Duration::from_secs(3), || async {
        (router.live_names().await.len() == names.len()).then_some(())
    })
    .await;

    // The router API goes away and Redis loses everything.
    router.stop();
    router.redis.restart();
    // A stream starts and one ends while the router is down.
    origin.publish("during", "s1");
    origin.end("live9");
    // Keep the outage long enough for several failed rounds.
    let outage_until = Instant::now() + Duration::from_secs(3);
    wait_until("outage to last 3s", Duration::from_secs(4), || {
        Instant::now() >= outage_until
    });
    assert!(
        http_get(agent.listen, "/healthz").is_some(),
        "agent still answers during the outage"
    );

    router.restart();
    let back = Instant::now();
    let mut expected: Vec<String> = names[..9].to_vec();
    expected.push("during".into());
    expected.sort();
    wait_until_async("every live stream re-reported", Duration::from_secs(3), || async {
        (router.live_names().await == expected).then_some(())
    })
    .await;
    let took = back.elapsed();
    println!("router back -> all {} streams re-reported in {took:?}", expected.len());
    assert!(
        took <= Duration::from_millis(1500),
        "more than one heartbeat (+ slack): {took:?}"
    );

    let metrics = http_get(agent.listen, "/metrics").unwrap().1;
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("discovery_report_failures_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures > 0, "failures were counted");
}

#[tokio::test]
async fn a_hundred_streams_at_once() {
    let router = Router::start("15s");
    let origin = FakeOrigin::new();
    let _agent = start_agent("origin-a", &origin.path(), "127.0.0.1:8080", &router.url(), &[]);
    let names: Vec<String> = (0..100).map(|i| format!("many{i:03}")).collect();
    for n in &names {
        origin.publish(n, "s1");
    }
    wait_until_async("100 streams routed", Duration::from_secs(5), || async {
        (router.live_names().await == names).then_some(())
    })
    .await;
    for n in &names {
        origin.end(n);
    }
    wait_until_async("100 streams withdrawn", Duration::from_secs(5), || async {
        router.live_names().await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_restarted_agent_rereports_and_cleans_up() {
    let router = Router::start("30s");
    let origin = FakeOrigin::new();
    let mut agent = start_agent("origin-a", &origin.path(), "127.0.0.1:8080", &router.url(), &[]);
    origin.publish("kept", "s1");
    origin.publish("ended", "s1");
    wait_status(&router, "kept", 200, Duration::from_secs(1)).await;
    wait_status(&router, "ended", 200, Duration::from_secs(1)).await;

    agent.process.kill();
    // While the agent is down: Redis loses "kept", and "ended" ends.
    let client = Client::new();
    let del = client
        .request(
            Method::DELETE,
            format!("{}/origins/origin-a/streams/kept", router.url()),
        )
        .bearer_auth(AGENT)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    origin.end("ended");
    assert_eq!(router.route("ended").await.0, 200, "nobody withdrew it yet");

    let _agent = start_agent("origin-a", &origin.path(), "127.0.0.1:8080", &router.url(), &[]);
    wait_status(&router, "kept", 200, Duration::from_secs(1)).await;
    wait_status(&router, "ended", 404, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn two_agents_for_two_origins_hold_one_stream() {
    let router = Router::start("15s");
    let (a, b) = (FakeOrigin::new(), FakeOrigin::new());
    let _agent_a = start_agent("origin-a", &a.path(), "127.0.0.1:8001", &router.url(), &[]);
    let _agent_b = start_agent(
        "origin-b",
        &b.path(),
        "127.0.0.1:8002",
        &router.url(),
        &["--watch", "poll"],
    );
    a.publish("golive", "sa");
    b.publish("golive", "sb");
    wait_until_async("both origins routed", Duration::from_secs(3), || async {
        let (_, route) = router.route("golive").await;
        let mut hosts: Vec<String> = route["origins"]
            .as_array()?
            .iter()
            .map(|o| format!("{}@{}", o["session"].as_str().unwrap(), o["host"].as_str().unwrap()))
            .collect();
        hosts.sort();
        (hosts == ["sa@127.0.0.1:8001", "sb@127.0.0.1:8002"]).then_some(())
    })
    .await;
    // One origin's stream ends; the other still holds it.
    a.end("golive");
    wait_until_async("origin-a withdrawn", Duration::from_secs(2), || async {
        let (_, route) = router.route("golive").await;
        (route["origins"].as_array()?.len() == 1 && route["host"] == "127.0.0.1:8002").then_some(())
    })
    .await;
}

#[tokio::test]
async fn bad_settings_are_refused_and_documented() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (args, msg) in [
        (
            vec!["--origin-id", "Bad!", "--output-dir", d, "--advertise", "h:80"],
            "origin id",
        ),
        (
            vec!["--origin-id", "a", "--output-dir", d, "--advertise", "nohost"],
            "--advertise",
        ),
        (
            vec![
                "--origin-id",
                "a",
                "--output-dir",
                "/nonexistent/x",
                "--advertise",
                "h:80",
            ],
            "not a folder",
        ),
    ] {
        let out = std::process::Command::new(bin_path("discovery"))
            .args(args)
            .env("ROUTER_AGENT_TOKEN", AGENT)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{msg}: {err}");
    }
    testkit::assert_help_documents(
        bin_path("discovery"),
        &[
            "--origin-id",
            "--output-dir",
            "--advertise",
            "--router",
            "ROUTER_AGENT_TOKEN",
            "--heartbeat",
            "--watch",
        ],
    );
}

/// The agent on the real origin's output: ffmpeg publishes over RTMP, the
/// origin transcodes and packages, the agent reports, the route leads to a
/// playable playlist, and the end of the publish withdraws it.
#[tokio::test]
async fn reports_the_real_origins_output() {
    let router = Router::start("15s");
    let created: Value = Client::new()
        .post(format!("{}/admin/streams", router.url()))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"name": "real"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let out = tempfile::tempdir().unwrap();
    let (rtmp, http) = (free_addr(), free_addr());
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../origin/tests/profiles.toml");
    let _origin = Process::spawn(
        "origin",
        bin_path("origin"),
        [
            "--origin-id",
            "origin-a",
            "--rtmp-listen",
            &rtmp.to_string(),
            "--http-listen",
            &http.to_string(),
            "--output-dir",
            out.path().to_str().unwrap(),
            "--router",
            &router.url(),
            "--profiles",
            profiles.to_str().unwrap(),
        ],
        &[("ROUTER_AGENT_TOKEN", AGENT)],
    );
    wait_until("origin ready", Duration::from_secs(10), || {
        matches!(http_get(http, "/healthz"), Some((200, _)))
    });
    let agent = start_agent("origin-a", out.path(), &http.to_string(), &router.url(), &[]);

    let mut ffmpeg = testkit::stack::publish(rtmp, &key, 6);
    let (cpu_before, started) = (agent.process.cpu_seconds(), Instant::now());
    wait_status(&router, "real", 200, Duration::from_secs(10)).await;
    let (_, route) = router.route("real").await;
    assert_eq!(route["host"], http.to_string());
    let session = route["origins"][0]["session"].as_str().unwrap().to_string();
    assert!(
        out.path().join("real").join(&session).is_dir(),
        "the reported session is the one on disk"
    );
    let names: Vec<&str> = route["origins"][0]["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"360p") && names.contains(&"audio"), "{route}");
    // The route leads to the playlist.
    let manifest = route["manifest"].as_str().unwrap();
    assert_eq!(http_get(http, &format!("/{manifest}")).map(|r| r.0), Some(200));

    wait_until("ffmpeg to finish", Duration::from_secs(20), || !ffmpeg.is_running());
    // Segments are written in many small writes; only playlist changes may
    // wake the agent (every write once did, and it took most of a core).
    let share = (agent.process.cpu_seconds() - cpu_before) / started.elapsed().as_secs_f64();
    println!("agent CPU share while live: {share:.3}");
    assert!(
        share < 0.05,
        "the agent used {:.0} % of a core while a stream was live",
        share * 100.0
    );
    wait_status(&router, "real", 404, Duration::from_secs(3)).await;
}
