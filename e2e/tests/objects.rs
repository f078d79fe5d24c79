//! Objects are complete before anyone can read them. A viewer polling the
//! next segment through the real edge, before it exists and then as soon as
//! it appears, never gets a short or empty 200 that the edge would cache for
//! everyone: the edge's copy (first answer and cached answer) equals the
//! origin's final file byte for byte, for every segment of every rendition
//! polled. The origin never serves its temporary dot-names.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::stack::{ADMIN_TOKEN, Stack, publish};
use testkit::wait_until;

/// Segments polled ahead, per rendition.
const SEGMENTS: u64 = 12;

/// A GET over HTTP/1.1 with `Connection: close`: (status, headers, body).
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = vec![];
    s.read_to_end(&mut buf).ok()?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = buf[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body)?;
    }
    Some((status, head, body))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![];
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..line_end]).ok()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

fn text(addr: SocketAddr, path: &str) -> Option<String> {
    get(addr, path).and_then(|(s, _, b)| (s == 200).then(|| String::from_utf8_lossy(&b).into_owned()))
}

/// The last media sequence number listed in a media playlist.
fn last_sequence(playlist: &str) -> Option<u64> {
    playlist
        .lines()
        .filter_map(|l| l.strip_suffix(".m4s"))
        .filter_map(|n| n.parse().ok())
        .max()
}

#[test]
fn segments_polled_ahead_through_the_edge_are_never_cached_short() {
    let mut stack = Stack::new();
    stack.add_origin("origin-a");
    let edge = stack.add_edge(&[]);
    let out = Command::new("curl")
        .args(["-fsS", "-H", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .args([
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"name":"ahead","profile":"default"}"#,
        ])
        .arg(format!("http://{}/admin/streams", stack.router))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let key = body
        .split("\"key\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let _publisher = publish(stack.origins[0].rtmp, &key, 120);

    let mut master = String::new();
    wait_until("the stream through the edge", Duration::from_secs(30), || {
        // In a playback session of its own, as the edge's redirect of
        // `/ahead/index.m3u8` would put it.
        master = text(edge, "/_v/0123456789abcdef/ahead/index.m3u8").unwrap_or_default();
        master.contains("/index.m3u8")
    });
    let mut uris: Vec<String> = master
        .lines()
        .filter(|l| !l.starts_with('#') && l.ends_with("/index.m3u8"))
        .map(str::to_string)
        .collect();
    uris.extend(
        master
            .lines()
            .filter(|l| l.starts_with("#EXT-X-MEDIA"))
            .filter_map(|l| l.split("URI=\"").nth(1)?.split('"').next().map(str::to_string)),
    );
    // Two renditions at once: the top video rung and the audio.
    let polled: Vec<String> = [
        uris.first().cloned(),
        uris.iter().find(|u| u.contains("audio")).cloned(),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(polled.len(), 2, "{master}");
    let origin_out = stack.origins[0].out.path().to_path_buf();

    let results: Vec<(String, u64, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = polled
            .iter()
            .map(|uri| {
                let origin_out = &origin_out;
                scope.spawn(move || poll_ahead(edge, origin_out, uri))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (uri, segments, early) in results {
        println!("{uri}: {segments} segments polled ahead, {early} early 404s, every copy complete");
        assert_eq!(segments, SEGMENTS);
        assert!(early > 0, "{uri}: the polls did start before the segments existed");
    }

    // The origin never serves a temporary dot-name, even one that exists
    // (a write in progress, or one left by a crash).
    let origin_http = stack.origins[0].http;
    let session_dir = Path::new(&polled[0]).parent().unwrap().to_str().unwrap().to_string();
    for name in [".0.m4s.tmp", ".index.m3u8.tmp", ".init.mp4.tmp"] {
        let on_disk = origin_out.join("ahead").join(&session_dir).join(name);
        std::fs::write(&on_disk, b"a temporary object").unwrap();
        let (status, _, _) = get(origin_http, &format!("/ahead/{session_dir}/{name}")).unwrap();
        assert_eq!(status, 404, "{name}");
    }
}

/// Polls segments of the media playlist `uri` (relative to the stream) ahead
/// of their existence, through the edge, and checks each first and cached
/// answer against the origin's file. Returns (uri, segments, early 404s).
fn poll_ahead(edge: SocketAddr, origin_out: &Path, uri: &str) -> (String, u64, u64) {
    let dir = Path::new(uri).parent().unwrap().to_str().unwrap().to_string();
    let playlist = text(edge, &format!("/ahead/{uri}")).unwrap();
    let first_next = last_sequence(&playlist).unwrap() + 1;
    let mut early = 0;
    for next in first_next..first_next + SEGMENTS {
        let path = format!("/ahead/{dir}/{next}.m4s");
        let deadline = Instant::now() + Duration::from_secs(20);
        let first = loop {
            match get(edge, &path) {
                Some((200, _, body)) => break body,
                Some((404, _, _)) => early += 1,
                // A failed connection is retried, but is not an early 404.
                None => {}
                Some((status, head, _)) => panic!("{path}: {status}\n{head}"),
            }
            assert!(Instant::now() < deadline, "{path} never appeared");
            // The poll interval of a fast player, not a readiness wait.
            std::thread::sleep(Duration::from_millis(5));
        };
        let on_disk = std::fs::read(origin_out.join("ahead").join(&dir).join(format!("{next}.m4s"))).unwrap();
        assert!(!first.is_empty(), "{path}: an empty 200");
        assert_eq!(first.len(), on_disk.len(), "{path}: the edge's first answer is short");
        assert!(
            first == on_disk,
            "{path}: the edge's first answer differs from the origin's file"
        );
        let (status, head, cached) = get(edge, &path).unwrap();
        assert_eq!(status, 200);
        assert!(
            head.to_ascii_lowercase().contains("x-cache-status: hit"),
            "{path}: {head}"
        );
        assert!(
            cached == on_disk,
            "{path}: the edge's cached copy differs from the origin's file"
        );
    }
    (uri.to_string(), SEGMENTS, early)
}
