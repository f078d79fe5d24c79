//! Recordings through the edge, end to end: a real publish to a real origin
//! with `record` set, the origin's recording (VOD playlists and
//! `recording.json`) reported by the real discovery agent to the real
//! router API, and the edge routing and caching it once the stream is over.

use api_types::playback::{PlaybackKey, mint};
use reqwest::{Client, redirect};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use testkit::stack::{ADMIN_TOKEN, AGENT_TOKEN, OriginNode};
use testkit::{Process, bin_path, http_get, wait_until, wait_until_async};

const KEY: &str = "k1:0123456789abcdef0123456789abcdef";
const STREAM: &str = "rec";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
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

/// Requests the router answered on `GET /recordings/{name}/{session}` with `status`.
fn router_lookups(router: SocketAddr, status: &str) -> u64 {
    let metrics = http_get(router, "/metrics").map(|r| r.1).unwrap_or_default();
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("router_http_requests_total{")
                && l.contains("route=\"/recordings/{name}/{session}\"")
                && l.contains(&format!("status=\"{status}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_recording_plays_through_the_edge_cached_and_routed_to_its_origin() {
    let mut stack = testkit::stack::Stack::new();
    // The router again, with the playback key (for the token case below).
    stack.router_process = None;
    let router = stack.router;
    wait_until("the first router gone", Duration::from_secs(10), || {
        http_get(router, "/readyz").is_none()
    });
    let p = Process::spawn(
        "router-api",
        bin_path("router-api"),
        [
            "--listen",
            &router.to_string(),
            "--redis",
            &stack.redis.url(),
            "--report-ttl",
            "3s",
            "--playback-key",
            KEY,
        ],
        &[("ROUTER_ADMIN_TOKEN", ADMIN_TOKEN), ("ROUTER_AGENT_TOKEN", AGENT_TOKEN)],
    );
    wait_until("router-api ready", Duration::from_secs(10), || {
        matches!(http_get(router, "/readyz"), Some((200, _)))
    });
    stack.router_process = Some(p);
    stack.add_origin("o1");
    let edge = stack.add_edge(&["--cache-size", "64MiB", "--playback-key", KEY, "--router-timeout", "3s"]);
    let key = stack.create_stream_with(STREAM, Some("sd-only"));
    let client = Client::builder().redirect(redirect::Policy::none()).build().unwrap();
    let admin = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("http://{router}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .timeout(Duration::from_secs(5))
    };
    let resp = admin(reqwest::Method::PATCH, &format!("/admin/streams/{STREAM}"))
        .json(&json!({"record": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let mut publisher = testkit::stack::publish(stack.origins[0].rtmp, &key, 6);
    wait_until("the publish to end", Duration::from_secs(30), || {
        !publisher.is_running()
    });
    let recordings: Value = wait_until_async("the recording listed", Duration::from_secs(20), || async {
        let v: Value = reqwest::get(format!("http://{router}/streams/{STREAM}/recordings"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (!v.as_array()?.is_empty()).then_some(v)
    })
    .await;
    let session = recordings[0]["session"].as_str().unwrap().to_string();
    let url = recordings[0]["url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("/{STREAM}/{session}/vod.m3u8"));
    // The live report is gone: only the recording's route leads there.
    wait_until_async("the stream no longer live", Duration::from_secs(10), || async {
        let s = reqwest::get(format!("http://{router}/streams/{STREAM}"))
            .await
            .ok()?
            .status();
        (s == 404).then_some(())
    })
    .await;

    let get = |path: String| {
        let client = client.clone();
        async move {
            let resp = client
                .get(format!("http://{edge}{path}"))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let cache = resp
                .headers()
                .get("x-cache-status")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let ctype = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, cache, ctype, resp.bytes().await.unwrap())
        }
    };
    let origin = &stack.origins[0];

    // The VOD multivariant playlist: fetched once, then a hit.
    let (status, cache, ctype, body) = get(url.clone()).await;
    assert_eq!(
        (status, cache.as_str()),
        (200, "MISS"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(ctype.contains("mpegurl"), "{ctype}");
    let master = String::from_utf8(body.to_vec()).unwrap();
    let (status, cache, _, again) = get(url.clone()).await;
    assert_eq!((status, cache.as_str()), (200, "HIT"));
    assert_eq!(again, body);
    assert_eq!(origin_requests(origin, "vod_multivariant"), 1, "one origin fetch");

    // Its media playlist: VOD, ended, cached.
    let media_uri = master
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with("vod.m3u8"))
        .expect("a variant");
    let media_path = format!("/{STREAM}/{session}/{media_uri}");
    let (status, cache, _, body) = get(media_path.clone()).await;
    assert_eq!((status, cache.as_str()), (200, "MISS"));
    let media = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        media.contains("#EXT-X-PLAYLIST-TYPE:VOD") && media.contains("#EXT-X-ENDLIST"),
        "{media}"
    );
    assert_eq!(get(media_path.clone()).await.1, "HIT");

    // Its init and segments: the ended session's own files, routed to the
    // origin holding the recording though the stream is not live.
    let dir = media_path.rsplit_once('/').unwrap().0.to_string();
    let segments: Vec<&str> = media.lines().filter(|l| l.ends_with(".m4s")).collect();
    assert!(segments.len() >= 4, "a 6 s recording: {media}");
    let (status, _, _, init) = get(format!("{dir}/init.mp4")).await;
    assert_eq!(status, 200);
    assert!(!init.is_empty());
    for s in &segments {
        let (status, cache, _, body) = get(format!("{dir}/{s}")).await;
        assert_eq!((status, cache.as_str()), (200, "MISS"), "{s}");
        assert!(!body.is_empty());
    }
    let fetched = origin_requests(origin, "segment");
    let (status, cache, _, _) = get(format!("{dir}/{}", segments[0])).await;
    assert_eq!((status, cache.as_str()), (200, "HIT"));
    assert_eq!(origin_requests(origin, "segment"), fetched, "a hit asks no origin");

    // An unknown session: 404, and after the first look-up neither the
    // router nor an origin is asked again.
    let before = router_lookups(router, "404");
    let vod_fetches = origin_requests(origin, "vod_multivariant");
    for _ in 0..5 {
        assert_eq!(get(format!("/{STREAM}/nosuch/vod.m3u8")).await.0, 404);
    }
    assert_eq!(get(format!("/{STREAM}/nosuch/180p/0.m4s")).await.0, 404);
    assert_eq!(get(format!("/{STREAM}/nosuch/180p/vod.m3u8")).await.0, 404);
    assert_eq!(
        router_lookups(router, "404") - before,
        1,
        "one look-up for the unknown session"
    );
    assert_eq!(origin_requests(origin, "vod_multivariant"), vod_fetches);
    assert_eq!(get("/nostream/s1/vod.m3u8".into()).await.0, 404);

    // Tokens apply to recordings as to live: once the stream is `token`,
    // the edge (after its short memory of the route) wants one.
    let resp = admin(reqwest::Method::PATCH, &format!("/admin/streams/{STREAM}"))
        .json(&json!({"playback": "token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_until_async("the recording to need a token", Duration::from_secs(15), || async {
        (get(url.clone()).await.0 == 403).then_some(())
    })
    .await;
    assert_eq!(get(format!("{dir}/{}", segments[1])).await.0, 403);
    let token = mint(&PlaybackKey::parse(KEY).unwrap(), STREAM, now_ms() + 60_000, None).unwrap();
    let (status, cache, _, body) = get(format!("/t/{token}{url}")).await;
    assert_eq!(
        (status, cache.as_str()),
        (200, "HIT"),
        "one cached copy for every token"
    );
    assert_eq!(body, again);
    let other = mint(&PlaybackKey::parse(KEY).unwrap(), "other", now_ms() + 60_000, None).unwrap();
    assert_eq!(get(format!("/t/{other}{url}")).await.0, 403);

    // Look-ups in flight are bounded: with the router frozen, 100 made-up
    // sessions at once leave 64 look-ups waiting (503 at the 3 s router
    // timeout) and the rest refused at once (503), with no origin request.
    let router_process = stack.router_process.as_ref().unwrap();
    router_process.signal(libc::SIGSTOP);
    let started = std::time::Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..100 {
        let get = get(format!("/{STREAM}/flood{i}/vod.m3u8"));
        flood.spawn(async move { (get.await.0, started.elapsed()) });
    }
    let mut answers = vec![];
    while let Some(a) = flood.join_next().await {
        answers.push(a.unwrap());
    }
    router_process.signal(libc::SIGCONT);
    assert!(answers.iter().all(|(s, _)| *s == 503), "{answers:?}");
    let at_once = answers.iter().filter(|(_, t)| *t < Duration::from_millis(1500)).count();
    assert!(
        at_once >= 30,
        "refused at once past 64 in flight: {at_once} of 100 ({answers:?})"
    );
    assert!(at_once <= 40, "at most 64 waited for the router: {answers:?}");
    assert_eq!(origin_requests(origin, "vod_multivariant"), vod_fetches);
    // The router back: the recording plays again.
    assert_eq!(get(format!("/t/{token}{url}")).await.0, 200);
}
