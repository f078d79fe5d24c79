//! Recordings through the discovery agent, end to end: the real agent binary
//! watching a folder with hand-made recording folders (the origin's writer
//! of `recording.json` is tested on the origin's side), reporting to the real
//! router API on a real Redis.

use reqwest::{Client, Method};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::{Process, Redis, bin_path, free_addr, http_get, wait_until, wait_until_async};

const ADMIN: &str = "admin-token-0123456789";
const AGENT: &str = "agent-token-0123456789";
const ADVERTISE: &str = "127.0.0.1:8080";

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn write_atomic(path: &Path, body: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A recorded session's folder as the origin leaves it: media playlist and
/// segments, VOD playlists, then `recording.json` last.
fn write_recording(root: &Path, stream: &str, session: &str, duration_s: f64) {
    let dir = root.join(stream).join(session);
    write_atomic(&dir.join("720p/init.mp4"), b"init");
    write_atomic(&dir.join("720p/0.m4s"), b"segment");
    write_atomic(
        &dir.join("720p/vod.m3u8"),
        format!("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:{duration_s},\n0.m4s\n#EXT-X-ENDLIST\n").as_bytes(),
    );
    write_atomic(
        &dir.join("vod.m3u8"),
        b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000000\n720p/vod.m3u8\n",
    );
    write_meta(root, stream, session, &meta(stream, session, duration_s));
}

fn meta(stream: &str, session: &str, duration_s: f64) -> Value {
    let ended = now_ms();
    json!({
        "stream": stream, "session": session,
        "started_at_ms": ended - (duration_s * 1000.0) as u64, "ended_at_ms": ended,
        "duration_s": duration_s,
        "renditions": [{"name": "720p", "bandwidth": 1000000, "resolution": "1280x720"}],
    })
}

fn write_meta(root: &Path, stream: &str, session: &str, meta: &Value) {
    write_atomic(
        &root.join(stream).join(session).join("recording.json"),
        meta.to_string().as_bytes(),
    );
}

struct Router {
    addr: SocketAddr,
    _redis: Redis,
    _process: Process,
}

impl Router {
    fn start(recording_ttl: &str) -> Router {
        let redis = Redis::start();
        let addr = free_addr();
        let (listen, url) = (addr.to_string(), redis.url());
        let process = Process::spawn(
            "router-api",
            bin_path("router-api"),
            [
                "--listen",
                &listen,
                "--redis",
                &url,
                "--recording-ttl",
                recording_ttl,
                "--redis-timeout",
                "300ms",
            ],
            &[("ROUTER_ADMIN_TOKEN", ADMIN), ("ROUTER_AGENT_TOKEN", AGENT)],
        );
        wait_until("router-api ready", Duration::from_secs(10), || {
            matches!(http_get(addr, "/readyz"), Some((200, _)))
        });
        Router {
            addr,
            _redis: redis,
            _process: process,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn create_stream(&self, name: &str) {
        let resp = Client::new()
            .post(format!("{}/admin/streams", self.url()))
            .bearer_auth(ADMIN)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }

    /// The sessions `GET /streams/{name}/recordings` lists, in its order.
    async fn sessions(&self, name: &str) -> Vec<String> {
        let v: Value = reqwest::get(format!("{}/streams/{name}/recordings", self.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["session"].as_str().unwrap().to_string())
            .collect()
    }

    async fn wait_sessions(&self, name: &str, want: &[&str], within: Duration) -> Duration {
        let start = Instant::now();
        wait_until_async(&format!("{name}'s recordings to be {want:?}"), within, || async {
            (self.sessions(name).await == want).then_some(())
        })
        .await;
        start.elapsed()
    }
}

struct Agent {
    process: Process,
    listen: SocketAddr,
}

impl Agent {
    fn start(dir: &Path, router: &Router, extra: &[&str]) -> Agent {
        let listen = free_addr();
        let (l, d, r) = (listen.to_string(), dir.to_str().unwrap().to_string(), router.url());
        let mut args = vec![
            "--origin-id",
            "origin-a",
            "--output-dir",
            &d,
            "--advertise",
            ADVERTISE,
            "--router",
            &r,
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

    /// The value of a metric line that starts with `prefix` (0 when absent).
    fn metric(&self, prefix: &str) -> f64 {
        let (_, text) = http_get(self.listen, "/metrics").expect("agent metrics");
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }
}

#[tokio::test]
async fn recordings_are_reported_heartbeated_withdrawn_and_rereported_after_a_restart() {
    let router = Router::start("4s");
    router.create_stream("golive").await;
    let dir = tempfile::tempdir().unwrap();
    write_recording(dir.path(), "golive", "s1", 20.0);
    let mut agent = Agent::start(dir.path(), &router, &[]);
    router.wait_sessions("golive", &["s1"], Duration::from_secs(3)).await;
    let route: Value = reqwest::get(format!("{}/recordings/golive/s1", router.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(route["origin"], "origin-a");
    assert_eq!(route["host"], ADVERTISE);

    // A recording that appears while the agent runs.
    write_recording(dir.path(), "golive", "s2", 5.0);
    router
        .wait_sessions("golive", &["s2", "s1"], Duration::from_secs(3))
        .await;

    // Heartbeats keep both listed past twice the 4 s TTL.
    let until = Instant::now() + Duration::from_secs(9);
    while Instant::now() < until {
        assert_eq!(router.sessions("golive").await, ["s2", "s1"], "a heartbeat was missed");
        tokio::time::sleep(Duration::from_millis(250)).await; // paces the checks
    }
    let puts = agent.metric("discovery_reports_total{op=\"put_recording\"}");
    assert!(puts >= 6.0, "heartbeats: {puts}");
    assert_eq!(agent.metric("discovery_recordings "), 2.0);

    // The retention removes a session's folder: withdrawn at once, well
    // inside the TTL.
    std::fs::remove_dir_all(dir.path().join("golive/s1")).unwrap();
    let took = router.wait_sessions("golive", &["s2"], Duration::from_secs(3)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(agent.metric("discovery_reports_total{op=\"delete_recording\"}"), 1.0);

    // A restarted agent reports again what the router lost meanwhile.
    agent.process.kill();
    let del = Client::new()
        .request(
            Method::DELETE,
            format!("{}/origins/origin-a/recordings/golive/s2", router.url()),
        )
        .bearer_auth(AGENT)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert!(router.sessions("golive").await.is_empty());
    let _agent = Agent::start(dir.path(), &router, &[]);
    router.wait_sessions("golive", &["s2"], Duration::from_secs(3)).await;
}

#[tokio::test]
async fn hostile_recording_files_are_ignored_and_the_agent_keeps_working() {
    let router = Router::start("30s");
    router.create_stream("golive").await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // One good recording among hostile ones.
    write_recording(root, "golive", "good", 10.0);
    // Huge: a valid JSON document padded past the bound.
    write_recording(root, "golive", "huge", 10.0);
    let mut huge = meta("golive", "huge", 10.0).to_string().into_bytes();
    huge.extend(std::iter::repeat_n(b' ', 1 << 20));
    write_atomic(&root.join("golive/huge/recording.json"), &huge);
    // Invalid JSON, wrong names, impossible values.
    write_recording(root, "golive", "garbage", 10.0);
    write_atomic(&root.join("golive/garbage/recording.json"), b"\x00{\"stream\": [[[[");
    write_recording(root, "golive", "wrongname", 10.0);
    write_meta(root, "golive", "wrongname", &meta("other", "elsewhere", 10.0));
    write_recording(root, "golive", "negative", 10.0);
    let mut m = meta("golive", "negative", 10.0);
    m["duration_s"] = json!(-5.0);
    write_meta(root, "golive", "negative", &m);
    write_recording(root, "golive", "badrend", 10.0);
    let mut m = meta("golive", "badrend", 10.0);
    m["renditions"] = json!([{"name": "../../etc"}]);
    write_meta(root, "golive", "badrend", &m);
    // A folder whose name is no session; no VOD playlist beside the file.
    write_recording(root, "golive", "Bad.Name", 10.0);
    write_meta(root, "golive", "novod", &meta("golive", "novod", 10.0));
    // Links and a FIFO (which would block a reader for ever) are not read.
    std::fs::create_dir_all(root.join("golive/link")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.join("golive/link/recording.json")).unwrap();
    std::fs::write(root.join("golive/link/vod.m3u8"), "#EXTM3U\n").unwrap();
    std::fs::create_dir_all(root.join("golive/fifo")).unwrap();
    std::fs::write(root.join("golive/fifo/vod.m3u8"), "#EXTM3U\n").unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(root.join("golive/fifo/recording.json"))
        .status()
        .unwrap();
    assert!(made.success());
    // A recording of a stream the router does not manage: refused there.
    write_recording(root, "unmanaged", "s1", 10.0);

    let agent = Agent::start(root, &router, &["--rescan", "500ms"]);
    router.wait_sessions("golive", &["good"], Duration::from_secs(3)).await;
    // Several rescans later: still only the good one, and the agent answers.
    let rescans = Instant::now();
    while rescans.elapsed() < Duration::from_secs(2) {
        assert_eq!(router.sessions("golive").await, ["good"]);
        tokio::time::sleep(Duration::from_millis(250)).await; // paces the checks
    }
    assert!(router.sessions("unmanaged").await.is_empty());
    wait_until(
        "the unmanaged stream's recording to be refused",
        Duration::from_secs(3),
        || agent.metric("discovery_recordings_refused") == 1.0,
    );
    // Refused recordings do not make the agent unready (only live streams do).
    assert_eq!(http_get(agent.listen, "/readyz").map(|(s, _)| s), Some(200));
    assert_eq!(
        agent.metric("discovery_reports_total{op=\"put_recording\"}"),
        1.0,
        "one good recording, reported once (no heartbeat due yet)"
    );

    // A hostile file made valid is picked up (its stamp changed).
    write_meta(root, "golive", "negative", &meta("golive", "negative", 3.0));
    wait_until_async("the mended recording to be listed", Duration::from_secs(3), || async {
        let mut s = router.sessions("golive").await;
        s.sort();
        (s == ["good", "negative"]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_agent_tracks_at_most_max_recordings() {
    let router = Router::start("30s");
    router.create_stream("golive").await;
    let dir = tempfile::tempdir().unwrap();
    for s in ["a1", "a2", "a3"] {
        write_recording(dir.path(), "golive", s, 2.0);
    }
    let agent = Agent::start(dir.path(), &router, &["--max-recordings", "2", "--rescan", "500ms"]);
    wait_until_async("two recordings listed", Duration::from_secs(3), || async {
        (router.sessions("golive").await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(agent.metric("discovery_recordings "), 2.0);
    assert_eq!(agent.metric("discovery_recordings_untracked "), 1.0);
    let listed = router.sessions("golive").await;
    let left_out = ["a1", "a2", "a3"]
        .into_iter()
        .find(|s| !listed.iter().any(|l| l == s))
        .unwrap();
    // Room again: the one left out is reported at the next scan.
    std::fs::remove_dir_all(dir.path().join("golive").join(&listed[0])).unwrap();
    wait_until_async("the third recording to be listed", Duration::from_secs(3), || async {
        let now = router.sessions("golive").await;
        (now.len() == 2 && now.iter().any(|s| s == left_out)).then_some(())
    })
    .await;
    wait_until("the untracked count to drop", Duration::from_secs(3), || {
        agent.metric("discovery_recordings_untracked ") == 0.0
    });
}
