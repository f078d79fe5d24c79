//! End-to-end tests of the whole stack live in `tests/`; this library is
//! their browser: Debian's headless Chromium, driven by playwright-core
//! (`browser/watch.mjs`), opening the edge's player page and reporting what
//! the page shows twice a second.
//!
//! The page publishes its state as `window.dionysia` (see
//! `edge/player/player.js`); `watch.mjs` prints it with the video element's
//! clock as one JSON line per sample, and [`Player`] reads those lines back
//! from the process log.

use serde::Deserialize;
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::Process;

/// What the page showed at one moment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Sample {
    /// Seconds since the page loaded.
    pub t: f64,
    /// The video element's playback position.
    pub current_time: f64,
    pub paused: bool,
    pub ready_state: u32,
    /// The page's own words: loading, playing, buffering, reconnecting (...).
    pub state: Option<String>,
    /// The rendition playing, e.g. `360p 830 kb/s`.
    pub rendition: Option<String>,
    /// Every rendition of the multivariant playlist.
    pub ladder: Vec<String>,
    /// Wall clock minus the PROGRAM-DATE-TIME of the frame on screen, seconds.
    pub latency: Option<f64>,
    /// hls.js's own latency estimate (the playlist's end minus the position).
    pub hls_latency: Option<f64>,
    /// The latency hls.js aims at.
    pub target_latency: Option<f64>,
    /// `ll` (hls.js low-latency mode, the playlist has parts) or `plain`.
    pub mode: Option<String>,
    /// Parts (EXT-X-PART) hls.js loaded so far.
    pub part_loads: u64,
    /// Parts the last media playlist hls.js loaded listed.
    pub part_list: u64,
    /// Times playback stopped for want of data after it had started.
    pub stalls: u32,
    /// The publish session of the media playlist being played.
    pub session: Option<String>,
    /// How often the page started playback afresh (errors, moved sessions).
    pub restarts: u32,
    /// Why it did, oldest first.
    pub errors: Vec<String>,
    pub engine: Option<String>,
    /// The streams the page lists as live.
    pub live: Vec<String>,
    /// Uncaught exceptions in the page.
    pub page_errors: Vec<String>,
}

/// A headless Chromium showing one page; stopped (and its profile removed)
/// when dropped.
pub struct Player {
    process: Process,
}

impl Player {
    /// Opens `url` for at most `seconds`.
    pub fn open(url: &str, seconds: u32) -> Player {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
        assert!(
            dir.join("node_modules/playwright-core").is_dir(),
            "playwright-core is not installed: run `npm ci --prefix e2e/browser` (scripts/setup.sh does)"
        );
        let script = dir.join("watch.mjs");
        let seconds = seconds.to_string();
        let args = [script.as_os_str(), url.as_ref(), seconds.as_ref()];
        Player {
            process: Process::spawn("chromium", "node", args, &[]),
        }
    }

    /// Every sample so far, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.process
            .log()
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for a sample newer than any seen before the call that satisfies
    /// `pred`, and returns it; panics with the browser's last output when
    /// `timeout` passes or the browser exits first.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Sample) -> bool) -> Sample {
        let seen = self.samples().len();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.samples().into_iter().skip(seen).find(|s| pred(s)) {
                return s;
            }
            if !self.process.is_running() || Instant::now() >= deadline {
                panic!(
                    "no sample showed {what} within {timeout:?}; the browser's last lines:\n{}",
                    self.log_tail()
                );
            }
            // The poll interval (samples come every 500 ms), not a readiness sleep.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines the browser printed, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.process.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }
}

/// The topology of `scripts/stack.sh` and `docker-compose.yml` on loopback:
/// Redis, the router API, two origins (test ladders) each with its discovery
/// agent, the RTMP load balancer in front of them, and an edge.
pub fn topology() -> testkit::stack::Stack {
    let mut stack = testkit::stack::Stack::new();
    stack.add_origin("origin-a");
    stack.add_origin("origin-b");
    stack.add_rtmp_lb();
    stack.add_edge(&["--cache-size", "64MiB"]);
    stack
}

/// A stream live on [`topology`]: created, published by ffmpeg through the
/// RTMP load balancer, and playable on the edge.
pub struct Live {
    pub stack: testkit::stack::Stack,
    pub edge: std::net::SocketAddr,
    /// Where publishers connect (the load balancer).
    pub lb: std::net::SocketAddr,
    pub key: String,
    pub publisher: Process,
}

impl Live {
    /// Starts the topology and publishes `stream` for `secs` seconds.
    pub fn start(stream: &str, secs: u32) -> Live {
        let stack = topology();
        let edge = stack.edge.as_ref().expect("edge").1;
        let lb = stack.rtmp_lb.as_ref().expect("load balancer").rtmp;
        let key = stack.create_stream(stream);
        let publisher = testkit::stack::publish(lb, &key, secs);
        let master = format!("/{stream}/index.m3u8");
        testkit::wait_until("the stream to be playable on the edge", Duration::from_secs(20), || {
            matches!(testkit::http_get(edge, &master), Some((200, _)))
        });
        Live {
            stack,
            edge,
            lb,
            key,
            publisher,
        }
    }
}

/// The ids of the origins the router lists for `stream`.
pub use testkit::stack::origins_of;
