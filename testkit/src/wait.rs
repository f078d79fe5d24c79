//! Polling with a deadline, and a minimal blocking HTTP probe for readiness.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How often conditions are re-checked.
const POLL: Duration = Duration::from_millis(20);

/// Polls `cond` until it returns true; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// Async twin of [`wait_until`]: polls `cond` until it yields `Some`, returns
/// the value; panics with `what` after `timeout`.
pub async fn wait_until_async<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        // The poll interval, not a sleep standing in for readiness.
        tokio::time::sleep(POLL).await;
    }
}

/// A blocking `GET path` over HTTP/1.0; returns the status code and body, or
/// `None` if the server is not answering (yet). Follows up to three
/// redirects to paths of the same server (the edge redirects a multivariant
/// playlist into a viewer's playback session), as players do.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut path = path.to_string();
    for _ in 0..3 {
        let (status, head, body) = http_get_once(addr, &path)?;
        let location = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case("location").then(|| v.trim().to_string())
        });
        match location {
            Some(l) if (301..=308).contains(&status) && l.starts_with('/') => path = l,
            _ => return Some((status, body)),
        }
    }
    None
}

fn http_get_once(addr: SocketAddr, path: &str) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    Some((status, head.to_string(), body.to_string()))
}
