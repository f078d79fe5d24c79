//! The origin's HTTP server: HLS output with the right headers, plus
//! `/healthz` and `/metrics`.
//!
//! Cache policy (what the edge and browsers are told):
//! - init and media segments never change under their URI (the session id is
//!   in the path): `immutable`, one year;
//! - media playlists change every segment: at most half a target duration;
//! - the multivariant playlist changes only on republish: a short max-age;
//! - a live thumbnail is remade every segment: one segment duration;
//! - the live DASH MPD (`package::mpd`) changes every segment, as media
//!   playlists do: their max-age; a recording's MPD never changes: an hour;
//! - 404s are `no-store`, so a segment asked for a moment too early is not
//!   remembered as missing;
//! - parts (LL-HLS) are immutable like segments; the answer to a blocking
//!   reload is valid for one target duration (it lists the part asked for,
//!   whenever it is read), so an edge can share it among its viewers.
//!
//! Low-latency HLS (RFC 8216bis 6.2.5, 6.2.6): a media playlist request with
//! `_HLS_msn` (and `_HLS_part`) is held until the rendition's [`Live`]
//! snapshot lists that part, then answered from the snapshot (the whole
//! playlist, or the delta update for `_HLS_skip`); a request for a part not
//! written yet but coming next (the preload hint, or just past it) is held
//! until the part is on disk, then answered whole. Bad directives and a
//! media sequence number more than two segments ahead are 400; a hold that
//! lasts three target durations ends in 503; after EXT-X-ENDLIST (or once a
//! session is no longer live here) the directives are ignored. Held
//! requests are counted (`origin_held_requests`) and bounded
//! (`--max-held-requests`): past the bound, 503 with `Retry-After` at once.
//!
//! CORS: every answer carries `Access-Control-Allow-Origin: *` and exposes
//! the headers players read; an `OPTIONS` preflight gets 204 with the
//! requested headers echoed (within reason, [`ops::http::cors_allow_headers`]).
//!
//! Served by [`run`] with the limits of [`ops::http`].
//!
//! Paths must parse as one of the layout's shapes
//! (`api_types::layout::parse_object_path`) before the disk is touched, so
//! neither `..` nor its encodings can leave the output folder.

use crate::metrics::Metrics;
use crate::package::live::{Live, PartFate, Snapshot};
use crate::transcode::thumbnail::Thumbnails;
use api_types::hls_query::HlsQuery;
use api_types::layout::{ObjectKind, ObjectPath, parse_object_path};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
pub struct ServeState {
    pub output_dir: Arc<PathBuf>,
    pub metrics: Arc<Metrics>,
    /// Cache-Control max-age of media playlists, in seconds.
    pub playlist_max_age: u64,
    /// Every live rendition's playlist, for blocking requests.
    pub live: Arc<Live>,
    /// One permit per held request (`--max-held-requests`).
    pub held: Arc<Semaphore>,
    /// Thumbnails' max-age per stream (their segment duration).
    pub thumbnails: Arc<Thumbnails>,
}

impl ServeState {
    pub fn new(
        output_dir: PathBuf,
        metrics: Arc<Metrics>,
        playlist_max_age: u64,
        live: Arc<Live>,
        max_held: usize,
    ) -> ServeState {
        ServeState {
            output_dir: Arc::new(output_dir),
            playlist_max_age,
            live,
            held: Arc::new(Semaphore::new(max_held)),
            thumbnails: Arc::new(Thumbnails::new(false, metrics.clone(), Duration::from_secs(1))),
            metrics,
        }
    }
}

/// Serves [`router`] on `listener` with `limits` until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: ServeState,
    limits: &ops::http::HttpLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let conns = ops::http::ConnMetrics::register(&state.metrics.registry).map_err(std::io::Error::other)?;
    ops::http::serve(listener, router(state), limits, Some(conns), shutdown).await
}

pub fn router(state: ServeState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|State(s): State<ServeState>| async move {
                (
                    [(header::CONTENT_TYPE, ops::METRICS_CONTENT_TYPE)],
                    ops::render_metrics(&s.metrics.registry),
                )
            }),
        )
        .fallback(serve_file)
        .with_state(state)
}

fn cors(headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(ops::http::CORS_EXPOSE),
    );
}

fn not_found() -> Response {
    let mut r = (StatusCode::NOT_FOUND, "not found\n").into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    cors(r.headers_mut());
    r
}

async fn serve_file(State(st): State<ServeState>, req: Request) -> Response {
    let method = req.method().clone();
    if method == Method::OPTIONS {
        let requested = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .map(HeaderValue::as_bytes);
        let allowed = ops::http::cors_allow_headers(requested);
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        cors(h);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ops::http::CORS_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_str(&allowed).unwrap_or(HeaderValue::from_static("Range")),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(ops::http::CORS_MAX_AGE),
        );
        return r;
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(ops::http::CORS_METHODS));
        return r;
    }
    // The raw path, checked against the layout: percent-encoded dots or
    // slashes, dot-files and anything outside the layout do not parse.
    let Some(obj) = parse_object_path(req.uri().path()) else {
        st.metrics.http_requests.with_label_values(&["other", "404"]).inc();
        return not_found();
    };
    let path: PathBuf = req.uri().path()[1..]
        .split('/')
        .fold(st.output_dir.to_path_buf(), |p, s| p.join(s));
    let head = method == Method::HEAD;
    match obj.kind {
        ObjectKind::MediaPlaylist => media_playlist(&st, &obj, &path, req.uri().query(), head).await,
        ObjectKind::Part => part(&st, &obj, &path, head).await,
        // Remade every segment: fresh for one segment duration.
        ObjectKind::Thumbnail => match read(&path).await {
            Some(body) => answer(&st, obj.kind, body, Some(st.thumbnails.max_age(obj.stream)), head),
            None => missing(&st, obj.kind),
        },
        kind => match read(&path).await {
            Some(body) => answer(&st, kind, body, None, head),
            None => missing(&st, kind),
        },
    }
}

fn missing(st: &ServeState, kind: ObjectKind) -> Response {
    st.metrics.http_requests.with_label_values(&[kind.label(), "404"]).inc();
    not_found()
}

/// A plain-text error answer that no cache keeps.
fn refuse(st: &ServeState, kind: ObjectKind, status: StatusCode, why: String) -> Response {
    st.metrics
        .http_requests
        .with_label_values(&[kind.label(), status.as_str()])
        .inc();
    let mut r = (status, format!("{why}\n")).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    cors(h);
    r
}

/// 200 with `body` and the kind's headers; `max_age` overrides the kind's
/// Cache-Control (blocking answers).
fn answer(
    st: &ServeState,
    kind: ObjectKind,
    body: impl Into<Body> + AsRef<[u8]>,
    max_age: Option<u64>,
    head: bool,
) -> Response {
    st.metrics.http_requests.with_label_values(&[kind.label(), "200"]).inc();
    let immutable = "public, max-age=31536000, immutable".to_string();
    let (ctype, cache) = match kind {
        ObjectKind::Multivariant => ("application/vnd.apple.mpegurl", "public, max-age=2".to_string()),
        ObjectKind::MediaPlaylist => (
            "application/vnd.apple.mpegurl",
            format!("public, max-age={}", max_age.unwrap_or(st.playlist_max_age)),
        ),
        ObjectKind::Init => ("video/mp4", immutable),
        ObjectKind::Segment | ObjectKind::Part => ("video/iso.segment", immutable),
        ObjectKind::Mpd => (
            "application/dash+xml",
            format!("public, max-age={}", st.playlist_max_age),
        ),
        ObjectKind::Thumbnail => ("image/jpeg", format!("public, max-age={}", max_age.unwrap_or(1))),
        // A recording's playlists never change once written (retention
        // removes them whole).
        ObjectKind::VodMultivariant | ObjectKind::VodPlaylist => {
            ("application/vnd.apple.mpegurl", "public, max-age=3600".to_string())
        }
        ObjectKind::VodMpd => ("application/dash+xml", "public, max-age=3600".to_string()),
    };
    let len = body.as_ref().len();
    let mut r = if head {
        Response::new(Body::empty())
    } else {
        Response::new(body.into())
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_str(&cache).expect("ascii"));
    cors(h);
    r
}

/// `{stream}/{session}/{rendition}`: a rendition's key in [`Live`].
fn live_key(obj: &ObjectPath<'_>) -> Option<String> {
    let (session, rendition) = obj.media?;
    Some(format!("{}/{session}/{rendition}", obj.stream))
}

/// Counts a held request for as long as it lives.
struct Held {
    metrics: Arc<Metrics>,
    _permit: OwnedSemaphorePermit,
}

impl Held {
    /// A permit to hold a request, or `None` past `--max-held-requests`.
    fn take(st: &ServeState) -> Option<Held> {
        let permit = st.held.clone().try_acquire_owned().ok()?;
        st.metrics.held_requests.inc();
        Some(Held {
            metrics: st.metrics.clone(),
            _permit: permit,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.metrics.held_requests.dec();
    }
}

/// The longest a request is held: three target durations (8216bis 6.2.5.2).
fn hold_limit(snapshot: &Snapshot) -> Duration {
    snapshot.target_duration * 3
}

async fn media_playlist(
    st: &ServeState,
    obj: &ObjectPath<'_>,
    path: &Path,
    query: Option<&str>,
    head: bool,
) -> Response {
    let kind = ObjectKind::MediaPlaylist;
    let q = match HlsQuery::parse(query) {
        Ok(q) => q,
        Err(e) => return refuse(st, kind, StatusCode::BAD_REQUEST, e.to_string()),
    };
    let rx = live_key(obj).and_then(|k| st.live.subscribe(&k));
    let Some(mut rx) = rx else {
        // Not live here (ended, or another origin's): the file as it is,
        // directives ignored.
        return match read(path).await {
            Some(body) => answer(st, kind, body, None, head),
            None => missing(st, kind),
        };
    };
    let now = rx.borrow_and_update().clone();
    let from = |s: &Snapshot, max_age: Option<u64>| {
        let text = match (q.skip, &s.delta) {
            (Some(_), Some(delta)) => delta.clone(),
            _ => s.full.clone(),
        };
        answer(st, kind, Bytes(text), max_age, head)
    };
    let Some(msn) = q.msn.filter(|_| now.low_latency && !now.ended) else {
        return from(&now, None);
    };
    let part = q.part.map(|p| usize::try_from(p).unwrap_or(usize::MAX));
    if msn > now.building.saturating_add(2) {
        return refuse(
            st,
            kind,
            StatusCode::BAD_REQUEST,
            format!(
                "_HLS_msn={msn} is more than two segments past the last ({})",
                now.building
            ),
        );
    }
    let blocking_max_age = Some(now.target_duration.as_secs().max(1));
    if now.satisfies(msn, part) {
        return from(&now, blocking_max_age);
    }
    let Some(_held) = Held::take(st) else {
        st.metrics
            .held_outcomes
            .with_label_values(&["playlist", "refused"])
            .inc();
        return refuse(
            st,
            kind,
            StatusCode::SERVICE_UNAVAILABLE,
            "too many held requests".into(),
        );
    };
    let waited = tokio::time::timeout(hold_limit(&now), async {
        rx.wait_for(|s| s.ended || s.satisfies(msn, part))
            .await
            .map(|s| s.clone())
    })
    .await;
    match waited {
        Ok(Ok(s)) => {
            st.metrics
                .held_outcomes
                .with_label_values(&["playlist", "answered"])
                .inc();
            from(&s, blocking_max_age)
        }
        // The session left this origin while the request waited: its last
        // playlist (ended), or the file.
        Ok(Err(_)) => {
            let last = rx.borrow().clone();
            st.metrics
                .held_outcomes
                .with_label_values(&["playlist", "answered"])
                .inc();
            from(&last, None)
        }
        Err(_) => {
            st.metrics
                .held_outcomes
                .with_label_values(&["playlist", "timeout"])
                .inc();
            refuse(
                st,
                kind,
                StatusCode::SERVICE_UNAVAILABLE,
                "the part asked for did not come within three target durations".into(),
            )
        }
    }
}

/// `{n}.{p}.m4s` as `(n, p)`.
fn part_numbers(path: &Path) -> Option<(u64, usize)> {
    let name = path.file_name()?.to_str()?.strip_suffix(".m4s")?;
    let (n, p) = name.split_once('.')?;
    Some((n.parse().ok()?, p.parse().ok()?))
}

async fn part(st: &ServeState, obj: &ObjectPath<'_>, path: &Path, head: bool) -> Response {
    let kind = ObjectKind::Part;
    if let Some(body) = read(path).await {
        return answer(st, kind, body, None, head);
    }
    let (Some(mut rx), Some((msn, index))) = (live_key(obj).and_then(|k| st.live.subscribe(&k)), part_numbers(path))
    else {
        return missing(st, kind);
    };
    let now = rx.borrow_and_update().clone();
    // Written since the read above?
    if !now.satisfies(msn, Some(index)) {
        if now.part_fate(msn, index) == PartFate::Never {
            return missing(st, kind);
        }
        let Some(_held) = Held::take(st) else {
            st.metrics.held_outcomes.with_label_values(&["part", "refused"]).inc();
            return refuse(
                st,
                kind,
                StatusCode::SERVICE_UNAVAILABLE,
                "too many held requests".into(),
            );
        };
        let waited = tokio::time::timeout(
            hold_limit(&now),
            rx.wait_for(|s| s.ended || s.satisfies(msn, Some(index))),
        )
        .await;
        if waited.is_err() {
            st.metrics.held_outcomes.with_label_values(&["part", "timeout"]).inc();
            return refuse(
                st,
                kind,
                StatusCode::SERVICE_UNAVAILABLE,
                "the part did not come within three target durations".into(),
            );
        }
        st.metrics.held_outcomes.with_label_values(&["part", "answered"]).inc();
    }
    // Listed, so on disk (a snapshot follows its files), or never coming
    // (the segment ended with fewer parts, or the session ended).
    match read(path).await {
        Some(body) => answer(st, kind, body, None, head),
        None => missing(st, kind),
    }
}

/// A shared playlist text as a response body: the snapshot's own bytes, not
/// a copy per answer (a blocking reload wakes every waiter at once).
struct Bytes(Arc<str>);

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::from(bytes::Bytes::from_owner(b))
    }
}

async fn read(path: &Path) -> Option<Vec<u8>> {
    tokio::fs::read(path).await.ok()
}
