//! The player page the edge serves at `/watch/{stream}`, and the list of
//! live streams at `/watch/`.
//!
//! Everything is embedded in the binary: our page, script and stylesheet
//! (`edge/player/`) and hls.js and dash.js from npm (see `build.rs`), so a viewer's
//! browser talks to this edge only. The page itself finds the stream name in
//! its path; the edge serves the same page for every stream and never puts
//! a request's text into it.

use api_types::layout::THUMBNAIL_SMALL;
use api_types::{Playback, Route, validate_name};
use bytes::Bytes;

const PAGE: &str = include_str!("../player/watch.html");
const SCRIPT: &str = include_str!("../player/player.js");
const STYLE: &str = include_str!("../player/player.css");
const HLS_JS: &[u8] = include_bytes!(env!("DIONYSIA_HLS_JS"));
/// dash.js, for `?format=dash`; the page loads it only then.
const DASH_JS: &[u8] = include_bytes!(env!("DIONYSIA_DASH_JS"));

/// What a `/watch...` path asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// An embedded file.
    Asset(Asset),
    /// The live list as JSON, for the page.
    LiveList,
    /// Not a player path (or a bad stream name): 404.
    NotFound,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    pub body: Bytes,
    pub content_type: &'static str,
    pub cache_control: &'static str,
}

/// True for paths this module answers; they never reach the HLS routing.
pub fn owns(path: &str) -> bool {
    path == "/watch" || path.starts_with("/watch/")
}

/// Parses a path for which [`owns`] is true.
pub fn request(path: &str) -> Request {
    let page = || {
        Request::Asset(Asset {
            body: Bytes::from_static(PAGE.as_bytes()),
            content_type: "text/html; charset=utf-8",
            cache_control: "no-cache",
        })
    };
    let asset = |body: &'static [u8], content_type| {
        Request::Asset(Asset {
            body: Bytes::from_static(body),
            content_type,
            cache_control: "public, max-age=300",
        })
    };
    match path {
        "/watch" | "/watch/" => page(),
        "/watch/streams.json" => Request::LiveList,
        "/watch/assets/hls.min.js" => asset(HLS_JS, "text/javascript; charset=utf-8"),
        "/watch/assets/dash.mediaplayer.min.js" => asset(DASH_JS, "text/javascript; charset=utf-8"),
        "/watch/assets/player.js" => asset(SCRIPT.as_bytes(), "text/javascript; charset=utf-8"),
        "/watch/assets/player.css" => asset(STYLE.as_bytes(), "text/css; charset=utf-8"),
        _ => match path.strip_prefix("/watch/").map(|n| n.trim_end_matches('/')) {
            Some(name) if validate_name("stream name", name).is_ok() => page(),
            _ => Request::NotFound,
        },
    }
}

/// The live list the page shows: names, rendition names and the small live
/// thumbnail's path (`null` for a token stream: it needs a token the list
/// has not), nothing about origins (viewers need not know where streams are
/// held).
pub fn live_list_json(routes: &[Route]) -> Bytes {
    let streams: Vec<serde_json::Value> = routes
        .iter()
        .map(|r| {
            let renditions: Vec<&str> = r
                .origins
                .first()
                .map(|o| o.renditions.iter().map(|x| x.name.as_str()).collect())
                .unwrap_or_default();
            let thumbnail = (r.playback == Playback::Public).then(|| format!("/{}/{THUMBNAIL_SMALL}", r.name));
            serde_json::json!({ "name": r.name, "renditions": renditions, "thumbnail": thumbnail })
        })
        .collect();
    Bytes::from(serde_json::json!({ "streams": streams }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for p in ["/watch", "/watch/", "/watch/demo", "/watch/demo/"] {
            assert!(owns(p), "{p}");
            match request(p) {
                Request::Asset(a) => assert!(a.content_type.starts_with("text/html"), "{p}"),
                other => panic!("{p}: {other:?}"),
            }
        }
        assert_eq!(request("/watch/streams.json"), Request::LiveList);
        let Request::Asset(hls) = request("/watch/assets/hls.min.js") else {
            panic!("no hls.js")
        };
        assert!(hls.body.len() > 100_000, "hls.js is embedded whole");
        let Request::Asset(dash) = request("/watch/assets/dash.mediaplayer.min.js") else {
            panic!("no dash.js")
        };
        assert!(dash.body.len() > 100_000, "dash.js is embedded whole");
        for bad in [
            "/watch/Demo",
            "/watch/../x",
            "/watch/a/b",
            "/watch/assets/nope.js",
            "/watch/%2e%2e",
            "/watch//",
        ] {
            assert_eq!(request(bad), Request::NotFound, "{bad}");
        }
        assert!(!owns("/watchers/index.m3u8"));
    }

    #[test]
    fn the_live_list_points_at_thumbnails_of_public_streams_only() {
        let route = |name: &str, playback| Route {
            name: name.into(),
            manifest: format!("/{name}/index.m3u8"),
            host: String::new(),
            origins: vec![],
            playback,
            viewers: 0,
        };
        let list = live_list_json(&[route("open", Playback::Public), route("paid", Playback::Token)]);
        let v: serde_json::Value = serde_json::from_slice(&list).unwrap();
        assert_eq!(v["streams"][0]["thumbnail"], "/open/thumbnail-small.jpg");
        assert!(v["streams"][1]["thumbnail"].is_null());
    }

    #[test]
    fn the_page_never_embeds_request_text() {
        let Request::Asset(a) = request("/watch/somestream") else {
            panic!()
        };
        assert!(!String::from_utf8_lossy(&a.body).contains("somestream"));
    }
}
