//! The proxy: pingora's phases, filled in for HLS.
//!
//! Request path (in pingora's order):
//! 0. `early_request_filter`: the viewer write timeout, on every session
//!    (pingora makes HTTP/2 sessions itself, see [`crate::tls`]).
//! 1. `request_filter`: an HTTP/1.1 request without exactly one `Host` is
//!    refused (400, RFC 9112 3.2); an `OPTIONS` preflight of a playback path
//!    is answered 204 (CORS); otherwise only GET/HEAD; `/healthz`, `/metrics` and the
//!    player page (`/watch/...`, see [`crate::player`]) answered here; the
//!    path must parse as an HLS object of the layout; the stream's route is
//!    looked up; an origin is chosen (see below). Unknown streams and
//!    bad paths are answered at once.
//!    (Most fresh hits never get here: [`crate::hits`] answers them before
//!    pingora's session, with [`Edge::plain_hit`]. The hits that do, e.g.
//!    when the stream's route had to be fetched again or the request is a
//!    range, take pingora's cache path below.)
//! 2. `request_cache_filter` / `cache_key_callback`: cached on the
//!    moka-backed storage, keyed by origin id + path (+ `_HLS_*` query
//!    parameters), with the cache lock collapsing concurrent misses into one
//!    origin request.
//! 3. `upstream_peer` / `upstream_request_filter`: to the chosen origin,
//!    with its `Host` and only the `_HLS_*` query parameters. The origin's
//!    host name is resolved first ([`crate::resolve`]); pingora only ever
//!    gets an address. A name that does not resolve is a refused connection.
//!    `upstream_response_filter` adds the CORS fields before the cache
//!    stores the head, so hits carry them at no cost.
//! 4. `response_cache_filter`: 200s only; freshness set here, per object
//!    kind, with sub-second precision (segments: long; media playlists:
//!    `--playlist-ttl`, and so the live DASH MPD; multivariant:
//!    `--multivariant-ttl`; a recording's MPD: as segments).
//! 5. `response_filter`: `X-Cache-Status` and `Age` on every response.
//!
//! Stickiness: a viewer's first request is the multivariant playlist; the
//! origin for it is chosen by hashing the viewer's address over the origins
//! holding the stream, so the same viewer gets the same origin again. Every
//! later path contains that origin's publish session
//! (`/{stream}/{session}/...`), and sessions are unique, so the session in
//! the path names the origin: the viewer stays there with no cookie. When
//! that origin no longer holds the session (it died, or the publisher moved),
//! a media playlist request is redirected (302) to the same rendition of a
//! session that is live, and the player follows it.
//!
//! Recordings: a recording's VOD playlists, and init and segments under a
//! session no live origin holds, are routed by the recording's own route
//! (`GET /recordings/{name}/{session}`, see [`crate::recordings`]): the
//! one origin holding it, the stream's token policy; VOD playlists are
//! cached like segments (they never change). Live objects never look there.
//!
//! Client aborts (the viewer closed, reset or stopped reading mid-answer)
//! are not errors of the edge: counted in `edge_client_aborts_total{kind}`,
//! logged at debug, never answered or counted as a 5xx.

use crate::live::{Copy, Held, Live, MAX_PLAYLIST};
use crate::ll::{self, PartVerdict, Verdict};
use crate::metrics::Metrics;
use crate::playback::{self, Denied, Gate};
use crate::player;
use crate::resolve::Resolver;
use crate::routes::{LookupSource, RouteTable};
use crate::shield::Shields;

/// The header an edge adds to what it fetches through a shield: the agent
/// token both share (`ROUTER_AGENT_TOKEN`). The shield then skips the token
/// check, the session redirect and the viewer count, which belong to the
/// edge the viewer is on (it would otherwise count every edge below as a
/// viewer, refuse token streams, and redirect a multivariant request the
/// edge below cannot follow).
pub const TIER_HEADER: &str = "x-dionysia-edge";
use crate::storage::{FreshWire, MokaStorage};
use crate::viewers::{Viewers, Who};
use api_types::hls_query::{HlsQuery, HlsQueryError};
use api_types::layout::{ObjectKind, ObjectPath, parse_object_path};
use api_types::{Route, RouteOrigin};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora_cache::lock::CacheKeyLockImpl;
use pingora_cache::{CacheKey, CacheMeta, CachePhase, NoCacheReason, RespCacheable};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[derive(Clone)]
pub struct Edge {
    pub routes: Arc<RouteTable>,
    pub storage: &'static MokaStorage,
    pub lock: &'static CacheKeyLockImpl,
    /// The cache lock of media playlists and parts, whose fills may be held
    /// by the origin: its age timeout is `--hold-timeout`, longer than the
    /// longest legal hold, so waiters never time out into a stampede.
    pub hold_lock: &'static CacheKeyLockImpl,
    /// LL-HLS: the freshest playlist copies and the held-request count.
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    pub playlist_ttl: Duration,
    pub multivariant_ttl: Duration,
    pub segment_ttl: Duration,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Origin host names to addresses (pingora must never resolve one).
    pub resolver: Arc<Resolver>,
    /// Origins that refused a connection lately (a passive health check):
    /// new viewers and moved viewers are placed elsewhere while one is here.
    pub refused: moka::sync::Cache<String, ()>,
    /// Longest time a write to a viewer may make no progress: set on every
    /// session here because pingora makes HTTP/2 sessions itself
    /// ([`crate::tls`]); `hits` sets it on HTTP/1 ones.
    pub write_timeout: Duration,
    /// How long a media playlist of a gone session waits for the
    /// publisher's next one (`--failover-wait`; see [`Edge::await_successor`]).
    pub failover_wait: Duration,
    /// Shield edges to fetch through instead of the origins (`--shield`).
    pub shields: Arc<Shields>,
    /// Playback tokens of token streams ([`crate::playback`]).
    pub gate: Arc<Gate>,
    /// The agent token, which an edge sends a shield in [`TIER_HEADER`]: a
    /// request that carries it comes from an edge below, which has checked
    /// the viewer's token and counts the viewer itself.
    pub tier_token: Option<Arc<str>>,
    /// The viewer counter ([`crate::viewers`]).
    pub viewers: Arc<Viewers>,
}

/// How often a request waiting for a moved publisher's session looks at
/// the route again (coalesced: see [`RouteTable::recheck`]).
const FAILOVER_POLL: Duration = crate::routes::RECHECK_EVERY;

/// How long an origin that refused a connection is passed over.
pub const REFUSED_FOR: Duration = Duration::from_secs(5);

/// The kind of client abort `e` is ([`crate::metrics::ABORT_KINDS`]), or
/// `None` for an error of the edge or of an origin.
pub(crate) fn client_abort(e: &Error) -> Option<&'static str> {
    if e.esource() != &ErrorSource::Downstream {
        return None;
    }
    match e.etype() {
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => Some("timeout"),
        ErrorType::ConnectionClosed => Some("closed"),
        ErrorType::ReadError | ErrorType::WriteError => Some(
            e.cause
                .as_ref()
                .and_then(|c| c.downcast_ref::<std::io::Error>())
                .map_or("closed", crate::metrics::abort_kind_of_io),
        ),
        _ => None,
    }
}

/// The CORS fields of every answer to a viewer.
const CORS: [(&str, &str); 2] = [
    ("access-control-allow-origin", "*"),
    ("access-control-expose-headers", ops::http::CORS_EXPOSE),
];

#[derive(Default)]
pub struct Ctx {
    kind: Option<ObjectKind>,
    route: Option<Arc<Route>>,
    /// The chosen origin: an index into `route.origins`.
    origin: Option<usize>,
    /// Path plus the `_HLS_*` query parameters: what is forwarded and keyed.
    target: String,
    /// Set when this edge answered in `request_filter`: the status label for
    /// metrics (`ERROR`, `REDIRECT`, `PLAYER`,
    /// `HEALTH`, `METRICS`).
    answered: Option<&'static str>,
    upstream_started: Option<Instant>,
    /// A media playlist request's LL-HLS directives.
    directives: HlsQuery,
    /// Set while the edge holds this request (it waits for the live edge).
    held: Option<Held>,
    /// The playback prefixes stripped from the path (`/_v/{sid}`, `/t/{token}`),
    /// kept on the edge's redirects.
    prefix: String,
    /// The `edge_upstream_requests_total` kind of this request's fetch.
    upstream_kind: &'static str,
    /// The origin's 200 for a media playlist, read to become the copy.
    capture: Option<Capture>,
    /// The shield this attempt fetches through (`None`: the origin).
    shield: Option<usize>,
    /// Shields this request found refusing connections (it retries past them).
    shields_failed: Vec<usize>,
}

/// A media playlist answer being read from the origin.
struct Capture {
    header: ResponseHeader,
    body: BytesMut,
    fetched: Instant,
}

impl Ctx {
    fn kind_label(&self) -> &'static str {
        self.kind.map_or("other", ObjectKind::label)
    }

    fn origin(&self) -> Option<&RouteOrigin> {
        self.route.as_ref()?.origins.get(self.origin?)
    }
}

/// What is forwarded to the origin and keyed: the path, plus for a media
/// playlist its LL-HLS directives in canonical form (`HlsQuery`'s
/// `Display`), so that one question is one key; every other query parameter
/// is dropped. Invalid directives are refused (400 at the edge).
pub(crate) fn target_of(
    obj: &ObjectPath<'_>,
    path: &str,
    query: Option<&str>,
) -> std::result::Result<(String, HlsQuery), HlsQueryError> {
    if obj.kind != ObjectKind::MediaPlaylist {
        return Ok((path.to_string(), HlsQuery::default()));
    }
    let q = HlsQuery::parse(query)?;
    let target = if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{q}")
    };
    Ok((target, q))
}

/// Longest a thumbnail is kept fresh, whatever its origin says.
const MAX_THUMBNAIL_TTL: Duration = Duration::from_secs(10);

/// How long a live thumbnail is fresh: the origin remakes it every segment
/// and says so in its `Cache-Control: max-age` (the segment duration);
/// 1 s without one, at most [`MAX_THUMBNAIL_TTL`].
fn thumbnail_ttl(resp: &ResponseHeader) -> Duration {
    resp.headers
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|d| d.trim().strip_prefix("max-age=")?.parse::<u64>().ok())
        })
        .map_or(Duration::from_secs(1), Duration::from_secs)
        .min(MAX_THUMBNAIL_TTL)
}

/// A blocking reload's `(msn, part)`.
fn blocking(q: &HlsQuery) -> Option<(u64, Option<u64>)> {
    q.msn.map(|m| (m, q.part))
}

/// The media playlist beside a part (`.../{msn}.{part}.m4s` ->
/// `.../index.m3u8`) and the part's numbers.
fn part_and_playlist(path: &str) -> Option<((u64, u64), String)> {
    let (dir, file) = path.rsplit_once('/')?;
    Some((ll::part_name(file)?, format!("{dir}/{}", api_types::layout::PLAYLIST)))
}

/// The `X-Cache-Status` word for how the cache answered this request.
fn cache_status(session: &Session) -> &'static str {
    if !session.cache.enabled() {
        return "BYPASS";
    }
    match session.cache.phase() {
        CachePhase::Hit => "HIT",
        CachePhase::Miss => "MISS",
        CachePhase::Stale | CachePhase::StaleUpdating => "STALE",
        CachePhase::Expired => "EXPIRED",
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => "REVALIDATED",
        _ => "BYPASS",
    }
}

/// Marks a response with how the cache answered it and the age of what it
/// served, in whole seconds.
fn mark(resp: &mut ResponseHeader, status: &'static str, age: u64) -> Result<()> {
    resp.insert_header("x-cache-status", status)?;
    resp.insert_header("age", age.to_string())
}

/// Where a request for an object of a stream goes.
enum Placement {
    /// To this origin: an index into the route's origins.
    Origin(usize),
    /// The viewer's session ended: a redirect to this path of a live one.
    Redirect(String),
    /// Nowhere: no origin holds what was asked for.
    Nowhere,
}

/// The origins a new placement may use: those holding the stream that have
/// not refused a connection lately; all of them if every one has.
fn candidates<'r>(route: &'r Route, refused: &moka::sync::Cache<String, ()>) -> Vec<&'r RouteOrigin> {
    let mut origins: Vec<&RouteOrigin> = route
        .origins
        .iter()
        .filter(|o| !refused.contains_key(&o.origin))
        .collect();
    if origins.is_empty() {
        origins = route.origins.iter().collect();
    }
    origins.sort_by(|a, b| a.origin.cmp(&b.origin));
    origins
}

/// The origin for a new viewer: the viewer's address hashed over the
/// candidate origins in a fixed order, so a viewer keeps its origin.
fn place<'r>(origins: &[&'r RouteOrigin], stream: &str, viewer: Option<IpAddr>) -> Option<&'r RouteOrigin> {
    if origins.is_empty() {
        return None;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (viewer, stream).hash(&mut h);
    Some(origins[(h.finish() % origins.len() as u64) as usize])
}

/// Another candidate origin that has `rendition`, for a viewer whose session
/// ended: where [`place`] puts the viewer if it can, else the first that has it.
fn successor<'r>(
    origins: &[&'r RouteOrigin],
    stream: &str,
    rendition: &str,
    viewer: Option<IpAddr>,
) -> Option<&'r RouteOrigin> {
    let has = |o: &RouteOrigin| o.renditions.iter().any(|r| r.name == rendition);
    match place(origins, stream, viewer) {
        Some(placed) if has(placed) => Some(placed),
        _ => origins.iter().find(|o| has(o)).copied(),
    }
}

/// The session of `obj` if it is media that a recording may hold (init,
/// segments, parts under a session): routed to the recording when no live
/// origin holds that session.
fn recorded_media<'a>(obj: &ObjectPath<'a>) -> Option<&'a str> {
    match obj.kind {
        ObjectKind::Init | ObjectKind::Segment | ObjectKind::Part => obj.session,
        _ => None,
    }
}

/// Whether an upstream error says the origin is gone: it refuses or does
/// not answer connections, or the connection dropped (a killed origin).
fn origin_gone(e: &Error) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectRefused
            | ErrorType::ConnectTimedout
            | ErrorType::ConnectError
            | ErrorType::ConnectionClosed
            | ErrorType::ReadError
    )
}

/// Whether a live origin of `route` holds `session`.
fn holds(route: &Route, session: &str) -> bool {
    route.origins.iter().any(|o| o.session == session)
}

/// The cache key of `target` fetched from `origin`.
fn key_of(origin: &str, target: &str) -> CacheKey {
    // Length-prefixed so that no origin id/path pair can collide with another.
    CacheKey::new(format!("{}:{origin}{target}", origin.len()), "")
}

impl Edge {
    /// Answers the request from the edge itself.
    async fn answer(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        status: u16,
        headers: &[(&'static str, String)],
        body: impl Into<Bytes>,
        label: &'static str,
    ) -> Result<bool> {
        let body: Bytes = body.into();
        let mut resp = ResponseHeader::build(status, Some(headers.len() + 4))?;
        for (k, v) in headers {
            resp.insert_header(*k, v.as_str())?;
        }
        // A 204 has no body and no Content-Length (RFC 9110 8.6).
        if status != 204 {
            resp.insert_header("content-length", body.len().to_string())?;
        }
        if !headers.iter().any(|(k, _)| *k == "cache-control") {
            resp.insert_header("cache-control", "no-store")?;
        }
        mark(&mut resp, "PASS", 0)?;
        for (k, v) in CORS {
            resp.insert_header(k, v)?;
        }
        ctx.answered = Some(label);
        let head = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(resp), head || body.is_empty())
            .await?;
        if !head && !body.is_empty() {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(true)
    }

    /// The player page, its assets and the live list (see [`player`]).
    async fn serve_player(&self, session: &mut Session, ctx: &mut Ctx, path: &str) -> Result<bool> {
        let (body, content_type, cache_control) = match player::request(path) {
            player::Request::Asset(a) => (a.body, a.content_type, a.cache_control),
            player::Request::LiveList => match self.routes.live().await {
                Ok(list) => (player::live_list_json(&list), "application/json", "no-store"),
                Err(e) => {
                    tracing::warn!(error = %e, "no live list");
                    let retry = [("retry-after", "1".to_string())];
                    return self
                        .answer(session, ctx, 503, &retry, "routing unavailable\n", "ERROR")
                        .await;
                }
            },
            player::Request::NotFound => {
                return self.answer(session, ctx, 404, &[], "not found\n", "ERROR").await;
            }
        };
        let headers = [
            ("content-type", content_type.to_string()),
            ("cache-control", cache_control.to_string()),
        ];
        self.answer(session, ctx, 200, &headers, body, "PLAYER").await
    }

    /// The cache key: the chosen origin's id and the target.
    fn cache_key(&self, ctx: &Ctx) -> CacheKey {
        key_of(ctx.origin().map_or("", |o| o.origin.as_str()), &ctx.target)
    }

    /// Where a request for `obj` goes, by the rules in the module docs.
    fn placement(&self, obj: &ObjectPath, route: &Route, viewer: Option<IpAddr>) -> Placement {
        let found = match obj.media {
            None => place(&candidates(route, &self.refused), obj.stream, viewer)
                .and_then(|o| route.origins.iter().position(|x| x.origin == o.origin)),
            Some((session_id, rendition)) => match route.origins.iter().position(|o| o.session == session_id) {
                Some(i) => Some(i),
                None if obj.kind == ObjectKind::MediaPlaylist => {
                    // The session is gone: send the player to a live one.
                    let candidates = candidates(route, &self.refused);
                    if let Some(next) = successor(&candidates, obj.stream, rendition, viewer) {
                        return Placement::Redirect(format!(
                            "/{}/{}/{}/index.m3u8",
                            obj.stream, next.session, rendition
                        ));
                    }
                    None
                }
                None => None,
            },
        };
        found.map_or(Placement::Nowhere, Placement::Origin)
    }

    /// A media playlist request of `rendition` whose session (`gone`) has
    /// no live origin (it refuses connections, or no longer reports it)
    /// and no successor yet: the publisher is probably moving (its origin
    /// died and HAProxy sent its reconnect elsewhere), which takes a few
    /// seconds. Waits, counted as a held request, up to `--failover-wait`
    /// for another session of the stream to be routed, and returns the
    /// redirect's path to it; `None` when none came, at the held-request
    /// bound, or when the wait is off.
    async fn await_successor(
        &self,
        stream: &str,
        rendition: &str,
        gone: &str,
        viewer: Option<IpAddr>,
    ) -> Option<String> {
        if self.failover_wait.is_zero() {
            return None;
        }
        // Only a rendition the stream has (the dead origin's report still
        // lists it): a made-up path is answered at once, never held.
        let (Ok(Some(route)), _) = self.routes.lookup(stream).await else {
            return None;
        };
        if !route
            .origins
            .iter()
            .any(|o| o.renditions.iter().any(|r| r.name == rendition))
        {
            return None;
        }
        let moved = self
            .await_route(stream, |route| {
                let others: Vec<&RouteOrigin> = route
                    .origins
                    .iter()
                    .filter(|o| o.session != gone && !self.refused.contains_key(&o.origin))
                    .collect();
                successor(&others, stream, rendition, viewer)
                    .map(|next| format!("/{stream}/{}/{rendition}/index.m3u8", next.session))
            })
            .await;
        match &moved {
            Some(_) => self.metrics.failover_waits[0].inc(),
            None => {
                self.metrics.failover_waits[1].inc();
                tracing::info!(
                    stream,
                    session = gone,
                    rendition,
                    "no other session of the stream within --failover-wait"
                );
            }
        }
        moved
    }

    /// A session whose media an edge below asks this shield for and that
    /// this shield's route does not list yet (the publisher just moved, and
    /// the edge below learnt it first): waits, counted as a held request, up to
    /// `--failover-wait` for the route to list it; the route and the
    /// origin's index in it.
    async fn await_session(&self, stream: &str, wanted: &str) -> Option<(Arc<Route>, usize)> {
        let found = self
            .await_route(stream, |route| {
                let i = route.origins.iter().position(|o| o.session == wanted)?;
                Some((route.clone(), i))
            })
            .await;
        if found.is_none() {
            tracing::info!(
                stream,
                session = wanted,
                "an edge below asked for a session not routed within --failover-wait"
            );
        }
        found
    }

    /// What both waits above share: the stream's route asked again
    /// (`RouteTable::recheck`) every [`FAILOVER_POLL`] until `found` finds
    /// what it looks for in it, for at most `--failover-wait`, counted as a
    /// held request; `None` at the deadline, at the held-request bound, or
    /// when the wait is off.
    async fn await_route<T>(&self, stream: &str, found: impl Fn(&Arc<Route>) -> Option<T>) -> Option<T> {
        if self.failover_wait.is_zero() {
            return None;
        }
        let _held = self.live.hold()?;
        let deadline = Instant::now() + self.failover_wait;
        loop {
            if let Ok(Some(route)) = self.routes.recheck(stream).await
                && let Some(t) = found(&route)
            {
                return Some(t);
            }
            if Instant::now() + FAILOVER_POLL > deadline {
                return None;
            }
            // A poll interval within the deadline, not a readiness wait.
            tokio::time::sleep(FAILOVER_POLL).await;
        }
    }

    /// Whether `req` comes from an edge below this one ([`TIER_HEADER`] with
    /// this edge's agent token, compared in constant time).
    pub(crate) fn is_from_edge_below(&self, req: &RequestHeader) -> bool {
        use subtle::ConstantTimeEq;
        let (Some(mine), Some(theirs)) = (&self.tier_token, req.headers.get(TIER_HEADER)) else {
            return false;
        };
        mine.as_bytes().ct_eq(theirs.as_bytes()).into()
    }

    /// The fresh cached answer to a plain GET or HEAD of `path`, when all it
    /// takes is at hand: the stream's route in memory, an origin for it and a
    /// fresh object. What [`crate::hits`] serves without pingora's session;
    /// `wire_head` makes the stored header into bytes (once per object).
    pub(crate) async fn plain_hit(
        &self,
        path: &str,
        query: Option<&str>,
        viewer: Option<IpAddr>,
        user_agent: Option<&[u8]>,
        conn: &mut playback::Conn,
        wire_head: impl FnOnce(&ResponseHeader, usize, SystemTime) -> Bytes,
    ) -> Option<(ObjectKind, FreshWire)> {
        let split = playback::split(path)?;
        let path = split.rest;
        let obj = parse_object_path(path)?;
        // A new viewer's multivariant playlist: pingora's path redirects it
        // to its session.
        if obj.kind == ObjectKind::Multivariant && split.sid.is_none() {
            return None;
        }
        let route = match (obj.kind.is_vod(), obj.session) {
            (true, Some(session)) => self.routes.recordings.cached(obj.stream, session).await?,
            _ => match (self.routes.cached(obj.stream).await, recorded_media(&obj)) {
                (Some(r), Some(session)) if !holds(&r, session) => {
                    self.routes.recordings.cached(obj.stream, session).await?
                }
                (Some(r), _) => r,
                (None, Some(session)) => self.routes.recordings.cached(obj.stream, session).await?,
                (None, None) => return None,
            },
        };
        // Refusals are pingora's path's to answer.
        self.gate
            .check(&route, obj.stream, split.token, Some(&mut conn.memo))
            .ok()?;
        if matches!(
            obj.kind,
            ObjectKind::Multivariant | ObjectKind::MediaPlaylist | ObjectKind::Mpd
        ) {
            let who = match split.sid {
                Some(sid) => Who::Session(sid),
                None => Who::Address(viewer, user_agent),
            };
            let key = self.viewers.key(obj.stream, &who);
            // Once a second per connection at most: a keep-alive viewer's
            // reloads cost no cache write each.
            if conn
                .counted
                .is_none_or(|(k, at)| k != key || at.elapsed() >= Duration::from_secs(1))
            {
                self.viewers.seen(key, obj.stream);
                conn.counted = Some((key, Instant::now()));
            }
        }
        let Placement::Origin(i) = self.placement(&obj, &route, viewer) else {
            return None;
        };
        let origin = &route.origins[i].origin;
        let (target, directives) = target_of(&obj, path, query).ok()?;
        // A blocking reload the freshest copy satisfies: that copy, at once.
        if let Some((msn, part)) = blocking(&directives)
            && let Some(copy) = self.live.copy(origin, path, directives.skip)
            && copy.pos.judge(msn, part, copy.age()) == Verdict::Now
        {
            self.metrics.route_lookups[0].inc();
            self.metrics.ll_answers[0].inc();
            return Some((obj.kind, copy.wire(wire_head)));
        }
        let key = key_of(origin, &target);
        let hit = self.storage.fresh_wire(&key, SystemTime::now(), wire_head)?;
        self.metrics.route_lookups[0].inc();
        Some((obj.kind, hit))
    }

    /// A CORS preflight (`OPTIONS`) of a playback path or the player's:
    /// 204 with the methods, the requested headers (within reason) and how
    /// long the browser may keep the answer.
    async fn preflight(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let path = session.req_header().uri.path();
        let rest = playback::split(path).map_or(path, |s| s.rest);
        if parse_object_path(rest).is_none() && !player::owns(path) {
            return self.answer(session, ctx, 404, &[], "not found\n", "ERROR").await;
        }
        let requested = session
            .req_header()
            .headers
            .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .map(|v| v.as_bytes());
        let headers = [
            ("access-control-allow-methods", ops::http::CORS_METHODS.to_string()),
            ("access-control-allow-headers", ops::http::cors_allow_headers(requested)),
            ("access-control-max-age", ops::http::CORS_MAX_AGE.to_string()),
            ("cache-control", "no-store".to_string()),
        ];
        self.answer(session, ctx, 204, &headers, "", "PREFLIGHT").await
    }

    /// Answers a blocking reload from the edge's copy of the playlist, as
    /// a cache hit of that copy.
    async fn serve_copy(&self, session: &mut Session, ctx: &mut Ctx, copy: &Copy) -> Result<bool> {
        let mut resp = copy.header.clone();
        for name in ["content-length", "transfer-encoding", "connection", "keep-alive"] {
            resp.remove_header(name);
        }
        resp.insert_header("content-length", copy.body.len().to_string())?;
        let age = SystemTime::now()
            .duration_since(copy.created)
            .unwrap_or_default()
            .as_secs();
        mark(&mut resp, "HIT", age)?;
        ctx.answered = Some("HIT");
        self.metrics.ll_answers[0].inc();
        let head = session.req_header().method == http::Method::HEAD;
        session.write_response_header(Box::new(resp), head).await?;
        if !head {
            session.write_response_body(Some(copy.body.clone()), true).await?;
        }
        Ok(true)
    }

    /// Holds this request (counted until it ends), or answers 503 at
    /// `--max-held-requests`. `Ok(true)` when answered.
    async fn hold(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        match self.live.hold() {
            Some(held) => {
                ctx.held = Some(held);
                self.metrics.ll_answers[1].inc();
                Ok(false)
            }
            None => {
                self.metrics.ll_answers[5].inc();
                let retry = [("retry-after", "1".to_string())];
                self.answer(session, ctx, 503, &retry, "too many held requests\n", "ERROR")
                    .await
            }
        }
    }

    /// The LL-HLS part of `request_filter`, once the origin is chosen: a
    /// blocking reload answered from the copy, refused, or held; a part
    /// that will never exist refused, one not written yet held. `Ok(true)`
    /// when answered.
    async fn low_latency(&self, session: &mut Session, ctx: &mut Ctx, path: &str) -> Result<bool> {
        let Some(origin) = ctx.origin().map(|o| o.origin.clone()) else {
            return Ok(false);
        };
        match ctx.kind {
            Some(ObjectKind::MediaPlaylist) => {
                let Some((msn, part)) = blocking(&ctx.directives) else {
                    return Ok(false);
                };
                ctx.upstream_kind = "blocking";
                let copy = self.live.copy(&origin, path, ctx.directives.skip);
                match copy.as_ref().map(|c| c.pos.judge(msn, part, c.age())) {
                    Some(Verdict::Now) => {
                        let copy = copy.expect("judged");
                        self.serve_copy(session, ctx, &copy).await
                    }
                    Some(Verdict::TooFar) => {
                        self.metrics.ll_answers[3].inc();
                        let body = "_HLS_msn is more than two segments past the live edge\n";
                        self.answer(session, ctx, 400, &[], body, "ERROR").await
                    }
                    Some(Verdict::Forward) => Ok(false),
                    Some(Verdict::Hold) | None => self.hold(session, ctx).await,
                }
            }
            Some(ObjectKind::Part) => {
                let Some(((msn, index), playlist)) = part_and_playlist(path) else {
                    return Ok(false);
                };
                let verdict = self
                    .live
                    .freshest(&origin, &playlist)
                    .map(|c| c.pos.judge_part(msn, index));
                match verdict {
                    Some(PartVerdict::Never) => {
                        self.metrics.ll_answers[4].inc();
                        self.answer(session, ctx, 404, &[], "no such part\n", "ERROR").await
                    }
                    Some(PartVerdict::Ahead) => {
                        ctx.upstream_kind = "hinted";
                        self.hold(session, ctx).await
                    }
                    _ => Ok(false),
                }
            }
            _ => Ok(false),
        }
    }

    /// 403 with the reason, as JSON; nothing is asked of an origin.
    async fn deny(&self, session: &mut Session, ctx: &mut Ctx, denied: Denied) -> Result<bool> {
        tracing::debug!(reason = denied.reason(), "playback refused");
        self.gate.refused(denied);
        let headers = [("content-type", "application/json".to_string())];
        self.answer(session, ctx, 403, &headers, denied.body(), "ERROR").await
    }

    fn viewer(session: &Session) -> Option<IpAddr> {
        session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())
    }
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<()> {
        session.set_write_timeout(Some(self.write_timeout));
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let req = session.req_header();
        if req.version == http::Version::HTTP_11 && req.headers.get_all(http::header::HOST).iter().count() != 1 {
            return self
                .answer(session, ctx, 400, &[], "exactly one Host header\n", "ERROR")
                .await;
        }
        let method = req.method.clone();
        if method == http::Method::OPTIONS {
            return self.preflight(session, ctx).await;
        }
        if method != http::Method::GET && method != http::Method::HEAD {
            return self
                .answer(
                    session,
                    ctx,
                    405,
                    &[("allow", ops::http::CORS_METHODS.into())],
                    "method not allowed\n",
                    "ERROR",
                )
                .await;
        }
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/healthz" => return self.answer(session, ctx, 200, &[], "ok\n", "HEALTH").await,
            "/metrics" => {
                self.metrics.cache_bytes.set(self.storage.weighted_size() as i64);
                let text = ops::render_metrics(&self.metrics.registry);
                let mut resp = ResponseHeader::build(200, Some(4))?;
                resp.insert_header("content-type", ops::METRICS_CONTENT_TYPE)?;
                resp.insert_header("content-length", text.len().to_string())?;
                mark(&mut resp, "PASS", 0)?;
                ctx.answered = Some("METRICS");
                session.write_response_header(Box::new(resp), false).await?;
                session.write_response_body(Some(Bytes::from(text)), true).await?;
                return Ok(true);
            }
            _ if player::owns(&path) => return self.serve_player(session, ctx, &path).await,
            _ => {}
        }
        // The playback prefixes: stripped, so that everything below (and
        // the cache key) sees the path without them.
        let Some(split) = playback::split(&path) else {
            return self.answer(session, ctx, 404, &[], "not found\n", "ERROR").await;
        };
        let sid = split.sid.map(str::to_string);
        let token = split.token.map(str::to_string);
        ctx.prefix = split.prefix.to_string();
        let path = split.rest.to_string();
        if !ctx.prefix.is_empty() {
            let uri = match session.req_header().uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            let uri = uri
                .parse::<http::Uri>()
                .map_err(|_| Error::explain(ErrorType::InternalError, "bad path"))?;
            session.req_header_mut().set_uri(uri);
        }
        let Some(obj) = parse_object_path(&path) else {
            return self.answer(session, ctx, 404, &[], "not found\n", "ERROR").await;
        };
        ctx.kind = Some(obj.kind);
        // A recording's objects go to the origin holding it (see
        // `crate::recordings`): its VOD playlists always, its media when no
        // live origin holds the session.
        // Whether the live route was asked again below (a session it does
        // not hold): then not a second time before placing the request.
        let mut rechecked = false;
        let (route, source) = match (obj.kind.is_vod(), obj.session) {
            (true, Some(recorded)) => self.routes.recordings.lookup(obj.stream, recorded).await,
            _ => match (self.routes.lookup(obj.stream).await, recorded_media(&obj)) {
                ((Ok(live), source), Some(recorded)) if live.as_ref().is_none_or(|r| !holds(r, recorded)) => {
                    // Not a session of this route: maybe one newer than it
                    // (a publisher that just moved; `RouteTable::recheck`,
                    // coalesced), else a recording's, else the live route
                    // decides (a session about to be routed: see
                    // `Edge::await_session`).
                    rechecked = true;
                    match self.routes.recheck(obj.stream).await {
                        Ok(Some(newer)) if holds(&newer, recorded) => (Ok(Some(newer)), source),
                        _ => match self.routes.recordings.lookup(obj.stream, recorded).await {
                            (Ok(None), _) if live.is_some() => (Ok(live), source),
                            recording => recording,
                        },
                    }
                }
                (looked_up, _) => looked_up,
            },
        };
        let source = match source {
            LookupSource::Cached => 0,
            LookupSource::Fetched => 1,
            LookupSource::Stale => 2,
            LookupSource::Unknown => 3,
        };
        self.metrics.route_lookups[source].inc();
        let route = match route {
            Ok(Some(r)) => r,
            Ok(None) if obj.session.is_some() && (obj.kind.is_vod() || recorded_media(&obj).is_some()) => {
                return self.answer(session, ctx, 404, &[], "no such session\n", "ERROR").await;
            }
            Ok(None) => return self.answer(session, ctx, 404, &[], "stream not live\n", "ERROR").await,
            Err(e) => {
                self.metrics.route_failures.inc();
                tracing::warn!(stream = obj.stream, error = %e, "no route");
                let retry = [("retry-after", "1".to_string())];
                return self
                    .answer(session, ctx, 503, &retry, "routing unavailable\n", "ERROR")
                    .await;
            }
        };
        // An edge below fetching through this one (a shield): it has done
        // the viewer's part (token, session, count).
        let below = self.is_from_edge_below(session.req_header());
        if !below && let Err(denied) = self.gate.check(&route, obj.stream, token.as_deref(), None) {
            return self.deny(session, ctx, denied).await;
        }
        // A new viewer: to the same playlist in a playback session of its
        // own, which every later request carries (see `crate::viewers`).
        if !below && obj.kind == ObjectKind::Multivariant && sid.is_none() {
            let location = format!(
                "{}{}{}{path}",
                playback::SESSION_PREFIX,
                playback::new_sid(),
                ctx.prefix
            );
            return self
                .answer(session, ctx, 302, &[("location", location)], "", "REDIRECT")
                .await;
        }
        if !below
            && matches!(
                obj.kind,
                ObjectKind::Multivariant | ObjectKind::MediaPlaylist | ObjectKind::Mpd
            )
        {
            let who = match &sid {
                Some(sid) => Who::Session(sid),
                None => Who::Address(
                    Self::viewer(session),
                    session
                        .req_header()
                        .headers
                        .get(http::header::USER_AGENT)
                        .map(|v| v.as_bytes()),
                ),
            };
            self.viewers.seen(self.viewers.key(obj.stream, &who), obj.stream);
        }
        // Media of a known session goes to the origin holding that session;
        // only new viewers and moved sessions need a placement.
        let mut route = route;
        // A session this route does not list may be newer than the route
        // (a publisher that just moved, learnt by the viewer from another
        // tier or edge first): the route is asked again before the
        // request is placed elsewhere (coalesced: `RouteTable::recheck`).
        if !rechecked
            && let Some(wanted) = obj.session
            && !holds(&route, wanted)
            && let Ok(Some(newer)) = self.routes.recheck(obj.stream).await
        {
            route = newer;
        }
        let chosen = match self.placement(&obj, &route, Self::viewer(session)) {
            Placement::Origin(i) => i,
            // An edge below asks for media of a session it has been routed
            // to: a shield does not send it elsewhere (a segment or part
            // is that session's), it waits for its own route to list that
            // session too. Media playlists are moved as for viewers (the
            // edge below follows and checks the router again itself).
            _ if below && obj.session.is_some() && obj.kind != ObjectKind::MediaPlaylist => {
                match self.await_session(obj.stream, obj.session.unwrap_or_default()).await {
                    Some((newer, i)) => {
                        route = newer;
                        i
                    }
                    None => return self.answer(session, ctx, 404, &[], "not found\n", "ERROR").await,
                }
            }
            Placement::Redirect(location) => {
                let location = format!("{}{location}", ctx.prefix);
                return self
                    .answer(session, ctx, 302, &[("location", location)], "", "REDIRECT")
                    .await;
            }
            Placement::Nowhere => {
                // A media playlist of a session no origin reports any more,
                // with no other session yet: the publisher may be moving.
                if let Some((gone, rendition)) = obj.media.filter(|_| obj.kind == ObjectKind::MediaPlaylist)
                    && let Some(location) = self
                        .await_successor(obj.stream, rendition, gone, Self::viewer(session))
                        .await
                {
                    let location = format!("{}{location}", ctx.prefix);
                    return self
                        .answer(session, ctx, 302, &[("location", location)], "", "REDIRECT")
                        .await;
                }
                return self.answer(session, ctx, 404, &[], "not found\n", "ERROR").await;
            }
        };
        let req = session.req_header();
        let (target, directives) = match target_of(&obj, req.uri.path(), req.uri.query()) {
            Ok(t) => t,
            Err(e) => {
                self.metrics.ll_answers[2].inc();
                return self.answer(session, ctx, 400, &[], format!("{e}\n"), "ERROR").await;
            }
        };
        ctx.target = target;
        ctx.directives = directives;
        ctx.upstream_kind = obj.kind.label();
        ctx.origin = Some(chosen);
        ctx.route = Some(route);
        self.low_latency(session, ctx, &path).await
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        // Playlists and parts may be held by the origin: their fills get
        // the lock whose timeout outlasts the longest hold.
        let lock = match ctx.kind {
            Some(ObjectKind::MediaPlaylist | ObjectKind::Part) => self.hold_lock,
            _ => self.lock,
        };
        session.cache.enable(self.storage, None, None, Some(lock), None);
        Ok(())
    }

    fn cache_key_callback(&self, _session: &Session, ctx: &mut Ctx) -> Result<CacheKey> {
        Ok(self.cache_key(ctx))
    }

    fn response_cache_filter(&self, _session: &Session, resp: &ResponseHeader, ctx: &mut Ctx) -> Result<RespCacheable> {
        let ttl = match (resp.status.as_u16(), ctx.kind) {
            (200, Some(ObjectKind::Segment | ObjectKind::Init | ObjectKind::Part)) => self.segment_ttl,
            (200, Some(ObjectKind::MediaPlaylist | ObjectKind::Mpd)) => self.playlist_ttl,
            // A recording's MPD never changes once written.
            (200, Some(ObjectKind::VodMpd)) => self.segment_ttl,
            (200, Some(ObjectKind::Multivariant)) => self.multivariant_ttl,
            (200, Some(ObjectKind::Thumbnail)) => thumbnail_ttl(resp),
            // A recording's playlists never change: cached like segments.
            (200, Some(k)) if k.is_vod() => self.segment_ttl,
            // The origin's refusal of a held request is the answer of every
            // request waiting on its lock: kept briefly so they all get it
            // (uncached, each would go to the origin in turn).
            (400 | 404 | 503, Some(_)) if ctx.held.is_some() => self.playlist_ttl,
            (_, None) => return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom("not HLS"))),
            _ => return Ok(RespCacheable::Uncacheable(NoCacheReason::OriginNotCache)),
        };
        let now = SystemTime::now();
        Ok(RespCacheable::Cacheable(CacheMeta::new(
            now + ttl,
            now,
            0,
            0,
            resp.clone(),
        )))
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        // The route is shared (an `Arc`): holding it leaves `ctx` free.
        let route = ctx.route.clone();
        let origin = route
            .as_ref()
            .and_then(|r| r.origins.get(ctx.origin?))
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no origin chosen"))?;
        // Through a shield when there is a live one (see `crate::shield`).
        let stream = ctx.target.trim_start_matches('/').split('/').next().unwrap_or_default();
        let shield = self.shields.pick(stream, &ctx.shields_failed);
        let host = shield.map_or(origin.host.as_str(), |i| self.shields.host(i));
        // Resolved here, never by pingora (see `crate::resolve`); a name that
        // does not resolve is an origin refusing connections.
        let resolved = self.resolver.resolve(host).await;
        ctx.shield = shield;
        if let (Some(i), Err(e)) = (shield, &resolved) {
            tracing::warn!(shield = %self.shields.host(i), error = %e, "shield host does not resolve; passing it over");
            self.shields.failed(i);
            ctx.shields_failed.push(i);
            let mut err = Error::create(
                ErrorType::ConnectError,
                ErrorSource::Upstream,
                Some(e.to_string().into()),
                None,
            );
            err.set_retry(true);
            return Err(err);
        }
        let addr = match resolved {
            Ok(addr) => addr,
            Err(e) => {
                tracing::warn!(origin = %origin.origin, error = %e, "origin host does not resolve; passing it over");
                self.refused.insert(origin.origin.clone(), ());
                return Err(Error::create(
                    ErrorType::ConnectError,
                    ErrorSource::Upstream,
                    Some(e.to_string().into()),
                    None,
                ));
            }
        };
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.total_connection_timeout = Some(self.connect_timeout);
        // The origin holds a held request up to three target durations; the
        // edge waits for it --hold-timeout.
        peer.options.read_timeout = Some(match ctx.held {
            Some(_) => self.live.hold_timeout,
            None => self.read_timeout,
        });
        ctx.upstream_started = Some(Instant::now());
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(o) = ctx.origin() {
            req.insert_header("host", o.host.as_str())?;
        }
        req.remove_header(TIER_HEADER);
        if ctx.shield.is_some()
            && let Some(t) = &self.tier_token
        {
            req.insert_header(TIER_HEADER, t.as_ref())?;
        }
        let uri: http::Uri = ctx
            .target
            .parse()
            .map_err(|_| Error::explain(ErrorType::InternalError, "bad target"))?;
        req.set_uri(uri);
        self.metrics
            .upstream_requests
            .with_label_values(&[ctx.upstream_kind])
            .inc();
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let kind = ctx.kind_label();
        self.metrics
            .origin_fetches
            .with_label_values(&[kind, resp.status.as_str()])
            .inc();
        // Before the cache stores the head: hits repeat these as stored.
        for (k, v) in CORS {
            resp.insert_header(k, v)?;
        }
        if let Some(start) = ctx.upstream_started {
            self.metrics
                .upstream_latency
                .with_label_values(&[kind])
                .observe(start.elapsed().as_secs_f64());
        }
        if ctx.kind == Some(ObjectKind::MediaPlaylist) && resp.status == 200 {
            ctx.capture = Some(Capture {
                header: resp.clone(),
                body: BytesMut::new(),
                fetched: Instant::now(),
            });
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        let Some(capture) = ctx.capture.as_mut() else {
            return Ok(None);
        };
        if let Some(b) = body {
            if capture.body.len() + b.len() > MAX_PLAYLIST {
                ctx.capture = None;
                return Ok(None);
            }
            capture.body.extend_from_slice(b);
        }
        // Whole only with as many bytes as announced: a truncated answer
        // never becomes the copy.
        let length = capture
            .header
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        let complete = match length {
            Some(n) => n == capture.body.len(),
            None => end_of_stream,
        };
        if end_of_stream && !complete {
            ctx.capture = None;
        }
        if complete
            && let Some(c) = ctx.capture.take()
            && let Some(origin) = ctx.origin().map(|o| o.origin.clone())
        {
            let path = ctx.target.split('?').next().unwrap_or_default();
            self.live
                .offer(&origin, path, ctx.directives.skip, c.header, c.body.freeze(), c.fetched);
        }
        Ok(None)
    }

    async fn response_filter(&self, session: &mut Session, resp: &mut ResponseHeader, _ctx: &mut Ctx) -> Result<()> {
        let status = cache_status(session);
        let age = match session.cache.enabled().then(|| session.cache.phase()) {
            Some(CachePhase::Hit | CachePhase::Stale | CachePhase::StaleUpdating | CachePhase::Revalidated) => {
                SystemTime::now()
                    .duration_since(session.cache.cache_meta().created())
                    .unwrap_or_default()
                    .as_secs()
            }
            _ => 0,
        };
        mark(resp, status, age)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else if let Some(i) = ctx.shield
            && matches!(
                e.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            )
        {
            // The shield died under the request (a held reload waiting on it,
            // or a fetch in flight): passed over like a shield that refuses,
            // and the request tried again at once on the next shield or the
            // origin, rather than failed after a wait.
            tracing::warn!(shield = %self.shields.host(i), error = %e, "shield failed mid-request; passing it over");
            self.shields.failed(i);
            ctx.shields_failed.push(i);
            e.set_retry(true);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // A shield that refuses: passed over, and the request tried again
        // at once on the next shield or the origin.
        if let Some(i) = ctx.shield {
            tracing::warn!(shield = %self.shields.host(i), error = %e, "shield refused a connection; passing it over");
            self.shields.failed(i);
            ctx.shields_failed.push(i);
            e.set_retry(true);
            return e;
        }
        if let Some(o) = ctx.origin() {
            tracing::warn!(origin = %o.origin, host = %o.host, error = %e, "origin refused a connection; passing it over");
            self.refused.insert(o.origin.clone(), ());
        }
        e
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, e: &Error) -> bool {
        client_abort(e).is_some()
    }

    fn suppress_proxy_warn_log(&self, _session: &Session, _ctx: &Ctx, e: &Error, _: ProxyWarnLogContext) -> bool {
        client_abort(e).is_some()
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        // The viewer went away: nothing to answer, nothing to alert on
        // (counted in `logging`).
        if let Some(kind) = client_abort(e) {
            tracing::debug!(error = %e, kind, "viewer went away mid-answer");
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        // pingora closes the connection after a failed request: every answer
        // here says so, or a viewer reusing the connection meets a reset.
        session.set_keepalive(None);
        // An origin that cannot be reached for a media playlist (refused,
        // or its connection dropped: a killed origin): send the player to
        // the same rendition on another live origin, or wait a moment for
        // the publisher's next session there.
        if ctx.kind == Some(ObjectKind::MediaPlaylist)
            && origin_gone(e)
            && let (Some(route), Some(origin)) = (ctx.route.clone(), ctx.origin().map(|o| o.origin.clone()))
        {
            let path = session.req_header().uri.path().to_string();
            let others: Vec<&RouteOrigin> = candidates(&route, &self.refused)
                .into_iter()
                .filter(|o| o.origin != origin)
                .collect();
            let viewer = Self::viewer(session);
            let location = match parse_object_path(&path).and_then(|obj| Some((obj.stream, obj.media?))) {
                Some((stream, (gone, rendition))) => match successor(&others, stream, rendition, viewer) {
                    Some(next) => Some(format!("/{stream}/{}/{rendition}/index.m3u8", next.session)),
                    None => self.await_successor(stream, rendition, gone, viewer).await,
                },
                None => None,
            };
            if let Some(location) = location
                && self
                    .answer(
                        session,
                        ctx,
                        302,
                        &[("location", format!("{}{location}", ctx.prefix))],
                        "",
                        "REDIRECT",
                    )
                    .await
                    .is_ok()
            {
                return FailToProxy {
                    error_code: 302,
                    can_reuse_downstream: true,
                };
            }
        }
        // A held request the origin did not answer within the hold timeout:
        // what the origin itself answers past its longest hold.
        if ctx.held.is_some() && e.esource() == &ErrorSource::Upstream && e.etype() == &ErrorType::ReadTimedout {
            let retry = [("retry-after", "1".to_string())];
            let _ = self
                .answer(
                    session,
                    ctx,
                    503,
                    &retry,
                    "the origin did not answer in time\n",
                    "ERROR",
                )
                .await;
            return FailToProxy {
                error_code: 503,
                can_reuse_downstream: false,
            };
        }
        // A part (typically a preload hint) whose origin is gone (refused,
        // or the connection dropped: a killed origin): it will never come
        // from there. Answered as the origin answers a hinted part that
        // never comes, 404, which players take as a miss; the playlist
        // reload beside it moves the player on.
        if ctx.kind == Some(ObjectKind::Part) && origin_gone(e) {
            let _ = self
                .answer(
                    session,
                    ctx,
                    404,
                    &[],
                    "the part will not come: its origin is gone\n",
                    "ERROR",
                )
                .await;
            return FailToProxy {
                error_code: 404,
                can_reuse_downstream: false,
            };
        }
        let code = match e.etype() {
            ErrorType::HTTPStatus(c) => *c,
            _ if e.esource() == &pingora_error::ErrorSource::Upstream => 502,
            _ => 500,
        };
        let body = if code == 502 { "origin unavailable\n" } else { "error\n" };
        let _ = self.answer(session, ctx, code, &[], body, "ERROR").await;
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        // Client aborts are counted here, once per request: a cache hit that
        // fails mid-body (an HTTP/2 viewer leaving, whose hits all take this
        // path) reaches this phase but not `fail_to_proxy`.
        if let Some(kind) = e.and_then(client_abort) {
            self.metrics.client_aborts.with_label_values(&[kind]).inc();
            if kind == "timeout" {
                self.metrics.timed_out[2].inc();
            }
        }
        let status = match ctx.answered {
            Some(label) => label,
            None => cache_status(session),
        };
        let kind = ctx.kind_label();
        self.metrics.requests.with_label_values(&[kind, status]).inc();
        self.metrics
            .bytes
            .with_label_values(&[kind, status])
            .inc_by(session.body_bytes_sent() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thumbnail_is_fresh_for_the_origins_max_age_within_bounds() {
        let with = |cc: Option<&str>| {
            let mut r = ResponseHeader::build(200, None).unwrap();
            if let Some(cc) = cc {
                r.insert_header("cache-control", cc).unwrap();
            }
            thumbnail_ttl(&r)
        };
        assert_eq!(with(Some("public, max-age=2")), Duration::from_secs(2));
        assert_eq!(with(Some("max-age=4,public")), Duration::from_secs(4));
        assert_eq!(with(None), Duration::from_secs(1));
        assert_eq!(with(Some("public, max-age=nope")), Duration::from_secs(1));
        assert_eq!(with(Some("public, max-age=86400")), MAX_THUMBNAIL_TTL);
    }

    #[test]
    fn only_valid_directives_of_media_playlists_are_keyed_in_one_form() {
        let target = |path: &str, query: Option<&str>| {
            let obj = parse_object_path(path).expect("a layout path");
            target_of(&obj, path, query).map(|(t, _)| t)
        };
        let playlist = "/s/a1/360p/index.m3u8";
        assert_eq!(
            target(
                playlist,
                Some("cb=7&_HLS_skip=YES&_HLS_part=02&_HLS_msn=53&_HLS_report=x")
            ),
            Ok(format!("{playlist}?_HLS_msn=53&_HLS_part=2&_HLS_skip=YES"))
        );
        assert_eq!(target(playlist, Some("token=abc")), Ok(playlist.to_string()));
        assert_eq!(target(playlist, None), Ok(playlist.to_string()));
        assert_eq!(
            target(playlist, Some("_HLS_part=1")),
            Err(HlsQueryError::PartWithoutMsn)
        );
        // Other objects take no directives: the query is dropped, whatever it is.
        for path in [
            "/s/index.m3u8",
            "/s/a1/360p/5.m4s",
            "/s/a1/360p/5.2.m4s",
            "/s/a1/360p/init.mp4",
        ] {
            assert_eq!(target(path, Some("_HLS_part=1&x=2")), Ok(path.to_string()));
        }
        assert_eq!(
            part_and_playlist("/s/a1/360p/5.2.m4s"),
            Some(((5, 2), playlist.to_string()))
        );
        assert_eq!(part_and_playlist("/s/a1/360p/5.m4s"), None);
    }

    #[test]
    fn only_media_under_a_session_may_be_a_recordings_media() {
        fn session(path: &str) -> Option<&str> {
            recorded_media(&parse_object_path(path).expect("a layout path"))
        }
        assert_eq!(session("/s/a1/360p/5.m4s"), Some("a1"));
        assert_eq!(session("/s/a1/360p/5.2.m4s"), Some("a1"));
        assert_eq!(session("/s/a1/360p/init.mp4"), Some("a1"));
        // Live playlists keep their redirect to a live session; VOD
        // playlists are routed as recordings by their kind.
        assert_eq!(session("/s/a1/360p/index.m3u8"), None);
        assert_eq!(session("/s/index.m3u8"), None);
        assert_eq!(session("/s/a1/vod.m3u8"), None);
        assert!(parse_object_path("/s/a1/vod.m3u8").unwrap().kind.is_vod());
        assert!(parse_object_path("/s/a1/360p/vod.m3u8").unwrap().kind.is_vod());
    }
}
