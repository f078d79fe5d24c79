//! The origin's HTTP server: HLS output with the right headers, plus
//! `/healthz` and `/metrics`.
//!
//! Cache policy (what the edge and browsers are told):
//! - init and media segments never change under their URI (the session id is
//!   in the path): `immutable`, one year;
//! - media playlists change every segment: at most half a target duration;
//! - the multivariant playlist changes only on republish: a short max-age;
//! - 404s are `no-store`, so a segment asked for a moment too early is not
//!   remembered as missing.
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
use api_types::layout::{ObjectKind, parse_object_path};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone)]
pub struct ServeState {
    pub output_dir: Arc<PathBuf>,
    pub metrics: Arc<Metrics>,
    /// Cache-Control max-age of media playlists, in seconds.
    pub playlist_max_age: u64,
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
    let body = match read(&path).await {
        Some(b) => b,
        None => {
            st.metrics
                .http_requests
                .with_label_values(&[obj.kind.label(), "404"])
                .inc();
            return not_found();
        }
    };
    st.metrics
        .http_requests
        .with_label_values(&[obj.kind.label(), "200"])
        .inc();
    let (ctype, cache) = match obj.kind {
        ObjectKind::Multivariant => ("application/vnd.apple.mpegurl", "public, max-age=2".to_string()),
        ObjectKind::MediaPlaylist => (
            "application/vnd.apple.mpegurl",
            format!("public, max-age={}", st.playlist_max_age),
        ),
        ObjectKind::Init => ("video/mp4", "public, max-age=31536000, immutable".to_string()),
        ObjectKind::Segment | ObjectKind::Part => {
            ("video/iso.segment", "public, max-age=31536000, immutable".to_string())
        }
    };
    let len = body.len();
    let mut r = if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(body))
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_str(&cache).expect("ascii"));
    cors(h);
    r
}

async fn read(path: &Path) -> Option<Vec<u8>> {
    tokio::fs::read(path).await.ok()
}
