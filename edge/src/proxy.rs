//! The proxy: pingora's phases, filled in for HLS.
//!
//! Request path (in pingora's order):
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
//!    `--playlist-ttl`; multivariant: `--multivariant-ttl`).
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
//! Client aborts (the viewer closed, reset or stopped reading mid-answer)
//! are not errors of the edge: counted in `edge_client_aborts_total{kind}`,
//! logged at debug, never answered or counted as a 5xx.

use crate::metrics::Metrics;
use crate::player;
use crate::resolve::Resolver;
use crate::routes::{LookupSource, RouteTable};
use crate::storage::{FreshWire, MokaStorage};
use api_types::layout::{ObjectKind, ObjectPath, parse_object_path};
use api_types::{Route, RouteOrigin};
use async_trait::async_trait;
use bytes::Bytes;
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
}

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
}

impl Ctx {
    fn kind_label(&self) -> &'static str {
        self.kind.map_or("other", ObjectKind::label)
    }

    fn origin(&self) -> Option<&RouteOrigin> {
        self.route.as_ref()?.origins.get(self.origin?)
    }
}

/// The path with only the `_HLS_*` query parameters, in their order: what is
/// forwarded to the origin and keyed.
pub(crate) fn target_of(path: &str, query: Option<&str>) -> String {
    let hls: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| p.starts_with("_HLS_"))
        .collect();
    if hls.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", hls.join("&"))
    }
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

    /// The fresh cached answer to a plain GET or HEAD of `path`, when all it
    /// takes is at hand: the stream's route in memory, an origin for it and a
    /// fresh object. What [`crate::hits`] serves without pingora's session;
    /// `wire_head` makes the stored header into bytes (once per object).
    pub(crate) async fn plain_hit(
        &self,
        path: &str,
        query: Option<&str>,
        viewer: Option<IpAddr>,
        wire_head: impl FnOnce(&ResponseHeader, usize, SystemTime) -> Bytes,
    ) -> Option<(ObjectKind, FreshWire)> {
        let obj = parse_object_path(path)?;
        let route = self.routes.cached(obj.stream).await?;
        let Placement::Origin(i) = self.placement(&obj, &route, viewer) else {
            return None;
        };
        let key = key_of(&route.origins[i].origin, &target_of(path, query));
        let hit = self.storage.fresh_wire(&key, SystemTime::now(), wire_head)?;
        self.metrics.route_lookups[0].inc();
        Some((obj.kind, hit))
    }

    /// A CORS preflight (`OPTIONS`) of a playback path or the player's:
    /// 204 with the methods, the requested headers (within reason) and how
    /// long the browser may keep the answer.
    async fn preflight(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let path = session.req_header().uri.path();
        if parse_object_path(path).is_none() && !player::owns(path) {
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
        let Some(obj) = parse_object_path(&path) else {
            return self.answer(session, ctx, 404, &[], "not found\n", "ERROR").await;
        };
        ctx.kind = Some(obj.kind);
        let (route, source) = self.routes.lookup(obj.stream).await;
        let source = match source {
            LookupSource::Cached => 0,
            LookupSource::Fetched => 1,
            LookupSource::Stale => 2,
            LookupSource::Unknown => 3,
        };
        self.metrics.route_lookups[source].inc();
        let route = match route {
            Ok(Some(r)) => r,
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
        // Media of a known session goes to the origin holding that session;
        // only new viewers and moved sessions need a placement.
        let chosen = match self.placement(&obj, &route, Self::viewer(session)) {
            Placement::Origin(i) => i,
            Placement::Redirect(location) => {
                return self
                    .answer(session, ctx, 302, &[("location", location)], "", "REDIRECT")
                    .await;
            }
            Placement::Nowhere => return self.answer(session, ctx, 404, &[], "not found\n", "ERROR").await,
        };
        let req = session.req_header();
        ctx.target = target_of(req.uri.path(), req.uri.query());
        ctx.origin = Some(chosen);
        ctx.route = Some(route);
        Ok(false)
    }

    fn request_cache_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<()> {
        session.cache.enable(self.storage, None, None, Some(self.lock), None);
        Ok(())
    }

    fn cache_key_callback(&self, _session: &Session, ctx: &mut Ctx) -> Result<CacheKey> {
        Ok(self.cache_key(ctx))
    }

    fn response_cache_filter(&self, _session: &Session, resp: &ResponseHeader, ctx: &mut Ctx) -> Result<RespCacheable> {
        if resp.status != 200 {
            return Ok(RespCacheable::Uncacheable(NoCacheReason::OriginNotCache));
        }
        let ttl = match ctx.kind {
            Some(ObjectKind::Segment | ObjectKind::Part | ObjectKind::Init) => self.segment_ttl,
            Some(ObjectKind::MediaPlaylist) => self.playlist_ttl,
            Some(ObjectKind::Multivariant) => self.multivariant_ttl,
            None => return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom("not HLS"))),
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
        let origin = ctx
            .origin()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no origin chosen"))?;
        // Resolved here, never by pingora (see `crate::resolve`); a name that
        // does not resolve is an origin refusing connections.
        let addr = match self.resolver.resolve(&origin.host).await {
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
        peer.options.read_timeout = Some(self.read_timeout);
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
        let uri: http::Uri = ctx
            .target
            .parse()
            .map_err(|_| Error::explain(ErrorType::InternalError, "bad target"))?;
        req.set_uri(uri);
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
        Ok(())
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

    fn fail_to_connect(&self, _session: &mut Session, _peer: &HttpPeer, ctx: &mut Ctx, e: Box<Error>) -> Box<Error> {
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
        // The viewer went away: nothing to answer, nothing to alert on.
        if let Some(kind) = client_abort(e) {
            self.metrics.client_aborts.with_label_values(&[kind]).inc();
            if kind == "timeout" {
                self.metrics.timed_out[2].inc();
            }
            tracing::debug!(error = %e, kind, "viewer went away mid-answer");
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        // pingora closes the connection after a failed request: every answer
        // here says so, or a viewer reusing the connection meets a reset.
        session.set_keepalive(None);
        // An origin that cannot be reached for a media playlist: send the
        // player to the same rendition on another live origin.
        if ctx.kind == Some(ObjectKind::MediaPlaylist)
            && matches!(
                e.etype(),
                ErrorType::ConnectRefused | ErrorType::ConnectTimedout | ErrorType::ConnectError
            )
            && let (Some(route), Some(origin)) = (ctx.route.clone(), ctx.origin().map(|o| o.origin.clone()))
        {
            let path = session.req_header().uri.path().to_string();
            let others: Vec<&RouteOrigin> = candidates(&route, &self.refused)
                .into_iter()
                .filter(|o| o.origin != origin)
                .collect();
            if let Some(obj) = parse_object_path(&path)
                && let Some((_, rendition)) = obj.media
                && let Some(next) = successor(&others, obj.stream, rendition, Self::viewer(session))
            {
                let location = format!("/{}/{}/{}/index.m3u8", obj.stream, next.session, rendition);
                if self
                    .answer(session, ctx, 302, &[("location", location)], "", "REDIRECT")
                    .await
                    .is_ok()
                {
                    return FailToProxy {
                        error_code: 302,
                        can_reuse_downstream: true,
                    };
                }
            }
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

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
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
