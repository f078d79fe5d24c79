//! Concurrent viewers per stream, counted here and pushed to the router.
//!
//! Why it exists: the router answers `viewers` in `GET /streams/{name}` as
//! the sum of the edges' reports, and only an edge sees playback. A viewer
//! is a distinct playback session seen asking for a playlist within
//! `--viewer-window` (a couple of target durations: players reload a media
//! playlist about once a target duration). The session is the `/_v/{sid}/`
//! prefix that the edge's redirect of a multivariant playlist gives each
//! player ([`crate::playback`]), so players behind one address (and one
//! User-Agent) count apart; a request without one counts as its address
//! and User-Agent.
//!
//! Bounds: sessions live in a `moka` cache of [`MAX_SESSIONS`] entries with
//! the window as their time to live; the `edge_viewers{stream}` gauge has a
//! series per stream with viewers (removed when it has none), so its labels
//! are bounded by the live set. Reports (`PUT /viewers/{edge_id}`, every
//! `--viewer-report-interval`, with the agent bearer token) are pushed by
//! the edge rather than pulled by the router: the router does not know
//! which edges exist, and an edge that stops reporting simply expires.

use api_types::ViewerReport;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use prometheus::{IntGaugeVec, Opts, Registry};
use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most playback sessions remembered at once.
pub const MAX_SESSIONS: u64 = 1_000_000;

/// The viewer counter.
pub struct Viewers {
    sessions: moka::sync::Cache<u64, Arc<str>>,
    hasher: std::collections::hash_map::RandomState,
    gauge: IntGaugeVec,
    /// The streams with a gauge series.
    shown: Mutex<HashSet<String>>,
}

/// Who a request is from, for counting.
pub enum Who<'a> {
    Session(&'a str),
    Address(Option<IpAddr>, Option<&'a [u8]>),
}

impl Viewers {
    pub fn new(window: Duration, registry: &Registry) -> Viewers {
        let gauge = IntGaugeVec::new(
            Opts::new("edge_viewers", "Concurrent viewers per stream on this edge"),
            &["stream"],
        )
        .expect("valid metric");
        registry.register(Box::new(gauge.clone())).expect("registered once");
        Viewers {
            sessions: moka::sync::Cache::builder()
                .max_capacity(MAX_SESSIONS)
                .time_to_live(window)
                .build(),
            hasher: Default::default(),
            gauge,
            shown: Mutex::default(),
        }
    }

    /// The key of `who` watching `stream`.
    pub fn key(&self, stream: &str, who: &Who<'_>) -> u64 {
        match who {
            Who::Session(sid) => self.hasher.hash_one((stream, 0u8, sid)),
            Who::Address(ip, ua) => self.hasher.hash_one((stream, 1u8, ip, ua)),
        }
    }

    /// Notes that `key` (see [`Viewers::key`]) watches `stream` now.
    pub fn seen(&self, key: u64, stream: &str) {
        self.sessions.insert(key, Arc::from(stream));
    }

    /// Viewers per stream now; also updates the gauge.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::<String, u64>::new();
        for (_, stream) in self.sessions.iter() {
            *counts.entry(stream.to_string()).or_default() += 1;
        }
        let mut shown = self.shown.lock().expect("viewers lock");
        shown.retain(|s| {
            let keep = counts.contains_key(s);
            if !keep {
                let _ = self.gauge.remove_label_values(&[s]);
            }
            keep
        });
        for (s, n) in &counts {
            self.gauge.with_label_values(&[s]).set(*n as i64);
            shown.insert(s.clone());
        }
        counts
    }
}

/// Where and how the counts are reported.
pub struct Reporter {
    pub viewers: Arc<Viewers>,
    /// `{router}/viewers/{edge_id}`; `None`: no reports, the gauge only.
    pub url: Option<reqwest::Url>,
    pub token: String,
    pub interval: Duration,
    pub client: reqwest::Client,
}

impl Reporter {
    async fn report(&self) {
        let streams = self.viewers.counts();
        let Some(url) = &self.url else { return };
        let sent = self
            .client
            .put(url.clone())
            .bearer_auth(&self.token)
            .json(&ViewerReport { streams })
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(status = %r.status(), "the router refused the viewer report"),
            Err(e) => tracing::warn!(error = %e, "cannot report viewers"),
        }
    }
}

#[async_trait]
impl BackgroundService for Reporter {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.report().await,
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_count_apart_and_the_gauge_follows() {
        let registry = Registry::new();
        let v = Viewers::new(Duration::from_secs(60), &registry);
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        for who in [
            Who::Session("a"),
            Who::Session("b"),
            Who::Session("a"),
            Who::Address(ip, Some(b"ua")),
            Who::Address(ip, Some(b"ua")),
        ] {
            v.seen(v.key("golive", &who), "golive");
        }
        v.seen(v.key("other", &Who::Session("a")), "other");
        v.sessions.run_pending_tasks();
        let c = v.counts();
        assert_eq!(c.get("golive"), Some(&3));
        assert_eq!(c.get("other"), Some(&1));
        let text = ops::render_metrics(&registry);
        assert!(text.contains("edge_viewers{stream=\"golive\"} 3"), "{text}");
        v.sessions.invalidate_all();
        v.sessions.run_pending_tasks();
        assert!(v.counts().is_empty());
        assert!(!ops::render_metrics(&registry).contains("golive"));
    }
}
