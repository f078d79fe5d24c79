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
//! Paths are checked segment by segment against a small alphabet before
//! touching the disk, so neither `..` nor its encodings can leave the output
//! folder.

use crate::metrics::Metrics;
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

/// What a path names, by its shape (see `api_types::layout`).
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Multivariant,
    MediaPlaylist,
    Init,
    Segment,
}

fn classify(segments: &[&str]) -> Option<Kind> {
    let file = *segments.last()?;
    match (segments.len(), file) {
        (2, "index.m3u8") => Some(Kind::Multivariant),
        (4, "index.m3u8") => Some(Kind::MediaPlaylist),
        (4, "init.mp4") => Some(Kind::Init),
        (4, f) if f.ends_with(".m4s") => Some(Kind::Segment),
        _ => None,
    }
}

/// The path's segments, if every one is a plain name.
fn safe_segments(path: &str) -> Option<Vec<&str>> {
    let segs: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let ok = segs.iter().all(|s| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    });
    ok.then_some(segs)
}

fn cors(headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("range"));
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("content-length, age"),
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
        let mut r = StatusCode::NO_CONTENT.into_response();
        cors(r.headers_mut());
        r.headers_mut()
            .insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        return r;
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
        return r;
    }
    // The raw path: percent-encoded dots or slashes fail the alphabet check.
    let Some(segs) = safe_segments(req.uri().path()) else {
        return not_found();
    };
    let Some(kind) = classify(&segs) else {
        return not_found();
    };
    let path: PathBuf = segs
        .iter()
        .fold(PathBuf::from(st.output_dir.as_path()), |p, s| p.join(s));
    let body = match read(&path).await {
        Some(b) => b,
        None => return not_found(),
    };
    let (ctype, cache) = match kind {
        Kind::Multivariant => ("application/vnd.apple.mpegurl", "public, max-age=2".to_string()),
        Kind::MediaPlaylist => (
            "application/vnd.apple.mpegurl",
            format!("public, max-age={}", st.playlist_max_age),
        ),
        Kind::Init => ("video/mp4", "public, max-age=31536000, immutable".to_string()),
        Kind::Segment => ("video/iso.segment", "public, max-age=31536000, immutable".to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_layout_paths_are_served() {
        assert_eq!(
            classify(&safe_segments("/golive/index.m3u8").unwrap()),
            Some(Kind::Multivariant)
        );
        assert_eq!(
            classify(&safe_segments("/golive/s1/720p/index.m3u8").unwrap()),
            Some(Kind::MediaPlaylist)
        );
        assert_eq!(
            classify(&safe_segments("/golive/s1/720p/init.mp4").unwrap()),
            Some(Kind::Init)
        );
        assert_eq!(
            classify(&safe_segments("/golive/s1/720p/12.m4s").unwrap()),
            Some(Kind::Segment)
        );
        for bad in [
            "/../etc/passwd",
            "/golive/../../x",
            "/%2e%2e/x",
            "/golive/.hidden",
            "/a//b",
            "/a\\b",
            "/golive/s1/720p/.index.m3u8.tmp",
        ] {
            assert!(safe_segments(bad).and_then(|s| classify(&s)).is_none(), "{bad}");
        }
        assert!(classify(&safe_segments("/golive/s1/720p/x.txt").unwrap()).is_none());
    }
}
