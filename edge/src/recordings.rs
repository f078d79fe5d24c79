//! Which origin holds a recording: the router API's answer
//! (`GET /recordings/{name}/{session}`), kept in memory.
//!
//! A request for a recording's object (its VOD playlists and MPD, or init
//! and segments under a session no live origin holds) is routed to the
//! origin that holds the recording. The answer is a [`Route`] with that one
//! origin, so placement, the token check (the stream's policy travels in
//! it), the cache key (origin id + path) and the upstream phases are the
//! live ones.
//!
//! - An answer is reused for [`RECORDING_FRESH`] (recordings move only when
//!   their origin goes), "no such recording" included: a request for an
//!   unknown session is a 404 without a router or origin request after the
//!   first look-up.
//! - Concurrent look-ups of one recording are coalesced (`moka`'s
//!   `try_get_with`); at most [`MAX_LOOKUPS`] are in flight at once, so a
//!   flood of made-up sessions costs the router a bounded number of
//!   requests at a time (the rest get a 503 with `Retry-After`).
//! - While the router fails, the last good answer is used for the routes'
//!   `--route-stale`.
//! - Memory: both maps are bounded in entries.
//!
//! Live routing never comes here: the live fast path reads only
//! [`crate::routes`], and a recording is looked up only for objects that
//! name a session no live origin holds.

use crate::routes::{LookupSource, RouteError};
use api_types::{RecordingRoute, Route, RouteOrigin};
use moka::future::Cache;
use reqwest::{Client, StatusCode, Url};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long an answer (found or not) is reused.
pub const RECORDING_FRESH: Duration = Duration::from_secs(5);
/// Most recording look-ups in flight at once.
pub const MAX_LOOKUPS: usize = 64;
/// Most recordings remembered at once.
const MAX_RECORDINGS: u64 = 100_000;

type Key = (String, String);

pub struct RecordingTable {
    client: Client,
    base: Url,
    fresh: Cache<Key, Option<Arc<Route>>>,
    last_good: moka::sync::Cache<Key, Arc<Route>>,
    in_flight: Semaphore,
}

/// The route of a recording: its one origin, holding its session.
pub fn route_of(r: RecordingRoute) -> Route {
    let manifest = format!("{}/{}/{}", r.name, r.session, api_types::layout::VOD_PLAYLIST);
    Route {
        origins: vec![RouteOrigin {
            origin: r.origin,
            host: r.host.clone(),
            manifest: manifest.clone(),
            session: r.session,
            age_ms: 0,
            last_report_ms: 0,
            renditions: vec![],
        }],
        name: r.name,
        manifest,
        host: r.host,
        playback: r.playback,
        viewers: 0,
    }
}

impl RecordingTable {
    pub fn new(client: Client, base: Url, stale_for: Duration) -> RecordingTable {
        RecordingTable {
            client,
            base,
            fresh: Cache::builder()
                .max_capacity(MAX_RECORDINGS)
                .time_to_live(RECORDING_FRESH)
                .build(),
            last_good: moka::sync::Cache::builder()
                .max_capacity(MAX_RECORDINGS)
                .time_to_live(stale_for.max(RECORDING_FRESH))
                .build(),
            in_flight: Semaphore::new(MAX_LOOKUPS),
        }
    }

    /// The route of recording `session` of `stream` if a fresh answer naming
    /// an origin is in memory (never asks the router API).
    pub async fn cached(&self, stream: &str, session: &str) -> Option<Arc<Route>> {
        self.fresh
            .get(&(stream.to_string(), session.to_string()))
            .await
            .flatten()
    }

    /// The route of recording `session` of `stream`, `None` when no origin
    /// holds it.
    pub async fn lookup(&self, stream: &str, session: &str) -> (Result<Option<Arc<Route>>, RouteError>, LookupSource) {
        let key = (stream.to_string(), session.to_string());
        if let Some(hit) = self.fresh.get(&key).await {
            return (Ok(hit), LookupSource::Cached);
        }
        match self.fresh.try_get_with(key.clone(), self.fetch(stream, session)).await {
            Ok(route) => (Ok(route), LookupSource::Fetched),
            Err(e) => match self.last_good.get(&key) {
                Some(r) => (Ok(Some(r)), LookupSource::Stale),
                None => (Err((*e).clone()), LookupSource::Fetched),
            },
        }
    }

    async fn fetch(&self, stream: &str, session: &str) -> Result<Option<Arc<Route>>, RouteError> {
        let _permit = self
            .in_flight
            .try_acquire()
            .map_err(|_| RouteError::Unavailable("too many recording look-ups in flight".into()))?;
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| RouteError::Unavailable("router URL cannot be a base".into()))?
            .pop_if_empty()
            .extend(["recordings", stream, session]);
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| RouteError::Unavailable(e.to_string()))?;
        match resp.status() {
            StatusCode::OK => {
                let r: RecordingRoute = resp.json().await.map_err(|e| RouteError::Unavailable(e.to_string()))?;
                if r.name != stream || r.session != session {
                    return Err(RouteError::Unavailable("router answered for another recording".into()));
                }
                let route = Arc::new(route_of(r));
                self.last_good
                    .insert((stream.to_string(), session.to_string()), route.clone());
                Ok(Some(route))
            }
            StatusCode::NOT_FOUND => {
                self.last_good.invalidate(&(stream.to_string(), session.to_string()));
                Ok(None)
            }
            s => Err(RouteError::Unavailable(format!("router answered {s}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::Playback;

    #[test]
    fn a_recording_route_names_its_one_origin_and_session() {
        let r = route_of(RecordingRoute {
            name: "golive".into(),
            session: "s1".into(),
            origin: "origin-a".into(),
            host: "127.0.0.1:8080".into(),
            playback: Playback::Token,
        });
        assert_eq!(r.origins.len(), 1);
        assert_eq!(r.origins[0].session, "s1");
        assert_eq!(r.origins[0].origin, "origin-a");
        assert_eq!(r.manifest, "golive/s1/vod.m3u8");
        assert_eq!(r.playback, Playback::Token);
    }
}
