//! The Redis data model: every key the router API reads or writes, and the
//! commands that keep them consistent.
//!
//! Keys (all under the configured prefix, `dionysia:` by default):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `stream:{name}` | hash | `key_hash`, `profile`, `enabled` (`1`/`0`), `created_at_ms`, `playback` (`token`; absent: public), `record` (`1`; absent: not recorded) |
//! | `key:{sha256(key)}` | string | the stream name: the index `POST /authorize` uses |
//! | `streams` | set | every stream name |
//! | `routes:{name}` | hash, TTL | origin id -> JSON [`StoredReport`]; the key's TTL is refreshed by every report |
//! | `live` | sorted set | stream name, scored by the latest report expiry (ms) |
//! | `claim:{name}` | string, TTL | `"{origin} {session}"`: the one origin allowed to publish the stream now |
//! | `claims` | sorted set | stream name scored by its claim's expiry (ms): what the webhook sweep reads |
//! | `claim-info` | hash | stream name -> `"{origin} {session}"` of its claim, kept past the claim's expiry for `stream.ended` |
//! | `viewers:{name}` | hash, TTL | edge id -> `"{count} {expires_at_ms}"` |
//! | `edge-viewers:{edge}` | string, TTL | the stream names of the edge's last viewer report, space-separated |
//! | `recordings:{name}` | hash, TTL | session -> JSON `StoredRecording`: which origin holds that recording (see [`recordings`]) |
//!
//! Viewer reports replace an edge's previous one: the script drops the
//! edge's field from the streams it no longer lists. A count is live while
//! its `expires_at_ms` is in the future (the same rule as reports); the sum
//! over live fields is the stream's viewers.
//!
//! A claim is taken by `POST /authorize`, renewed by the publishing origin
//! every few seconds (`PUT /claims/{name}`, with the key it was given) and
//! lives [`CLAIM_TTL`] unless renewed, so an origin that dies frees its
//! streams within that time; sooner for its own publisher: an authorize with
//! the stream's key takes over a claim whose origin has missed its renewals
//! for [`CLAIM_TAKEOVER`] (the publisher reconnected elsewhere: only the key's
//! holder can present it). Disabling, deleting or rotating a stream's key
//! drops its claim and its routes ([`Store::revoke`]): the next renewal is
//! refused and the origin ends the publish. Taking and renewing a claim are
//! one script that also checks the key and `enabled`. A claim's session
//! changes only on renewal, and a release must match origin and session, so
//! a duplicate publish refused on the same origin cannot take the live
//! publish's claim from it. The claim scripts get every key they touch
//! through `KEYS`.
//! A report is live while `expires_at_ms` inside it is in the future. Redis
//! 7.0 has no per-field TTL, so the hash's own TTL only bounds how long a dead
//! stream's data lingers; the timestamp decides liveness, and expired fields
//! are pruned when read. A lookup is therefore one `HGETALL`.
//!
//! Multi-key changes run as Lua scripts (atomic in Redis) or `MULTI` blocks.
//!
//! Cluster safety: every script gets every key it touches through `KEYS`
//! (one that depends on stored data, the key index of a stream's current
//! hash, is read first and checked inside the script). Scripts and `MULTI`
//! blocks span keys of several streams (`streams`, `live`, `key:*`), so on
//! Redis Cluster the prefix must carry a hash tag (`--redis-prefix
//! '{dionysia}:'`): every key then lives in one slot, which Cluster needs
//! for these atomic changes (the data is small: Cluster buys availability
//! here, not sharding). `router-api/tests/sentinel.rs` runs them on a
//! Cluster node, which refuses cross-slot keys.

mod recordings;

pub use recordings::{MAX_RECORDINGS_PER_STREAM, PutRecording};

use crate::redis_conn::{Connector, Target};
use api_types::{OriginReport, Playback, Rendition, RouteOrigin};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// Redis could not be reached or did not answer in time.
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with data this service did not write.
    #[error("unexpected data in Redis: {0}")]
    Corrupt(String),
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// How long a claim lives without renewal. Origins renew every second, so a
/// claim survives five lost renewals (a router or Redis failover); a dead
/// origin frees its streams this fast (and its own publisher, moving to
/// another origin, sooner: [`CLAIM_TAKEOVER`]).
pub const CLAIM_TTL: Duration = Duration::from_secs(6);

/// How long a claim's origin may go without renewing before an authorize
/// with the stream's key takes the claim over. Origins renew every second,
/// so this is one missed renewal plus margin for a slow answer. A publisher
/// that moves from an origin that died (HAProxy sends its reconnect to
/// another) is let in this long after the death, not [`CLAIM_TTL`]; two
/// live publishers with one key still cannot take turns, since a live
/// origin keeps renewing.
pub const CLAIM_TAKEOVER: Duration = Duration::from_millis(1600);

/// How often [`Store::put_viewers`] reads an edge's previous report again
/// when a concurrent report from the same edge changed it.
const PUT_VIEWERS_ATTEMPTS: usize = 3;

/// Outcome of taking or renewing a stream's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This origin holds the claim for [`CLAIM_TTL`]; it already did.
    Held,
    /// This origin holds the claim for [`CLAIM_TTL`], and nobody held it
    /// before: the stream just went live (`stream.live`). `replaced` is an
    /// expired claim the sweep had not reported yet (its `stream.ended`).
    Taken { replaced: Option<EndedClaim> },
    /// Another origin holds it (its id).
    HeldBy(String),
    /// The key no longer maps to the stream, or the stream is disabled or
    /// gone.
    Revoked,
}

/// Who asks for a claim: see [`Store::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimBy {
    /// `POST /authorize`: a publisher connecting.
    Authorize,
    /// `PUT /claims/{name}`: a publish live on the origin.
    Renewal,
}

/// A stream as stored (the key itself is never stored).
#[derive(Debug, Clone)]
pub struct StreamRecord {
    pub name: String,
    pub key_hash: String,
    pub profile: String,
    pub enabled: bool,
    pub created_at_ms: u64,
    pub playback: Playback,
    /// Publish sessions are kept as recordings.
    pub record: bool,
}

/// What the router knows about a stream's playback right now.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// The live origins, preferred first.
    pub origins: Vec<RouteOrigin>,
    /// Viewers summed over the edges' live reports.
    pub viewers: u64,
    /// The stream's policy (`public` for a stream the router does not manage).
    pub playback: Playback,
}

/// A claim that ended (released, revoked or expired): for `stream.ended`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndedClaim {
    pub stream: String,
    pub origin: String,
    pub session: String,
}

impl EndedClaim {
    fn parse(stream: &str, value: &str) -> Option<EndedClaim> {
        let (origin, session) = value.split_once(' ')?;
        Some(EndedClaim {
            stream: stream.to_string(),
            origin: origin.to_string(),
            session: session.to_string(),
        })
    }
}

/// One origin's report about one stream, as stored in `routes:{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredReport {
    pub host: String,
    pub manifest: String,
    pub session: String,
    #[serde(default)]
    pub renditions: Vec<Rendition>,
    /// When this origin first reported this session.
    pub since_ms: u64,
    pub reported_at_ms: u64,
    pub expires_at_ms: u64,
}

impl StoredReport {
    pub fn to_route_origin(&self, origin: &str, now_ms: u64) -> RouteOrigin {
        RouteOrigin {
            origin: origin.to_string(),
            host: self.host.clone(),
            manifest: self.manifest.clone(),
            session: self.session.clone(),
            age_ms: now_ms.saturating_sub(self.since_ms),
            last_report_ms: now_ms.saturating_sub(self.reported_at_ms),
            renditions: self.renditions.clone(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub struct Store {
    conn: Connector,
    prefix: String,
    report_ttl: Duration,
    viewer_ttl: Duration,
    recording_ttl: Duration,
    errors: prometheus::IntCounter,
    scripts: Scripts,
}

struct Scripts {
    create_stream: Script,
    delete_stream: Script,
    rotate_key: Script,
    update_stream: Script,
    delete_report: Script,
    claim: Script,
    release_claim: Script,
    revoke: Script,
    put_viewers: Script,
    sweep_claim: Script,
}

impl Store {
    /// `errors` counts every failed Redis operation (for `/metrics`).
    pub fn new(
        target: &Target,
        prefix: &str,
        timeout: Duration,
        report_ttl: Duration,
        viewer_ttl: Duration,
        errors: prometheus::IntCounter,
    ) -> std::result::Result<Store, redis::RedisError> {
        Ok(Store {
            conn: Connector::new(target, timeout)?,
            prefix: prefix.to_string(),
            report_ttl,
            viewer_ttl,
            recording_ttl: report_ttl,
            errors,
            scripts: Scripts::new(),
        })
    }

    pub fn report_ttl(&self) -> Duration {
        self.report_ttl
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        k.push_str(&parts.join(":"));
        k
    }

    /// Runs one Redis operation with a connection, bounding its total time and
    /// counting failures.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let mut used = None;
        let res = async {
            let (generation, conn) = self.conn.get().await?;
            used = Some(generation);
            // The manager bounds each command; this bounds the whole operation
            // (scripts may need a SCRIPT LOAD round trip, reconnects wait).
            match tokio::time::timeout(self.conn.timeout() * 3, op(conn)).await {
                Ok(r) => r.map_err(StoreError::from),
                Err(_) => Err(StoreError::Unavailable("Redis operation timed out".into())),
            }
        }
        .await;
        if let Err(e) = &res {
            if let Some(generation) = used {
                self.conn.forget(generation).await;
            }
            self.errors.inc();
            tracing::warn!(error = %e, "Redis operation failed");
        }
        res
    }

    pub async fn ping(&self) -> Result<()> {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await?;
        Ok(())
    }

    // ----- streams -------------------------------------------------------

    /// Creates a stream; `false` if the name is taken.
    pub async fn create_stream(&self, name: &str, profile: &str, key_hash: &str) -> Result<bool> {
        let (k_stream, k_key, k_all) = (
            self.key(&["stream", name]),
            self.key(&["key", key_hash]),
            self.key(&["streams"]),
        );
        let now = now_ms();
        let created: i64 = self
            .run(|mut c| async move {
                self.scripts
                    .create_stream
                    .key(k_stream)
                    .key(k_key)
                    .key(k_all)
                    .arg(name)
                    .arg(key_hash)
                    .arg(profile)
                    .arg(now)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(created == 1)
    }

    pub async fn get_stream(&self, name: &str) -> Result<Option<StreamRecord>> {
        let k = self.key(&["stream", name]);
        let h: HashMap<String, String> = self.run(|mut c| async move { c.hgetall(k).await }).await?;
        parse_stream(name, h)
    }

    /// Every stream, sorted by name.
    pub async fn list_streams(&self) -> Result<Vec<StreamRecord>> {
        let k_all = self.key(&["streams"]);
        let mut names: Vec<String> = self.run(|mut c| async move { c.smembers(k_all).await }).await?;
        names.sort();
        if names.is_empty() {
            return Ok(vec![]);
        }
        let mut pipe = redis::pipe();
        for n in &names {
            pipe.hgetall(self.key(&["stream", n]));
        }
        let hashes: Vec<HashMap<String, String>> =
            self.run(|mut c| async move { pipe.query_async(&mut c).await }).await?;
        let mut out = Vec::with_capacity(names.len());
        for (n, h) in names.iter().zip(hashes) {
            if let Some(r) = parse_stream(n, h)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Deletes a stream and its key; `None` if it did not exist, else the
    /// claim it ended, if any.
    pub async fn delete_stream(&self, name: &str) -> Result<Option<Option<EndedClaim>>> {
        let (k_stream, k_all) = (self.key(&["stream", name]), self.key(&["streams"]));
        let deleted = self
            .with_key_hash(name, |old| {
                let (k_stream, k_all, k_key) = (k_stream.clone(), k_all.clone(), self.key(&["key", &old]));
                async move {
                    self.run(|mut c| async move {
                        self.scripts
                            .delete_stream
                            .key(k_stream)
                            .key(k_all)
                            .key(k_key)
                            .arg(name)
                            .arg(old)
                            .invoke_async(&mut c)
                            .await
                    })
                    .await
                }
            })
            .await?;
        if !deleted {
            return Ok(None);
        }
        self.delete_recordings(name).await?;
        Ok(Some(self.revoke(name).await?))
    }

    /// Replaces a stream's key hash; `None` if the stream does not exist,
    /// else the claim it ended, if any.
    pub async fn rotate_key(&self, name: &str, new_hash: &str) -> Result<Option<Option<EndedClaim>>> {
        let k_stream = self.key(&["stream", name]);
        let k_new = self.key(&["key", new_hash]);
        let rotated = self
            .with_key_hash(name, |old| {
                let (k_stream, k_new, k_old) = (k_stream.clone(), k_new.clone(), self.key(&["key", &old]));
                async move {
                    self.run(|mut c| async move {
                        self.scripts
                            .rotate_key
                            .key(k_stream)
                            .key(k_old)
                            .key(k_new)
                            .arg(name)
                            .arg(old)
                            .arg(new_hash)
                            .invoke_async(&mut c)
                            .await
                    })
                    .await
                }
            })
            .await?;
        if !rotated {
            return Ok(None);
        }
        Ok(Some(self.revoke(name).await?))
    }

    /// Runs `script` with the stream's current key hash, so that the script
    /// can name the key index through `KEYS` (Cluster-safe) instead of
    /// building its name: the script answers `-1` when the hash changed in
    /// between, and we read it again (a bounded number of times). `false`
    /// when the stream does not exist.
    async fn with_key_hash<F, Fut>(&self, name: &str, script: F) -> Result<bool>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<i64>>,
    {
        let k_stream = self.key(&["stream", name]);
        for _ in 0..5 {
            let k = k_stream.clone();
            let old: Option<String> = self.run(|mut c| async move { c.hget(k, "key_hash").await }).await?;
            let Some(old) = old else { return Ok(false) };
            match script(old).await? {
                -1 => continue,
                n => return Ok(n == 1),
            }
        }
        Err(StoreError::Unavailable(
            "the stream's key changed during every attempt".into(),
        ))
    }

    /// Changes the fields given; `None` if the stream does not exist.
    pub async fn update_stream(
        &self,
        name: &str,
        enabled: Option<bool>,
        profile: Option<&str>,
        playback: Option<Playback>,
        record: Option<bool>,
    ) -> Result<Option<(StreamRecord, Option<EndedClaim>)>> {
        let k = self.key(&["stream", name]);
        let mut fields: Vec<(&str, String)> = vec![];
        if let Some(e) = enabled {
            fields.push(("enabled", if e { "1" } else { "0" }.into()));
        }
        if let Some(p) = profile {
            fields.push(("profile", p.into()));
        }
        if let Some(p) = playback {
            fields.push(("playback", p.as_str().into()));
        }
        if let Some(r) = record {
            fields.push(("record", if r { "1" } else { "0" }.into()));
        }
        let mut ended = None;
        if !fields.is_empty() {
            // One script, so PATCH can neither create a stream nor leave a
            // partial one behind when it races a DELETE.
            let updated: i64 = self
                .run(|mut c| async move {
                    let mut inv = self.scripts.update_stream.key(k);
                    for (f, v) in &fields {
                        inv.arg(*f).arg(v);
                    }
                    inv.invoke_async(&mut c).await
                })
                .await?;
            if updated == 0 {
                return Ok(None);
            }
            if enabled == Some(false) {
                ended = self.revoke(name).await?;
            }
        }
        Ok(self.get_stream(name).await?.map(|r| (r, ended)))
    }

    /// The enabled stream whose key hashes to `key_hash`, if any.
    pub async fn stream_by_key_hash(&self, key_hash: &str) -> Result<Option<StreamRecord>> {
        let k = self.key(&["key", key_hash]);
        let name: Option<String> = self.run(|mut c| async move { c.get(k).await }).await?;
        match name {
            Some(n) => self.get_stream(&n).await,
            None => Ok(None),
        }
    }

    // ----- claims: one origin per live stream ----------------------------

    /// Takes or renews `name`'s claim for (`origin`, `session`), in one
    /// script, if the key hashing to `key_hash` still maps to `name`, the
    /// stream is enabled, and no other origin holds the claim (an expired
    /// claim is taken again, and an authorize takes over one whose origin
    /// has not renewed it for [`CLAIM_TAKEOVER`]). Checking the key in the same script as the
    /// claim means a disable or rotation cannot slip between the two and leave
    /// a claim behind that [`Store::revoke`] already dropped.
    ///
    /// When this origin already holds the claim under another session,
    /// [`ClaimBy::Authorize`] keeps that session (it may be a live publish
    /// that this origin is about to refuse as a duplicate; it must still be
    /// able to release the claim), while [`ClaimBy::Renewal`] moves the claim
    /// to the renewing session (only a publish live on the origin renews).
    pub async fn claim(&self, name: &str, key_hash: &str, origin: &str, session: &str, by: ClaimBy) -> Result<Claim> {
        let (k_key, k_stream, k_claim, k_claims, k_info) = (
            self.key(&["key", key_hash]),
            self.key(&["stream", name]),
            self.key(&["claim", name]),
            self.key(&["claims"]),
            self.key(&["claim-info"]),
        );
        let ttl = CLAIM_TTL.as_millis() as u64;
        let takeover_below = (CLAIM_TTL - CLAIM_TAKEOVER).as_millis() as u64;
        let expires = now_ms() + ttl;
        let mode = match by {
            ClaimBy::Authorize => "authorize",
            ClaimBy::Renewal => "renew",
        };
        let answer: String = self
            .run(|mut c| async move {
                self.scripts
                    .claim
                    .key(k_key)
                    .key(k_stream)
                    .key(k_claim)
                    .key(k_claims)
                    .key(k_info)
                    .arg(name)
                    .arg(origin)
                    .arg(session)
                    .arg(ttl)
                    .arg(mode)
                    .arg(expires)
                    .arg(takeover_below)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(claim_answer(name, answer))
    }

    /// Drops `name`'s claim if (`origin`, `session`) holds it; `false` if not.
    pub async fn release_claim(&self, name: &str, origin: &str, session: &str) -> Result<bool> {
        let (k, k_claims, k_info) = (
            self.key(&["claim", name]),
            self.key(&["claims"]),
            self.key(&["claim-info"]),
        );
        let released: i64 = self
            .run(|mut c| async move {
                self.scripts
                    .release_claim
                    .key(k)
                    .key(k_claims)
                    .key(k_info)
                    .arg(format!("{origin} {session}"))
                    .arg(name)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(released == 1)
    }

    /// Ends what a revoked stream holds: its claim and its routes, so edges
    /// stop sending viewers to it while its origin ends the publish.
    /// Returns the claim it dropped, if one was held.
    async fn revoke(&self, name: &str) -> Result<Option<EndedClaim>> {
        let (k_routes, k_live, k_claim, k_claims, k_info) = (
            self.key(&["routes", name]),
            self.key(&["live"]),
            self.key(&["claim", name]),
            self.key(&["claims"]),
            self.key(&["claim-info"]),
        );
        let old: Option<String> = self
            .run(|mut c| async move {
                self.scripts
                    .revoke
                    .key(k_routes)
                    .key(k_live)
                    .key(k_claim)
                    .key(k_claims)
                    .key(k_info)
                    .arg(name)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(old.and_then(|v| EndedClaim::parse(name, &v)))
    }

    /// Claims that expired without a release (their origin died or lost the
    /// router), at most `limit` of them, each returned once across every
    /// router instance sharing this Redis: the `stream.ended` sweep.
    pub async fn sweep_expired_claims(&self, limit: usize) -> Result<Vec<EndedClaim>> {
        let (k_claims, k_info) = (self.key(&["claims"]), self.key(&["claim-info"]));
        let now = now_ms();
        let k = k_claims.clone();
        // The due names first, then one script per name with its claim key
        // in `KEYS` (Cluster-safe); a name renewed in between is rescheduled
        // by its script.
        let due: Vec<String> = self
            .run(|mut c| async move { c.zrangebyscore_limit(k, "-inf", now, 0, limit as isize).await })
            .await?;
        let mut ended = vec![];
        for name in due {
            let (k_claims, k_info, k_claim) = (k_claims.clone(), k_info.clone(), self.key(&["claim", &name]));
            let n = name.clone();
            let value: Option<String> = self
                .run(|mut c| async move {
                    self.scripts
                        .sweep_claim
                        .key(k_claims)
                        .key(k_info)
                        .key(k_claim)
                        .arg(now)
                        .arg(n)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            if let Some(v) = value.and_then(|v| EndedClaim::parse(&name, &v)) {
                ended.push(v);
            }
        }
        Ok(ended)
    }

    // ----- viewers -------------------------------------------------------

    /// Replaces `edge`'s viewer counts; returns the TTL applied.
    ///
    /// The script gets every key through `KEYS` (Cluster-safe with a
    /// hash-tagged prefix): the streams of the edge's previous report are
    /// read first and passed in, and the script refuses to run on a
    /// previous report that changed meanwhile (then it is read again).
    pub async fn put_viewers(&self, edge: &str, streams: &BTreeMap<String, u64>) -> Result<Duration> {
        let k_edge = self.key(&["edge-viewers", edge]);
        let ttl_ms = self.viewer_ttl.as_millis() as u64;
        let names = streams.keys().map(String::as_str).collect::<Vec<_>>().join(" ");
        for _ in 0..PUT_VIEWERS_ATTEMPTS {
            let k = k_edge.clone();
            let previous: Option<String> = self.run(|mut c| async move { c.get(k).await }).await?;
            let previous = previous.unwrap_or_default();
            let mut counts: BTreeMap<&str, String> =
                previous.split_whitespace().map(|n| (n, "-".to_string())).collect();
            for (name, count) in streams {
                counts.insert(name, count.to_string());
            }
            let now = now_ms();
            let answer: String = self
                .run(|mut c| {
                    let mut inv = self.scripts.put_viewers.key(&k_edge);
                    for name in counts.keys() {
                        inv.key(self.key(&["viewers", name]));
                    }
                    inv.arg(edge).arg(ttl_ms).arg(now + ttl_ms).arg(&previous).arg(&names);
                    for count in counts.values() {
                        inv.arg(count);
                    }
                    async move { inv.invoke_async(&mut c).await }
                })
                .await?;
            if answer == "ok" {
                return Ok(self.viewer_ttl);
            }
        }
        Err(StoreError::Unavailable(
            "the edge's previous viewer report changed during every attempt".into(),
        ))
    }

    // ----- discovery reports and routes ------------------------------------

    /// Records that `origin` holds `name` live; returns the TTL applied.
    pub async fn put_report(&self, origin: &str, name: &str, report: &OriginReport) -> Result<Duration> {
        let k_routes = self.key(&["routes", name]);
        let k_live = self.key(&["live"]);
        let now = now_ms();
        let ttl_ms = self.report_ttl.as_millis() as u64;
        let k = k_routes.clone();
        let old: Option<String> = self.run(|mut c| async move { c.hget(k, origin).await }).await?;
        // Same session still live: keep when it started, so `age_ms` is the
        // session's age, not the time since the last heartbeat.
        let since_ms = old
            .and_then(|o| serde_json::from_str::<StoredReport>(&o).ok())
            .filter(|o| o.session == report.session && o.expires_at_ms > now)
            .map_or(now, |o| o.since_ms);
        let stored = StoredReport {
            host: report.host.clone(),
            manifest: report.manifest.clone(),
            session: report.session.clone(),
            renditions: report.renditions.clone(),
            since_ms,
            reported_at_ms: now,
            expires_at_ms: now + ttl_ms,
        };
        let json = serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(&k_routes, origin, json)
            .ignore()
            .pexpire(&k_routes, ttl_ms as i64)
            .ignore()
            .cmd("ZADD")
            .arg(&k_live)
            .arg("GT")
            .arg(now + ttl_ms)
            .arg(name)
            .ignore();
        self.run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await?;
        Ok(self.report_ttl)
    }

    /// Withdraws `origin`'s report for `name`; `false` if there was none.
    pub async fn delete_report(&self, origin: &str, name: &str) -> Result<bool> {
        let (k_routes, k_live) = (self.key(&["routes", name]), self.key(&["live"]));
        let removed: i64 = self
            .run(|mut c| async move {
                self.scripts
                    .delete_report
                    .key(k_routes)
                    .key(k_live)
                    .arg(origin)
                    .arg(name)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(removed == 1)
    }

    /// `name`'s live origins (preferred first: newest session, then origin
    /// id; empty when nobody holds it), viewers and policy, in one round trip.
    pub async fn live(&self, name: &str) -> Result<Live> {
        Ok(self
            .live_many(std::slice::from_ref(&name.to_string()))
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// [`Store::live`] for many streams in one round trip (same order as `names`).
    pub async fn live_many(&self, names: &[String]) -> Result<Vec<Live>> {
        if names.is_empty() {
            return Ok(vec![]);
        }
        let mut pipe = redis::pipe();
        for n in names {
            pipe.hgetall(self.key(&["routes", n]));
            pipe.hgetall(self.key(&["viewers", n]));
            pipe.hget(self.key(&["stream", n]), "playback");
        }
        type Row = (HashMap<String, String>, HashMap<String, String>, Option<String>);
        let rows: Vec<Row> = self.run(|mut c| async move { pipe.query_async(&mut c).await }).await?;
        let now = now_ms();
        Ok(names
            .iter()
            .zip(rows)
            .map(|(n, (routes, viewers, playback))| Live {
                origins: self.live_origins(n, routes),
                viewers: sum_viewers(&viewers, now),
                playback: if playback.as_deref() == Some("token") {
                    Playback::Token
                } else {
                    Playback::Public
                },
            })
            .collect())
    }

    /// Names of live streams, sorted.
    pub async fn live_stream_names(&self) -> Result<Vec<String>> {
        let k_live = self.key(&["live"]);
        let now = now_ms();
        let mut pipe = redis::pipe();
        pipe.cmd("ZREMRANGEBYSCORE").arg(&k_live).arg("-inf").arg(now).ignore();
        pipe.cmd("ZRANGEBYSCORE")
            .arg(&k_live)
            .arg(format!("({now}"))
            .arg("+inf");
        let (mut names,): (Vec<String>,) = self.run(|mut c| async move { pipe.query_async(&mut c).await }).await?;
        names.sort();
        Ok(names)
    }

    /// Filters a `routes:{name}` hash down to live reports, sorted, and
    /// prunes the expired ones in the background.
    fn live_origins(&self, name: &str, h: HashMap<String, String>) -> Vec<RouteOrigin> {
        let now = now_ms();
        let mut live = vec![];
        let mut expired = vec![];
        for (origin, json) in h {
            match serde_json::from_str::<StoredReport>(&json) {
                Ok(r) if r.expires_at_ms > now => live.push((origin, r)),
                Ok(_) => expired.push(origin),
                Err(e) => {
                    tracing::warn!(stream = name, origin, error = %e, "dropping unreadable report");
                    expired.push(origin);
                }
            }
        }
        if !expired.is_empty() {
            self.prune(name, expired);
        }
        live.sort_by(|(oa, a), (ob, b)| b.since_ms.cmp(&a.since_ms).then_with(|| oa.cmp(ob)));
        live.iter().map(|(o, r)| r.to_route_origin(o, now)).collect()
    }

    /// Removes expired fields without making the reader wait.
    fn prune(&self, name: &str, origins: Vec<String>) {
        let k = self.key(&["routes", name]);
        let Some(mut conn) = self.conn.current() else {
            return;
        };
        tokio::spawn(async move {
            let _: redis::RedisResult<()> = conn.hdel(k, origins).await;
        });
    }
}

/// Reads a claim script's answer: `ok`, `new[|origin session]`, `revoked`,
/// or the holder's origin.
fn claim_answer(name: &str, answer: String) -> Claim {
    if let Some(rest) = answer.strip_prefix("new") {
        let replaced = rest.strip_prefix('|').and_then(|v| EndedClaim::parse(name, v));
        return Claim::Taken { replaced };
    }
    match answer.as_str() {
        "ok" => Claim::Held,
        "revoked" => Claim::Revoked,
        _ => Claim::HeldBy(answer),
    }
}

/// The sum of the live counts of a `viewers:{name}` hash (`"{count} {expires_at_ms}"`).
fn sum_viewers(h: &HashMap<String, String>, now: u64) -> u64 {
    h.values()
        .filter_map(|v| {
            let (count, exp) = v.split_once(' ')?;
            let (count, exp) = (count.parse::<u64>().ok()?, exp.parse::<u64>().ok()?);
            (exp > now).then_some(count)
        })
        .fold(0u64, u64::saturating_add)
}

fn parse_stream(name: &str, mut h: HashMap<String, String>) -> Result<Option<StreamRecord>> {
    if h.is_empty() {
        return Ok(None);
    }
    let mut field = |f: &str| {
        h.remove(f)
            .ok_or_else(|| StoreError::Corrupt(format!("stream {name} has no {f}")))
    };
    Ok(Some(StreamRecord {
        name: name.to_string(),
        key_hash: field("key_hash")?,
        profile: field("profile")?,
        enabled: field("enabled")? == "1",
        created_at_ms: field("created_at_ms")?
            .parse()
            .map_err(|_| StoreError::Corrupt("created_at_ms".into()))?,
        playback: if h.get("playback").map(String::as_str) == Some("token") {
            Playback::Token
        } else {
            Playback::Public
        },
        record: h.get("record").map(String::as_str) == Some("1"),
    }))
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            // KEYS: stream hash, key index, stream set. ARGV: name, key hash, profile, now.
            create_stream: Script::new(
                r"
                if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
                redis.call('HSET', KEYS[1], 'key_hash', ARGV[2], 'profile', ARGV[3],
                           'enabled', '1', 'created_at_ms', ARGV[4])
                redis.call('SET', KEYS[2], ARGV[1])
                redis.call('SADD', KEYS[3], ARGV[1])
                return 1",
            ),
            // KEYS: stream hash, stream set, key index of the hash read.
            // ARGV: name, the key hash read. -1: the hash changed, read again.
            delete_stream: Script::new(
                r"
                local h = redis.call('HGET', KEYS[1], 'key_hash')
                if not h then return 0 end
                if h ~= ARGV[2] then return -1 end
                redis.call('DEL', KEYS[3])
                redis.call('DEL', KEYS[1])
                redis.call('SREM', KEYS[2], ARGV[1])
                return 1",
            ),
            // KEYS: stream hash, key index of the hash read, new key index.
            // ARGV: name, the key hash read, new hash. -1: the hash changed.
            rotate_key: Script::new(
                r"
                local h = redis.call('HGET', KEYS[1], 'key_hash')
                if not h then return 0 end
                if h ~= ARGV[2] then return -1 end
                redis.call('DEL', KEYS[2])
                redis.call('SET', KEYS[3], ARGV[1])
                redis.call('HSET', KEYS[1], 'key_hash', ARGV[3])
                return 1",
            ),
            // KEYS: stream hash. ARGV: field, value, field, value...
            update_stream: Script::new(
                r"
                if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
                redis.call('HSET', KEYS[1], unpack(ARGV))
                return 1",
            ),
            // KEYS: routes hash, live zset. ARGV: origin, name.
            delete_report: Script::new(
                r"
                local n = redis.call('HDEL', KEYS[1], ARGV[1])
                if redis.call('HLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[2]) end
                return n",
            ),
            // KEYS: key index, stream hash, claim, claims zset, claim-info
            // hash. ARGV: name, origin, session, ttl ms, 'authorize' |
            // 'renew', expiry ms, the PTTL under which an authorize takes
            // over another origin's claim. The claim's value is 'origin
            // session'; origin ids and sessions have no spaces. 'new' when
            // no claim was held (the stream goes live), 'new|{old value}'
            // when an expired or taken-over claim is replaced.
            claim: Script::new(
                r"
                if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'revoked' end
                if redis.call('HGET', KEYS[2], 'enabled') ~= '1' then return 'revoked' end
                local value = ARGV[2] .. ' ' .. ARGV[3]
                local answer = 'new'
                local v = redis.call('GET', KEYS[3])
                if v then
                    local holder = string.match(v, '^(%S+)')
                    if holder ~= ARGV[2] then
                        -- Another origin's: taken over by an authorize only
                        -- when that origin stopped renewing it.
                        if ARGV[5] ~= 'authorize' or redis.call('PTTL', KEYS[3]) > tonumber(ARGV[7]) then
                            return holder
                        end
                        answer = 'new|' .. v
                    else
                        if ARGV[5] == 'authorize' then value = v end
                        answer = 'ok'
                    end
                else
                    local stale = redis.call('HGET', KEYS[5], ARGV[1])
                    if stale then answer = 'new|' .. stale end
                end
                redis.call('SET', KEYS[3], value, 'PX', ARGV[4])
                redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
                redis.call('HSET', KEYS[5], ARGV[1], value)
                return answer",
            ),
            // KEYS: claim, claims zset, claim-info hash. ARGV: 'origin session', name.
            release_claim: Script::new(
                r"
                if redis.call('GET', KEYS[1]) == ARGV[1] then
                    redis.call('ZREM', KEYS[2], ARGV[2])
                    redis.call('HDEL', KEYS[3], ARGV[2])
                    return redis.call('DEL', KEYS[1])
                end
                return 0",
            ),
            // KEYS: routes hash, live zset, claim, claims zset, claim-info
            // hash. ARGV: name. Returns the dropped claim's value or nil.
            revoke: Script::new(
                r"
                local v = redis.call('GET', KEYS[3])
                redis.call('DEL', KEYS[1], KEYS[3])
                redis.call('ZREM', KEYS[2], ARGV[1])
                redis.call('ZREM', KEYS[4], ARGV[1])
                redis.call('HDEL', KEYS[5], ARGV[1])
                return v",
            ),
            // KEYS: claims zset, claim-info hash, the claim. ARGV: now ms,
            // name. The claim's 'origin session' when it expired (and its
            // schedule and info are dropped); nil when it is still there
            // (renewed meanwhile: rescheduled) or another sweep took it.
            sweep_claim: Script::new(
                r"
                local ttl = redis.call('PTTL', KEYS[3])
                if ttl > 0 then
                    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + ttl, ARGV[2])
                    return false
                end
                local due = redis.call('ZSCORE', KEYS[1], ARGV[2])
                if not due or tonumber(due) > tonumber(ARGV[1]) then return false end
                local v = redis.call('HGET', KEYS[2], ARGV[2])
                redis.call('ZREM', KEYS[1], ARGV[2])
                redis.call('HDEL', KEYS[2], ARGV[2])
                return v",
            ),
            // KEYS: edge-viewers string, then the viewers hash of every
            // stream in this report or the edge's previous one. ARGV: edge
            // id, ttl ms, expiry ms, the previous report's names as read
            // before the call ('' for none), this report's names ('' for
            // none), then one count per viewers hash ('-': this report does
            // not list it). 'retry' when the previous report changed
            // meanwhile (a concurrent report from the same edge: the caller
            // reads it again).
            put_viewers: Script::new(
                r"
                if (redis.call('GET', KEYS[1]) or '') ~= ARGV[4] then return 'retry' end
                for i = 2, #KEYS do
                    local count = ARGV[i + 4]
                    if count == '-' then
                        redis.call('HDEL', KEYS[i], ARGV[1])
                    else
                        redis.call('HSET', KEYS[i], ARGV[1], count .. ' ' .. ARGV[3])
                        redis.call('PEXPIRE', KEYS[i], ARGV[2])
                    end
                end
                if ARGV[5] ~= '' then
                    redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[2])
                else
                    redis.call('DEL', KEYS[1])
                end
                return 'ok'",
            ),
        }
    }
}
