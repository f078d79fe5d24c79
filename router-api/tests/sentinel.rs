//! The router API on a replicated Redis: a real primary, replica and
//! Sentinel on loopback (failover followed without a restart), and a real
//! Redis Cluster node (the key layout and scripts are Cluster-safe).

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::{Process, free_addr, free_port, http_get, wait_until, wait_until_async};

fn cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn redis_server(name: &str, port: u16, extra: &[&str]) -> Process {
    let port_s = port.to_string();
    let mut args = vec![
        "--port",
        &port_s,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    args.extend_from_slice(extra);
    let p = Process::spawn(name, "redis-server", args, &[]);
    wait_until(&format!("{name} to answer PING"), Duration::from_secs(10), || {
        cli(port, &["PING"]).trim() == "PONG"
    });
    p
}

fn start_router_with(args: &[&str]) -> (Process, std::net::SocketAddr) {
    let addr = free_addr();
    let listen = addr.to_string();
    let mut all = vec!["--listen", &listen, "--redis-timeout", "300ms"];
    all.extend_from_slice(args);
    let p = Process::spawn(
        "router-api",
        env!("CARGO_BIN_EXE_router-api"),
        all,
        &[("ROUTER_ADMIN_TOKEN", ADMIN), ("ROUTER_AGENT_TOKEN", AGENT)],
    );
    wait_until("router-api /readyz", Duration::from_secs(15), || {
        matches!(http_get(addr, "/readyz"), Some((200, _)))
    });
    (p, addr)
}

async fn create(client: &reqwest::Client, addr: std::net::SocketAddr, name: &str) -> Option<u16> {
    let resp = client
        .post(format!("http://{addr}/admin/streams"))
        .bearer_auth(ADMIN)
        .timeout(Duration::from_secs(3))
        .json(&json!({"name": name}))
        .send()
        .await
        .ok()?;
    Some(resp.status().as_u16())
}

#[tokio::test]
async fn the_router_follows_a_sentinel_failover_without_a_restart() {
    let (p1, p2, ps) = (free_port(), free_port(), free_port());
    let mut primary = redis_server("redis-primary", p1, &[]);
    let p1_s = p1.to_string();
    let _replica = redis_server("redis-replica", p2, &["--replicaof", "127.0.0.1", &p1_s]);
    wait_until("the replica in sync", Duration::from_secs(15), || {
        cli(p2, &["INFO", "replication"]).contains("master_link_status:up")
    });
    // Sentinel rewrites its configuration file, so it gets one of its own.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {ps}\nbind 127.0.0.1\nsentinel monitor dmaster 127.0.0.1 {p1} 1\n\
             sentinel down-after-milliseconds dmaster 1000\nsentinel failover-timeout dmaster 5000\n"
        ),
    )
    .unwrap();
    let _sentinel = Process::spawn(
        "redis-sentinel",
        "redis-server",
        [Path::new(&conf).as_os_str(), "--sentinel".as_ref()],
        &[],
    );
    wait_until("Sentinel to know the replica", Duration::from_secs(20), || {
        cli(ps, &["SENTINEL", "replicas", "dmaster"]).contains(&p2.to_string())
    });

    let sentinels = format!("127.0.0.1:{},127.0.0.1:{ps}", free_port());
    let (mut router, addr) = start_router_with(&[
        "--redis-sentinel",
        &sentinels,
        "--redis-master",
        "dmaster",
        "--redis-prefix",
        "{dionysia}:",
    ]);
    let client = reqwest::Client::new();
    assert_eq!(create(&client, addr, "before").await, Some(201), "{}", router.log());
    assert_eq!(cli(p1, &["EXISTS", "{dionysia}:stream:before"]).trim(), "1");
    wait_until("the stream replicated", Duration::from_secs(10), || {
        cli(p2, &["EXISTS", "{dionysia}:stream:before"]).trim() == "1"
    });

    // The primary dies; Sentinel promotes the replica; the same router
    // process writes again, to the new primary, within a bound.
    primary.kill();
    let killed = Instant::now();
    let mut attempt = 0;
    let status = wait_until_async("a write to succeed after the failover", Duration::from_secs(30), || {
        attempt += 1;
        let name = format!("after{attempt}");
        let client = client.clone();
        async move { (create(&client, addr, &name).await == Some(201)).then_some(name) }
    })
    .await;
    let took = killed.elapsed();
    assert!(router.is_running(), "the router stayed up");
    assert!(cli(p2, &["ROLE"]).starts_with("master"), "the replica was promoted");
    assert_eq!(
        cli(p2, &["EXISTS", &format!("{{dionysia}}:stream:{status}")]).trim(),
        "1"
    );
    assert!(took < Duration::from_secs(20), "writes resumed after {took:?}");
    eprintln!("writes resumed {took:?} after the primary was killed");
    // What was written before the failover is still there, and reads work.
    let resp = client
        .get(format!("http://{addr}/admin/streams/before"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(router.log().contains("asks Sentinel"), "{}", router.log());
}

/// A single-node Redis Cluster refuses a script or `MULTI` whose keys are in
/// different slots (`CROSSSLOT`): with a hash-tagged prefix every operation
/// of the router works on it; without one, multi-key writes fail.
#[tokio::test]
async fn every_operation_works_on_redis_cluster_with_a_hash_tagged_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = dir.path().join("nodes.conf");
    let port = free_port();
    let _node = redis_server(
        "redis-cluster",
        port,
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            nodes.to_str().unwrap(),
        ],
    );
    cli(port, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    wait_until("the cluster to be ok", Duration::from_secs(15), || {
        cli(port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
    });
    let url = format!("redis://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    // Without a hash tag the keys of one script fall in several slots.
    let (_untagged, plain) = start_router_with(&["--redis", &url]);
    assert_eq!(create(&client, plain, "untagged").await, Some(503));

    let (router, addr) = start_router_with(&["--redis", &url, "--redis-prefix", "{dionysia}:"]);
    let url_of = |p: &str| format!("http://{addr}{p}");
    let resp = client
        .post(url_of("/admin/streams"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "golive"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", router.log());
    let key = resp.json::<serde_json::Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let agent = |m: Method, p: &str| client.request(m, url_of(p)).bearer_auth(AGENT);
    let admin = |m: Method, p: &str| client.request(m, url_of(p)).bearer_auth(ADMIN);
    let ok = |r: reqwest::Response, want: u16, what: &str| {
        assert_eq!(r.status().as_u16(), want, "{what}");
    };
    let auth = json!({"key": key, "origin": "origin-a", "session": "s1"});
    ok(
        agent(Method::POST, "/authorize").json(&auth).send().await.unwrap(),
        200,
        "authorize",
    );
    ok(
        agent(Method::PUT, "/claims/golive").json(&auth).send().await.unwrap(),
        200,
        "renew",
    );
    let report = json!({"host": "127.0.0.1:8081", "manifest": "golive/index.m3u8", "session": "s1",
        "renditions": [{"name": "720p", "bandwidth": 3000000, "resolution": "1280x720"}]});
    ok(
        agent(Method::PUT, "/origins/origin-a/streams/golive")
            .json(&report)
            .send()
            .await
            .unwrap(),
        200,
        "report",
    );
    let route: serde_json::Value = client
        .get(url_of("/streams/golive"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(route["origins"][0]["origin"], "origin-a", "{route}");
    ok(client.get(url_of("/streams")).send().await.unwrap(), 200, "live list");
    // Viewer counts: a report, then one that no longer lists the stream.
    for streams in [json!({"golive": 3}), json!({})] {
        ok(
            agent(Method::PUT, "/viewers/edge-a")
                .json(&json!({"streams": streams}))
                .send()
                .await
                .unwrap(),
            200,
            "viewers",
        );
    }
    assert_eq!(cli(port, &["EXISTS", "{dionysia}:viewers:golive"]).trim(), "0");
    // The webhook sweep of an expired claim (its key gone, its schedule due).
    cli(port, &["DEL", "{dionysia}:claim:golive"]);
    cli(port, &["ZADD", "{dionysia}:claims", "0", "golive"]);
    wait_until("the sweep to take the expired claim", Duration::from_secs(10), || {
        cli(port, &["ZCARD", "{dionysia}:claims"]).trim() == "0"
    });
    assert_eq!(cli(port, &["HLEN", "{dionysia}:claim-info"]).trim(), "0");
    ok(
        agent(Method::PUT, "/claims/golive").json(&auth).send().await.unwrap(),
        200,
        "renew after the sweep",
    );
    ok(
        agent(Method::DELETE, "/origins/origin-a/streams/golive")
            .send()
            .await
            .unwrap(),
        204,
        "withdraw",
    );
    ok(
        agent(Method::DELETE, "/claims/golive")
            .json(&json!({"origin": "origin-a", "session": "s1"}))
            .send()
            .await
            .unwrap(),
        204,
        "release",
    );
    ok(
        admin(Method::POST, "/admin/streams/golive/key").send().await.unwrap(),
        200,
        "rotate",
    );
    ok(
        admin(Method::PATCH, "/admin/streams/golive")
            .json(&json!({"enabled": false}))
            .send()
            .await
            .unwrap(),
        200,
        "disable",
    );
    ok(admin(Method::GET, "/admin/streams").send().await.unwrap(), 200, "list");
    ok(
        admin(Method::DELETE, "/admin/streams/golive").send().await.unwrap(),
        204,
        "delete",
    );
    assert_eq!(cli(port, &["DBSIZE"]).trim(), "0", "every key went with the stream");
}

#[test]
fn redis_and_sentinel_flags_exclude_each_other() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_router-api"))
        .args(["--redis", "redis://127.0.0.1:1", "--redis-sentinel", "127.0.0.1:2"])
        .args(["--redis-master", "m"])
        .env("ROUTER_ADMIN_TOKEN", ADMIN)
        .env("ROUTER_AGENT_TOKEN", AGENT)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_router-api"))
        .args(["--redis-sentinel", "127.0.0.1:2"])
        .env("ROUTER_ADMIN_TOKEN", ADMIN)
        .env("ROUTER_AGENT_TOKEN", AGENT)
        .output()
        .unwrap();
    assert!(!out.status.success(), "--redis-sentinel needs --redis-master");
    testkit::assert_help_documents(
        env!("CARGO_BIN_EXE_router-api"),
        &["--redis-sentinel", "--redis-master", "ROUTER_REDIS_SENTINEL"],
    );
}
