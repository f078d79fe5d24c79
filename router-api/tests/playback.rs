//! Issue 16 on the router side, end to end against the real binary and a
//! real Redis: playback policy, playback tokens, viewer counts from edges,
//! webhooks (received by a small server in this test: the operator's side)
//! and the dashboard's static pages.

mod common;

use api_types::playback::{PlaybackKeys, TokenError, verify};
use axum::http::HeaderMap;
use common::*;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use testkit::{Process, free_addr, wait_until_async};

const KEY1: &str = "k1:0123456789abcdef0123456789abcdef";
const KEY2: &str = "k2:fedcba9876543210fedcba9876543210";
const HOOK_SECRET: &str = "webhook-secret-0123456789";

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

async fn json_of(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).unwrap()
}

impl Harness {
    async fn get_json(&self, path: &str) -> Value {
        json_of(self.admin(Method::GET, path).send().await.unwrap()).await
    }

    async fn viewers(&self, edge: &str, body: Value) -> reqwest::Response {
        self.agent(Method::PUT, &format!("/viewers/{edge}"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn mint(&self, name: &str, body: Option<Value>) -> reqwest::Response {
        let mut req = self.admin(Method::POST, &format!("/admin/streams/{name}/playback-tokens"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }
}

#[tokio::test]
async fn playback_policy_is_set_and_reaches_the_route() {
    let h = Harness::start();
    h.create_stream("golive").await;
    let one = h.get_json("/admin/streams/golive").await;
    assert_eq!(one["playback"], "public", "public by default");
    assert_eq!(one["viewers"], 0);
    assert_eq!(
        h.report("origin-a", "golive", "127.0.0.1:8080", "s1").await.status(),
        200
    );
    let route = json_of(h.req(Method::GET, "/streams/golive").send().await.unwrap()).await;
    assert_eq!(route["playback"], "public");

    let patched = json_of(
        h.admin(Method::PATCH, "/admin/streams/golive")
            .json(&json!({"playback": "token"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(patched["playback"], "token");
    assert_eq!(patched["enabled"], true, "other fields unchanged");
    assert_eq!(h.get_json("/admin/streams/golive").await["playback"], "token");
    assert_eq!(h.get_json("/admin/streams").await[0]["playback"], "token");
    let route = json_of(h.req(Method::GET, "/streams/golive").send().await.unwrap()).await;
    assert_eq!(route["playback"], "token", "edges learn the policy with the route");
    let all = json_of(h.req(Method::GET, "/streams").send().await.unwrap()).await;
    assert_eq!(all[0]["playback"], "token");
    assert_eq!(
        h.redis.cli(&["HGET", "dionysia:stream:golive", "playback"]).trim(),
        "token"
    );

    // Together with the other fields, and back.
    let both = json_of(
        h.admin(Method::PATCH, "/admin/streams/golive")
            .json(&json!({"playback": "public", "profile": "low"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (both["playback"].as_str(), both["profile"].as_str()),
        (Some("public"), Some("low"))
    );

    for bad in [
        json!({"playback": "secret"}),
        json!({"playback": 1}),
        json!({"playback": "TOKEN"}),
    ] {
        let resp = h
            .admin(Method::PATCH, "/admin/streams/golive")
            .json(&bad)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!((400..500).contains(&status), "{bad}: {status}");
        assert_error(resp, status).await;
    }
    let ghost = h
        .admin(Method::PATCH, "/admin/streams/ghost")
        .json(&json!({"playback": "token"}))
        .send()
        .await
        .unwrap();
    assert_error(ghost, 404).await;
}

#[tokio::test]
async fn playback_tokens_are_minted_and_checked() {
    let h = Harness::start_with(&["--playback-key", KEY1, "--playback-key", KEY2]);
    h.create_stream("golive").await;
    let keys = PlaybackKeys::parse(&[KEY1, KEY2]).unwrap();

    let before = now_ms();
    let resp = h.mint("golive", Some(json!({"ttl_s": 120, "viewer": "alice"}))).await;
    assert_eq!(resp.status(), 201);
    let t = json_of(resp).await;
    let token = t["token"].as_str().unwrap();
    let exp = t["expires_at_ms"].as_u64().unwrap();
    assert!(exp >= before + 120_000 && exp <= now_ms() + 120_000, "{exp}");
    assert_eq!(t["url"], format!("/t/{token}/golive/index.m3u8"));
    assert!(token.starts_with("k1."), "the first key signs: {token}");
    let claims = verify(token, "golive", now_ms(), &keys).unwrap();
    assert_eq!(claims.viewer.as_deref(), Some("alice"));
    assert_eq!(claims.exp_ms, exp);
    assert_eq!(verify(token, "other", now_ms(), &keys), Err(TokenError::BadSignature));
    assert_eq!(verify(token, "golive", exp, &keys), Err(TokenError::Expired));

    // No body, or an empty object: the default lifetime, no viewer.
    for body in [None, Some(json!({}))] {
        let t = json_of(h.mint("golive", body).await).await;
        let ttl = t["expires_at_ms"].as_u64().unwrap() - now_ms();
        assert!((3_590_000..=3_600_000).contains(&ttl), "{ttl}");
        let c = verify(t["token"].as_str().unwrap(), "golive", now_ms(), &keys).unwrap();
        assert_eq!(c.viewer, None);
    }

    // Bad input: 400 with JSON, nothing minted.
    for bad in [
        json!({"ttl_s": 59}),
        json!({"ttl_s": 604_801}),
        json!({"ttl_s": -1}),
        json!({"ttl_s": "60"}),
        json!({"viewer": "not ok"}),
        json!({"viewer": "v".repeat(65)}),
        json!({"bogus": 1}),
        json!([1]),
    ] {
        let e = assert_error(h.mint("golive", Some(bad.clone())).await, 400).await;
        assert!(!e.is_empty(), "{bad}");
    }
    let garbage = h
        .admin(Method::POST, "/admin/streams/golive/playback-tokens")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(garbage, 400).await;
    assert_error(h.mint("ghost", None).await, 404).await;
    assert_error(h.mint("Bad%20Name", None).await, 400).await;
    let anon = h
        .req(Method::POST, "/admin/streams/golive/playback-tokens")
        .send()
        .await
        .unwrap();
    assert_error(anon, 401).await;
    let agent = h
        .agent(Method::POST, "/admin/streams/golive/playback-tokens")
        .send()
        .await
        .unwrap();
    assert_error(agent, 401).await;
}

#[tokio::test]
async fn playback_keys_from_the_environment_rotate() {
    let redis = testkit::Redis::start();
    let addr = free_addr();
    let listen = addr.to_string();
    let url = redis.url();
    // The env variable is a comma-separated list; the first key signs.
    let _router = Process::spawn(
        "router-api",
        env!("CARGO_BIN_EXE_router-api"),
        ["--listen", &listen, "--redis", &url],
        &[
            ("ROUTER_ADMIN_TOKEN", ADMIN),
            ("ROUTER_AGENT_TOKEN", AGENT),
            ("PLAYBACK_KEYS", &format!("{KEY2},{KEY1}")),
        ],
    );
    let h = Harness {
        redis,
        router: _router,
        addr,
        client: reqwest::Client::new(),
    };
    wait_until_async("router-api up", Duration::from_secs(10), || async {
        h.req(Method::GET, "/healthz")
            .send()
            .await
            .ok()
            .filter(|r| r.status() == 200)
    })
    .await;
    h.create_stream("golive").await;
    let t = json_of(h.mint("golive", None).await).await;
    let token = t["token"].as_str().unwrap();
    assert!(token.starts_with("k2."), "{token}");
    // An edge that still knows only the old key refuses it; one that knows
    // both accepts it.
    let old_only = PlaybackKeys::parse(&[KEY1]).unwrap();
    assert_eq!(
        verify(token, "golive", now_ms(), &old_only),
        Err(TokenError::UnknownKey)
    );
    assert!(verify(token, "golive", now_ms(), &PlaybackKeys::parse(&[KEY1, KEY2]).unwrap()).is_ok());
}

#[tokio::test]
async fn minting_needs_a_key_and_weak_keys_are_refused() {
    let h = Harness::start();
    h.create_stream("golive").await;
    let e = assert_error(h.mint("golive", None).await, 409).await;
    assert!(e.contains("--playback-key"), "{e}");

    for (bad, says) in [
        ("k1:short", "at least 32 bytes"),
        ("K1:0123456789abcdef0123456789abcdef", "[a-z0-9]{1,16}"),
        ("nocolon", "KID:SECRET"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_router-api"))
            .args(["--playback-key", bad])
            .env("ROUTER_ADMIN_TOKEN", ADMIN)
            .env("ROUTER_AGENT_TOKEN", AGENT)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{bad}: {err}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_router-api"))
        .args([
            "--webhook-url",
            "https://hooks.example.invalid/x",
            "--webhook-secret",
            HOOK_SECRET,
        ])
        .env("ROUTER_ADMIN_TOKEN", ADMIN)
        .env("ROUTER_AGENT_TOKEN", AGENT)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("http://"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_router-api"))
        .args(["--webhook-url", "http://127.0.0.1:9/x"])
        .env("ROUTER_ADMIN_TOKEN", ADMIN)
        .env("ROUTER_AGENT_TOKEN", AGENT)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--webhook-secret"));
    testkit::assert_help_documents(
        env!("CARGO_BIN_EXE_router-api"),
        &[
            "--playback-key",
            "PLAYBACK_KEYS",
            "--viewer-ttl",
            "--webhook-url",
            "ROUTER_WEBHOOK_URLS",
            "--webhook-secret",
            "ROUTER_WEBHOOK_SECRET",
            "--webhook-attempts",
            "--webhook-queue",
            "--webhook-timeout",
            "--webhook-backoff",
            "--webhook-max-backoff",
            "--public-edge-url",
            "ROUTER_PUBLIC_EDGE_URL",
            "--public-rtmp-url",
        ],
    );
}

#[tokio::test]
async fn viewers_are_summed_over_live_edges() {
    let h = Harness::start_with(&["--viewer-ttl", "2s"]);
    h.create_stream("golive").await;
    h.create_stream("other").await;
    assert_eq!(
        h.report("origin-a", "golive", "127.0.0.1:8080", "s1").await.status(),
        200
    );

    let a = h.viewers("edge-a", json!({"streams": {"golive": 3, "other": 1}})).await;
    assert_eq!(a.status(), 200);
    assert_eq!(json_of(a).await["ttl_ms"], 2000);
    assert_eq!(
        h.viewers("edge-b", json!({"streams": {"golive": 4}})).await.status(),
        200
    );
    let route = json_of(h.req(Method::GET, "/streams/golive").send().await.unwrap()).await;
    assert_eq!(route["viewers"], 7);
    assert_eq!(h.get_json("/admin/streams/golive").await["viewers"], 7);
    let list = h.get_json("/admin/streams").await;
    assert_eq!(
        (list[0]["viewers"].as_u64(), list[1]["viewers"].as_u64()),
        (Some(7), Some(1))
    );

    // A report replaces the edge's previous one: streams left out count zero.
    assert_eq!(
        h.viewers("edge-a", json!({"streams": {"golive": 1}})).await.status(),
        200
    );
    assert_eq!(h.get_json("/admin/streams/golive").await["viewers"], 5);
    assert_eq!(h.get_json("/admin/streams/other").await["viewers"], 0);

    // Counts are capped per edge and stream.
    assert_eq!(
        h.viewers("edge-c", json!({"streams": {"other": 5_000_000_000u64}}))
            .await
            .status(),
        200
    );
    assert_eq!(h.get_json("/admin/streams/other").await["viewers"], 1_000_000);

    // Bad input: 4xx with JSON, nothing stored.
    let many: serde_json::Map<String, Value> = (0..1001).map(|i| (format!("s{i}"), json!(1))).collect();
    for (edge, body, status) in [
        ("edge-a", json!({"streams": many}), 400),
        ("edge-a", json!({"streams": {"Bad Name": 1}}), 400),
        ("edge-a", json!({"streams": {"golive": -1}}), 422),
        ("edge-a", json!({"streams": {"golive": 1}, "extra": 1}), 422),
        ("Edge_A", json!({"streams": {}}), 400),
    ] {
        assert_error(h.viewers(edge, body).await, status).await;
    }
    let huge = format!("{{\"streams\":{{\"a\":{}}}}}", "1".repeat(200_000));
    let resp = h
        .oneshot(Method::PUT, "/viewers/edge-a")
        .bearer_auth(AGENT)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_error(resp, 413).await;
    for token in [None, Some(ADMIN)] {
        let mut req = h.req(Method::PUT, "/viewers/edge-a").json(&json!({"streams": {}}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        assert_error(req.send().await.unwrap(), 401).await;
    }
    assert_eq!(h.get_json("/admin/streams/golive").await["viewers"], 5);

    // Edges that stop reporting drop out within the TTL.
    wait_until_async("viewer reports expire", Duration::from_secs(10), || async {
        (h.get_json("/admin/streams/golive").await["viewers"] == 0).then_some(())
    })
    .await;
    let ttl: i64 = h
        .redis
        .cli(&["PTTL", "dionysia:viewers:golive"])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl <= 2000, "Redis forgets the counts too: {ttl}");
}

/// What a webhook receiver got: signature header and body, in order.
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A webhook receiver on a free loopback port, answering `fail_first`
/// requests 500 and the rest 204.
async fn receiver(fail_first: usize) -> (String, Received) {
    let got: Received = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let sig = headers
                    .get("x-dionysia-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let mut v = seen.lock().unwrap();
                v.push((sig, body));
                if v.len() <= fail_first {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), got)
}

/// Checks a delivery's signature as docs/router-api.md tells receivers to.
fn signed_event(sig: &str, body: &str) -> Value {
    let (t, v1) = sig
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .unwrap_or_else(|| panic!("signature header: {sig:?}"));
    let ts: u64 = t.parse().unwrap();
    assert!(ts.abs_diff(now_ms() / 1000) < 60, "timestamp is now: {ts}");
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&hex::decode(v1).unwrap()).expect("valid signature");
    serde_json::from_str(body).unwrap()
}

async fn wait_for(got: &Received, n: usize, what: &str) -> Vec<(String, String)> {
    wait_until_async(what, Duration::from_secs(20), || async {
        let v = got.lock().unwrap().clone();
        (v.len() >= n).then_some(v)
    })
    .await
}

fn hook_flags(url: &str) -> Vec<String> {
    [
        "--webhook-url",
        url,
        "--webhook-secret",
        HOOK_SECRET,
        "--webhook-backoff",
        "200ms",
    ]
    .map(String::from)
    .to_vec()
}

#[tokio::test]
async fn webhooks_announce_live_and_ended_signed() {
    let (url, got) = receiver(0).await;
    let flags = hook_flags(&url);
    let h = Harness::start_with(&flags.iter().map(String::as_str).collect::<Vec<_>>());
    let key = h.create_stream("golive").await;
    let authorize = |session: &'static str| {
        h.agent(Method::POST, "/authorize")
            .json(&json!({"key": key, "origin": "origin-a", "session": session}))
            .send()
    };
    assert_eq!(authorize("s1").await.unwrap().status(), 200);
    let live = wait_for(&got, 1, "stream.live").await;
    let ev = signed_event(&live[0].0, &live[0].1);
    assert_eq!(ev["event"], "stream.live");
    assert_eq!(
        (ev["stream"].as_str(), ev["origin"].as_str()),
        (Some("golive"), Some("origin-a"))
    );
    assert_eq!(ev["session"], "s1");
    assert!(ev["at_ms"].as_u64().unwrap().abs_diff(now_ms()) < 10_000);
    assert_eq!(ev["id"].as_str().unwrap().len(), 32);

    // Renewals of a held claim are not events.
    let renew = h
        .agent(Method::PUT, "/claims/golive")
        .json(&json!({"key": key, "origin": "origin-a", "session": "s1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renew.status(), 200);

    let released = h
        .agent(Method::DELETE, "/claims/golive")
        .json(&json!({"origin": "origin-a", "session": "s1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(released.status(), 204);
    let two = wait_for(&got, 2, "stream.ended on release").await;
    let ev = signed_event(&two[1].0, &two[1].1);
    assert_eq!(
        (ev["event"].as_str(), ev["session"].as_str()),
        (Some("stream.ended"), Some("s1"))
    );
    assert_eq!(got.lock().unwrap().len(), 2, "one event each");

    // A claim that expires unreleased (the origin died) ends by the sweep.
    assert_eq!(authorize("s2").await.unwrap().status(), 200);
    let four = wait_for(&got, 4, "stream.ended on expiry").await;
    let evs: Vec<Value> = four[2..].iter().map(|(s, b)| signed_event(s, b)).collect();
    assert_eq!(
        (evs[0]["event"].as_str(), evs[0]["session"].as_str()),
        (Some("stream.live"), Some("s2"))
    );
    assert_eq!(
        (evs[1]["event"].as_str(), evs[1]["session"].as_str()),
        (Some("stream.ended"), Some("s2"))
    );
    assert_ne!(evs[0]["id"], evs[1]["id"]);

    // Disabling a live stream ends it too.
    assert_eq!(authorize("s3").await.unwrap().status(), 200);
    wait_for(&got, 5, "stream.live s3").await;
    let off = h
        .admin(Method::PATCH, "/admin/streams/golive")
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), 200);
    let six = wait_for(&got, 6, "stream.ended on disable").await;
    let ev = signed_event(&six[5].0, &six[5].1);
    assert_eq!(
        (ev["event"].as_str(), ev["session"].as_str()),
        (Some("stream.ended"), Some("s3"))
    );

    // The receiver may have answered just now: the count follows its answer.
    wait_until_async("deliveries counted", Duration::from_secs(10), || async {
        let m = h.req(Method::GET, "/metrics").send().await.ok()?.text().await.ok()?;
        (m.contains(r#"router_webhook_deliveries_total{event="stream.live",outcome="delivered"} 3"#)
            && m.contains(r#"router_webhook_deliveries_total{event="stream.ended",outcome="delivered"} 3"#))
        .then_some(())
    })
    .await;
    assert_eq!(got.lock().unwrap().len(), 6, "no event twice");
}

#[tokio::test]
async fn webhooks_are_retried_and_never_block_a_publish() {
    let (url, got) = receiver(1).await;
    let mut flags = hook_flags(&url);
    // A second receiver that never answers: deliveries time out, publishes
    // do not wait for them.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    flags.extend(
        [
            "--webhook-url".to_string(),
            format!("http://{}/hook", silent.local_addr().unwrap()),
            "--webhook-timeout".into(),
            "3s".into(),
            "--webhook-attempts".into(),
            "2".into(),
        ]
        .into_iter(),
    );
    let h = Harness::start_with(&flags.iter().map(String::as_str).collect::<Vec<_>>());
    let key = h.create_stream("golive").await;
    let started = std::time::Instant::now();
    let resp = h
        .agent(Method::POST, "/authorize")
        .json(&json!({"key": key, "origin": "origin-a", "session": "s1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "authorize waited for webhooks"
    );

    let two = wait_for(&got, 2, "the retry after a 500").await;
    let (a, b) = (signed_event(&two[0].0, &two[0].1), signed_event(&two[1].0, &two[1].1));
    assert_eq!(a["id"], b["id"], "a retry is the same event");
    assert_eq!(b["event"], "stream.live");
    wait_until_async(
        "metrics count the retry and the give-up",
        Duration::from_secs(20),
        || async {
            let m = h.req(Method::GET, "/metrics").send().await.ok()?.text().await.ok()?;
            (m.contains(r#"router_webhook_deliveries_total{event="stream.live",outcome="retried"} 2"#)
                && m.contains(r#"router_webhook_deliveries_total{event="stream.live",outcome="delivered"} 1"#)
                && m.contains(r#"router_webhook_deliveries_total{event="stream.live",outcome="failed"} 1"#))
            .then_some(())
        },
    )
    .await;
    drop(silent);
}

#[tokio::test]
async fn webhook_queue_overflow_is_dropped_and_counted() {
    // A receiver that never answers, one attempt, a queue of one: a burst
    // of events overflows it; the API keeps answering at once.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", silent.local_addr().unwrap());
    let mut flags = hook_flags(&url);
    flags.extend(
        [
            "--webhook-queue",
            "1",
            "--webhook-attempts",
            "1",
            "--webhook-timeout",
            "30s",
        ]
        .map(String::from),
    );
    let h = Harness::start_with(&flags.iter().map(String::as_str).collect::<Vec<_>>());
    let key = h.create_stream("golive").await;
    let started = std::time::Instant::now();
    // Each authorize + release is a live and an ended event: 80 events,
    // more than the 16 in flight, the one queued and the one waiting for a permit.
    for i in 0..40 {
        let session = format!("s{i}");
        let a = h
            .agent(Method::POST, "/authorize")
            .json(&json!({"key": key, "origin": "origin-a", "session": session}))
            .send()
            .await
            .unwrap();
        assert_eq!(a.status(), 200);
        let r = h
            .agent(Method::DELETE, "/claims/golive")
            .json(&json!({"origin": "origin-a", "session": session}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    let m = h
        .req(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: u64 = m
        .lines()
        .filter(|l| l.starts_with("router_webhook_deliveries_total") && l.contains(r#"outcome="dropped""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(dropped >= 80 - 16 - 2, "dropped {dropped}\n{m}");
    drop(silent);
}

#[tokio::test]
async fn dashboard_is_served_with_a_csp() {
    let h = Harness::start_with(&["--public-edge-url", "http://127.0.0.1:8081/"]);
    let page = h.req(Method::GET, "/dashboard").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    for part in [
        "script-src 'self'",
        "frame-src http://127.0.0.1:8081;",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("app.js") && !html.contains("<script>"),
        "no inline script"
    );
    for (path, ctype) in [
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/app.css", "text/css"),
    ] {
        let r = h.req(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"].to_str().unwrap().starts_with(ctype),
            "{path}"
        );
        assert!(r.headers().contains_key("content-security-policy"));
    }
    let cfg = json_of(h.req(Method::GET, "/dashboard/config.json").send().await.unwrap()).await;
    assert_eq!(cfg["public_edge_url"], "http://127.0.0.1:8081");
    // The page holds no data: everything goes through /admin with the token.
    let js = h
        .req(Method::GET, "/dashboard/app.js")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(js.contains("sessionStorage") && !js.contains("localStorage"));
}
