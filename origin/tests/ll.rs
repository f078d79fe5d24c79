//! Low-latency HLS at the origin, against the spec (RFC 8216bis 6.2.5,
//! 6.2.6): ffmpeg publishes to the real origin (profile `ll`: 1 s segments,
//! 1/3 s parts, two rungs and audio); plain HTTP, m3u8-rs and ffprobe read it
//! back. Every `_HLS_*` rule, preload hints, delta updates, rendition
//! reports, the hold limit and the held-request bound, while the stream
//! plays.

use reqwest::Client;
use std::time::{Duration, Instant};
use testkit::stack::{H264, Stack, ffmpeg_publish};
use testkit::{probe, wait_until_async};

/// The held-request bound the origin runs with here.
const MAX_HELD: usize = 8;

struct Got {
    status: u16,
    cache: String,
    retry_after: Option<String>,
    body: Vec<u8>,
    took: Duration,
}

impl Got {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn get(client: &Client, url: &str) -> Got {
    let t0 = Instant::now();
    let r = client.get(url).send().await.unwrap();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    let (status, cache, retry_after) = (
        r.status().as_u16(),
        header("cache-control").unwrap_or_default(),
        header("retry-after"),
    );
    let body = r.bytes().await.unwrap().to_vec();
    Got {
        status,
        cache,
        retry_after,
        body,
        took: t0.elapsed(),
    }
}

/// `(msn, part)` of the preload hint.
fn hint(playlist: &str) -> (u64, u64) {
    let uri = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .unwrap_or_else(|| panic!("no preload hint in {playlist}"));
    let (n, p) = uri
        .trim_end_matches("\"")
        .trim_end_matches(".m4s")
        .split_once('.')
        .unwrap();
    (n.parse().unwrap(), p.parse().unwrap())
}

fn attr<'a>(playlist: &'a str, tag: &str, name: &str) -> &'a str {
    let line = playlist
        .lines()
        .find(|l| l.starts_with(tag))
        .unwrap_or_else(|| panic!("no {tag}"));
    line.split([':', ','])
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap()
}

fn gauge(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn low_latency_playlists_follow_the_spec_while_the_stream_plays() {
    let mut stack = Stack::new();
    let held = MAX_HELD.to_string();
    let origin = stack.add_origin_with("origin-ll", &["--max-held-requests", &held]);
    let (rtmp, http) = (origin.rtmp, origin.http);
    let key = stack.create_stream_with("lowlat", Some("ll"));
    let mut ffmpeg = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{key}"), "flv", 60, H264);
    let client = Client::new();
    let base = format!("http://{http}/lowlat");
    let master = wait_until_async("the multivariant playlist", Duration::from_secs(30), || async {
        let g = get(&client, &format!("{base}/index.m3u8")).await;
        (g.status == 200).then(|| g.text())
    })
    .await;
    let media_uri = master
        .lines()
        .find(|l| l.ends_with("360p/index.m3u8"))
        .unwrap()
        .to_string();
    let media = format!("{base}/{media_uri}");
    let dir = media.trim_end_matches("index.m3u8").to_string();
    // Three segments, so that the window, parts and reports have settled.
    let playlist = wait_until_async("three segments", Duration::from_secs(20), || async {
        let t = get(&client, &media).await.text();
        (t.matches("#EXTINF").count() >= 3).then_some(t)
    })
    .await;

    // Tags: version, server control, part target; parts within it, keyframe
    // parts marked; a hint; a report for each other rendition.
    assert!(playlist.contains("#EXT-X-VERSION:9\n"), "{playlist}");
    assert_eq!(attr(&playlist, "#EXT-X-SERVER-CONTROL", "CAN-BLOCK-RELOAD"), "YES");
    assert_eq!(attr(&playlist, "#EXT-X-SERVER-CONTROL", "CAN-SKIP-UNTIL"), "6");
    let part_target: f64 = attr(&playlist, "#EXT-X-PART-INF", "PART-TARGET").parse().unwrap();
    let hold_back: f64 = attr(&playlist, "#EXT-X-SERVER-CONTROL", "PART-HOLD-BACK")
        .parse()
        .unwrap();
    assert!(hold_back >= 3.0 * part_target - 1e-9, "{playlist}");
    let parts: Vec<&str> = playlist.lines().filter(|l| l.starts_with("#EXT-X-PART:")).collect();
    assert!(parts.len() >= 3, "{playlist}");
    for p in &parts {
        let d: f64 = p.split(['=', ',']).nth(1).unwrap().parse().unwrap();
        assert!(d <= part_target, "{p} longer than PART-TARGET {part_target}");
    }
    for (i, l) in playlist.lines().enumerate() {
        if l.starts_with("#EXT-X-PART:") && l.contains(".0.m4s") {
            assert!(l.ends_with(",INDEPENDENT=YES"), "line {i}: {l}");
        }
    }
    let reports: Vec<&str> = playlist
        .lines()
        .filter(|l| l.starts_with("#EXT-X-RENDITION-REPORT:"))
        .collect();
    assert_eq!(reports.len(), 2, "{playlist}");
    for r in &reports {
        let uri = r.split('"').nth(1).unwrap();
        let (msn, part) = (
            attr(r, "#EXT-X-RENDITION-REPORT", "LAST-MSN"),
            attr(r, "#EXT-X-RENDITION-REPORT", "LAST-PART"),
        );
        let other = uri.trim_end_matches("index.m3u8");
        let g = get(&client, &format!("{dir}{other}{msn}.{part}.m4s")).await;
        assert_eq!(g.status, 200, "the part {r} reports exists");
    }
    // Plain players: m3u8-rs parses it, whole segments only; ffprobe plays it.
    let parsed = m3u8_rs::parse_media_playlist_res(playlist.as_bytes()).unwrap();
    assert!(parsed.segments.len() >= 3);
    for s in &parsed.segments {
        let n = s.uri.strip_suffix(".m4s").unwrap();
        assert!(n.bytes().all(|b| b.is_ascii_digit()), "a whole segment: {}", s.uri);
    }
    let probed = probe::streams(&format!("{base}/index.m3u8"));
    let codecs: Vec<&str> = probed.iter().map(|s| s.codec.as_str()).collect();
    assert!(codecs.contains(&"h264") && codecs.contains(&"aac"), "{codecs:?}");

    // The hinted part: held until complete, then whole, immutable.
    let current = get(&client, &media).await.text();
    let (msn, part) = hint(&current);
    let part_url = format!("{dir}{msn}.{part}.m4s");
    let held_part = tokio::spawn({
        let (client, url) = (client.clone(), part_url.clone());
        async move { get(&client, &url).await }
    });
    // A blocking reload for the same part, at the same time.
    let blocking = get(&client, &format!("{media}?_HLS_msn={msn}&_HLS_part={part}")).await;
    assert_eq!(blocking.status, 200);
    assert!(blocking.took < Duration::from_secs(3), "{:?}", blocking.took);
    assert!(
        blocking.text().contains(&format!("URI=\"{msn}.{part}.m4s\"")),
        "{}",
        blocking.text()
    );
    assert_eq!(blocking.cache, "public, max-age=1");
    let held_part = held_part.await.unwrap();
    assert_eq!(held_part.status, 200);
    assert!(held_part.cache.contains("immutable"));
    // A whole CMAF chunk: a movie fragment, after the segment's `styp` when
    // the hinted part is the first of its segment.
    let body = &held_part.body;
    let chunk = if &body[4..8] == b"styp" {
        &body[u32::from_be_bytes(body[..4].try_into().unwrap()) as usize..]
    } else {
        &body[..]
    };
    assert_eq!(&chunk[4..8], b"moof", "a whole CMAF chunk (part {msn}.{part})");
    assert_eq!(
        get(&client, &part_url).await.body,
        held_part.body,
        "the same bytes afterwards"
    );
    // Directives in any order, with foreign parameters.
    let g = get(&client, &format!("{media}?cb=1&_HLS_part={part}&_HLS_msn={msn}")).await;
    assert_eq!(g.status, 200);
    assert!(g.took < Duration::from_millis(500), "already there: no hold");

    // 400s: too far ahead, part without msn, bad values.
    let building = hint(&get(&client, &media).await.text()).0;
    for q in [
        format!("_HLS_msn={}", building + 3),
        "_HLS_part=1".to_string(),
        "_HLS_msn=-1".to_string(),
        "_HLS_msn=abc".to_string(),
        format!("_HLS_msn={building}&_HLS_part=x"),
        "_HLS_skip=NO".to_string(),
        "_HLS_msn=1&_HLS_msn=2".to_string(),
    ] {
        let g = get(&client, &format!("{media}?{q}")).await;
        assert_eq!(g.status, 400, "{q}: {}", g.text());
        assert!(g.took < Duration::from_millis(500), "{q}: at once");
        assert_eq!(g.cache, "no-store");
    }
    // An unknown part that is not coming soon: 404 at once.
    for p in [format!("{}.0.m4s", building + 3), "0.9.m4s".to_string()] {
        let g = get(&client, &format!("{dir}{p}")).await;
        assert_eq!(g.status, 404, "{p}");
        assert!(g.took < Duration::from_millis(500));
    }

    // A delta update: same media sequence, EXT-X-SKIP for what lies past
    // CAN-SKIP-UNTIL (the window is 12 target durations: wait for it).
    let full = wait_until_async("a full window", Duration::from_secs(20), || async {
        let t = get(&client, &media).await.text();
        (t.matches("#EXTINF").count() >= 11).then_some(t)
    })
    .await;
    let (msn, part) = hint(&full);
    let delta = get(
        &client,
        &format!("{media}?_HLS_msn={msn}&_HLS_part={part}&_HLS_skip=YES"),
    )
    .await
    .text();
    let full = get(&client, &format!("{media}?_HLS_msn={msn}&_HLS_part={part}"))
        .await
        .text();
    let seq = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("#EXT-X-MEDIA-SEQUENCE:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(seq(&full), seq(&delta));
    let skipped: usize = delta
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))
        .unwrap_or_else(|| panic!("no skip in {delta}"))
        .parse()
        .unwrap();
    assert!(skipped >= 3, "{delta}");
    assert_eq!(
        full.matches("#EXTINF").count(),
        delta.matches("#EXTINF").count() + skipped
    );
    assert!(delta.len() < full.len());

    // The held-request bound, reached while the stream plays on.
    let before = get(&client, &media).await.text();
    let (msn, _) = hint(&before);
    let far = format!("{media}?_HLS_msn={}&_HLS_part=0", msn + 2);
    let holders: Vec<_> = (0..MAX_HELD)
        .map(|_| {
            let (client, url) = (client.clone(), far.clone());
            tokio::spawn(async move { get(&client, &url).await })
        })
        .collect();
    let metrics_url = format!("http://{http}/metrics");
    wait_until_async("every permit held", Duration::from_secs(5), || async {
        let m = get(&client, &metrics_url).await.text();
        (gauge(&m, "origin_held_requests") == MAX_HELD as f64).then_some(())
    })
    .await;
    let refused = get(&client, &far).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    assert!(refused.took < Duration::from_millis(500));
    // Plain requests are not held: the stream keeps playing meanwhile.
    let g = get(&client, &media).await;
    assert_eq!(g.status, 200);
    for h in holders {
        let g = h.await.unwrap();
        assert_eq!(g.status, 200, "{}", g.text());
        assert!(g.text().contains(&format!("URI=\"{}.0.m4s\"", msn + 2)));
    }
    let m = get(&client, &metrics_url).await.text();
    assert_eq!(gauge(&m, "origin_held_requests"), 0.0);
    assert!(
        m.contains("origin_held_requests_total{kind=\"playlist\",outcome=\"refused\"} 1"),
        "{m}"
    );

    // A stalled publisher: a hold ends in 503 after three target durations.
    let (msn, part) = hint(&get(&client, &media).await.text());
    ffmpeg.signal(libc_sigstop());
    let stalled = get(&client, &format!("{media}?_HLS_msn={}&_HLS_part={part}", msn + 1)).await;
    ffmpeg.signal(libc_sigcont());
    assert_eq!(stalled.status, 503, "{}", stalled.text());
    assert!(
        stalled.took >= Duration::from_millis(2500) && stalled.took < Duration::from_secs(6),
        "{:?}",
        stalled.took
    );
    let m = get(&client, &metrics_url).await.text();
    assert!(
        m.contains("origin_held_requests_total{kind=\"playlist\",outcome=\"timeout\"} 1"),
        "{m}"
    );

    // After the end: directives ignored, the final playlist at once.
    ffmpeg.stop();
    let ended = wait_until_async("the end of the stream", Duration::from_secs(20), || async {
        let t = get(&client, &media).await.text();
        t.contains("#EXT-X-ENDLIST").then_some(t)
    })
    .await;
    assert!(!ended.contains("PRELOAD-HINT"), "{ended}");
    let g = get(&client, &format!("{media}?_HLS_msn=999999&_HLS_part=0")).await;
    assert_eq!(g.status, 200);
    assert!(g.text().contains("#EXT-X-ENDLIST") && g.took < Duration::from_millis(500));
}

/// SIGSTOP and SIGCONT on Linux.
fn libc_sigstop() -> i32 {
    19
}

fn libc_sigcont() -> i32 {
    18
}
