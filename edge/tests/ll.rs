//! LL-HLS through the edge, end to end: a real origin (ffmpeg publishing,
//! GStreamer transcoding, parts and blocking reloads), its discovery agent,
//! the router API on Redis, and the edge in front, all on loopback.
//!
//! What is checked: many viewers waiting for one future part cost the
//! origin one request; a hinted part asked for over HTTP is held and
//! answered whole, then a hit; delta updates pass; the spec's 400 and 503
//! answers; the held-request bound, reached while a viewer keeps playing.

#[path = "../src/ll.rs"]
#[allow(dead_code)]
mod ll;

use ll::Position;
use reqwest::{Client, StatusCode};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::stack::OriginNode;
use testkit::{Process, http_get, wait_until_async};

/// Transcoding takes the cores: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A stream published on one origin and playable through an edge.
struct Live {
    stack: testkit::stack::Stack,
    edge: SocketAddr,
    publisher: Process,
    /// The edge path of the first rendition's media playlist.
    playlist: String,
    client: Arc<Client>,
}

impl Live {
    /// Router, one origin, an edge with `edge_flags`, and a `secs` publish
    /// with the test profile `ll` (1 s segments, 1/3 s parts), waited for
    /// until its media playlist has parts.
    async fn start(edge_flags: &[&str], secs: u32) -> Live {
        let mut stack = testkit::stack::Stack::new();
        stack.add_origin("origin-a");
        let mut flags = vec!["--cache-size", "64MiB"];
        flags.extend_from_slice(edge_flags);
        let edge = stack.add_edge(&flags);
        let key = stack.create_stream_with("golive", Some("ll"));
        let publisher = testkit::stack::publish(stack.origins[0].rtmp, &key, secs);
        let client = Arc::new(
            Client::builder()
                .pool_max_idle_per_host(512)
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        );
        let master = wait_until_async(
            "the stream playable through the edge",
            Duration::from_secs(30),
            || async {
                let r = client
                    .get(format!("http://{edge}/golive/index.m3u8"))
                    .send()
                    .await
                    .ok()?;
                (r.status() == 200).then_some(())?;
                r.text().await.ok()
            },
        )
        .await;
        let uri = master
            .lines()
            .find(|l| l.ends_with("/index.m3u8") && !l.starts_with('#'))
            .expect("a media playlist listed")
            .to_string();
        let live = Live {
            stack,
            edge,
            publisher,
            playlist: format!("/golive/{uri}"),
            client,
        };
        wait_until_async("the media playlist to list parts", Duration::from_secs(20), || async {
            let p = live.position().await.1;
            (p.can_block && p.last_part.is_some() && p.hint.is_some()).then_some(())
        })
        .await;
        live
    }

    fn origin(&self) -> &OriginNode {
        &self.stack.origins[0]
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.edge)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// The media playlist (a plain reload) and where it says the stream is.
    async fn position(&self) -> (String, Position) {
        let text = self.get(&self.playlist).await.text().await.unwrap();
        let pos = Position::parse(&text).unwrap_or_else(|| panic!("not a playlist: {text}"));
        (text, pos)
    }

    /// The media playlist as fresh as the edge knows it: a blocking reload
    /// for the part a plain reload hints at (the edge's copy, or the
    /// origin's answer that becomes the copy).
    async fn fresh_position(&self) -> (String, Position) {
        let (m, p) = next_part(&self.position().await.1);
        let r = self.get(&self.reload(&format!("_HLS_msn={m}&_HLS_part={p}"))).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let pos = Position::parse(&text).unwrap_or_else(|| panic!("not a playlist: {text}"));
        (text, pos)
    }

    /// The playlist's path with `query`.
    fn reload(&self, query: &str) -> String {
        format!("{}?{query}", self.playlist)
    }

    /// A file beside the media playlist.
    fn sibling(&self, file: &str) -> String {
        format!("{}/{file}", self.playlist.rsplit_once('/').unwrap().0)
    }

    /// `n` concurrent GETs of `path`: status, Retry-After, body, time taken.
    async fn burst(&self, path: &str, n: usize) -> Vec<(StatusCode, Option<String>, bytes::Bytes, Duration)> {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (c, url) = (self.client.clone(), self.url(path));
            set.spawn(async move {
                let start = Instant::now();
                let r = c.get(url).send().await.unwrap();
                let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                (r.status(), retry, r.bytes().await.unwrap(), start.elapsed())
            });
        }
        let mut out = Vec::with_capacity(n);
        while let Some(r) = set.join_next().await {
            out.push(r.unwrap());
        }
        out
    }

    fn edge_metric(&self, series: &str) -> u64 {
        metric(&http_get(self.edge, "/metrics").expect("edge metrics").1, series)
    }

    /// Requests the origin answered for objects of `kind`, whatever the status.
    fn origin_requests(&self, kind: &str) -> u64 {
        let text = http_get(self.origin().http, "/metrics").expect("origin metrics").1;
        let prefix = format!("origin_http_requests_total{{kind=\"{kind}\"");
        text.lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

/// The value of one series (`name{labels}`) in a metrics page; 0 if absent.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

/// The part after the last one `pos` lists: the hinted one.
fn next_part(pos: &Position) -> (u64, u64) {
    pos.hint.expect("a preload hint")
}

#[tokio::test(flavor = "multi_thread")]
async fn viewers_waiting_for_one_part_cost_the_origin_one_request() {
    let _serial = SERIAL.lock().await;
    let live = Live::start(&[], 40).await;

    // 150 viewers ask for the part after the hinted one, at once.
    let (_, pos) = live.position().await;
    let (m, p) = next_part(&pos);
    let (m, p) = (m, p + 1);
    let before = (
        live.origin_requests("playlist"),
        live.edge_metric("edge_upstream_requests_total{kind=\"blocking\"}"),
    );
    let query = format!("_HLS_msn={m}&_HLS_part={p}");
    let answers = live.burst(&live.reload(&query), 150).await;
    for (status, _, body, _) in &answers {
        assert_eq!(*status, StatusCode::OK);
        let got = Position::parse(std::str::from_utf8(body).unwrap()).expect("a playlist");
        assert!(got.satisfies(m, Some(p)), "{m}.{p} not in {got:?}");
    }
    let after = (
        live.origin_requests("playlist"),
        live.edge_metric("edge_upstream_requests_total{kind=\"blocking\"}"),
    );
    assert_eq!(
        after.0 - before.0,
        1,
        "the origin saw one playlist request for 150 reloads"
    );
    assert_eq!(after.1 - before.1, 1, "the edge sent one blocking reload");
    assert!(live.edge_metric("edge_ll_answers_total{outcome=\"held\"}") >= 1);

    // A reload the edge's copy already satisfies is answered from it, at
    // once, whatever else the query holds.
    let again = live
        .get(&live.reload(&format!("foo=1&_HLS_part={p}&_HLS_msn={m}&_HLS_report=x")))
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["x-cache-status"], "HIT");
    assert_eq!(live.origin_requests("playlist"), after.0, "answered by the edge");
    assert!(live.edge_metric("edge_ll_answers_total{outcome=\"copy\"}") >= 1);

    // The hinted part, asked for over HTTP by 20 viewers before it exists:
    // held, one fetch, answered whole.
    let (text, pos) = live.fresh_position().await;
    let hint_uri = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .and_then(|rest| rest.split('"').next())
        .expect("a preload hint URI")
        .to_string();
    assert_eq!(ll::part_name(&hint_uri), pos.hint, "the hint names the next part");
    let part_path = live.sibling(&hint_uri);
    let before = (
        live.origin_requests("part"),
        live.edge_metric("edge_upstream_requests_total{kind=\"hinted\"}"),
    );
    let answers = live.burst(&part_path, 20).await;
    let whole = answers[0].2.clone();
    assert!(!whole.is_empty());
    for (status, _, body, _) in &answers {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(body, &whole, "every viewer got the same part");
    }
    let direct = http_get_bytes(live.origin().http, &part_path).await;
    assert_eq!(direct, whole, "the part whole, as the origin has it");
    assert_eq!(
        live.origin_requests("part") - before.0,
        2,
        "one fetch for 20 viewers (and ours just now)"
    );
    assert_eq!(
        live.edge_metric("edge_upstream_requests_total{kind=\"hinted\"}") - before.1,
        1
    );

    // A second viewer's part is a hit, an immutable one.
    let hit = live.get(&part_path).await;
    assert_eq!(hit.headers()["x-cache-status"], "HIT");
    assert_eq!(hit.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(hit.bytes().await.unwrap(), whole);
    let listed = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PART:"))
        .filter_map(|l| l.split("URI=\"").nth(1)?.split('"').next())
        .next_back()
        .expect("a listed part")
        .to_string();
    let first = live.get(&live.sibling(&listed)).await;
    assert_eq!(first.status(), 200);
    let second = live.get(&live.sibling(&listed)).await;
    assert_eq!(second.headers()["x-cache-status"], "HIT");

    // Delta updates: asked for with the next segment, they skip the old
    // segments (once the window is longer than CAN-SKIP-UNTIL) and keep the
    // media sequence; a second viewer's is the edge's copy.
    let (pos, m, delta) = wait_until_async(
        "a delta update that skips segments",
        Duration::from_secs(30),
        || async {
            let (_, pos) = live.position().await;
            let m = pos.in_progress()?;
            let r = live.get(&live.reload(&format!("_HLS_msn={m}&_HLS_skip=YES"))).await;
            assert_eq!(r.status(), 200);
            let text = r.text().await.unwrap();
            text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=").then_some((pos, m, text))
        },
    )
    .await;
    let d = Position::parse(&delta).expect("the delta parses");
    assert!(d.satisfies(m, None) && d.last_segment >= pos.last_segment);
    // The full playlist now (as far along, or further): the delta keeps its
    // EXT-X-MEDIA-SEQUENCE, so its first listed segment is the one that
    // number plus the skipped count names in the full playlist.
    let full = live
        .get(&live.reload(&format!("_HLS_msn={m}")))
        .await
        .text()
        .await
        .unwrap();
    assert!(delta.len() < full.len(), "a delta is shorter");
    let number = |t: &str, prefix: &str| -> u64 {
        let line = t.lines().find_map(|l| l.split_once(prefix).map(|(_, v)| v.to_string()));
        line.unwrap_or_else(|| panic!("no {prefix} in {t}")).parse().unwrap()
    };
    let uris = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    let first = number(&delta, "#EXT-X-MEDIA-SEQUENCE:") + number(&delta, "#EXT-X-SKIP:SKIPPED-SEGMENTS=");
    let full_from = number(&full, "#EXT-X-MEDIA-SEQUENCE:");
    assert!(
        first >= full_from,
        "the skipped segments are older than the full window's end"
    );
    assert_eq!(uris(&full)[(first - full_from) as usize], uris(&delta)[0]);
    let upstream = live.edge_metric("edge_upstream_requests_total{kind=\"blocking\"}");
    let second = live.get(&live.reload(&format!("_HLS_skip=YES&_HLS_msn={m}"))).await;
    assert_eq!(second.headers()["x-cache-status"], "HIT");
    assert!(second.text().await.unwrap().contains("#EXT-X-SKIP:"));
    assert_eq!(
        live.edge_metric("edge_upstream_requests_total{kind=\"blocking\"}"),
        upstream
    );

    // 50 viewers following the live edge for 6 s, each asking for the part
    // its last answer hints at: the edge sends the origin at most one
    // blocking reload per part asked for, however many viewers ask.
    let upstream = live.edge_metric("edge_upstream_requests_total{kind=\"blocking\"}");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (c, url) = (live.client.clone(), live.url(&live.playlist));
        set.spawn(async move {
            let mut asked = HashSet::new();
            let text = c.get(&url).send().await.unwrap().text().await.unwrap();
            let mut pos = Position::parse(&text).unwrap();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(6) && asked.len() < 100 {
                let (m, p) = next_part(&pos);
                asked.insert((m, p));
                let r = c.get(format!("{url}?_HLS_msn={m}&_HLS_part={p}")).send().await.unwrap();
                assert_eq!(r.status(), 200);
                pos = Position::parse(&r.text().await.unwrap()).unwrap();
                assert!(pos.satisfies(m, Some(p)));
            }
            asked
        });
    }
    let mut parts = HashSet::new();
    while let Some(asked) = set.join_next().await {
        parts.extend(asked.unwrap());
    }
    let sent = live.edge_metric("edge_upstream_requests_total{kind=\"blocking\"}") - upstream;
    eprintln!(
        "50 viewers following the live edge for 6 s: {} parts asked for, {sent} blocking reloads sent to the origin",
        parts.len()
    );
    assert!(
        parts.len() >= 10,
        "the viewers followed the live edge: {} parts",
        parts.len()
    );
    assert!(
        sent as usize <= parts.len(),
        "{sent} origin requests for {} parts",
        parts.len()
    );
}

/// Waits for the edge's held-request gauge to come back to 0 (a request's
/// count ends just after its answer is sent).
async fn no_held_requests(live: &Live) {
    wait_until_async("no held requests", Duration::from_secs(5), || async {
        (live.edge_metric("edge_held_requests") == 0).then_some(())
    })
    .await;
}

/// The body of `path` straight from an origin.
async fn http_get_bytes(addr: SocketAddr, path: &str) -> bytes::Bytes {
    let r = Client::new().get(format!("http://{addr}{path}")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path} on the origin");
    r.bytes().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_specs_400_and_503_answers_through_the_edge() {
    let _serial = SERIAL.lock().await;
    let mut live = Live::start(&[], 60).await;
    let (_, pos) = live.position().await;
    let td = pos.target_duration.expect("a target duration");

    // Malformed directives: 400 at the edge, nothing sent to the origin.
    let upstream = live.edge_metric("edge_upstream_requests_total{kind=\"blocking\"}");
    let origin = live.origin_requests("playlist");
    for query in [
        "_HLS_part=1",
        "_HLS_msn=abc",
        "_HLS_msn=-1",
        "_HLS_msn=1.5",
        "_HLS_msn=3&_HLS_part=x",
        "_HLS_msn=3&_HLS_skip=maybe",
        "_HLS_msn=3&_HLS_msn=4",
    ] {
        assert_eq!(live.get(&live.reload(query)).await.status(), 400, "{query}");
    }
    assert_eq!(
        live.edge_metric("edge_upstream_requests_total{kind=\"blocking\"}"),
        upstream
    );
    assert_eq!(live.origin_requests("playlist"), origin);
    assert_eq!(live.edge_metric("edge_ll_answers_total{outcome=\"bad_directive\"}"), 7);

    // An msn far past the live edge: 400, at the edge when its copy is
    // fresh (just after a held reload came back), else from the origin.
    let far = wait_until_async(
        "a 400 for an msn too far, from the edge",
        Duration::from_secs(20),
        || async {
            let (_, now) = live.fresh_position().await;
            let far = now.in_progress().unwrap() + 50;
            let before = live.edge_metric("edge_ll_answers_total{outcome=\"too_far\"}");
            let r = live.get(&live.reload(&format!("_HLS_msn={far}"))).await;
            assert_eq!(r.status(), 400, "msn {far}");
            (live.edge_metric("edge_ll_answers_total{outcome=\"too_far\"}") > before).then_some(far)
        },
    )
    .await;
    // Once the copy is older than a part target, the edge cannot tell: the
    // origin's 400. (Not a wait for readiness: the copy must age.)
    let origin = live.origin_requests("playlist");
    tokio::time::sleep(Duration::from_secs_f64(pos.part_target.expect("a part target") * 2.0)).await;
    let r = live.get(&live.reload(&format!("_HLS_msn={}", far + 100))).await;
    assert_eq!(r.status(), 400);
    assert_eq!(live.origin_requests("playlist") - origin, 1, "the origin's own 400");

    // A second edge, whose --hold-timeout is shorter than the origin's
    // longest hold, warmed before the publisher stops (the discovery agent
    // withdraws a stream whose playlists stand still; an edge that routed it
    // a moment ago keeps its route a while).
    let short = testkit::free_addr();
    let short_edge = Process::spawn(
        "edge-short-hold",
        testkit::bin_path("edge"),
        [
            "--listen",
            &short.to_string(),
            "--router",
            &format!("http://{}", live.stack.router),
            "--hold-timeout",
            "2s",
        ],
        &[],
    );
    wait_until_async("the second edge ready", Duration::from_secs(10), || async {
        matches!(http_get(short, "/healthz"), Some((200, _))).then_some(())
    })
    .await;
    let playlist = format!("http://{short}{}", live.playlist);
    let warm = live.client.get(&playlist).send().await.unwrap();
    assert_eq!(warm.status(), 200);

    // The publisher stops sending (SIGSTOP).
    live.publisher.signal(libc::SIGSTOP);
    // Stopped once two plain reloads 700 ms apart (each past the edge's
    // 500 ms playlist freshness, so each from the origin) agree.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = live.position().await.1;
    loop {
        // The interval the condition itself needs (two origin reads), in a
        // loop bounded by `deadline`.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let now = live.position().await.1;
        if now == last {
            break;
        }
        assert!(Instant::now() < deadline, "the playlist kept moving after SIGSTOP");
        last = now;
    }
    // The second edge says so in its log, and answers a held request the
    // origin has not answered in time with a 503 of its own, at its hold
    // timeout.
    let (m, p) = next_part(&last);
    let start = Instant::now();
    let r = live
        .client
        .get(format!("{playlist}?_HLS_msn={m}&_HLS_part={p}"))
        .send()
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(r.text().await.unwrap().contains("did not answer in time"));
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(3 * td),
        "the edge's own 503 at its hold timeout: {took:?}"
    );
    assert!(
        short_edge
            .log()
            .contains("--hold-timeout is not above 3 target durations")
    );
    drop(short_edge);

    // Held reloads for the next part get the origin's 503 after three
    // target durations, with Retry-After; ten of them cost the origin one
    // request.
    let origin = live.origin_requests("playlist");
    let answers = live
        .burst(&live.reload(&format!("_HLS_msn={m}&_HLS_part={p}")), 10)
        .await;
    for (status, retry, _, took) in &answers {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(*took >= Duration::from_secs(2 * td), "held before the 503: {took:?}");
    }
    assert_eq!(
        live.origin_requests("playlist") - origin,
        1,
        "one origin request for ten held reloads"
    );
    no_held_requests(&live).await;

    // The publisher goes on (the 503 is the edge's answer to that question
    // for --playlist-ttl, so the waiters all got it; a player retries after
    // Retry-After); then ends: after EXT-X-ENDLIST the directives are
    // ignored (the ended playlist, at once).
    live.publisher.signal(libc::SIGCONT);
    wait_until_async("a blocking reload answered again", Duration::from_secs(10), || async {
        let (m, p) = next_part(&live.position().await.1);
        let r = live.get(&live.reload(&format!("_HLS_msn={m}&_HLS_part={p}"))).await;
        (r.status() == 200).then_some(())
    })
    .await;
    live.publisher.stop();
    let ended = wait_until_async("the playlist to end", Duration::from_secs(20), || async {
        let (text, pos) = live.position().await;
        pos.ended.then_some(text)
    })
    .await;
    let in_progress = Position::parse(&ended).unwrap().in_progress().unwrap();
    let start = Instant::now();
    let r = live
        .get(&live.reload(&format!("_HLS_msn={}&_HLS_part=0", in_progress + 1)))
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("#EXT-X-ENDLIST"));
    assert!(start.elapsed() < Duration::from_secs(td), "not held after ENDLIST");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_held_request_bound_is_reached_while_a_stream_plays() {
    let _serial = SERIAL.lock().await;
    // A 1 s head deadline: held requests outlast it (it covers heads only).
    let live = Arc::new(Live::start(&["--max-held-requests", "20", "--http-head-timeout", "1s"], 40).await);

    // A viewer plays throughout: plain reloads and the newest segment,
    // every 300 ms for 8 s.
    let viewer = {
        let live = live.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0, vec![]);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(8) && ok < 200 {
                let (text, _) = live.position().await;
                let newest = text
                    .lines()
                    .rfind(|l| l.ends_with(".m4s") && !l.starts_with('#'))
                    .unwrap();
                let status = live.get(&live.sibling(newest)).await.status();
                if status == 200 {
                    ok += 1
                } else {
                    failed.push(status)
                }
                // The viewer's pace, not a wait for readiness.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            (ok, failed)
        })
    };

    // 20 reloads for the first part two segments ahead: held (a segment
    // and a part at least, from a position fresh from a held reload), up to
    // the bound.
    let (_, pos) = live.fresh_position().await;
    let m = pos.in_progress().unwrap() + 2;
    let path = live.reload(&format!("_HLS_msn={m}&_HLS_part=0"));
    let held = {
        let (live, path) = (live.clone(), path.clone());
        tokio::spawn(async move { live.burst(&path, 20).await })
    };
    wait_until_async("20 held requests", Duration::from_secs(5), || async {
        (live.edge_metric("edge_held_requests") == 20).then_some(())
    })
    .await;
    // Past the bound: 503 with Retry-After, at once.
    for (status, retry, _, took) in live.burst(&path, 5).await {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(took < Duration::from_secs(1), "refused at once: {took:?}");
    }
    assert_eq!(live.edge_metric("edge_ll_answers_total{outcome=\"refused\"}"), 5);
    for (status, _, body, took) in held.await.unwrap() {
        assert_eq!(status, StatusCode::OK);
        assert!(
            Position::parse(std::str::from_utf8(&body).unwrap())
                .unwrap()
                .satisfies(m, Some(0))
        );
        assert!(took > Duration::from_secs(1), "held past the head deadline: {took:?}");
    }
    no_held_requests(&live).await;
    let (ok, failed) = viewer.await.unwrap();
    assert!(
        failed.is_empty() && ok >= 10,
        "the viewer kept playing: {ok} ok, failed {failed:?}"
    );
}

#[test]
fn the_ll_settings_are_documented_in_help() {
    testkit::assert_help_documents(
        testkit::bin_path("edge"),
        &[
            "--hold-timeout",
            "EDGE_HOLD_TIMEOUT",
            "--max-held-requests",
            "EDGE_MAX_HELD_REQUESTS",
        ],
    );
}
