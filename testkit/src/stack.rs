//! The whole Dionysia stack on loopback for end-to-end tests: Redis, the
//! router API, origins with their discovery agents, an edge, and ffmpeg
//! publishers. Every process is a [`Process`], stopped by PID when dropped.

use crate::{Process, Redis, bin_path, free_addr, http_get, wait_until};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const ADMIN_TOKEN: &str = "admin-token-0123456789";
pub const AGENT_TOKEN: &str = "agent-token-0123456789";

/// One origin and the discovery agent beside it.
pub struct OriginNode {
    pub id: String,
    pub process: Process,
    pub agent: Process,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    pub out: tempfile::TempDir,
}

pub struct Stack {
    pub redis: Redis,
    pub router: SocketAddr,
    pub router_process: Option<Process>,
    pub origins: Vec<OriginNode>,
    pub edge: Option<(Process, SocketAddr)>,
    pub rtmp_lb: Option<RtmpBalancer>,
}

/// HAProxy in TCP mode in front of two origins' RTMP ports, run with the
/// project's own `deploy/haproxy.cfg`.
pub struct RtmpBalancer {
    pub process: Process,
    /// Where publishers connect.
    pub rtmp: SocketAddr,
    /// HAProxy's Prometheus exporter (`/metrics`).
    pub metrics: SocketAddr,
}

/// The small ladders of `origin/tests/profiles.toml`, cheap enough for tests.
pub fn test_profiles() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../origin/tests/profiles.toml")
}

pub fn start_router(addr: SocketAddr, redis_url: &str) -> Process {
    let p = Process::spawn(
        "router-api",
        bin_path("router-api"),
        [
            "--listen",
            &addr.to_string(),
            "--redis",
            redis_url,
            "--report-ttl",
            "3s",
        ],
        &[("ROUTER_ADMIN_TOKEN", ADMIN_TOKEN), ("ROUTER_AGENT_TOKEN", AGENT_TOKEN)],
    );
    wait_until("router-api ready", Duration::from_secs(10), || {
        matches!(http_get(addr, "/readyz"), Some((200, _)))
    });
    p
}

impl Stack {
    /// Redis and the router API.
    pub fn new() -> Stack {
        let redis = Redis::start();
        let router = free_addr();
        let router_process = Some(start_router(router, &redis.url()));
        Stack {
            redis,
            router,
            router_process,
            origins: vec![],
            edge: None,
            rtmp_lb: None,
        }
    }

    /// Starts the RTMP load balancer in front of the first two origins;
    /// returns the address publishers connect to.
    pub fn add_rtmp_lb(&mut self) -> SocketAddr {
        assert!(self.origins.len() >= 2, "the load balancer fronts two origins");
        let (rtmp, metrics) = (free_addr(), free_addr());
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/haproxy.cfg");
        let env = [
            ("RTMP_LB_LISTEN", rtmp.to_string()),
            ("RTMP_LB_METRICS", metrics.to_string()),
            ("ORIGIN_A", self.origins[0].rtmp.to_string()),
            ("ORIGIN_B", self.origins[1].rtmp.to_string()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let process = Process::spawn(
            "haproxy",
            "haproxy",
            ["-db".as_ref(), "-f".as_ref(), config.as_os_str()],
            &env,
        );
        // Ready when both origins are UP in its own health checks.
        wait_until("RTMP load balancer ready", Duration::from_secs(10), || {
            http_get(metrics, "/metrics").is_some_and(|(status, body)| {
                status == 200 && body.contains("haproxy_backend_active_servers{proxy=\"origins\"} 2")
            })
        });
        self.rtmp_lb = Some(RtmpBalancer { process, rtmp, metrics });
        rtmp
    }

    /// Adds an origin (test profiles) and its discovery agent (1 s heartbeat).
    pub fn add_origin(&mut self, id: &str) -> &OriginNode {
        self.add_origin_with(id, &[])
    }

    /// [`Stack::add_origin`] with more origin flags.
    pub fn add_origin_with(&mut self, id: &str, extra: &[&str]) -> &OriginNode {
        self.add_origin_profiles(id, &test_profiles(), extra)
    }

    /// [`Stack::add_origin_with`] with another profiles file than the test
    /// profiles.
    pub fn add_origin_profiles(&mut self, id: &str, profiles: &Path, extra: &[&str]) -> &OriginNode {
        let (rtmp, http) = (free_addr(), free_addr());
        let out = tempfile::tempdir().expect("tempdir");
        let router = format!("http://{}", self.router);
        let process = Process::spawn(
            "origin",
            bin_path("origin"),
            [
                "--origin-id",
                id,
                "--rtmp-listen",
                &rtmp.to_string(),
                "--http-listen",
                &http.to_string(),
                "--output-dir",
                out.path().to_str().unwrap(),
                "--router",
                &router,
                "--profiles",
                profiles.to_str().unwrap(),
            ]
            .into_iter()
            .chain(extra.iter().copied()),
            &[("ROUTER_AGENT_TOKEN", AGENT_TOKEN)],
        );
        wait_until("origin ready", Duration::from_secs(10), || {
            matches!(http_get(http, "/healthz"), Some((200, _)))
        });
        let listen = free_addr();
        let agent = Process::spawn(
            "discovery",
            bin_path("discovery"),
            [
                "--origin-id",
                id,
                "--output-dir",
                out.path().to_str().unwrap(),
                "--advertise",
                &http.to_string(),
                "--router",
                &router,
                "--listen",
                &listen.to_string(),
                "--heartbeat",
                "1s",
            ],
            &[("ROUTER_AGENT_TOKEN", AGENT_TOKEN)],
        );
        wait_until("discovery ready", Duration::from_secs(10), || {
            http_get(listen, "/healthz").is_some()
        });
        self.origins.push(OriginNode {
            id: id.to_string(),
            process,
            agent,
            rtmp,
            http,
            out,
        });
        self.origins.last().unwrap()
    }

    /// Starts an edge in front of the router; returns its address.
    pub fn add_edge(&mut self, extra: &[&str]) -> SocketAddr {
        let addr = free_addr();
        let mut args = vec![
            "--listen".to_string(),
            addr.to_string(),
            "--router".into(),
            format!("http://{}", self.router),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let p = Process::spawn("edge", bin_path("edge"), &args, &[]);
        wait_until("edge ready", Duration::from_secs(10), || {
            matches!(http_get(addr, "/healthz"), Some((200, _)))
        });
        self.edge = Some((p, addr));
        addr
    }

    /// Creates a stream with `curl` and returns its key.
    pub fn create_stream(&self, name: &str) -> String {
        self.create_stream_with(name, None)
    }

    /// Creates a stream with transcoding profile `profile` (the router's
    /// default when `None`; `ll` is low-latency HLS in the test profiles).
    pub fn create_stream_with(&self, name: &str, profile: Option<&str>) -> String {
        let body = match profile {
            Some(p) => format!("{{\"name\":\"{name}\",\"profile\":\"{p}\"}}"),
            None => format!("{{\"name\":\"{name}\"}}"),
        };
        let out = std::process::Command::new("curl")
            .args([
                "-fsS",
                "-H",
                &format!("Authorization: Bearer {ADMIN_TOKEN}"),
                "-H",
                "content-type: application/json",
            ])
            .args(["-d", &body, &format!("http://{}/admin/streams", self.router)])
            .output()
            .expect("run curl");
        let body = String::from_utf8_lossy(&out.stdout);
        let key = body
            .split("\"key\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no key in {body}"));
        key.to_string()
    }
}

impl Default for Stack {
    fn default() -> Self {
        Self::new()
    }
}

/// x264 settings for test publishers: fast, one keyframe a second.
pub const H264: &[&str] = &[
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-tune",
    "zerolatency",
    "-g",
    "15",
    "-pix_fmt",
    "yuv420p",
];

/// ffmpeg publishing a 640x360@15 test pattern with a tone for `secs`
/// seconds to `url` in container `format` (`flv` for RTMP, `mpegts` for SRT),
/// with the given video encoder arguments.
pub fn ffmpeg_publish(url: &str, format: &str, secs: u32, video: &[&str]) -> Process {
    let secs = secs.to_string();
    let mut args: Vec<&str> = vec![
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=15",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &secs,
    ];
    args.extend_from_slice(video);
    args.extend_from_slice(&["-c:a", "aac", "-f", format, url]);
    Process::spawn("ffmpeg", "ffmpeg", args, &[])
}

/// [`ffmpeg_publish`] over RTMP to `rtmp://{rtmp}/live/{key}` with [`H264`].
pub fn publish(rtmp: SocketAddr, key: &str, secs: u32) -> Process {
    ffmpeg_publish(&format!("rtmp://{rtmp}/live/{key}"), "flv", secs, H264)
}

/// The ids of the origins the router lists for `stream` (`GET /streams/{stream}`),
/// preferred first; empty when it is not live.
pub fn origins_of(stack: &Stack, stream: &str) -> Vec<String> {
    let Some((200, body)) = http_get(stack.router, &format!("/streams/{stream}")) else {
        return vec![];
    };
    let route: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    route["origins"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["origin"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// An edge of its own (not the stack's), on `router`, with a 64 MiB cache and
/// `extra` flags, sharing the agent token with the other edges: what tells a
/// shield (`--shield`) that a request comes from an edge below, not a viewer.
pub fn start_edge(router: SocketAddr, extra: &[String]) -> (Process, SocketAddr) {
    let addr = free_addr();
    let mut args = vec![
        "--listen".to_string(),
        addr.to_string(),
        "--router".into(),
        format!("http://{router}"),
        "--cache-size".into(),
        "64MiB".into(),
    ];
    args.extend(extra.iter().cloned());
    let p = Process::spawn("edge", bin_path("edge"), &args, &[("ROUTER_AGENT_TOKEN", AGENT_TOKEN)]);
    wait_until("edge ready", Duration::from_secs(10), || {
        matches!(http_get(addr, "/healthz"), Some((200, _)))
    });
    (p, addr)
}
