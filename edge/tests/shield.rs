//! Tiered caching end to end: two edges behind one shield edge, a live
//! ffmpeg stream through a real origin, viewers on both edges. The origin
//! serves each segment about once however many edges there are (and one
//! LL-HLS blocking reload per question); when the shield dies the edges go
//! to the origin themselves and viewers keep playing.

#[path = "../src/ll.rs"]
#[allow(dead_code)]
mod ll;

use reqwest::Client;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::stack::{OriginNode, Stack};
use testkit::{Process, bin_path, http_get, wait_until_async};

fn start_edge(router: SocketAddr, extra: &[String]) -> (Process, SocketAddr) {
    testkit::stack::start_edge(router, extra)
}

/// `origin_http_requests_total{kind,status="200"}` of one origin.
fn origin_requests(origin: &OriginNode, kind: &str) -> u64 {
    let metrics = http_get(origin.http, "/metrics").map(|r| r.1).unwrap_or_default();
    let needle = format!("origin_http_requests_total{{kind=\"{kind}\",status=\"200\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |v| v.parse().unwrap())
}

/// Requests the origin answered for objects of `kind`, whatever the status.
fn origin_requests_any(origin: &OriginNode, kind: &str) -> u64 {
    let text = http_get(origin.http, "/metrics").expect("origin metrics").1;
    let prefix = format!("origin_http_requests_total{{kind=\"{kind}\"");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// What one viewer saw.
#[derive(Default)]
struct Seen {
    /// Segment paths fetched (200).
    segments: HashSet<String>,
    /// When each request answered 200.
    ok: Vec<Instant>,
    /// When each new segment arrived.
    new_segments: Vec<Instant>,
    /// Non-200 answers and failed requests.
    errors: Vec<(Instant, String)>,
}

/// A viewer: reloads the first media playlist every 250 ms and fetches each
/// segment it has not fetched, until `until`.
async fn viewer(edge: SocketAddr, stream: String, until: Instant, seen: Arc<Mutex<Seen>>) {
    let client = Client::new();
    let get = |path: String| {
        let client = client.clone();
        async move {
            let r = client
                .get(format!("http://{edge}{path}"))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status().as_u16();
            let body = r.bytes().await.map_err(|e| e.to_string())?;
            if status == 200 {
                Ok(body)
            } else {
                Err(format!("{status} for {path}"))
            }
        }
    };
    let mut media: Option<String> = None;
    while Instant::now() < until {
        let playlist_path = match &media {
            Some(p) => p.clone(),
            None => match get(format!("/{stream}/index.m3u8")).await {
                Ok(body) => {
                    let text = String::from_utf8_lossy(&body).into_owned();
                    let uri = text
                        .lines()
                        .find(|l| l.ends_with(".m3u8"))
                        .expect("a variant")
                        .to_string();
                    seen.lock().unwrap().ok.push(Instant::now());
                    let p = format!("/{stream}/{uri}");
                    media = Some(p.clone());
                    p
                }
                Err(e) => {
                    seen.lock().unwrap().errors.push((Instant::now(), e));
                    // A player's retry interval, not a wait for readiness.
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            },
        };
        match get(playlist_path.clone()).await {
            Ok(body) => {
                seen.lock().unwrap().ok.push(Instant::now());
                let dir = playlist_path.rsplit_once('/').unwrap().0.to_string();
                let text = String::from_utf8_lossy(&body).into_owned();
                // The last three segments: a player at the live edge.
                let listed: Vec<&str> = text.lines().filter(|l| l.ends_with(".m4s")).collect();
                for seg in listed.iter().rev().take(3).rev() {
                    let path = format!("{dir}/{seg}");
                    if seen.lock().unwrap().segments.contains(&path) {
                        continue;
                    }
                    match get(path.clone()).await {
                        Ok(_) => {
                            let mut s = seen.lock().unwrap();
                            s.segments.insert(path);
                            s.ok.push(Instant::now());
                            s.new_segments.push(Instant::now());
                        }
                        Err(e) => seen.lock().unwrap().errors.push((Instant::now(), e)),
                    }
                }
            }
            Err(e) => seen.lock().unwrap().errors.push((Instant::now(), e)),
        }
        // A player's reload interval, not a wait for readiness.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_behind_a_shield_cost_the_origin_one_fetch_per_object_and_survive_its_death() {
    let mut stack = Stack::new();
    stack.add_origin("origin-a");
    let router = stack.router;
    let (mut shield, shield_addr) = start_edge(router, &[]);
    let via_shield = ["--shield".to_string(), format!("http://{shield_addr}")];
    let (_edge1, e1) = start_edge(router, &via_shield);
    let (_edge2, e2) = start_edge(router, &via_shield);

    let key = stack.create_stream_with("golive", Some("passthrough"));
    let _ffmpeg = testkit::stack::publish(stack.origins[0].rtmp, &key, 60);
    for edge in [e1, e2] {
        wait_until_async(
            "the stream playable through both edges",
            Duration::from_secs(30),
            || async move {
                matches!(
                    tokio::task::spawn_blocking(move || http_get(edge, "/golive/index.m3u8")).await,
                    Ok(Some((200, _)))
                )
                .then_some(())
            },
        )
        .await;
    }

    // Eight viewers on each edge for 12 s, through the shield.
    let origin = &stack.origins[0];
    let before = origin_requests(origin, "segment");
    let start = Instant::now();
    let until = start + Duration::from_secs(22);
    let mut views = vec![];
    let mut tasks = tokio::task::JoinSet::new();
    for edge in [e1, e2] {
        for _ in 0..8 {
            let seen = Arc::new(Mutex::new(Seen::default()));
            views.push(seen.clone());
            tasks.spawn(viewer(edge, "golive".into(), until, seen));
        }
    }
    // The measurement window (the viewers play meanwhile), not a readiness wait.
    tokio::time::sleep_until((start + Duration::from_secs(12)).into()).await;
    let fetched = origin_requests(origin, "segment") - before;
    let objects: HashSet<String> = views
        .iter()
        .flat_map(|v| v.lock().unwrap().segments.iter().cloned().collect::<Vec<_>>())
        .collect();
    let ratio = fetched as f64 / objects.len() as f64;
    eprintln!(
        "origin segment fetches {fetched} for {} segments seen by 16 viewers on 2 edges: {ratio:.3} per object",
        objects.len()
    );
    assert!(objects.len() >= 6, "the viewers played: {} segments", objects.len());
    assert!(ratio <= 1.05, "origin fetches per object {ratio:.3} > 1.05");
    let errors_before: usize = views.iter().map(|v| v.lock().unwrap().errors.len()).sum();
    assert_eq!(errors_before, 0, "viewer errors through the shield");

    // The shield dies; the edges go to the origin themselves.
    shield.kill();
    let killed = Instant::now();
    while tasks.join_next().await.is_some() {}
    let target = Duration::from_secs(1);
    let mut worst = Duration::ZERO;
    for (i, v) in views.iter().enumerate() {
        let v = v.lock().unwrap();
        let first_ok =
            v.ok.iter()
                .find(|t| **t > killed)
                .unwrap_or_else(|| panic!("viewer {i} got no answer after the kill: {:?}", v.errors));
        let new_after = v.new_segments.iter().filter(|t| **t > killed).count();
        assert!(
            new_after >= 5,
            "viewer {i} kept playing: {new_after} new segments after the kill"
        );
        worst = worst.max(*first_ok - killed);
        assert!(v.errors.is_empty(), "viewer {i} errors: {:?}", v.errors);
    }
    // Every viewer's next request after the kill was answered within two
    // target durations (the player's buffer covers far more).
    eprintln!("worst time from the shield's death to a viewer's next answer: {worst:?}");
    assert!(worst <= 2 * target, "a viewer waited {worst:?} after the shield died");
    let direct = origin_requests(origin, "segment") - before - fetched;
    assert!(direct > 0, "the edges fetched from the origin themselves");
}

/// Viewers on two edges waiting for one future LL-HLS part: every edge
/// sends its one blocking reload to the shield, whose cache lock makes it
/// one request to the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_reloads_of_every_edge_cost_the_origin_one_request_through_the_shield() {
    let mut stack = Stack::new();
    stack.add_origin("origin-a");
    let router = stack.router;
    let (_shield, shield_addr) = start_edge(router, &[]);
    let via_shield = ["--shield".to_string(), format!("http://{shield_addr}")];
    let (_edge1, e1) = start_edge(router, &via_shield);
    let (_edge2, e2) = start_edge(router, &via_shield);
    let key = stack.create_stream_with("golive", Some("ll"));
    let _ffmpeg = testkit::stack::publish(stack.origins[0].rtmp, &key, 40);
    let client = Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let master = wait_until_async(
        "the stream playable through the edge",
        Duration::from_secs(30),
        || async {
            let r = client.get(format!("http://{e1}/golive/index.m3u8")).send().await.ok()?;
            (r.status() == 200).then_some(())?;
            r.text().await.ok()
        },
    )
    .await;
    let uri = master
        .lines()
        .find(|l| l.ends_with("/index.m3u8") && !l.starts_with('#'))
        .expect("a media playlist listed");
    let playlist = format!("/golive/{uri}");
    let position = || async {
        let text = client
            .get(format!("http://{e1}{playlist}"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        ll::Position::parse(&text)
    };
    let hint = wait_until_async("the media playlist to hint a part", Duration::from_secs(20), || async {
        let p = position().await?;
        if p.can_block && p.last_part.is_some() {
            p.hint
        } else {
            None
        }
    })
    .await;
    // The part after the hinted one: not written yet, so every request waits.
    let (m, p) = (hint.0, hint.1 + 1);
    let origin = &stack.origins[0];
    let before = origin_requests_any(origin, "playlist");
    let mut set = tokio::task::JoinSet::new();
    for edge in [e1, e2] {
        for _ in 0..40 {
            let (c, url) = (
                client.clone(),
                format!("http://{edge}{playlist}?_HLS_msn={m}&_HLS_part={p}"),
            );
            set.spawn(async move {
                let r = c.get(url).send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            });
        }
    }
    while let Some(r) = set.join_next().await {
        let (status, body) = r.unwrap();
        assert_eq!(status, 200, "{body}");
        let got = ll::Position::parse(&body).expect("a playlist");
        assert!(got.satisfies(m, Some(p)), "{m}.{p} not in {got:?}");
    }
    let sent = origin_requests_any(origin, "playlist") - before;
    assert_eq!(
        sent, 1,
        "80 viewers on two edges cost the origin {sent} playlist requests"
    );
}

#[test]
fn help_documents_the_shield_setting() {
    testkit::assert_help_documents(bin_path("edge"), &["--shield", "EDGE_SHIELD"]);
}
