//! The router API under slow and hostile clients, while an edge-like client
//! keeps asking for routes: the real binary on a real Redis, short limits
//! set by flags.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use testkit::{Process, Redis, bin_path, free_addr, http_get, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN: &str = "admin-token-0123456789";
const AGENT: &str = "agent-token-0123456789";

fn start(extra: &[&str]) -> (Redis, Process, SocketAddr) {
    let redis = Redis::start();
    let addr = free_addr();
    let mut args = vec!["--listen".to_string(), addr.to_string(), "--redis".into(), redis.url()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let p = Process::spawn(
        "router-api",
        bin_path("router-api"),
        &args,
        &[("ROUTER_ADMIN_TOKEN", ADMIN), ("ROUTER_AGENT_TOKEN", AGENT)],
    );
    wait_until("router-api ready", Duration::from_secs(10), || {
        matches!(http_get(addr, "/readyz"), Some((200, _)))
    });
    (redis, p, addr)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

/// An edge asking for a route every 50 ms until `stop`: the slowest answer
/// and how many were not the expected 404 ("not live"). Its connection is
/// open when this returns.
async fn edge_client(addr: SocketAddr, stop: Instant) -> tokio::task::JoinHandle<(Duration, u32)> {
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let first = c.get(format!("http://{addr}/streams/golive")).send().await.unwrap();
    assert_eq!(first.status(), 404);
    tokio::spawn(async move {
        let (mut worst, mut bad) = (Duration::ZERO, 0);
        while Instant::now() < stop {
            let t = Instant::now();
            let ok = matches!(c.get(format!("http://{addr}/streams/golive")).send().await, Ok(r) if r.status() == 404);
            worst = worst.max(t.elapsed());
            bad += u32::from(!ok);
            // The edge's refresh interval, bounded by `stop`.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (worst, bad)
    })
}

/// Sends a head one byte every 200 ms; how long the server kept it.
async fn dribble(addr: SocketAddr) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = b"GET /streams/golive HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut buf = [0u8; 256];
    for b in head.iter() {
        if start.elapsed() > Duration::from_secs(15) || s.write_all(&[*b]).await.is_err() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_idle_and_excess_connections_are_cut_while_edges_are_served() {
    let (_redis, p, addr) = start(&[
        "--http-head-timeout",
        "2s",
        "--http-idle-timeout",
        "3s",
        "--http-max-connections",
        "400",
    ]);
    let (fds0, rss0) = (fds(p.pid()), rss_kb(p.pid()));
    let stop = Instant::now() + Duration::from_secs(8);
    let edge = edge_client(addr, stop).await;

    let mut dribblers = tokio::task::JoinSet::new();
    for _ in 0..300 {
        dribblers.spawn(dribble(addr));
    }
    let mut idle = vec![];
    for _ in 0..60 {
        idle.push((Instant::now(), TcpStream::connect(addr).await.unwrap()));
    }
    while let Some(kept) = dribblers.join_next().await {
        let kept = kept.unwrap();
        assert!(
            kept < Duration::from_secs(5),
            "a dribbling client was kept {kept:?} (head limit 2 s)"
        );
    }
    for (opened, mut s) in idle {
        let mut buf = [0u8; 16];
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
        let kept = opened.elapsed();
        assert!(
            kept < Duration::from_secs(7),
            "an idle connection was kept {kept:?} (idle limit 3 s)"
        );
    }
    let (worst, bad) = edge.await.unwrap();
    assert_eq!(bad, 0, "the edge's requests were all answered");
    assert!(worst < Duration::from_secs(1), "the edge waited {worst:?}");

    // Past the cap: a clear 503, and the edge's own connection still served.
    let stop = Instant::now() + Duration::from_secs(4);
    let edge = edge_client(addr, stop).await;
    // Idle connections up to the cap and past it (those are refused too);
    // all within the 3 s idle limit.
    let mut held = vec![];
    for _ in 0..405 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    wait_until("the router at its cap", Duration::from_secs(2), || {
        !matches!(http_get(addr, "/healthz"), Some((200, _)))
    });
    let mut refused = 0;
    for _ in 0..10 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut text = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut text)).await;
        refused += u32::from(text.starts_with(b"HTTP/1.1 503"));
    }
    assert!(refused >= 8, "{refused} of 10 connections past the cap got a 503");
    let (worst, bad) = edge.await.unwrap();
    assert_eq!(bad, 0);
    assert!(worst < Duration::from_secs(1), "the edge waited {worst:?}");
    drop(held);

    wait_until("connections back to the baseline", Duration::from_secs(10), || {
        fds(p.pid()) <= fds0 + 5
    });
    assert!(
        rss_kb(p.pid()) < rss0 + 100_000,
        "memory grew: {rss0} kB -> {} kB",
        rss_kb(p.pid())
    );
    let metrics = http_get(addr, "/metrics").unwrap().1;
    assert!(
        metrics.contains("http_connections_timed_out_total{limit=\"head\"}"),
        "{metrics}"
    );
    assert!(!p.log().contains("panicked"), "{}", p.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invented_methods_do_not_grow_the_metrics() {
    let (_redis, p, addr) = start(&[]);
    let c = reqwest::Client::new();
    for i in 0..2000 {
        let method = reqwest::Method::from_bytes(format!("M{i}").as_bytes()).unwrap();
        let r = c
            .request(method, format!("http://{addr}/streams/golive"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
    }
    let metrics = http_get(addr, "/metrics").unwrap().1;
    let methods: std::collections::HashSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("router_http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    assert!(methods.contains("other"), "{methods:?}");
    assert!(methods.len() <= 8, "method labels: {methods:?}");
    assert!(!p.log().contains("panicked"), "{}", p.log());
}
