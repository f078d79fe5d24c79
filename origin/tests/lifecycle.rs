//! The origin's lifecycle with the real binary (and once in-process): SIGTERM
//! ends every RTMP and SRT publish with EXT-X-ENDLIST and exits 0; the
//! janitor keeps the output folder bounded (ended sessions go after the
//! retention even while their stream is live again; `--max-disk` removes
//! ended sessions first, then refuses new publishes).
//!
//! Build the router first: `cargo build -p router-api --bins`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::stack::{ADMIN_TOKEN, AGENT_TOKEN, H264, ffmpeg_publish, publish, start_router};
use testkit::{Process, Redis, free_addr, http_get, wait_until};

/// Publishing takes most of the two cores: one test of this file at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

struct Origin {
    _redis: Redis,
    router_process: Process,
    router: SocketAddr,
    process: Process,
    rtmp: SocketAddr,
    srt: SocketAddr,
    http: SocketAddr,
    out: tempfile::TempDir,
}

impl Origin {
    fn start(extra: &[&str]) -> Origin {
        let redis = Redis::start();
        let router = free_addr();
        let router_process = start_router(router, &redis.url());
        let (rtmp, srt, http) = (free_addr(), free_addr(), free_addr());
        let out = tempfile::tempdir().unwrap();
        let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/profiles.toml");
        let mut args: Vec<String> = [
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
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let process = Process::spawn(
            "origin",
            env!("CARGO_BIN_EXE_origin"),
            &args,
            &[("ROUTER_AGENT_TOKEN", AGENT_TOKEN)],
        );
        wait_until("origin ready", Duration::from_secs(10), || {
            matches!(http_get(http, "/healthz"), Some((200, _)))
        });
        Origin {
            _redis: redis,
            router_process,
            router,
            process,
            rtmp,
            srt,
            http,
            out,
        }
    }

    /// No key in the origin's or the router API's log (this harness runs no
    /// discovery agent; `keys.rs` checks the agents' logs too).
    fn assert_no_key_in_logs(&self, keys: &[&str]) {
        for (who, log) in [
            ("origin", self.process.log()),
            ("router-api", self.router_process.log()),
        ] {
            for k in keys {
                assert!(!log.contains(k), "a stream key is in the {who} log:\n{log}");
            }
        }
    }

    /// Creates a passthrough stream (no transcoding) and returns its key.
    fn create(&self, name: &str) -> String {
        let out = Command::new("curl")
            .args(["-fsS", "-H", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
            .args(["-H", "content-type: application/json", "-d"])
            .arg(format!(r#"{{"name":"{name}","profile":"passthrough"}}"#))
            .arg(format!("http://{}/admin/streams", self.router))
            .output()
            .expect("run curl");
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        body.split("\"key\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no key in {body}"))
            .to_string()
    }

    /// Media playlists (on disk) of `stream`'s current session, once every
    /// one lists a segment.
    fn media_playlists(&self, stream: &str, within: Duration) -> Vec<PathBuf> {
        self.new_session_playlists(stream, &[], within)
    }

    /// Like [`Origin::media_playlists`], for a session not in `old`.
    fn new_session_playlists(&self, stream: &str, old: &[String], within: Duration) -> Vec<PathBuf> {
        let mut found = vec![];
        wait_until(&format!("{stream} to be playable"), within, || {
            let dir = self.out.path().join(stream);
            let master = std::fs::read_to_string(dir.join("index.m3u8")).unwrap_or_default();
            found = master
                .lines()
                .filter_map(|l| l.split('"').find(|p| p.ends_with("/index.m3u8")).or(Some(l)))
                .filter(|u| u.ends_with("/index.m3u8"))
                .filter(|u| !old.iter().any(|o| u.starts_with(&format!("{o}/"))))
                .map(|u| dir.join(u))
                .collect();
            !found.is_empty()
                && found
                    .iter()
                    .all(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(".m4s")))
        });
        found
    }

    fn metrics(&self) -> String {
        http_get(self.http, "/metrics").map(|(_, b)| b).unwrap_or_default()
    }

    /// Session folders of `stream` on disk.
    fn sessions(&self, stream: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.out.path().join(stream))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

fn ended(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains("#EXT-X-ENDLIST"))
}

/// Bytes of every file under `dir`.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

#[test]
fn sigterm_ends_rtmp_and_srt_publishes_with_endlist_and_exits_0() {
    let _s = serial();
    let mut origin = Origin::start(&[]);
    let rtmp_key = origin.create("viartmp");
    let srt_key = origin.create("viasrt");
    let _rtmp = publish(origin.rtmp, &rtmp_key, 120);
    let _srt = ffmpeg_publish(&format!("srt://{}?streamid={srt_key}", origin.srt), "mpegts", 120, H264);
    let mut playlists = origin.media_playlists("viartmp", Duration::from_secs(20));
    playlists.extend(origin.media_playlists("viasrt", Duration::from_secs(20)));
    assert!(playlists.iter().all(|p| !ended(p)), "both are live");

    let term = Instant::now();
    origin.process.signal(15); // SIGTERM
    wait_until("the origin to exit", Duration::from_secs(12), || {
        !origin.process.is_running()
    });
    let took = term.elapsed();
    let code = origin.process.stop();
    println!("SIGTERM: exited {code:?} after {:.1} s", took.as_secs_f64());
    assert_eq!(code, Some(0), "{}", origin.process.log());
    for p in &playlists {
        assert!(
            ended(p),
            "{} has no EXT-X-ENDLIST:\n{}",
            p.display(),
            origin.process.log()
        );
    }
    let log = origin.process.log();
    assert!(log.contains("origin stopped"), "{log}");
    origin.assert_no_key_in_logs(&[rtmp_key.as_str(), srt_key.as_str()]);
    assert!(took < Duration::from_secs(8), "exit took {took:?}");
}

#[test]
fn a_republish_loop_keeps_the_disk_bounded_and_old_sessions_go_while_live() {
    let _s = serial();
    let origin = Origin::start(&["--retain-ended", "3s"]);
    let key = origin.create("loop");
    let mut most_sessions = 0;
    let mut most_bytes = 0;
    let mut seen = vec![];
    for _ in 0..4 {
        let mut ffmpeg = publish(origin.rtmp, &key, 3);
        let playlists = origin.new_session_playlists("loop", &seen, Duration::from_secs(20));
        wait_until("the short publish to end", Duration::from_secs(20), || {
            most_sessions = most_sessions.max(origin.sessions("loop").len());
            most_bytes = most_bytes.max(du(origin.out.path()));
            !ffmpeg.is_running() && playlists.iter().all(|p| ended(p))
        });
        seen.extend(origin.sessions("loop"));
    }
    seen.sort();
    seen.dedup();
    assert!(seen.len() >= 4, "four sessions: {seen:?}");
    // The stream is live again; every earlier session goes after 3 s.
    let _live = publish(origin.rtmp, &key, 120);
    let playlists = origin.new_session_playlists("loop", &seen, Duration::from_secs(20));
    let live_session = playlists[0]
        .strip_prefix(origin.out.path().join("loop"))
        .unwrap()
        .iter()
        .next()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    wait_until(
        "old sessions to go while the stream is live",
        Duration::from_secs(15),
        || {
            most_sessions = most_sessions.max(origin.sessions("loop").len());
            origin.sessions("loop") == [live_session.clone()]
        },
    );
    println!(
        "republish loop: at most {most_sessions} session folders, {most_bytes} bytes; {} sessions removed",
        seen.len()
    );
    assert!(most_sessions <= 3, "{most_sessions} session folders at once");
    assert!(playlists.iter().all(|p| !ended(p)), "the live session is untouched");
    let m = origin.metrics();
    assert!(m.contains("origin_sessions_removed_total"), "{m}");
    assert!(origin.process.log().contains("removed ended session"));
}

#[test]
fn max_disk_removes_ended_sessions_then_refuses_new_publishes() {
    let _s = serial();
    // One byte: any live session is over it.
    let origin = Origin::start(&["--max-disk", "1"]);
    let first = origin.create("first");
    let second = origin.create("second");
    let mut live = publish(origin.rtmp, &first, 120);
    let playlists = origin.media_playlists("first", Duration::from_secs(20));
    wait_until("the disk-full flag", Duration::from_secs(10), || {
        origin.metrics().lines().any(|l| l == "origin_output_full 1")
    });
    let mut refused = publish(origin.rtmp, &second, 10);
    wait_until("the second publish to be refused", Duration::from_secs(15), || {
        !refused.is_running()
    });
    assert!(
        !origin.out.path().join("second").exists(),
        "the refused publish wrote nothing:\n{}",
        origin.process.log()
    );
    assert!(
        origin
            .metrics()
            .contains(r#"origin_publishers_refused_total{reason="disk_full"} 1"#),
        "{}",
        origin.metrics()
    );
    let log = origin.process.log();
    assert!(log.contains("over --max-disk"), "{log}");
    // The live publish goes on.
    let before = std::fs::read_to_string(&playlists[0]).unwrap();
    wait_until("the live publish to keep growing", Duration::from_secs(5), || {
        std::fs::read_to_string(&playlists[0]).unwrap() != before
    });

    // It ends: its session goes at once (not after the 60 s retention), the
    // flag clears and a new publish is accepted.
    live.stop();
    wait_until("the first session to be removed", Duration::from_secs(10), || {
        !origin.out.path().join("first").exists()
    });
    wait_until("the disk-full flag to clear", Duration::from_secs(10), || {
        origin.metrics().lines().any(|l| l == "origin_output_full 0")
    });
    let _again = publish(origin.rtmp, &second, 30);
    origin.media_playlists("second", Duration::from_secs(20));
}

#[tokio::test]
async fn run_in_process_serves_until_its_shutdown_future_resolves() {
    use clap::Parser;
    let out = tempfile::tempdir().unwrap();
    let settings = origin::settings::Settings::parse_from([
        "origin",
        "--origin-id",
        "inproc",
        "--output-dir",
        out.path().to_str().unwrap(),
        "--agent-token",
        AGENT_TOKEN,
        "--rtmp-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ]);
    let listeners = origin::Listeners::bind(&settings).await.unwrap();
    let (rtmp, http) = (
        listeners.rtmp.local_addr().unwrap(),
        listeners.http.local_addr().unwrap(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(origin::run(settings, listeners, async {
        let _ = stopped.await;
    }));
    testkit::wait_until_async("the in-process origin to answer", Duration::from_secs(10), || async {
        let r = tokio::task::spawn_blocking(move || http_get(http, "/healthz"))
            .await
            .unwrap();
        matches!(r, Some((200, _))).then_some(())
    })
    .await;
    assert!(std::net::TcpStream::connect(rtmp).is_ok(), "RTMP is listening");
    let at = Instant::now();
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("run returns after its shutdown future resolves")
        .unwrap();
    result.unwrap();
    assert!(at.elapsed() < Duration::from_secs(5));
    assert!(http_get(http, "/healthz").is_none(), "HTTP is closed after run returns");
}

#[test]
fn a_disabled_key_ends_a_live_srt_publish() {
    let _s = serial();
    let origin = Origin::start(&[]);
    let key = origin.create("viasrt");
    let mut ffmpeg = ffmpeg_publish(&format!("srt://{}?streamid={key}", origin.srt), "mpegts", 120, H264);
    let playlists = origin.media_playlists("viasrt", Duration::from_secs(20));
    let out = Command::new("curl")
        .args([
            "-fsS",
            "-X",
            "PATCH",
            "-H",
            &format!("Authorization: Bearer {ADMIN_TOKEN}"),
        ])
        .args(["-H", "content-type: application/json", "-d", r#"{"enabled":false}"#])
        .arg(format!("http://{}/admin/streams/viasrt", origin.router))
        .output()
        .unwrap();
    assert!(out.status.success());
    let revoked = Instant::now();
    wait_until("EXT-X-ENDLIST after disabling", Duration::from_secs(8), || {
        playlists.iter().all(|p| ended(p))
    });
    let took = revoked.elapsed();
    println!("SRT: EXT-X-ENDLIST {:.1} s after disabling", took.as_secs_f64());
    wait_until("the SRT publisher to be dropped", Duration::from_secs(15), || {
        !ffmpeg.is_running()
    });
    assert!(took < Duration::from_secs(6), "{took:?}");
    // The listener is back for the next caller.
    let other = origin.create("next");
    let _next = ffmpeg_publish(&format!("srt://{}?streamid={other}", origin.srt), "mpegts", 30, H264);
    origin.media_playlists("next", Duration::from_secs(20));
    origin.assert_no_key_in_logs(&[key.as_str(), other.as_str()]);
}

#[test]
fn a_router_outage_is_ridden_out_for_the_claim_grace_then_ends_the_publish() {
    let _s = serial();
    let mut origin = Origin::start(&["--claim-grace", "6s"]);
    let key = origin.create("golive");
    let _ffmpeg = publish(origin.rtmp, &key, 120);
    let playlists = origin.media_playlists("golive", Duration::from_secs(20));
    origin.router_process.stop();
    let down = Instant::now();
    wait_until("a failed renewal", Duration::from_secs(6), || {
        origin.process.log().contains("claim renewal failed; publishing on")
    });
    assert!(
        playlists.iter().all(|p| !ended(p)),
        "a failed renewal does not end the publish"
    );
    wait_until(
        "EXT-X-ENDLIST once the grace has passed",
        Duration::from_secs(15),
        || playlists.iter().all(|p| ended(p)),
    );
    let took = down.elapsed();
    println!(
        "router down: publish ended {:.1} s later (grace 6 s)",
        took.as_secs_f64()
    );
    // The last confirmed renewal was at most 2 s before the outage.
    assert!(took >= Duration::from_secs(4), "ended after {took:?}, inside the grace");
    assert!(
        origin
            .metrics()
            .contains(r#"origin_publishers_refused_total{reason="router_unavailable"} 1"#),
        "{}",
        origin.metrics()
    );
}
