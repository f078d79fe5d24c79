//! Starts a real redis-server and the real router-api binary on free ports.

#![allow(dead_code)]

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use testkit::{Process, Redis, free_addr, http_get, wait_until};

pub const ADMIN: &str = "admin-token-0123456789";
pub const AGENT: &str = "agent-token-0123456789";

pub struct Harness {
    pub redis: Redis,
    pub router: Process,
    pub addr: SocketAddr,
    pub client: Client,
}

impl Harness {
    pub fn start() -> Harness {
        Self::start_with(&[])
    }

    /// Starts Redis and a router-api with `extra` flags.
    pub fn start_with(extra: &[&str]) -> Harness {
        let redis = Redis::start();
        let addr = free_addr();
        let router = start_router(addr, &redis.url(), extra);
        Harness {
            redis,
            router,
            addr,
            client: Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .timeout(Duration::from_secs(5))
    }

    /// A request on a connection of its own, for requests after which the
    /// server closes the connection (413, 431): a pooled connection could
    /// otherwise carry the next request into the closing socket.
    pub fn oneshot(&self, method: Method, path: &str) -> RequestBuilder {
        let client = Client::builder().pool_max_idle_per_host(0).build().unwrap();
        client.request(method, self.url(path)).timeout(Duration::from_secs(5))
    }

    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.req(method, path).bearer_auth(ADMIN)
    }

    pub fn agent(&self, method: Method, path: &str) -> RequestBuilder {
        self.req(method, path).bearer_auth(AGENT)
    }

    /// Creates a stream and returns its key.
    pub async fn create_stream(&self, name: &str) -> String {
        let resp = self
            .admin(Method::POST, "/admin/streams")
            .json(&serde_json::json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "create {name}");
        let body: Value = resp.json().await.unwrap();
        body["key"].as_str().unwrap().to_string()
    }

    /// Reports `name` live on `origin` with `session`.
    pub async fn report(&self, origin: &str, name: &str, host: &str, session: &str) -> Response {
        self.agent(Method::PUT, &format!("/origins/{origin}/streams/{name}"))
            .json(&serde_json::json!({
                "host": host,
                "manifest": format!("{name}/index.m3u8"),
                "session": session,
                "renditions": [{"name": "720p", "bandwidth": 3000000, "resolution": "1280x720"}],
            }))
            .send()
            .await
            .unwrap()
    }
}

pub fn start_router(addr: SocketAddr, redis_url: &str, extra: &[&str]) -> Process {
    let listen = addr.to_string();
    let mut args = vec!["--listen", &listen, "--redis", redis_url, "--redis-timeout", "300ms"];
    args.extend_from_slice(extra);
    let p = Process::spawn(
        "router-api",
        env!("CARGO_BIN_EXE_router-api"),
        args,
        &[("ROUTER_ADMIN_TOKEN", ADMIN), ("ROUTER_AGENT_TOKEN", AGENT)],
    );
    wait_until("router-api /healthz", Duration::from_secs(10), || {
        matches!(http_get(addr, "/healthz"), Some((200, _)))
    });
    p
}

/// Asserts a response is an error with `status` and a JSON `{"error": ...}` body.
pub async fn assert_error(resp: Response, status: u16) -> String {
    let got = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    assert_eq!(ctype.as_deref(), Some("application/json"), "body: {text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {text}"))
        .to_string()
}
