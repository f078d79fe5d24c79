//! Playback tokens and viewer counts through the real edge: a real origin
//! (ffmpeg publishing, GStreamer transcoding an LL-HLS ladder), its
//! discovery agent, the router API (with playback keys) on a real Redis,
//! and the edge, all on loopback.

use api_types::playback::{PlaybackKey, mint};
use reqwest::{Client, StatusCode, redirect};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use testkit::stack::{ADMIN_TOKEN, AGENT_TOKEN};
use testkit::{Process, bin_path, http_get, wait_until, wait_until_async};

/// Transcoding takes the cores: one stack at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const KEY: &str = "k1:0123456789abcdef0123456789abcdef";
const STREAM: &str = "tok";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn key() -> PlaybackKey {
    PlaybackKey::parse(KEY).unwrap()
}

struct Stack {
    inner: testkit::stack::Stack,
    edge: SocketAddr,
    /// Follows no redirect: the tests look at each answer.
    raw: Client,
    _publisher: Process,
}

impl Stack {
    /// The stack with a router and an edge that know the playback key, and
    /// an LL stream published.
    async fn start() -> Stack {
        let mut inner = testkit::stack::Stack::new();
        // The router again, with the playback key.
        inner.router_process = None;
        let router = inner.router;
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
                &inner.redis.url(),
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
        inner.router_process = Some(p);
        inner.add_origin("o1");
        let edge = inner.add_edge(&[
            "--cache-size",
            "64MiB",
            "--playback-key",
            KEY,
            "--edge-id",
            "e1",
            "--agent-token",
            AGENT_TOKEN,
            "--viewer-report-interval",
            "1s",
            "--viewer-window",
            "4s",
        ]);
        let key = inner.create_stream_with(STREAM, Some("ll"));
        let publisher = testkit::stack::publish(inner.origins[0].rtmp, &key, 120);
        let stack = Stack {
            inner,
            edge,
            raw: Client::builder().redirect(redirect::Policy::none()).build().unwrap(),
            _publisher: publisher,
        };
        // Playable once a media playlist lists a few segments.
        wait_until_async("the stream playable", Duration::from_secs(40), || async {
            let (_, media) = stack.media_playlist("").await?;
            (media.lines().filter(|l| l.starts_with("#EXTINF")).count() >= 3).then_some(())
        })
        .await;
        stack
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.edge)
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.raw.get(self.url(path)).timeout(Duration::from_secs(10));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    /// The first media playlist's path (without `prefix`) and body, read
    /// through `prefix` following the multivariant playlist's redirect.
    async fn media_playlist(&self, prefix: &str) -> Option<(String, String)> {
        let r = self.get(&format!("{prefix}/{STREAM}/index.m3u8"), &[]).await;
        if r.status() != StatusCode::FOUND {
            return None;
        }
        let location = r.headers()["location"].to_str().unwrap().to_string();
        assert!(location.starts_with("/_v/"), "{location}");
        assert!(
            location.ends_with(&format!("{prefix}/{STREAM}/index.m3u8")),
            "{location}"
        );
        let r = self.get(&location, &[]).await;
        if r.status() != 200 {
            return None;
        }
        let master = r.text().await.ok()?;
        let uri = master.lines().find(|l| !l.starts_with('#') && !l.is_empty())?;
        let path = format!("/{STREAM}/{uri}");
        let r = self.get(&format!("{prefix}{path}"), &[]).await;
        if r.status() != 200 {
            return None;
        }
        Some((path, r.text().await.ok()?))
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = Client::new()
            .request(method, format!("http://{}{path}", self.inner.router))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn upstream_requests(&self) -> f64 {
        let text = self
            .raw
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with("edge_upstream_requests_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn viewers(&self) -> Option<u64> {
        let r = Client::new()
            .get(format!("http://{}/streams/{STREAM}", self.inner.router))
            .send()
            .await
            .ok()?;
        r.json::<Value>().await.ok()?["viewers"].as_u64()
    }
}

/// One path per object kind of the stream, without any prefix: the
/// multivariant playlist, a media playlist, a blocking reload the edge can
/// answer at once, a part, the init segment and a segment.
fn objects(media_path: &str, media: &str) -> Vec<(&'static str, String)> {
    let dir = media_path.rsplit_once('/').unwrap().0;
    let attr = |line: &str| {
        line.split("URI=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(String::from)
    };
    let init = media
        .lines()
        .find(|l| l.starts_with("#EXT-X-MAP"))
        .and_then(attr)
        .unwrap();
    let part = media
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .find_map(attr)
        .unwrap();
    let segments: Vec<&str> = media.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    let first: u64 = media
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let last_msn = first + segments.len() as u64 - 1;
    vec![
        ("multivariant", format!("/{STREAM}/index.m3u8")),
        ("playlist", media_path.to_string()),
        ("blocking", format!("{media_path}?_HLS_msn={last_msn}&_HLS_part=0")),
        ("part", format!("{dir}/{part}")),
        ("init", format!("{dir}/{init}")),
        ("segment", format!("{dir}/{}", segments[segments.len() - 1])),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_streams_need_a_token_on_every_object_and_share_the_cache() {
    let _serial = SERIAL.lock().await;
    let s = Stack::start().await;
    let sid = "/_v/0123456789abcdef";

    // Public: plays with or without a token prefix.
    let (media_path, media) = s.media_playlist("").await.unwrap();
    assert!(s.media_playlist("/t/anything.at.all.x").await.is_some());
    let public = objects(&media_path, &media);
    for (kind, path) in &public {
        let r = s.get(&format!("{sid}{path}"), &[]).await;
        assert_eq!(r.status(), 200, "public {kind} {path}");
    }

    // Token: the edge learns the policy with the route (a second or so).
    let answer = s
        .admin(
            reqwest::Method::PATCH,
            &format!("/admin/streams/{STREAM}"),
            json!({"playback": "token"}),
        )
        .await;
    assert_eq!(answer["playback"], "token");
    wait_until_async("the edge refusing without a token", Duration::from_secs(10), || async {
        (s.get(&format!("/{STREAM}/index.m3u8"), &[]).await.status() == StatusCode::FORBIDDEN).then_some(())
    })
    .await;

    // No token: 403 with a JSON reason on every object kind, on the fast
    // hit path (plain GETs of cached objects) and on pingora's path (a
    // request the fast path does not take), and nothing asked of the origin.
    // A viewer that claims to be an edge below (`x-dionysia-edge`, the
    // header shields trust with the shared agent token) is refused alike.
    let before = s.upstream_requests().await;
    for (kind, path) in &public {
        for headers in [
            &[][..],
            &[("connection", "close")][..],
            &[("range", "bytes=0-")][..],
            &[("x-dionysia-edge", "forged-agent-token-0123456789")][..],
            &[("x-dionysia-edge", "")][..],
        ] {
            for prefixed in [path.clone(), format!("{sid}{path}")] {
                let r = s.get(&prefixed, headers).await;
                assert_eq!(r.status(), StatusCode::FORBIDDEN, "{kind} {prefixed} {headers:?}");
                assert_eq!(r.headers()["cache-control"], "no-store");
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["reason"], "missing", "{kind}");
                assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
            }
        }
    }
    assert_eq!(s.upstream_requests().await, before, "a refused request went upstream");

    // Bad tokens: expired, another stream's, tampered, unknown key, junk.
    let exp = now_ms() + 3_600_000;
    let good = mint(&key(), STREAM, exp, Some("alice")).unwrap();
    let other_key = PlaybackKey::parse("k9:fedcba9876543210fedcba9876543210").unwrap();
    let mut tampered = good.clone().into_bytes();
    let at = tampered.len() - 3;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let bad = [
        (mint(&key(), STREAM, now_ms() - 1_000, None).unwrap(), "expired"),
        (mint(&key(), "other", exp, None).unwrap(), "bad_signature"),
        (String::from_utf8(tampered).unwrap(), "bad_signature"),
        (good.replace(".alice.", ".bob."), "bad_signature"),
        (mint(&other_key, STREAM, exp, None).unwrap(), "unknown_key"),
        ("junk".to_string(), "malformed"),
    ];
    for (token, reason) in &bad {
        for (kind, path) in &public {
            for headers in [&[][..], &[("connection", "close")][..]] {
                let r = s.get(&format!("{sid}/t/{token}{path}"), headers).await;
                assert_eq!(r.status(), StatusCode::FORBIDDEN, "{reason} {kind}");
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["reason"], *reason, "{kind} {token}");
            }
        }
    }
    assert_eq!(s.upstream_requests().await, before, "a refused request went upstream");
    let metrics = s.raw.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for reason in ["missing", "expired", "bad_signature", "unknown_key", "malformed"] {
        let n = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("edge_playback_refusals_total{{reason=\"{reason}\"}} ")))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        assert!(n > 0, "no {reason} refusal counted");
    }

    // Two valid tokens (one minted here from the documented scheme, one by
    // the router): both play, and the second viewer's fetch is a hit of
    // the first one's copy. Playlists are fetched on both paths too.
    let minted = s
        .admin(
            reqwest::Method::POST,
            &format!("/admin/streams/{STREAM}/playback-tokens"),
            json!({"ttl_s": 600}),
        )
        .await;
    let second = minted["token"].as_str().unwrap().to_string();
    assert_eq!(minted["url"], format!("/t/{second}/{STREAM}/index.m3u8"));
    let (media_path, media) = s.media_playlist(&format!("/t/{good}")).await.unwrap();
    let objects = objects(&media_path, &media);
    for (kind, path) in &objects {
        let first = s.get(&format!("{sid}/t/{good}{path}"), &[]).await;
        assert_eq!(first.status(), 200, "{kind} {path}");
        for headers in [&[][..], &[("connection", "close")][..]] {
            let r = s.get(&format!("/_v/fedcba9876543210/t/{second}{path}"), headers).await;
            assert_eq!(r.status(), 200, "{kind} {path}");
            let status = r.headers()["x-cache-status"].to_str().unwrap().to_string();
            // Playlists are fresh for half a second: a slow machine may see
            // one expire between the two fetches.
            if matches!(*kind, "part" | "init" | "segment" | "multivariant") {
                assert_eq!(status, "HIT", "{kind} {path} {headers:?}");
            }
        }
    }

    // A real player: ffprobe on the playback URL.
    let streams = testkit::probe::streams(&s.url(&format!("/t/{good}/{STREAM}/index.m3u8")));
    assert!(streams.iter().any(|p| p.codec == "h264"), "{streams:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_are_counted_per_player_and_reported_to_the_router() {
    let _serial = SERIAL.lock().await;
    let s = Stack::start().await;
    s.admin(
        reqwest::Method::PATCH,
        &format!("/admin/streams/{STREAM}"),
        json!({"playback": "token"}),
    )
    .await;
    let token = mint(&key(), STREAM, now_ms() + 3_600_000, None).unwrap();
    const N: u64 = 20;
    let report = tempfile::tempdir().unwrap();
    // Every viewer from 127.0.0.1 with one User-Agent: told apart by their
    // playback sessions only.
    let mut load = Process::spawn(
        "loadtest",
        bin_path("loadtest"),
        [
            "--url",
            &s.url(&format!("/t/{token}/{STREAM}/index.m3u8")),
            "--viewers",
            &N.to_string(),
            "--ramp",
            "2s",
            "--duration",
            "30s",
            "--quiet",
            "--report-dir",
            report.path().to_str().unwrap(),
        ],
        &[],
    );
    let started = Instant::now();
    wait_until_async("the router counting the viewers", Duration::from_secs(20), || async {
        let v = s.viewers().await?;
        // Within 5 %.
        (v.abs_diff(N) * 20 <= N).then_some(())
    })
    .await;
    // Updated within 10 s of the viewers' arrival (the ramp is 2 s).
    assert!(started.elapsed() < Duration::from_secs(12), "{:?}", started.elapsed());
    let metrics = s.raw.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let gauge = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("edge_viewers{{stream=\"{STREAM}\"}} ")))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no edge_viewers series in {metrics}"));
    assert!(gauge.abs_diff(N) * 20 <= N, "{gauge}");
    // Held steady while they watch.
    for _ in 0..5 {
        let v = s.viewers().await.unwrap();
        assert!(v.abs_diff(N) * 20 <= N, "viewers {v} of {N}");
        // One sample a second over a measurement window, not a readiness wait.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // They leave: back to zero within the window and a report or two.
    load.stop();
    wait_until_async("the viewers gone", Duration::from_secs(15), || async {
        (s.viewers().await? == 0).then_some(())
    })
    .await;
    wait_until_async("the gauge series gone", Duration::from_secs(5), || async {
        let text = s.raw.get(s.url("/metrics")).send().await.ok()?.text().await.ok()?;
        (!text.contains("edge_viewers{")).then_some(())
    })
    .await;
}

#[test]
fn help_documents_the_playback_and_viewer_flags() {
    testkit::assert_help_documents(
        bin_path("edge"),
        &[
            "--playback-key",
            "PLAYBACK_KEYS",
            "--edge-id",
            "EDGE_ID",
            "--agent-token",
            "ROUTER_AGENT_TOKEN",
            "--viewer-report-interval",
            "--viewer-window",
        ],
    );
}
