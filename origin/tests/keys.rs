//! Keys mean what `docs/router-api.md` says, with the real binaries: the
//! router API on a real Redis, origins with their discovery agents, ffmpeg
//! publishing over RTMP.
//!
//! - disabling, deleting or rotating a key ends the publish live with it
//!   within a few seconds: EXT-X-ENDLIST, the publisher dropped, the route
//!   gone from `GET /streams/{name}`;
//! - one key is live on one origin at a time: a second origin refuses it
//!   while the first holds its claim, and takes it once the first publish
//!   ends, or once a dead origin's claim has expired;
//! - no key in any log line.
//!
//! Build the other binaries first: `cargo build -p router-api -p discovery --bins`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::stack::{ADMIN_TOKEN, OriginNode, Stack, publish};
use testkit::{Process, http_get, wait_until};

/// Publishing takes most of the two cores: one test of this file at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// An operator call with curl: (status, body).
fn admin(stack: &Stack, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {ADMIN_TOKEN}"));
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "-d", b]);
    }
    let out = cmd
        .arg(format!("http://{}{path}", stack.router))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// Creates a passthrough stream (cheap: no transcoding) and returns its key.
fn create(stack: &Stack, name: &str) -> String {
    let (status, body) = admin(
        stack,
        "POST",
        "/admin/streams",
        Some(&format!(r#"{{"name":"{name}","profile":"passthrough"}}"#)),
    );
    assert_eq!(status, 201, "{body}");
    body.split("\"key\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no key in {body}"))
        .to_string()
}

/// The path on disk of the media playlist of `stream`'s current session on
/// `node`, once it lists a segment.
fn media_playlist(node: &OriginNode, stream: &str, within: Duration) -> std::path::PathBuf {
    let mut found = None;
    wait_until(&format!("{stream} playable on {}", node.id), within, || {
        let master = std::fs::read_to_string(node.out.path().join(stream).join("index.m3u8")).unwrap_or_default();
        let Some(uri) = master.lines().find(|l| l.ends_with("/index.m3u8")) else {
            return false;
        };
        let path = node.out.path().join(stream).join(uri);
        let ok = std::fs::read_to_string(&path).is_ok_and(|t| t.contains(".m4s"));
        found = ok.then_some(path);
        ok
    });
    found.unwrap()
}

/// The session `stream`'s multivariant playlist on `node` points at.
fn session_of(node: &OriginNode, stream: &str) -> Option<String> {
    let master = std::fs::read_to_string(node.out.path().join(stream).join("index.m3u8")).ok()?;
    let uri = master.lines().find(|l| l.ends_with("/index.m3u8"))?;
    Some(uri.split('/').next()?.to_string())
}

fn ended(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains("#EXT-X-ENDLIST"))
}

fn route_status(stack: &Stack, stream: &str) -> u16 {
    http_get(stack.router, &format!("/streams/{stream}")).map_or(0, |(s, _)| s)
}

fn metrics(node: &OriginNode) -> String {
    http_get(node.http, "/metrics").map(|(_, b)| b).unwrap_or_default()
}

/// `origin_publishers_refused_total{reason="key_refused"}` on `node` (0 when
/// the series is not there yet).
fn keys_refused(node: &OriginNode) -> usize {
    metrics(node)
        .lines()
        .find_map(|l| l.strip_prefix(r#"origin_publishers_refused_total{reason="key_refused"} "#))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// The session folders of `stream` on `node`, sorted.
fn session_dirs(node: &OriginNode, stream: &str) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(node.out.path().join(stream))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    dirs
}

fn wait_exit(p: &mut Process, what: &str, within: Duration) {
    wait_until(what, within, || !p.is_running());
}

fn assert_no_key_in_logs(stack: &Stack, keys: &[String]) {
    let mut logs = vec![("router-api", stack.router_process.as_ref().unwrap().log())];
    for o in &stack.origins {
        logs.push(("origin", o.process.log()));
        logs.push(("discovery", o.agent.log()));
    }
    for (who, log) in logs {
        for k in keys {
            assert!(!log.contains(k.as_str()), "a stream key is in the {who} log:\n{log}");
        }
    }
}

#[test]
fn disabling_deleting_or_rotating_a_key_ends_its_live_publish() {
    let _s = serial();
    let mut stack = Stack::new();
    stack.add_origin("origin-a");
    let mut keys = vec![];
    for how in ["disable", "delete", "rotate"] {
        let name = format!("rev-{how}");
        let key = create(&stack, &name);
        keys.push(key.clone());
        let mut ffmpeg = publish(stack.origins[0].rtmp, &key, 120);
        let playlist = media_playlist(&stack.origins[0], &name, Duration::from_secs(20));
        wait_until(&format!("a route to {name}"), Duration::from_secs(10), || {
            route_status(&stack, &name) == 200
        });

        let revoked = Instant::now();
        let (status, body) = match how {
            "disable" => admin(
                &stack,
                "PATCH",
                &format!("/admin/streams/{name}"),
                Some(r#"{"enabled":false}"#),
            ),
            "delete" => admin(&stack, "DELETE", &format!("/admin/streams/{name}"), None),
            _ => admin(&stack, "POST", &format!("/admin/streams/{name}/key"), None),
        };
        assert!((200..300).contains(&status), "{how}: {status} {body}");
        if how == "rotate" {
            keys.push(
                body.split("\"key\":\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap()
                    .to_string(),
            );
        }
        wait_until(&format!("EXT-X-ENDLIST after {how}"), Duration::from_secs(8), || {
            ended(&playlist)
        });
        let endlist = revoked.elapsed();
        wait_until(&format!("the route to go after {how}"), Duration::from_secs(8), || {
            route_status(&stack, &name) == 404
        });
        let route = revoked.elapsed();
        wait_exit(&mut ffmpeg, "the publisher to be dropped", Duration::from_secs(10));
        println!(
            "{how}: EXT-X-ENDLIST after {:.1} s, route gone after {:.1} s",
            endlist.as_secs_f64(),
            route.as_secs_f64()
        );
        assert!(endlist < Duration::from_secs(6), "{how}: ENDLIST after {endlist:?}");

        // The revoked key cannot publish again: refused as a key (the
        // metric goes up), at once (ffmpeg would publish for 5 s if it were
        // let in), and no session folder is opened.
        let refused = |n: usize| format!(r#"origin_publishers_refused_total{{reason="key_refused"}} {n}"#);
        let before = keys_refused(&stack.origins[0]);
        let sessions = session_dirs(&stack.origins[0], &name);
        let tried = Instant::now();
        let mut again = publish(stack.origins[0].rtmp, &key, 5);
        wait_exit(
            &mut again,
            "the revoked key's publish to be refused",
            Duration::from_secs(15),
        );
        let gone = tried.elapsed();
        assert!(
            gone < Duration::from_secs(4),
            "{how}: the refused publisher ran {gone:?}"
        );
        let m = metrics(&stack.origins[0]);
        assert!(m.contains(&refused(before + 1)), "{how}: {m}");
        let opened: Vec<_> = session_dirs(&stack.origins[0], &name)
            .into_iter()
            .filter(|d| !sessions.contains(d))
            .collect();
        assert!(
            opened.is_empty(),
            "{how}: sessions opened for a revoked key: {opened:?}"
        );
    }
    let m = metrics(&stack.origins[0]);
    assert!(
        m.contains(r#"origin_publishers_refused_total{reason="revoked"} 3"#),
        "{m}"
    );
    assert!(
        stack.origins[0].process.log().contains("ending publish"),
        "{}",
        stack.origins[0].process.log()
    );
    assert_no_key_in_logs(&stack, &keys);
}

#[test]
fn one_key_is_live_on_one_origin_at_a_time() {
    let _s = serial();
    let mut stack = Stack::new();
    stack.add_origin("origin-a");
    stack.add_origin("origin-b");
    let key = create(&stack, "golive");
    let mut first = publish(stack.origins[0].rtmp, &key, 120);
    let playlist_a = media_playlist(&stack.origins[0], "golive", Duration::from_secs(20));

    // The same key on the second origin: refused while the first holds it.
    let mut second = publish(stack.origins[1].rtmp, &key, 60);
    wait_exit(&mut second, "the second origin to refuse", Duration::from_secs(25));
    let b = &stack.origins[1];
    assert!(
        b.process.log().contains("being published on another origin"),
        "{}",
        b.process.log()
    );
    assert!(
        metrics(b).contains(r#"origin_publishers_refused_total{reason="claimed_elsewhere"} 1"#),
        "{}",
        metrics(b)
    );
    assert!(
        !b.out.path().join("golive").exists(),
        "the refused origin wrote nothing"
    );
    assert!(first.is_running() && !ended(&playlist_a), "the first publish goes on");
    let before = std::fs::read_to_string(&playlist_a).unwrap();
    wait_until("the first publish to keep growing", Duration::from_secs(5), || {
        std::fs::read_to_string(&playlist_a).unwrap() != before
    });

    // The first publish ends (its claim is released): the second origin
    // takes the key at once, without waiting for the claim to expire.
    first.stop();
    wait_until("the first publish to end", Duration::from_secs(5), || {
        ended(&playlist_a)
    });
    // The claim is released just after EXT-X-ENDLIST: publish on the second
    // origin once it is gone, or its authorization may still meet it.
    wait_until("the first origin to release the claim", Duration::from_secs(5), || {
        stack.redis.cli(&["EXISTS", "dionysia:claim:golive"]).trim() == "0"
    });
    let moved = Instant::now();
    let _second = publish(stack.origins[1].rtmp, &key, 120);
    media_playlist(&stack.origins[1], "golive", Duration::from_secs(20));
    let took = moved.elapsed();
    println!(
        "released claim: the second origin published after {:.1} s",
        took.as_secs_f64()
    );
    assert_eq!(
        stack.origins[1]
            .process
            .log()
            .matches("waiting for the claim to expire")
            .count(),
        1,
        "only the refused attempt waited"
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");

    // An origin that dies keeps its claim only until it expires: the key
    // moves to the first origin within the claim's lifetime (6 s) or so.
    let old_session = session_of(&stack.origins[0], "golive").unwrap();
    stack.origins[1].process.kill();
    let died = Instant::now();
    let _third = publish(stack.origins[0].rtmp, &key, 120);
    wait_until("the key to move back to origin-a", Duration::from_secs(25), || {
        session_of(&stack.origins[0], "golive").is_some_and(|s| s != old_session)
    });
    let back = died.elapsed();
    println!("dead origin's claim: republished after {:.1} s", back.as_secs_f64());
    // The claim's 6 s lifetime, the next retry (1 s) and the first segment.
    assert!(back < Duration::from_secs(12), "republished after {back:?}");
    assert_no_key_in_logs(&stack, &[key]);
}
