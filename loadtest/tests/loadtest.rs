//! The load tester against the real stack (router, origin, agent, edge, ffmpeg).

mod common;

use common::{assert_renders_cleanly, check_page, loadtest, select, text};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::stack::{Stack, publish};
use testkit::{free_addr, http_get, wait_until};

/// `--fail-on`'s exit status when a condition held.
const FAILED: i32 = 3;

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
    let url = format!("http://{edge}/golive/index.m3u8");
    let (status, report, summary) = loadtest(
        &[
            "--url",
            &url,
            "--viewers",
            "200",
            "--ramp",
            "5s",
            "--duration",
            "30s",
            // Every viewer on one rendition: the miss floor (one miss per
            // object per edge) is then spread over all 200 viewers.
            "--pick",
            "highest",
            "--request-timeout",
            "3s",
            "--label",
            "edge",
            "--fail-on",
            "stalls>0,errors>0,hit_ratio<0.99",
        ],
        dir.path(),
    );
    println!("{summary}");
    assert!(status.success(), "{status}: {report:#}");
    assert_eq!(report["schema"], "dionysia-loadtest-report");
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["viewers"], 200);
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(report["stalls"], 0, "{report:#}");
    assert_eq!(report["verdict"], "clean");
    assert_eq!(report["fail_on"]["failed"], false);
    let hit_ratio = report["hit_ratio"].as_f64().unwrap();
    assert!(hit_ratio >= 0.99, "hit ratio {hit_ratio}");
    let per_segment = report["origin_requests_per_segment"].as_f64().unwrap();
    assert!(per_segment <= 1.05, "origin requests per segment {per_segment}");
    let offload = report["origin_offload"].as_f64().unwrap();
    assert!(offload > 0.9, "origin offload {offload}");
    assert!(report["latency"]["p50_s"].as_f64().unwrap() > 0.0);
    assert!(report["watch_seconds"].as_f64().unwrap() > 200.0 * 20.0);
    let timeline = report["timeline"].as_array().unwrap();
    assert!(timeline.len() >= 25);
    // The timeline carries what the plots show: origin load and latency
    // percentiles each second once viewers play.
    let late = &timeline[timeline.len() - 5];
    assert!(late["origin_requests_per_s"].as_f64().is_some(), "{late}");
    assert!(late["latency_p99_s"].as_f64().unwrap() >= late["latency_p50_s"].as_f64().unwrap());
    assert!(late["requests_per_s"].as_f64().unwrap() > 50.0, "{late}");
    let segment = &report["by_kind"]["segment"];
    assert!(segment["ttfb"]["cdf"].as_array().unwrap().len() > 10);
    assert!(segment["hit_ratio"].as_f64().unwrap() > 0.95);
    assert!(report["command"].as_array().unwrap().iter().any(|a| a == "--fail-on"));
    assert!(summary.starts_with("Clean: 200 viewers for 30 s"), "{summary}");

    // The page: a verdict, the summary, the per-kind table, the plots.
    let page = dir.path().join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    let doc = check_page(&html, 5);
    let verdict = select(&doc, "#verdict");
    assert!(
        text(&verdict[0]).starts_with("Clean: 200 viewers"),
        "{}",
        text(&verdict[0])
    );
    let rows = select(&doc, "table#by-kind tbody tr");
    let kinds: Vec<String> = rows.iter().map(|r| text(&select_first(r, "td"))).collect();
    assert_eq!(kinds, ["multivariant", "playlist", "init", "segment"]);
    for row in &rows {
        assert_eq!(row.children().filter(|c| c.value().is_element()).count(), 11);
    }
    let summary_rows: Vec<String> = select(&doc, "table#summary th").iter().map(text).collect();
    for want in [
        "Hit ratio",
        "Origin offload",
        "Origin requests per segment",
        "Errors",
        "Stalls",
        "Throughput",
        "Live latency",
    ] {
        assert!(summary_rows.iter().any(|r| r == want), "{want} not in {summary_rows:?}");
    }
    assert!(html.contains("Mbit/s") && html.contains(" %"));
    for id in ["plot-load", "plot-offload", "plot-latency", "plot-ttfb", "plot-stalls"] {
        assert_eq!(select(&doc, &format!("figure#{id} svg")).len(), 1, "{id}");
    }
    // The TTFB plot has a line per kind; the latency plot three.
    assert_eq!(select(&doc, "figure#plot-ttfb polyline").len(), 4);
    assert_eq!(select(&doc, "figure#plot-latency polyline").len(), 3);
    assert!(text(&select(&doc, "#command")[0]).contains("--viewers 200"));
    let shot = dir.path().join("report.png");
    assert_renders_cleanly(&page, Some(&shot), 5);
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    if let Ok(keep) = std::env::var("LOADTEST_KEEP_REPORT") {
        // For docs/: the page and its screenshot from a real run.
        std::fs::create_dir_all(&keep).unwrap();
        for f in ["report.json", "report.html", "report.png"] {
            std::fs::copy(dir.path().join(f), std::path::Path::new(&keep).join(f)).unwrap();
        }
    }
}

fn select_first<'a>(e: &scraper::ElementRef<'a>, css: &str) -> scraper::ElementRef<'a> {
    e.select(&scraper::Selector::parse(css).unwrap()).next().unwrap()
}

#[test]
fn a_dead_edge_is_reported_as_errors_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let dead = free_addr();
    let url = format!("http://{dead}/golive/index.m3u8");
    let args = |fail_on: &'static str| {
        vec![
            "--url".to_string(),
            url.clone(),
            "--viewers".into(),
            "5".into(),
            "--ramp".into(),
            "1s".into(),
            "--duration".into(),
            "3s".into(),
            "--fail-on".into(),
            fail_on.into(),
        ]
    };
    let run = |fail_on: &'static str| {
        let a = args(fail_on);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        loadtest(&a, dir.path())
    };
    let started = Instant::now();
    // A condition that holds: status 3, and the reports are written.
    let (status, report, summary) = run("errors>0");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(FAILED), "{summary}");
    assert!(report["errors"].as_u64().unwrap() > 0, "{report:#}");
    assert!(
        report["by_kind"]["multivariant"]["errors"]["connect"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert_eq!(report["verdict"], "errors");
    assert_eq!(report["fail_on"]["failed"], true);
    assert!(summary.starts_with("Errors: "), "{summary}");
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let doc = check_page(&html, 5);
    assert!(select(&doc, "#verdict.errors").len() == 1);
    assert!(html.contains("connect: "));
    assert_renders_cleanly(&dir.path().join("report.html"), None, 5);

    // Conditions that do not hold: status 0.
    let (status, report, _) = run("stalls>0,errors>1000000,error_rate<50%");
    assert!(status.success(), "{status}: {}", report["fail_on"]);
    assert_eq!(report["fail_on"]["held"].as_array().unwrap().len(), 0);
    // What could not be measured fails the gate.
    let (status, report, _) = run("hit_ratio<0.99");
    assert_eq!(status.code(), Some(FAILED));
    assert_eq!(report["fail_on"]["held"][0], "hit_ratio<0.99 (not measured)");
}

#[test]
fn an_endless_metrics_page_is_not_read_into_memory() {
    // A "metrics page" that never ends: each answer streams lines until the
    // client hangs up (or 64 MiB, whichever comes first); the server stops
    // accepting after 30 s.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        use std::io::Write;
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            let Ok((mut conn, _)) = listener.accept() else {
                // A non-blocking accept's retry interval, bounded by `until`.
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::thread::spawn(move || {
                let _ = conn.set_nonblocking(false);
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n# TYPE edge_requests_total counter\n",
                );
                let line = "edge_origin_fetches_total{kind=\"segment\",status=\"200\"} 1\n".repeat(1000);
                let mut sent = 0;
                while sent < 64 << 20 && conn.write_all(line.as_bytes()).is_ok() {
                    sent += line.len();
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dead = free_addr();
    let started = Instant::now();
    let (status, report, _) = loadtest(
        &[
            "--url",
            &format!("http://{dead}/golive/index.m3u8"),
            "--metrics-url",
            &format!("http://{addr}/metrics"),
            "--viewers",
            "2",
            "--ramp",
            "1s",
            "--duration",
            "3s",
        ],
        dir.path(),
    );
    assert!(status.success());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    // Read before, every second, and after, each given up at the cap.
    assert!(served.load(std::sync::atomic::Ordering::Relaxed) >= 3);
    assert!(report["origin_requests"].is_null(), "{report:#}");
    assert!(
        report["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["origin_requests_per_s"].is_null())
    );
}

#[test]
fn an_endless_playlist_is_an_error_not_memory() {
    // A "multivariant playlist" that never ends (up to 64 MiB, or until the
    // client hangs up); the server stops accepting after 30 s.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            let Ok((mut conn, _)) = listener.accept() else {
                // A non-blocking accept's retry interval, bounded by `until`.
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            std::thread::spawn(move || {
                let _ = conn.set_nonblocking(false);
                let _ =
                    conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.apple.mpegurl\r\n\r\n#EXTM3U\n");
                let line = "#EXT-X-STREAM-INF:BANDWIDTH=1\nx/index.m3u8\n".repeat(1000);
                let mut sent = 0;
                while sent < 64 << 20 && conn.write_all(line.as_bytes()).is_ok() {
                    sent += line.len();
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (status, report, _) = loadtest(
        &[
            "--url",
            &format!("http://{addr}/golive/index.m3u8"),
            "--viewers",
            "2",
            "--ramp",
            "1s",
            "--duration",
            "3s",
        ],
        dir.path(),
    );
    assert!(status.success());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let too_long = &report["by_kind"]["multivariant"]["errors"]["too long"];
    assert!(too_long.as_u64().unwrap() >= 2, "{report:#}");
    // What was read stayed under the bound, per request.
    assert!(report["bytes"].as_u64().unwrap() == 0, "{report:#}");
}

#[test]
fn fail_on_typos_are_refused_before_the_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["--url", "http://127.0.0.1:1/x/index.m3u8", "--fail-on", "stals>0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown metric"));
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
            "--label",
            "--fail-on",
            "--ll",
            "--no-preload-hints",
        ],
    );
    testkit::assert_help_documents(env!("CARGO_BIN_EXE_loadtest-compare"), &["--out"]);
}
