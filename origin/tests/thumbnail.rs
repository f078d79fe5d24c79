//! Live thumbnails end to end: ffmpeg publishes a moving test pattern
//! (`testsrc2`) to the real origin (real router API on a real Redis, the
//! discovery agent beside it, an edge in front); the thumbnails are read
//! back over HTTP and checked with ffprobe and ffmpeg: valid JPEGs of the
//! expected sizes, remade as the picture moves, showing the keyframe that
//! starts one of the last two segments, cached by the edge for a segment.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::stack::{H264, Stack, ffmpeg_publish};
use testkit::wait_until;

/// Transcoding takes both cores: run the tests of this file one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The test profiles' segment duration.
const SEGMENT: Duration = Duration::from_secs(1);

/// An HTTP/1.0 answer: status, head (lower-cased names), body bytes.
struct Answer {
    status: u16,
    head: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn get(addr: SocketAddr, path: &str) -> Option<Answer> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let head = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Answer {
        status,
        head,
        body: buf[end + 4..].to_vec(),
    })
}

fn get_ok(addr: SocketAddr, path: &str) -> Option<Vec<u8>> {
    get(addr, path).filter(|a| a.status == 200).map(|a| a.body)
}

fn text(addr: SocketAddr, path: &str) -> Option<String> {
    get_ok(addr, path).map(|b| String::from_utf8_lossy(&b).to_string())
}

/// `(codec, width, height)` of a picture, by ffprobe.
fn probe_picture(dir: &Path, name: &str, bytes: &[u8]) -> (String, u32, u32) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=codec_name,width,height", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("run ffprobe");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let f: Vec<&str> = line.split(',').collect();
    assert_eq!(
        f.len(),
        3,
        "ffprobe of {name}: {line:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (f[0].to_string(), f[1].parse().unwrap(), f[2].parse().unwrap())
}

/// The first picture of `input` as 8-bit grey, 640x360.
fn grey(input: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(input)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "scale=640:360",
            "-pix_fmt",
            "gray",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    assert_eq!(
        out.stdout.len(),
        640 * 360,
        "ffmpeg decoded {}: {}",
        input.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Mean absolute difference of two grey pictures (0-255).
fn diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as i32 - *y as i32).unsigned_abs() as u64)
        .sum::<u64>() as f64
        / a.len() as f64
}

/// The media sequence number of the last segment a media playlist lists.
fn last_segment(playlist: &str) -> Option<u64> {
    let first: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))?
        .trim()
        .parse()
        .ok()?;
    let count = playlist.lines().filter(|l| l.starts_with("#EXTINF")).count() as u64;
    count.checked_sub(1).map(|c| first + c)
}

fn metric(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// x264 with B-frames (two reordered frames): a decoder fed keyframes
/// alone holds each picture until later frames come, unless drained.
const H264_BFRAMES: &[&str] = &[
    "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "15", "-pix_fmt", "yuv420p",
];

/// Publishes `video` to a stream of `profile` and checks its thumbnails;
/// `rendition` is the rendition they come from.
fn thumbnails(profile: &str, stream: &str, rendition: &str, video: &[&str]) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut stack = Stack::new();
    stack.add_origin_with("origin-a", &["--retain-ended", "2s"]);
    let edge = stack.add_edge(&[]);
    let key = stack.create_stream_with(stream, Some(profile));
    let (origin, out) = (stack.origins[0].http, stack.origins[0].out.path().to_path_buf());
    let url = format!("rtmp://{}/live/{key}", stack.origins[0].rtmp);
    let mut publisher = ffmpeg_publish(&url, "flv", 30, video);
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().to_path_buf();

    // The session and the rendition the thumbnails come from.
    let mut session = String::new();
    wait_until("the multivariant playlist", Duration::from_secs(30), || {
        let Some(m) = text(origin, &format!("/{stream}/index.m3u8")) else {
            return false;
        };
        match m
            .lines()
            .find_map(|l| l.strip_suffix(&format!("/{rendition}/index.m3u8")))
        {
            Some(s) => {
                session = s.to_string();
                true
            }
            None => false,
        }
    });
    let playlist = format!("/{stream}/{session}/{rendition}/index.m3u8");
    let made = || {
        get_ok(origin, &format!("/{stream}/thumbnail.jpg")).is_some()
            && get_ok(origin, &format!("/{stream}/thumbnail-small.jpg")).is_some()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !made() {
        assert!(
            Instant::now() < deadline,
            "no thumbnails: {}",
            stack.origins[0].process.log()
        );
        // The poll interval.
        std::thread::sleep(Duration::from_millis(50));
    }

    // Served as JPEG, fresh for one segment.
    let full = get(origin, &format!("/{stream}/thumbnail.jpg")).unwrap();
    assert_eq!(full.header("content-type"), Some("image/jpeg"));
    assert_eq!(full.header("cache-control"), Some("public, max-age=1"));
    // Valid JPEGs of the expected sizes (the 640x360 pattern: not upscaled,
    // aspect kept).
    assert_eq!(probe_picture(&work, "full.jpg", &full.body), ("mjpeg".into(), 640, 360));
    let small = get_ok(origin, &format!("/{stream}/thumbnail-small.jpg")).unwrap();
    assert_eq!(probe_picture(&work, "small.jpg", &small), ("mjpeg".into(), 160, 90));

    // At most two segments old: the picture is the first frame of one of
    // the last two segments listed, or of the one being made.
    let init = get_ok(origin, &format!("/{stream}/{session}/{rendition}/init.mp4")).unwrap();
    for round in 0..3 {
        let thumb = get_ok(origin, &format!("/{stream}/thumbnail.jpg")).unwrap();
        let listed = text(origin, &playlist).unwrap();
        let last = last_segment(&listed).expect("segments listed");
        let path = work.join(format!("thumb-{round}.jpg"));
        std::fs::write(&path, &thumb).unwrap();
        let picture = grey(&path);
        let mut scores = vec![];
        for n in last.saturating_sub(3)..=last + 2 {
            let uri = format!("/{stream}/{session}/{rendition}/{n}.m4s");
            let mut segment = None;
            // The segment in progress is complete within a segment or two.
            wait_until(&format!("segment {n}"), Duration::from_secs(10), || {
                segment = get_ok(origin, &uri);
                segment.is_some()
            });
            let file = work.join(format!("seg-{round}-{n}.mp4"));
            std::fs::write(&file, [init.as_slice(), &segment.unwrap()].concat()).unwrap();
            scores.push((n, diff(&picture, &grey(&file))));
        }
        let best = scores.iter().min_by(|a, b| a.1.total_cmp(&b.1)).copied().unwrap();
        eprintln!("round {round}: last listed {last}, differences {scores:?}");
        assert!(best.1 < 8.0, "the thumbnail is no segment's first frame: {scores:?}");
        assert!(
            best.0 + 1 >= last,
            "the thumbnail shows segment {} with {last} listed: {scores:?}",
            best.0
        );
        // And no other frame is as close: the pattern moves.
        assert!(
            scores
                .iter()
                .filter(|s| s.0 != best.0)
                .all(|s| s.1 > best.1 * 2.0 + 1.0),
            "segments' first frames too alike to tell: {scores:?}"
        );
    }

    // It changes as the pattern moves: two fetches a segment and more apart.
    let before = get_ok(origin, &format!("/{stream}/thumbnail.jpg")).unwrap();
    let t0 = Instant::now();
    let mut after = before.clone();
    wait_until("a new thumbnail", Duration::from_secs(10), || {
        after = get_ok(origin, &format!("/{stream}/thumbnail.jpg")).unwrap_or_default();
        t0.elapsed() > SEGMENT * 3 / 2 && after != before
    });
    std::fs::write(work.join("before.jpg"), &before).unwrap();
    std::fs::write(work.join("after.jpg"), &after).unwrap();
    let moved = diff(&grey(&work.join("before.jpg")), &grey(&work.join("after.jpg")));
    assert!(moved > 3.0, "the pictures barely differ: {moved}");

    // Through the edge: fresh for one segment, a HIT within it.
    let path = format!("/{stream}/thumbnail-small.jpg");
    let mut first = None;
    wait_until("the edge serves the thumbnail", Duration::from_secs(15), || {
        first = get(edge, &path).filter(|a| a.status == 200);
        first.is_some()
    });
    let first = first.unwrap();
    let fetched = Instant::now();
    let second = get(edge, &path).unwrap();
    assert!(fetched.elapsed() < SEGMENT, "the second fetch came too late to judge");
    assert_eq!(second.status, 200);
    assert_eq!(second.header("content-type"), Some("image/jpeg"));
    assert_eq!(second.header("x-cache-status"), Some("HIT"), "{:?}", second.head);
    assert_eq!(second.body, first.body);
    // ... and fetched again once the segment has passed.
    let mut later = None;
    wait_until("the edge's copy expires", Duration::from_secs(10), || {
        later = get(edge, &path).filter(|a| a.status == 200 && a.header("x-cache-status") != Some("HIT"));
        later.is_some()
    });
    assert!(
        fetched.elapsed() >= SEGMENT / 2,
        "refetched within the segment: {:?}",
        later.unwrap().head
    );

    let metrics = text(origin, "/metrics").unwrap();
    assert!(
        metric(&metrics, "origin_thumbnails_written_total{size=\"full\"}") >= 5.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "origin_thumbnails_written_total{size=\"small\"}") >= 5.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "origin_thumbnail_failures_total{reason=\"decode\"}"),
        0.0
    );
    assert!(metrics.contains("origin_thumbnail_seconds_count"), "{metrics}");

    // The session ends: the last thumbnail stays while the stream's files
    // do, and goes with the stream folder after the retention.
    publisher.stop();
    let stream_dir = out.join(stream);
    wait_until("the session ends", Duration::from_secs(15), || {
        text(origin, &playlist).is_some_and(|p| p.contains("#EXT-X-ENDLIST"))
    });
    assert!(
        stream_dir.join("thumbnail.jpg").exists() || !stream_dir.exists(),
        "the last thumbnail went before its stream folder"
    );
    wait_until("the janitor removes the stream folder", Duration::from_secs(30), || {
        !stream_dir.exists()
    });
}

#[test]
fn thumbnails_of_a_transcoded_stream() {
    thumbnails("default", "thumbs-ladder", "360p", H264);
}

#[test]
fn thumbnails_of_a_passthrough_stream_with_b_frames() {
    thumbnails("passthrough", "thumbs-source", "source", H264_BFRAMES);
}

/// Publishes `profile` to `stream` on `stack`'s first origin (10 s), waits
/// until the source's media playlist lists `segments` segments; returns the
/// publisher and the playlist's path.
fn publish_until(stack: &Stack, stream: &str, segments: u64) -> (testkit::Process, String) {
    let key = stack.create_stream_with(stream, Some("passthrough"));
    let origin = stack.origins[0].http;
    let url = format!("rtmp://{}/live/{key}", stack.origins[0].rtmp);
    let publisher = ffmpeg_publish(&url, "flv", 20, H264);
    let mut playlist = String::new();
    wait_until("the source's media playlist", Duration::from_secs(30), || {
        let Some(m) = text(origin, &format!("/{stream}/index.m3u8")) else {
            return false;
        };
        match m.lines().find(|l| l.ends_with("/source/index.m3u8")) {
            Some(p) => {
                playlist = format!("/{stream}/{p}");
                true
            }
            None => false,
        }
    });
    wait_until(&format!("{segments} segments"), Duration::from_secs(30), || {
        text(origin, &playlist)
            .and_then(|p| last_segment(&p))
            .is_some_and(|n| n + 1 >= segments)
    });
    (publisher, playlist)
}

#[test]
fn no_thumbnails_when_turned_off() {
    testkit::assert_help_documents(testkit::bin_path("origin"), &["--thumbnails", "ORIGIN_THUMBNAILS"]);
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut stack = Stack::new();
    stack.add_origin_with("origin-a", &["--thumbnails", "false"]);
    let origin = stack.origins[0].http;
    let (_publisher, _) = publish_until(&stack, "nothumbs", 4);
    for name in ["thumbnail.jpg", "thumbnail-small.jpg"] {
        let a = get(origin, &format!("/nothumbs/{name}")).unwrap();
        assert_eq!(a.status, 404, "{name}");
        assert_eq!(a.header("cache-control"), Some("no-store"));
    }
    let metrics = text(origin, "/metrics").unwrap();
    assert_eq!(metric(&metrics, "origin_thumbnails_written_total{size=\"full\"}"), 0.0);
}

/// A thumbnail that cannot be written (a folder holds its name) is logged
/// and counted; the other size is still made and the stream plays on.
#[test]
fn a_thumbnail_that_cannot_be_written_leaves_the_stream_playing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut stack = Stack::new();
    stack.add_origin("origin-a");
    let (origin, out) = (stack.origins[0].http, stack.origins[0].out.path().to_path_buf());
    std::fs::create_dir_all(out.join("blocked/thumbnail.jpg/in-the-way")).unwrap();
    let (_publisher, playlist) = publish_until(&stack, "blocked", 3);
    let before = last_segment(&text(origin, &playlist).unwrap()).unwrap();
    wait_until("failed writes counted", Duration::from_secs(20), || {
        text(origin, "/metrics").is_some_and(|m| metric(&m, "origin_thumbnail_failures_total{reason=\"write\"}") >= 3.0)
    });
    let small = get_ok(origin, "/blocked/thumbnail-small.jpg").expect("the small thumbnail is made");
    assert_eq!(&small[..2], &[0xff, 0xd8], "a JPEG");
    // Still live: new segments keep coming, no ENDLIST.
    wait_until("segments after the failures", Duration::from_secs(10), || {
        text(origin, &playlist)
            .and_then(|p| last_segment(&p))
            .is_some_and(|n| n >= before + 3)
    });
    let listed = text(origin, &playlist).unwrap();
    assert!(!listed.contains("#EXT-X-ENDLIST"), "{listed}");
    assert!(stack.origins[0].process.log().contains("cannot write a thumbnail"));
}
