//! The operators' web page at `/dashboard`: static HTML, JS and CSS embedded
//! in the binary (`router-api/dashboard/`, no build step), driving the admin
//! API from the browser with the admin token the operator types in (kept in
//! `sessionStorage` only, so it dies with the tab).
//!
//! The page and its assets need no token: they hold no data. Every data call
//! is an `/admin/*` request with the bearer token. The pages carry a strict
//! Content-Security-Policy: scripts and styles only from here (no inline
//! code), frames and images other than its own only from `--public-edge-url`
//! (the preview player, live thumbnails).

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

const HTML: &str = include_str!("../../dashboard/index.html");
const JS: &str = include_str!("../../dashboard/app.js");
const CSS: &str = include_str!("../../dashboard/app.css");

/// What the page needs to know besides the API: public URLs only.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Config {
    /// Base URL of an edge (`--public-edge-url`), for previews and links.
    pub public_edge_url: Option<String>,
    /// The OBS server URL (`--public-rtmp-url`).
    pub rtmp_url: Option<String>,
    #[serde(skip)]
    csp: String,
}

impl Config {
    pub fn new(public_edge_url: Option<String>, rtmp_url: Option<String>) -> Config {
        let public_edge_url = public_edge_url.map(|u| u.trim_end_matches('/').to_string());
        let frames = public_edge_url.as_deref().map_or("'none'".to_string(), origin_of);
        // Live thumbnails come from the edge too.
        let images = public_edge_url
            .as_deref()
            .map_or(String::new(), |u| format!(" {}", origin_of(u)));
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:{images}; connect-src 'self'; \
             frame-src {frames}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        );
        Config {
            public_edge_url,
            rtmp_url,
            csp,
        }
    }

    /// The page's Content-Security-Policy.
    pub fn csp(&self) -> &str {
        &self.csp
    }
}

/// `scheme://host[:port]` of a URL (what a CSP source names).
fn origin_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            format!("{scheme}://{host}")
        }
        None => "'none'".to_string(),
    }
}

fn asset(st: &AppState, content_type: &'static str, body: &'static str) -> Response {
    let csp = HeaderValue::from_str(st.dashboard.csp()).unwrap_or(HeaderValue::from_static("default-src 'none'"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("DENY"),
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn page(State(st): State<AppState>) -> Response {
    asset(&st, "text/html; charset=utf-8", HTML)
}

pub async fn script(State(st): State<AppState>) -> Response {
    asset(&st, "text/javascript; charset=utf-8", JS)
}

pub async fn style(State(st): State<AppState>) -> Response {
    asset(&st, "text/css; charset=utf-8", CSS)
}

pub async fn config(State(st): State<AppState>) -> Json<Config> {
    Json((*st.dashboard).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_only_from_the_edge() {
        let c = Config::new(Some("http://127.0.0.1:8081/".into()), None);
        assert_eq!(c.public_edge_url.as_deref(), Some("http://127.0.0.1:8081"));
        assert!(c.csp().contains("frame-src http://127.0.0.1:8081;"), "{}", c.csp());
        assert!(
            c.csp().contains("img-src 'self' data: http://127.0.0.1:8081;"),
            "{}",
            c.csp()
        );
        assert!(Config::new(None, None).csp().contains("frame-src 'none'"));
        assert!(Config::new(None, None).csp().contains("img-src 'self' data:;"));
        assert_eq!(origin_of("https://live.example.com/x?y"), "https://live.example.com");
    }
}
