//! The router API end to end: the real binary over loopback on a real Redis.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use testkit::wait_until_async;

#[tokio::test]
async fn stream_management_happy_path() {
    let h = Harness::start();
    let resp = h
        .admin(Method::POST, "/admin/streams")
        .json(&json!({"name": "golive", "profile": "passthrough"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.len() >= 32, "key has at least 128 bits: {key}");
    assert_eq!(created["profile"], "passthrough");

    // A second stream without a profile gets the default one.
    h.create_stream("other").await;

    let list: Value = h
        .admin(Method::GET, "/admin/streams")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["golive", "other"]);
    assert_eq!(list[0]["live"], false);
    assert_eq!(list[1]["profile"], "default");
    assert!(list[0].get("key").is_none(), "keys are never listed");

    // Live status follows discovery reports.
    assert_eq!(
        h.report("origin-a", "golive", "127.0.0.1:8080", "s1").await.status(),
        200
    );
    let one: Value = h
        .admin(Method::GET, "/admin/streams/golive")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["live"], true);
    assert_eq!(one["origins"][0]["origin"], "origin-a");

    // Same name again: conflict.
    let dup = h
        .admin(Method::POST, "/admin/streams")
        .json(&json!({"name": "golive"}))
        .send()
        .await
        .unwrap();
    assert_error(dup, 409).await;

    // Rotation: the old key stops working, the new one works.
    let rotated: Value = h
        .admin(Method::POST, "/admin/streams/golive/key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_key = rotated["key"].as_str().unwrap();
    assert_ne!(new_key, key);
    let auth = |k: String| {
        h.agent(Method::POST, "/authorize")
            .json(&json!({"key": k, "origin": "origin-a", "session": "s1"}))
            .send()
    };
    assert_error(auth(key.clone()).await.unwrap(), 403).await;
    assert_eq!(auth(new_key.to_string()).await.unwrap().status(), 200);

    // PATCH cannot create a stream.
    let ghost = h
        .admin(Method::PATCH, "/admin/streams/ghost")
        .json(&json!({"enabled": true}))
        .send();
    assert_error(ghost.await.unwrap(), 404).await;
    assert_eq!(h.redis.cli(&["EXISTS", "dionysia:stream:ghost"]).trim(), "0");

    // Delete: gone, and its key no longer authorizes.
    let del = h.admin(Method::DELETE, "/admin/streams/golive").send().await.unwrap();
    assert_eq!(del.status(), 204);
    assert_error(h.admin(Method::GET, "/admin/streams/golive").send().await.unwrap(), 404).await;
    assert_error(
        h.admin(Method::DELETE, "/admin/streams/golive").send().await.unwrap(),
        404,
    )
    .await;
    assert_error(auth(new_key.to_string()).await.unwrap(), 403).await;
    assert_error(
        h.admin(Method::POST, "/admin/streams/golive/key").send().await.unwrap(),
        404,
    )
    .await;
}

#[tokio::test]
async fn keys_are_stored_hashed() {
    let h = Harness::start();
    let key = h.create_stream("golive").await;
    let keys = h.redis.cli(&["--scan"]);
    let mut dump = keys.clone();
    for k in keys.lines() {
        dump.push_str(&h.redis.cli(&["--no-raw", "DUMP", k]));
        dump.push_str(&h.redis.cli(&["HGETALL", k]));
        dump.push_str(&h.redis.cli(&["GET", k]));
    }
    assert!(keys.lines().count() >= 3, "stream data is in Redis: {keys}");
    assert!(!dump.contains(&key), "the stream key appears in Redis:\n{dump}");
}

#[tokio::test]
async fn authorize_answers_name_and_profile_or_403() {
    let h = Harness::start();
    let key = h.create_stream("golive").await;
    let auth = |body: Value| h.agent(Method::POST, "/authorize").json(&body).send();

    let ok: Value = auth(json!({"key": key, "origin": "origin-a", "session": "s1"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ok,
        json!({"name": "golive", "profile": {"name": "default"}, "record": false})
    );

    // Unknown, empty, huge and near-miss keys all get the same 403.
    let mut near = key.clone();
    near.replace_range(0..1, if key.starts_with('0') { "1" } else { "0" });
    for bad in ["nope".to_string(), String::new(), "k".repeat(10_000), near] {
        let msg = assert_error(
            auth(json!({"key": bad, "origin": "origin-a", "session": "s1"}))
                .await
                .unwrap(),
            403,
        )
        .await;
        assert_eq!(msg, "stream key refused");
    }

    // Disabled stream: its key is refused the same way, re-enabled it works.
    let patched = h
        .admin(Method::PATCH, "/admin/streams/golive")
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    assert_error(
        auth(json!({"key": key, "origin": "origin-a", "session": "s1"}))
            .await
            .unwrap(),
        403,
    )
    .await;
    h.admin(Method::PATCH, "/admin/streams/golive")
        .json(&json!({"enabled": true, "profile": "hd"}))
        .send()
        .await
        .unwrap();
    let ok: Value = auth(json!({"key": key, "origin": "origin-a", "session": "s1"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["profile"]["name"], "hd");

    // The agent token is required; the admin token is not a substitute.
    let no_token = h
        .req(Method::POST, "/authorize")
        .json(&json!({"key": key, "origin": "o", "session": "s1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.headers()["www-authenticate"], "Bearer");
    assert_error(no_token, 401).await;
    let admin_token = h
        .admin(Method::POST, "/authorize")
        .json(&json!({"key": key, "origin": "o", "session": "s1"}))
        .send()
        .await
        .unwrap();
    assert_error(admin_token, 401).await;
    // A bad origin id is the caller's mistake: 400.
    assert_error(
        auth(json!({"key": key, "origin": "../x", "session": "s1"}))
            .await
            .unwrap(),
        400,
    )
    .await;
}

#[tokio::test]
async fn claims_keep_a_stream_on_one_origin_and_revocation_ends_them() {
    let h = Harness::start();
    let key = h.create_stream("golive").await;
    let auth = |origin: &str, session: &str| {
        h.agent(Method::POST, "/authorize")
            .json(&json!({"key": key, "origin": origin, "session": session}))
            .send()
    };
    let renew = |k: &str, origin: &str, session: &str| {
        h.agent(Method::PUT, "/claims/golive")
            .json(&json!({"key": k, "origin": origin, "session": session}))
            .send()
    };
    let release = |origin: &str, session: &str| {
        h.agent(Method::DELETE, "/claims/golive")
            .json(&json!({"origin": origin, "session": session}))
            .send()
    };

    // origin-a takes the claim; origin-b is refused while a holds it.
    assert_eq!(auth("origin-a", "s1").await.unwrap().status(), 200);
    assert_eq!(h.redis.cli(&["GET", "dionysia:claim:golive"]).trim(), "origin-a s1");
    let ttl: i64 = h.redis.cli(&["PTTL", "dionysia:claim:golive"]).trim().parse().unwrap();
    assert!((1..=6000).contains(&ttl), "the claim expires: {ttl}");
    let msg = assert_error(auth("origin-b", "s2").await.unwrap(), 409).await;
    assert!(msg.contains("another origin"), "{msg}");
    let msg = assert_error(renew(&key, "origin-b", "s2").await.unwrap(), 409).await;
    assert!(msg.contains("another origin"), "{msg}");
    // The holder renews; the same origin may authorize again (a restart, or
    // a duplicate publish it refuses), but that keeps the claim's session, so
    // the live publish can still release it; the new session takes the claim
    // with its first renewal (a restarted origin's new publish).
    let renewed: Value = renew(&key, "origin-a", "s1").await.unwrap().json().await.unwrap();
    assert_eq!(renewed, json!({"ttl_ms": 6000}));
    assert_eq!(auth("origin-a", "s3").await.unwrap().status(), 200);
    assert_eq!(h.redis.cli(&["GET", "dionysia:claim:golive"]).trim(), "origin-a s1");
    // A release by someone who does not hold it changes nothing.
    assert_eq!(release("origin-a", "s3").await.unwrap().status(), 204);
    assert_eq!(release("origin-b", "s2").await.unwrap().status(), 204);
    assert_error(auth("origin-b", "s2").await.unwrap(), 409).await;
    assert_eq!(renew(&key, "origin-a", "s3").await.unwrap().status(), 200);
    assert_eq!(h.redis.cli(&["GET", "dionysia:claim:golive"]).trim(), "origin-a s3");
    // Released: free at once for another origin.
    assert_eq!(release("origin-a", "s3").await.unwrap().status(), 204);
    assert_eq!(h.redis.cli(&["EXISTS", "dionysia:claim:golive"]).trim(), "0");
    assert_eq!(auth("origin-b", "s2").await.unwrap().status(), 200);
    // An expired claim is taken again by a renewal.
    h.redis.cli(&["DEL", "dionysia:claim:golive"]);
    assert_eq!(renew(&key, "origin-b", "s2").await.unwrap().status(), 200);

    // Revocation: a wrong key, a disabled stream, a rotated key, a deleted
    // stream all refuse the renewal with 403 and drop claim and routes.
    assert_error(renew("not-the-key", "origin-b", "s2").await.unwrap(), 403).await;
    assert_eq!(
        h.report("origin-b", "golive", "127.0.0.1:8080", "s2").await.status(),
        200
    );
    assert_eq!(
        h.req(Method::GET, "/streams/golive").send().await.unwrap().status(),
        200
    );
    h.admin(Method::PATCH, "/admin/streams/golive")
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_error(renew(&key, "origin-b", "s2").await.unwrap(), 403).await;
    assert_error(h.req(Method::GET, "/streams/golive").send().await.unwrap(), 404).await;
    assert_eq!(h.redis.cli(&["EXISTS", "dionysia:claim:golive"]).trim(), "0");
    // A disabled stream's key is refused, and a late heartbeat from its
    // origin's agent cannot bring the route back.
    assert_error(auth("origin-b", "s2").await.unwrap(), 403).await;
    assert_eq!(
        h.report("origin-b", "golive", "127.0.0.1:8080", "s2").await.status(),
        409
    );
    assert_error(h.req(Method::GET, "/streams/golive").send().await.unwrap(), 404).await;
    h.admin(Method::PATCH, "/admin/streams/golive")
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(renew(&key, "origin-b", "s2").await.unwrap().status(), 200);
    let rotated: Value = h
        .admin(Method::POST, "/admin/streams/golive/key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_key = rotated["key"].as_str().unwrap().to_string();
    assert_error(renew(&key, "origin-b", "s2").await.unwrap(), 403).await;
    assert_eq!(h.redis.cli(&["EXISTS", "dionysia:claim:golive"]).trim(), "0");
    assert_eq!(renew(&new_key, "origin-b", "s2").await.unwrap().status(), 200);
    assert_eq!(
        h.report("origin-b", "golive", "127.0.0.1:8080", "s2").await.status(),
        200
    );
    assert_eq!(
        h.admin(Method::DELETE, "/admin/streams/golive")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_error(renew(&new_key, "origin-b", "s2").await.unwrap(), 403).await;
    assert_error(h.req(Method::GET, "/streams/golive").send().await.unwrap(), 404).await;
    assert_eq!(h.redis.cli(&["EXISTS", "dionysia:claim:golive"]).trim(), "0");

    // Bad names and sessions are the caller's mistake; the token is required.
    let bad = h
        .agent(Method::PUT, "/claims/Not_A_Name")
        .json(&json!({"key": new_key, "origin": "origin-b", "session": "s2"}))
        .send();
    assert_error(bad.await.unwrap(), 400).await;
    assert_error(
        h.agent(Method::PUT, "/claims/golive")
            .json(&json!({"key": new_key, "origin": "origin-b", "session": "../x"}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_error(
        h.req(Method::DELETE, "/claims/golive")
            .json(&json!({"origin": "origin-b", "session": "s2"}))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
}

#[tokio::test]
async fn reports_make_routes_and_delete_ends_them() {
    let h = Harness::start();
    assert_error(h.req(Method::GET, "/streams/golive").send().await.unwrap(), 404).await;

    let put = h.report("origin-a", "golive", "127.0.0.1:8080", "s1").await;
    assert_eq!(put.status(), 200);
    let accepted: Value = put.json().await.unwrap();
    assert_eq!(accepted["ttl_ms"], 15_000);

    let route: Value = h
        .req(Method::GET, "/streams/golive")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(route["name"], "golive");
    assert_eq!(route["host"], "127.0.0.1:8080");
    assert_eq!(route["manifest"], "golive/index.m3u8");
    let o = &route["origins"][0];
    assert_eq!(
        (o["origin"].as_str(), o["session"].as_str()),
        (Some("origin-a"), Some("s1"))
    );
    assert_eq!(o["renditions"][0]["resolution"], "1280x720");
    assert!(o["age_ms"].as_u64().unwrap() < 5_000);

    let all: Value = h
        .req(Method::GET, "/streams")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(all[0]["name"], "golive");

    let del = h
        .agent(Method::DELETE, "/origins/origin-a/streams/golive")
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert_error(h.req(Method::GET, "/streams/golive").send().await.unwrap(), 404).await;
    let all: Value = h
        .req(Method::GET, "/streams")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all, json!([]));
    assert_error(
        h.agent(Method::DELETE, "/origins/origin-a/streams/golive")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

#[tokio::test]
async fn session_age_survives_heartbeats_and_resets_on_new_session() {
    let h = Harness::start();
    h.report("origin-a", "golive", "127.0.0.1:8080", "s1").await;
    let age = |h: &Harness| {
        let req = h.req(Method::GET, "/streams/golive").send();
        async move {
            let v: Value = req.await.unwrap().json().await.unwrap();
            v["origins"][0]["age_ms"].as_u64().unwrap()
        }
    };
    // Wait (polling) until the session is visibly older than 300 ms.
    wait_until_async("session age to grow", Duration::from_secs(5), || async {
        (age(&h).await >= 300).then_some(())
    })
    .await;
    h.report("origin-a", "golive", "127.0.0.1:8080", "s1").await;
    assert!(age(&h).await >= 300, "a heartbeat keeps the session's age");
    h.report("origin-a", "golive", "127.0.0.1:8080", "s2").await;
    assert!(age(&h).await < 300, "a new session starts at age 0");
}

#[tokio::test]
async fn reports_expire_after_their_ttl() {
    let h = Harness::start_with(&["--report-ttl", "1s"]);
    let put = h.report("origin-a", "golive", "127.0.0.1:8080", "s1").await;
    let reported = Instant::now();
    assert_eq!(put.status(), 200);
    assert_eq!(
        h.req(Method::GET, "/streams/golive").send().await.unwrap().status(),
        200
    );
    wait_until_async("the report to expire", Duration::from_secs(5), || async {
        let s = h.req(Method::GET, "/streams/golive").send().await.unwrap().status();
        (s == 404).then_some(())
    })
    .await;
    let gone_after = reported.elapsed();
    assert!(
        gone_after >= Duration::from_millis(900),
        "expired too early: {gone_after:?}"
    );
    let all: Value = h
        .req(Method::GET, "/streams")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all, json!([]));
    // Redis itself forgets the data too (the hash has a TTL).
    wait_until_async("Redis to drop the routes hash", Duration::from_secs(5), || async {
        h.redis
            .cli(&["EXISTS", "dionysia:routes:golive"])
            .trim()
            .eq("0")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn two_origins_hold_one_stream() {
    let h = Harness::start();
    h.report("origin-a", "golive", "10.0.0.1:8080", "sa").await;
    // b reports a newer session a little later: it becomes preferred.
    wait_until_async("a millisecond to pass", Duration::from_secs(1), || async {
        let v: Value = h
            .req(Method::GET, "/streams/golive")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (v["origins"][0]["age_ms"].as_u64().unwrap() > 0).then_some(())
    })
    .await;
    h.report("origin-b", "golive", "10.0.0.2:8080", "sb").await;
    let route: Value = h
        .req(Method::GET, "/streams/golive")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let origins: Vec<(&str, &str)> = route["origins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["origin"].as_str().unwrap(), o["session"].as_str().unwrap()))
        .collect();
    assert_eq!(origins, [("origin-b", "sb"), ("origin-a", "sa")]);
    assert_eq!(route["host"], "10.0.0.2:8080");

    // b withdraws: a is still live and becomes preferred.
    h.agent(Method::DELETE, "/origins/origin-b/streams/golive")
        .send()
        .await
        .unwrap();
    let route: Value = h
        .req(Method::GET, "/streams/golive")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(route["host"], "10.0.0.1:8080");
    assert_eq!(route["origins"].as_array().unwrap().len(), 1);
    let all: Value = h
        .req(Method::GET, "/streams")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all[0]["name"], "golive");
}

#[tokio::test]
async fn bad_input_gets_json_4xx() {
    let h = Harness::start();
    let key = h.create_stream("golive").await;
    let _ = key;

    // Stream names outside [a-z0-9][a-z0-9_-]{0,63}, raw and encoded.
    for bad in ["Golive", "-x", "a.b", "%2e%2e", "..%2fetc", "a%00b", &"a".repeat(65)] {
        let create = h
            .admin(Method::POST, "/admin/streams")
            .json(&json!({"name": bad}))
            .send()
            .await
            .unwrap();
        assert_error(create, 400).await;
        // URL parsers fold `%2e%2e` into `..` and resolve it, so that one
        // never reaches `/streams/...`: a 404 from the fallback is right then.
        let get = h.req(Method::GET, &format!("/streams/{bad}")).send().await.unwrap();
        let expect = if bad == "%2e%2e" { 404 } else { 400 };
        assert_error(get, expect).await;
    }
    let create = h
        .admin(Method::POST, "/admin/streams")
        .json(&json!({"name": "ok", "profile": "Bad Profile"}))
        .send();
    assert_error(create.await.unwrap(), 400).await;
    // Edges serve their player page under /watch/: no stream may be named so.
    let reserved = h
        .admin(Method::POST, "/admin/streams")
        .json(&json!({"name": "watch"}))
        .send();
    assert_error(reserved.await.unwrap(), 400).await;

    // Bodies: too large, not JSON, wrong types, unknown fields, wrong content type.
    let huge = json!({"name": "x".repeat(100_000)});
    let too_large = h
        .oneshot(Method::POST, "/admin/streams")
        .bearer_auth(ADMIN)
        .json(&huge)
        .send();
    let too_large = too_large.await.unwrap();
    assert_error(too_large, 413).await;
    let not_json = h
        .admin(Method::POST, "/admin/streams")
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_error(not_json, 400).await;
    let wrong_type = h
        .admin(Method::POST, "/admin/streams")
        .json(&json!({"name": 7}))
        .send()
        .await
        .unwrap();
    assert_error(wrong_type, 422).await;
    let unknown = h
        .admin(Method::POST, "/admin/streams")
        .json(&json!({"name": "a", "x": 1}))
        .send()
        .await
        .unwrap();
    assert_error(unknown, 422).await;
    let no_ctype = h
        .admin(Method::POST, "/admin/streams")
        .body(r#"{"name":"a"}"#)
        .send()
        .await
        .unwrap();
    assert_error(no_ctype, 415).await;

    // Tokens: missing, wrong, the other role's.
    assert_error(h.req(Method::GET, "/admin/streams").send().await.unwrap(), 401).await;
    let wrong = h
        .req(Method::GET, "/admin/streams")
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_error(wrong, 401).await;
    assert_error(h.agent(Method::GET, "/admin/streams").send().await.unwrap(), 401).await;
    let basic = h
        .req(Method::GET, "/admin/streams")
        .basic_auth("admin", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_error(basic, 401).await;
    let report_as_admin = h
        .admin(Method::PUT, "/origins/origin-a/streams/golive")
        .json(&json!({"host": "h:1", "manifest": "golive/index.m3u8", "session": "s"}))
        .send()
        .await
        .unwrap();
    assert_error(report_as_admin, 401).await;

    // Reports with bad fields.
    for body in [
        json!({"host": "nohost", "manifest": "golive/index.m3u8", "session": "s"}),
        json!({"host": "h:99999", "manifest": "golive/index.m3u8", "session": "s"}),
        json!({"host": "h:80", "manifest": "../etc/passwd", "session": "s"}),
        json!({"host": "h:80", "manifest": "/abs.m3u8", "session": "s"}),
        json!({"host": "h:80", "manifest": "golive/index.m3u8", "session": "bad/session"}),
        json!({"host": "h:80", "manifest": "golive/index.m3u8", "session": "s", "renditions": [{"name": "../x"}]}),
    ] {
        let put = h
            .agent(Method::PUT, "/origins/origin-a/streams/golive")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(put, 400).await;
    }
    let bad_origin = h
        .agent(Method::PUT, "/origins/Origin!/streams/golive")
        .json(&json!({"host": "h:80", "manifest": "golive/index.m3u8", "session": "s"}))
        .send()
        .await
        .unwrap();
    assert_error(bad_origin, 400).await;

    // Unknown routes and methods.
    assert_error(h.req(Method::GET, "/nope").send().await.unwrap(), 404).await;
    assert_error(h.req(Method::DELETE, "/streams/golive").send().await.unwrap(), 405).await;
    assert_error(h.admin(Method::PUT, "/admin/streams").send().await.unwrap(), 405).await;

    // A huge header is refused, and the server keeps serving.
    let big = h
        .oneshot(Method::GET, "/streams/golive")
        .header("x-big", "a".repeat(200_000))
        .send()
        .await
        .unwrap();
    assert_error(big, 431).await;
    // Past hyper's own buffer the connection is refused outright (431 or closed).
    if let Ok(resp) = h
        .req(Method::GET, "/healthz")
        .header("x-big", "a".repeat(1_000_000))
        .send()
        .await
    {
        assert_eq!(resp.status(), 431);
    }
    assert_eq!(h.req(Method::GET, "/healthz").send().await.unwrap().status(), 200);

    // Nothing above was stored.
    let list: Value = h
        .admin(Method::GET, "/admin/streams")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_error(h.req(Method::GET, "/streams/golive").send().await.unwrap(), 404).await;
}

#[tokio::test]
async fn redis_outage_gives_503_and_recovers() {
    let mut h = Harness::start();
    let key = h.create_stream("golive").await;
    h.report("origin-a", "golive", "127.0.0.1:8080", "s1").await;

    h.redis.stop();
    for (method, path, admin) in [
        (Method::GET, "/streams/golive", false),
        (Method::GET, "/streams", false),
        (Method::GET, "/readyz", false),
        (Method::GET, "/admin/streams", true),
    ] {
        let req = if admin {
            h.admin(method, path)
        } else {
            h.req(method, path)
        };
        let started = Instant::now();
        let resp = req.send().await.unwrap();
        assert_eq!(
            resp.headers().get("retry-after").map(|v| v.to_str().unwrap()),
            Some("1")
        );
        assert_error(resp, 503).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path} took {:?}",
            started.elapsed()
        );
    }
    let auth = h
        .agent(Method::POST, "/authorize")
        .json(&json!({"key": key, "origin": "origin-a", "session": "s1"}))
        .send();
    assert_error(auth.await.unwrap(), 503).await;
    assert_eq!(h.req(Method::GET, "/healthz").send().await.unwrap().status(), 200);
    assert!(h.router.is_running(), "router-api survives Redis going away");

    // Redis comes back (empty: no persistence), the API recovers by itself.
    h.redis.restart();
    wait_until_async("router-api to be ready again", Duration::from_secs(10), || async {
        let s = h.req(Method::GET, "/readyz").send().await.ok()?.status();
        (s == 200).then_some(())
    })
    .await;
    h.create_stream("again").await;
    assert_eq!(
        h.report("origin-a", "again", "127.0.0.1:8080", "s2").await.status(),
        200
    );
    assert_eq!(h.req(Method::GET, "/streams/again").send().await.unwrap().status(), 200);

    let metrics = h
        .req(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let errors: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("router_redis_errors_total "))
        .expect("redis error counter")
        .parse()
        .unwrap();
    assert!(errors >= 4.0, "Redis errors counted: {errors}");
}

#[tokio::test]
async fn router_starts_while_redis_is_down() {
    // Point at a port with no Redis; the process must serve 503, not exit.
    let addr = testkit::free_addr();
    let dead = format!("redis://127.0.0.1:{}", testkit::free_port());
    let mut router = start_router(addr, &dead, &[]);
    let resp = reqwest::get(format!("http://{addr}/streams/golive")).await.unwrap();
    assert_error(resp, 503).await;
    assert!(router.is_running());
}

#[tokio::test]
async fn openapi_and_metrics() {
    let h = Harness::start();
    let doc: Value = h
        .req(Method::GET, "/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/admin/streams",
        "/admin/streams/{name}",
        "/admin/streams/{name}/key",
        "/authorize",
        "/claims/{name}",
        "/origins/{origin}/streams/{name}",
        "/streams",
        "/streams/{name}",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the OpenAPI document");
    }
    assert!(doc["components"]["securitySchemes"]["admin"].is_object());

    h.req(Method::GET, "/streams/nothing").send().await.unwrap();
    h.req(Method::GET, "/streams/nothing").send().await.unwrap();
    let m = h
        .req(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(r#"router_http_requests_total{method="GET",route="/streams/{name}",status="404"} 2"#),
        "{m}"
    );
    assert!(m.contains("router_http_request_duration_seconds_bucket"), "{m}");
}

#[tokio::test]
async fn refuses_weak_tokens() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_router-api"))
        .env("ROUTER_ADMIN_TOKEN", "short")
        .env("ROUTER_AGENT_TOKEN", AGENT)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));
    testkit::assert_help_documents(
        env!("CARGO_BIN_EXE_router-api"),
        &[
            "--listen",
            "--redis",
            "--report-ttl",
            "ROUTER_ADMIN_TOKEN",
            "ROUTER_AGENT_TOKEN",
            "--redis-timeout",
        ],
    );
}

/// docs/openapi.json is the served document, byte for byte (pretty-printed).
/// Regenerate it with `UPDATE_DOCS=1 cargo test -p router-api openapi_doc`.
#[tokio::test]
async fn openapi_doc_in_docs_is_current() {
    let h = Harness::start();
    let served: Value = h
        .req(Method::GET, "/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pretty = serde_json::to_string_pretty(&served).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &pretty).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == pretty,
        "docs/openapi.json is out of date: run UPDATE_DOCS=1 cargo test -p router-api openapi_doc"
    );
}
