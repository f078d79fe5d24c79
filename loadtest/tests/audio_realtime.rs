//! Issue 20's viewer-side symptom: audio that falls behind real time runs
//! simulated viewers' buffers dry after a minute or two (a 150 s run counted
//! 820 stalls while 30 s runs counted none). A two-minute load test through
//! a real edge, on the real stack, must count no stall.

use std::process::Command;
use std::time::Duration;
use testkit::stack::{Stack, publish};
use testkit::{http_get, wait_until};

#[test]
fn two_minutes_of_viewers_never_stall() {
    let mut stack = Stack::new();
    let rtmp = stack.add_origin("origin-a").rtmp;
    let edge = stack.add_edge(&[]);
    let key = stack.create_stream("golive");
    let _ffmpeg = publish(rtmp, &key, 150);
    wait_until("the stream playable on the edge", Duration::from_secs(20), || {
        matches!(http_get(edge, "/golive/index.m3u8"), Some((200, _)))
    });
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["--url", &format!("http://{edge}/golive/index.m3u8")])
        .args(["--viewers", "20", "--ramp", "5s", "--duration", "120s"])
        .args(["--report-dir", dir.path().to_str().unwrap(), "--quiet"])
        .args(["--request-timeout", "3s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "loadtest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["viewers"], 20, "{report:#}");
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(report["stalls"], 0, "{report:#}");
}
