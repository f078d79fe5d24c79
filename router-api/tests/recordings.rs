//! Recordings in the router API, end to end: the real binary over loopback
//! on a real Redis. Reports from agents, the list operators and sites read,
//! the route edges read, TTLs, deletion with the stream, auth and bounds.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use testkit::wait_until_async;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn report(started_at_ms: u64, duration_s: f64) -> Value {
    json!({
        "host": "127.0.0.1:8080",
        "started_at_ms": started_at_ms,
        "ended_at_ms": started_at_ms + (duration_s * 1000.0) as u64,
        "duration_s": duration_s,
        "renditions": [{"name": "720p", "bandwidth": 3000000, "resolution": "1280x720"}],
    })
}

impl Harness {
    async fn put_recording(&self, origin: &str, name: &str, session: &str, body: &Value) -> reqwest::Response {
        self.agent(Method::PUT, &format!("/origins/{origin}/recordings/{name}/{session}"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self.req(Method::GET, path).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn recordings_are_reported_listed_newest_first_routed_and_withdrawn() {
    let h = Harness::start_with(&["--recording-ttl", "30s"]);
    h.create_stream("golive").await;
    let t0 = now_ms();
    let put = h.put_recording("origin-a", "golive", "s1", &report(t0, 20.0)).await;
    assert_eq!(put.status(), 200);
    let accepted: Value = put.json().await.unwrap();
    assert_eq!(
        accepted["ttl_ms"], 30_000,
        "the answer tells the agent the recording TTL"
    );
    let put = h
        .put_recording("origin-b", "golive", "s2", &report(t0 + 60_000, 12.5))
        .await;
    assert_eq!(put.status(), 200);

    let (status, list) = h.get_json("/streams/golive/recordings").await;
    assert_eq!(status, 200);
    assert_eq!(
        list,
        json!([
            {"session": "s2", "started_at_ms": t0 + 60_000, "ended_at_ms": t0 + 72_500, "duration_s": 12.5,
             "url": "/golive/s2/vod.m3u8"},
            {"session": "s1", "started_at_ms": t0, "ended_at_ms": t0 + 20_000, "duration_s": 20.0,
             "url": "/golive/s1/vod.m3u8"},
        ]),
        "newest first"
    );
    // A stream with none: an empty list, not a 404.
    h.create_stream("quiet").await;
    assert_eq!(h.get_json("/streams/quiet/recordings").await, (200, json!([])));

    // Edges: which origin holds it, with the stream's policy.
    let (status, route) = h.get_json("/recordings/golive/s1").await;
    assert_eq!(status, 200);
    assert_eq!(
        route,
        json!({"name": "golive", "session": "s1", "origin": "origin-a", "host": "127.0.0.1:8080",
               "playback": "public"})
    );
    let resp = h
        .admin(Method::PATCH, "/admin/streams/golive")
        .json(&json!({"playback": "token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, route) = h.get_json("/recordings/golive/s1").await;
    assert_eq!(route["playback"], "token", "tokens apply to recordings too");
    assert_error(h.req(Method::GET, "/recordings/golive/nope").send().await.unwrap(), 404).await;
    assert_error(h.req(Method::GET, "/recordings/nostream/s1").send().await.unwrap(), 404).await;

    // Withdrawn only by the origin that holds it.
    let del = |origin: &'static str| {
        h.agent(Method::DELETE, &format!("/origins/{origin}/recordings/golive/s1"))
            .send()
    };
    assert_error(del("origin-b").await.unwrap(), 404).await;
    assert_eq!(del("origin-a").await.unwrap().status(), 204);
    assert_error(del("origin-a").await.unwrap(), 404).await;
    let (_, list) = h.get_json("/streams/golive/recordings").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["session"], "s2");
    assert_error(h.req(Method::GET, "/recordings/golive/s1").send().await.unwrap(), 404).await;
}

#[tokio::test]
async fn recordings_outlive_the_live_report_and_expire_after_their_own_ttl() {
    let h = Harness::start_with(&["--report-ttl", "1s", "--recording-ttl", "3s"]);
    h.create_stream("golive").await;
    assert_eq!(
        h.report("origin-a", "golive", "127.0.0.1:8080", "s1").await.status(),
        200
    );
    let put = h
        .put_recording("origin-a", "golive", "s0", &report(now_ms(), 5.0))
        .await;
    let reported = Instant::now();
    assert_eq!(put.status(), 200);
    wait_until_async("the live report to expire", Duration::from_secs(5), || async {
        (h.req(Method::GET, "/streams/golive").send().await.unwrap().status() == 404).then_some(())
    })
    .await;
    assert!(
        reported.elapsed() < Duration::from_millis(2500),
        "too slow a machine for this test"
    );
    assert_eq!(
        h.get_json("/recordings/golive/s0").await.0,
        200,
        "the recording outlives the live report"
    );
    wait_until_async("the recording to expire", Duration::from_secs(8), || async {
        let (_, list) = h.get_json("/streams/golive/recordings").await;
        (list == json!([])).then_some(())
    })
    .await;
    let gone_after = reported.elapsed();
    assert!(
        gone_after >= Duration::from_millis(2900),
        "expired too early: {gone_after:?}"
    );
    assert_eq!(h.get_json("/recordings/golive/s0").await.0, 404);
    // Redis drops the data itself too (the hash has a TTL).
    wait_until_async("Redis to drop the recordings hash", Duration::from_secs(5), || async {
        h.redis
            .cli(&["EXISTS", "dionysia:recordings:golive"])
            .trim()
            .eq("0")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleting_a_stream_deletes_its_recordings_and_a_new_stream_does_not_inherit_them() {
    let h = Harness::start_with(&["--redis-prefix", "{dio}:"]);
    h.create_stream("golive").await;
    let old = report(now_ms(), 0.3);
    let old_end = old["ended_at_ms"].as_u64().unwrap();
    assert_eq!(h.put_recording("origin-a", "golive", "s1", &old).await.status(), 200);
    assert_eq!(h.redis.cli(&["EXISTS", "{dio}:recordings:golive"]).trim(), "1");
    let resp = h.admin(Method::DELETE, "/admin/streams/golive").send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(h.redis.cli(&["EXISTS", "{dio}:recordings:golive"]).trim(), "0");
    assert_eq!(h.get_json("/streams/golive/recordings").await, (200, json!([])));
    // The agent's next heartbeat is refused: the stream is gone.
    assert_error(h.put_recording("origin-a", "golive", "s1", &old).await, 404).await;
    // A new stream of the same name, created after the recording ended,
    // does not get it back.
    while now_ms() <= old_end {
        tokio::time::sleep(Duration::from_millis(50)).await; // the clock passing the recording's end
    }
    h.create_stream("golive").await;
    let msg = assert_error(h.put_recording("origin-a", "golive", "s1", &old).await, 409).await;
    assert!(msg.contains("before"), "{msg}");
    assert_eq!(h.get_json("/streams/golive/recordings").await, (200, json!([])));
    // Its own recordings are accepted.
    let new = report(now_ms(), 4.0);
    assert_eq!(h.put_recording("origin-a", "golive", "s2", &new).await.status(), 200);
}

#[tokio::test]
async fn recording_reports_need_the_agent_token_and_valid_bodies() {
    let h = Harness::start();
    h.create_stream("golive").await;
    let body = report(now_ms(), 3.0);
    let path = "/origins/origin-a/recordings/golive/s1";
    assert_error(h.req(Method::PUT, path).json(&body).send().await.unwrap(), 401).await;
    assert_error(h.admin(Method::PUT, path).json(&body).send().await.unwrap(), 401).await;
    assert_error(h.req(Method::DELETE, path).send().await.unwrap(), 401).await;
    assert_eq!(h.get_json("/streams/golive/recordings").await, (200, json!([])));

    let t = now_ms();
    let mut bad = vec![
        json!({"host": "127.0.0.1:8080", "started_at_ms": t, "ended_at_ms": t - 1, "duration_s": 1.0}),
        json!({"host": "127.0.0.1:8080", "started_at_ms": t, "ended_at_ms": t, "duration_s": -1.0}),
        json!({"host": "127.0.0.1:8080", "started_at_ms": t, "ended_at_ms": t, "duration_s": 1e12}),
        json!({"host": "no port", "started_at_ms": t, "ended_at_ms": t, "duration_s": 1.0}),
        json!({"host": "127.0.0.1:8080", "started_at_ms": t, "ended_at_ms": t, "duration_s": 1.0, "extra": 1}),
        json!({"host": "127.0.0.1:8080", "started_at_ms": t, "ended_at_ms": t, "duration_s": 1.0,
               "renditions": [{"name": "../x"}]}),
        json!({"host": "127.0.0.1:8080", "started_at_ms": t, "ended_at_ms": t, "duration_s": 1.0,
               "renditions": [{"name": "a", "codecs": "x".repeat(200)}]}),
    ];
    bad.push(
        json!({"host": "127.0.0.1:8080", "started_at_ms": t, "ended_at_ms": t, "duration_s": 1.0,
        "renditions": (0..40).map(|i| json!({"name": format!("r{i}")})).collect::<Vec<_>>()}),
    );
    for b in &bad {
        let resp = h.agent(Method::PUT, path).json(b).send().await.unwrap();
        let status = resp.status().as_u16();
        assert!(status == 400 || status == 422, "{b}: {status}");
    }
    for p in [
        "/origins/origin-a/recordings/golive/s.1",
        "/origins/Bad/recordings/golive/s1",
        "/origins/origin-a/recordings/Bad/s1",
    ] {
        assert_error(h.agent(Method::PUT, p).json(&body).send().await.unwrap(), 400).await;
    }
    assert_error(h.req(Method::GET, "/recordings/golive/s.1").send().await.unwrap(), 400).await;
    assert_error(h.req(Method::GET, "/streams/BAD/recordings").send().await.unwrap(), 400).await;
    // Unknown streams: the router keeps no recordings of streams it does not manage.
    assert_error(h.put_recording("origin-a", "nosuch", "s1", &body).await, 404).await;
    assert_eq!(h.get_json("/streams/golive/recordings").await, (200, json!([])));
}

#[tokio::test]
async fn a_stream_holds_at_most_a_thousand_recordings() {
    let h = Harness::start_with(&["--recording-ttl", "20s"]);
    h.create_stream("golive").await;
    let t = now_ms();
    let started = Instant::now();
    // 16 workers, 1000 reports.
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..16u64 {
        let (client, base) = (h.client.clone(), h.url(""));
        workers.spawn(async move {
            for i in (w..1000).step_by(16) {
                let resp = client
                    .put(format!("{base}/origins/origin-a/recordings/golive/s{i}"))
                    .bearer_auth(AGENT)
                    .json(&report(t + i, 1.0))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "too slow a machine for this test"
    );
    let msg = assert_error(
        h.put_recording("origin-a", "golive", "s1000", &report(t, 1.0)).await,
        409,
    )
    .await;
    assert!(msg.contains("1000"), "{msg}");
    // A heartbeat of one already listed still goes through.
    assert_eq!(
        h.put_recording("origin-a", "golive", "s7", &report(t + 7, 1.0))
            .await
            .status(),
        200
    );
    let (_, list) = h.get_json("/streams/golive/recordings").await;
    assert_eq!(list.as_array().unwrap().len(), 1000);
    assert_eq!(list[0]["session"], "s999", "newest first");
}
