//! Which origins hold a stream: the router API's answer, kept in memory.
//!
//! - A fresh answer is reused for `fresh_for` (about a second), so a
//!   thousand viewers of one stream cost the router one look-up a second.
//! - Concurrent look-ups of one stream are coalesced into one request
//!   (`moka`'s `try_get_with` runs one initializer per key at a time).
//! - When the router API (or its Redis) fails, the last good answer is
//!   served for up to `stale_for`: the seed prototype's question "what if the
//!   HTTP API goes offline for 5 minutes?" costs viewers of a live stream
//!   nothing.
//! - Unknown names cost the router nothing per name: the set of live
//!   streams (`GET /streams`, one request a second at most, coalesced, with
//!   the same last-good-answer rule) is kept too, and a name that is in
//!   neither it nor the recent answers is "not live" without a look-up. A
//!   flood of random names costs the router one `GET /streams` a second per
//!   edge, and a new stream is playable within a second or so of being
//!   reported. Only a name in the live set is looked up on its own.
//! - "Not live" (404) is an answer too, cached like the others, so a request
//!   for an unknown stream is a quick 404 without a look-up each time. But a
//!   stream that was routed a moment ago keeps its last route for
//!   [`VANISH_GRACE`]: after a router or Redis outage the reports may have
//!   expired while the agents could not renew them, and they come back
//!   within a heartbeat. A stream that really ended loses nothing either:
//!   its origin still serves the playlists that end with EXT-X-ENDLIST.

use crate::recordings::RecordingTable;
use api_types::Route;
use moka::future::Cache;
use reqwest::{Client, StatusCode, Url};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Clone, Error)]
pub enum RouteError {
    #[error("router API unavailable: {0}")]
    Unavailable(String),
}

/// Outcome of one look-up, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupSource {
    /// Answered from memory.
    Cached,
    /// Asked the router API.
    Fetched,
    /// The router API failed; the last good answer was used.
    Stale,
    /// Not in the set of live streams: not live, with no look-up.
    Unknown,
}

/// The live streams as the router listed them, with their names for
/// membership tests.
struct LiveSet {
    routes: Arc<Vec<Route>>,
    names: HashSet<String>,
}

pub struct RouteTable {
    client: Client,
    base: Url,
    fresh: Cache<String, Option<Arc<Route>>>,
    last_good: Mutex<HashMap<String, (Arc<Route>, Instant)>>,
    stale_for: Duration,
    /// Every live stream (`GET /streams`), for the player page's list.
    live: Cache<(), Arc<LiveSet>>,
    last_live: Mutex<Option<(Arc<LiveSet>, Instant)>>,
    /// Answers of [`RouteTable::recheck`], kept [`RECHECK_EVERY`].
    rechecked: Cache<String, Option<Arc<Route>>>,
    /// Recordings' routes ([`crate::recordings`]), on the same client.
    pub recordings: RecordingTable,
}

/// How often requests waiting for a moved publisher's session may have a
/// stream's route asked again ([`RouteTable::recheck`]).
pub const RECHECK_EVERY: Duration = Duration::from_millis(200);

/// Most streams re-checked at once (only streams with waiting requests
/// are: a publisher moving).
const MAX_RECHECKED: u64 = 10_000;

/// How long a stream the router suddenly calls "not live" keeps its last
/// good route (see the module documentation).
pub const VANISH_GRACE: Duration = Duration::from_secs(10);

/// Most distinct streams remembered at once.
const MAX_STREAMS: u64 = 100_000;

impl RouteTable {
    pub fn new(base: Url, fresh_for: Duration, stale_for: Duration, timeout: Duration) -> anyhow::Result<RouteTable> {
        let client = Client::builder().timeout(timeout).connect_timeout(timeout).build()?;
        Ok(RouteTable {
            recordings: RecordingTable::new(client.clone(), base.clone(), stale_for),
            client,
            base,
            fresh: Cache::builder()
                .max_capacity(MAX_STREAMS)
                .time_to_live(fresh_for)
                .build(),
            last_good: Mutex::default(),
            stale_for,
            live: Cache::builder().max_capacity(1).time_to_live(fresh_for).build(),
            last_live: Mutex::default(),
            rechecked: Cache::builder()
                .max_capacity(MAX_RECHECKED)
                .time_to_live(RECHECK_EVERY)
                .build(),
        })
    }

    /// The route of `stream` asked of the router again, sooner than
    /// `fresh_for` allows: for requests waiting for a moved publisher's new
    /// session, which the router knows a moment after it is reported.
    /// Coalesced and kept [`RECHECK_EVERY`], so however many requests wait,
    /// a stream costs the router five look-ups a second per edge at most,
    /// and only while they wait. The answer also refreshes the route that
    /// [`RouteTable::lookup`] serves.
    pub async fn recheck(&self, stream: &str) -> Result<Option<Arc<Route>>, RouteError> {
        let route = self
            .rechecked
            .try_get_with(stream.to_string(), self.fetch(stream))
            .await
            .map_err(|e| (*e).clone())?;
        self.fresh.insert(stream.to_string(), route.clone()).await;
        Ok(route)
    }

    /// Every live stream, with the same freshness, coalescing and
    /// last-good-answer rules as [`RouteTable::lookup`].
    pub async fn live(&self) -> Result<Arc<Vec<Route>>, RouteError> {
        self.live_set().await.map(|l| l.routes.clone())
    }

    async fn live_set(&self) -> Result<Arc<LiveSet>, RouteError> {
        match self.live.try_get_with((), self.fetch_live()).await {
            Ok(list) => Ok(list),
            Err(e) => match &*self.last_live.lock().expect("routes lock") {
                Some((list, at)) if at.elapsed() <= self.stale_for => Ok(list.clone()),
                _ => Err((*e).clone()),
            },
        }
    }

    async fn fetch_live(&self) -> Result<Arc<LiveSet>, RouteError> {
        let resp = self
            .client
            .get(self.url(&["streams"])?)
            .send()
            .await
            .map_err(|e| RouteError::Unavailable(e.to_string()))?;
        if resp.status() != StatusCode::OK {
            return Err(RouteError::Unavailable(format!("router answered {}", resp.status())));
        }
        let routes: Vec<Route> = resp.json().await.map_err(|e| RouteError::Unavailable(e.to_string()))?;
        let names = routes.iter().map(|r| r.name.clone()).collect();
        let list = Arc::new(LiveSet {
            routes: Arc::new(routes),
            names,
        });
        *self.last_live.lock().expect("routes lock") = Some((list.clone(), Instant::now()));
        Ok(list)
    }

    /// The router API's URL for the given path segments.
    fn url(&self, segments: &[&str]) -> Result<Url, RouteError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| RouteError::Unavailable("router URL cannot be a base".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// The route of `stream` if a fresh answer naming origins is in memory;
    /// `None` otherwise (never asks the router API).
    pub async fn cached(&self, stream: &str) -> Option<Arc<Route>> {
        self.fresh.get(stream).await.flatten()
    }

    /// The route of `stream`, `None` when no origin holds it.
    pub async fn lookup(&self, stream: &str) -> (Result<Option<Arc<Route>>, RouteError>, LookupSource) {
        if let Some(hit) = self.fresh.get(stream).await {
            return (Ok(hit), LookupSource::Cached);
        }
        // Not in the live set and not routed lately: not live, and the
        // router is not asked about this name. Without a live set (the
        // router never answered), the name is looked up as before.
        if let Ok(live) = self.live_set().await
            && !live.names.contains(stream)
            && !self.last_good.lock().expect("routes lock").contains_key(stream)
        {
            return (Ok(None), LookupSource::Unknown);
        }
        let fetched = self.fresh.try_get_with(stream.to_string(), self.fetch(stream)).await;
        match fetched {
            Ok(route) => (Ok(route), LookupSource::Fetched),
            Err(e) => {
                let mut last = self.last_good.lock().expect("routes lock");
                match last.get(stream) {
                    Some((r, at)) if at.elapsed() <= self.stale_for => (Ok(Some(r.clone())), LookupSource::Stale),
                    Some(_) => {
                        last.remove(stream);
                        (Err((*e).clone()), LookupSource::Fetched)
                    }
                    None => (Err((*e).clone()), LookupSource::Fetched),
                }
            }
        }
    }

    async fn fetch(&self, stream: &str) -> Result<Option<Arc<Route>>, RouteError> {
        let resp = self
            .client
            .get(self.url(&["streams", stream])?)
            .send()
            .await
            .map_err(|e| RouteError::Unavailable(e.to_string()))?;
        match resp.status() {
            StatusCode::OK => {
                let route: Route = resp.json().await.map_err(|e| RouteError::Unavailable(e.to_string()))?;
                let route = (!route.origins.is_empty()).then(|| Arc::new(route));
                if let Some(r) = &route {
                    self.last_good
                        .lock()
                        .expect("routes lock")
                        .insert(stream.to_string(), (r.clone(), Instant::now()));
                }
                Ok(route)
            }
            StatusCode::NOT_FOUND => {
                let mut last = self.last_good.lock().expect("routes lock");
                match last.get(stream) {
                    Some((r, at)) if at.elapsed() <= VANISH_GRACE => Ok(Some(r.clone())),
                    _ => {
                        last.remove(stream);
                        Ok(None)
                    }
                }
            }
            s => Err(RouteError::Unavailable(format!("router answered {s}"))),
        }
    }
}
