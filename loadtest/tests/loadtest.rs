//! The load tester against the real stack (router, origin, agent, edge, ffmpeg).

use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::stack::{Stack, publish};
use testkit::{free_addr, http_get, wait_until};

fn run_loadtest(url: &str, viewers: u32, ramp: &str, duration: &str, dir: &std::path::Path) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "--url",
            url,
            "--viewers",
            &viewers.to_string(),
            "--ramp",
            ramp,
            "--duration",
            duration,
        ])
        // Every viewer on one rendition: the miss floor (one miss per object
        // per edge) is then spread over all 200 viewers.
        .args(["--pick", "highest"])
        .args([
            "--report-dir",
            dir.to_str().unwrap(),
            "--quiet",
            "--request-timeout",
            "3s",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "loadtest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    (report, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn two_hundred_viewers_play_cleanly_from_the_edge() {
    let mut stack = Stack::new();
    let rtmp = stack.add_origin("origin-a").rtmp;
    let edge = stack.add_edge(&[]);
    let key = stack.create_stream("golive");
    let _ffmpeg = publish(rtmp, &key, 60);
    wait_until("the stream playable on the edge", Duration::from_secs(20), || {
        matches!(http_get(edge, "/golive/index.m3u8"), Some((200, _)))
    });
    // Let a few segments exist so viewers can start three behind the edge.
    let origin_http = stack.origins[0].http;
    wait_until("three segments", Duration::from_secs(10), || {
        let master = http_get(origin_http, "/golive/index.m3u8")
            .map(|r| r.1)
            .unwrap_or_default();
        let Some(uri) = master.lines().find(|l| l.ends_with("index.m3u8")) else {
            return false;
        };
        let pl = http_get(origin_http, &format!("/golive/{uri}"))
            .map(|r| r.1)
            .unwrap_or_default();
        pl.lines().filter(|l| l.ends_with(".m4s")).count() >= 3
    });

    let dir = tempfile::tempdir().unwrap();
    let (report, summary) = run_loadtest(
        &format!("http://{edge}/golive/index.m3u8"),
        200,
        "5s",
        "30s",
        dir.path(),
    );
    println!("{summary}");
    assert_eq!(report["viewers"], 200);
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(report["stalls"], 0, "{report:#}");
    let hit_ratio = report["hit_ratio"].as_f64().unwrap();
    assert!(hit_ratio >= 0.99, "hit ratio {hit_ratio}");
    let per_segment = report["origin_requests_per_segment"].as_f64().unwrap();
    assert!(per_segment <= 1.05, "origin requests per segment {per_segment}");
    assert!(report["latency"]["p50_s"].as_f64().unwrap() > 0.0);
    assert!(report["timeline"].as_array().unwrap().len() >= 25);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Hit ratio over time"));
}

#[test]
fn a_dead_edge_is_reported_as_errors_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let dead = free_addr();
    let started = Instant::now();
    let (report, _) = run_loadtest(&format!("http://{dead}/golive/index.m3u8"), 5, "1s", "3s", dir.path());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert!(report["errors"].as_u64().unwrap() > 0, "{report:#}");
    assert!(
        report["by_kind"]["multivariant"]["errors"]["connect"].as_u64().unwrap() > 0,
        "{report:#}"
    );
}

#[test]
fn refuses_non_loopback_targets_and_bounds() {
    for args in [
        vec!["--url", "http://10.1.2.3/x/index.m3u8"],
        vec!["--url", "http://127.0.0.1:1/x/index.m3u8", "--viewers", "20001"],
        vec!["--url", "http://127.0.0.1:1/x/index.m3u8", "--duration", "2h"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
    }
    testkit::assert_help_documents(
        env!("CARGO_BIN_EXE_loadtest"),
        &[
            "--url",
            "--viewers",
            "--ramp",
            "--duration",
            "--report-dir",
            "--allow-target",
        ],
    );
}
