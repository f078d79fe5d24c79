//! The on-disk and URL layout of an origin's HLS output.
//!
//! The origin writes it, the discovery agent reads it, and the edge proxies
//! the same paths, so the layout is part of the contract between processes:
//!
//! ```text
//! {stream}/index.m3u8                          multivariant playlist (one per publish)
//! {stream}/{session}/{rendition}/index.m3u8    media playlist
//! {stream}/{session}/{rendition}/init.mp4      CMAF init segment
//! {stream}/{session}/{rendition}/{n}.m4s       media segments
//! {stream}/{session}/{rendition}/{n}.{p}.m4s   part p of segment n (LL-HLS)
//! ```
//!
//! `{session}` changes on every publish, so a segment URI is never reused
//! (a cache can never serve an old session's segment under a new name).

/// File name of a stream's multivariant playlist, and of each media playlist.
pub const PLAYLIST: &str = "index.m3u8";
/// File name of a rendition's CMAF init segment.
pub const INIT_SEGMENT: &str = "init.mp4";

/// `{stream}/index.m3u8`: where a stream's multivariant playlist lives.
pub fn multivariant_path(stream: &str) -> String {
    format!("{stream}/{PLAYLIST}")
}

/// `{session}/{rendition}/index.m3u8`: a media playlist's URI relative to the
/// multivariant playlist.
pub fn media_playlist_uri(session: &str, rendition: &str) -> String {
    format!("{session}/{rendition}/{PLAYLIST}")
}

/// Splits a media playlist URI (relative to the multivariant playlist) into
/// `(session, rendition)`; `None` if it does not follow the layout.
pub fn parse_media_playlist_uri(uri: &str) -> Option<(&str, &str)> {
    let mut parts = uri.split('/');
    let (session, rendition, file) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && file == PLAYLIST).then_some((session, rendition))
}

/// What an HLS object path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Multivariant,
    MediaPlaylist,
    Init,
    Segment,
    /// An LL-HLS partial segment (`{n}.{p}.m4s`): immutable like a segment.
    Part,
}

impl ObjectKind {
    /// A short label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            ObjectKind::Multivariant => "multivariant",
            ObjectKind::MediaPlaylist => "playlist",
            ObjectKind::Init => "init",
            ObjectKind::Segment => "segment",
            ObjectKind::Part => "part",
        }
    }
}

/// A URL path (`/golive/index.m3u8`, `/golive/{session}/720p/12.m4s`, ...)
/// taken apart. Only the shapes of the layout, with every component valid,
/// parse: anything else (`..`, encodings, dot-files, other files) does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectPath<'a> {
    pub stream: &'a str,
    /// `(session, rendition)` for everything but the multivariant playlist.
    pub media: Option<(&'a str, &'a str)>,
    pub kind: ObjectKind,
}

/// Parses a URL path against the layout.
pub fn parse_object_path(path: &str) -> Option<ObjectPath<'_>> {
    use crate::ident::{validate_name, validate_session};
    let mut parts = path.strip_prefix('/')?.split('/');
    let stream = parts.next()?;
    validate_name("stream name", stream).ok()?;
    let rest: Vec<&str> = parts.collect();
    match rest.as_slice() {
        [PLAYLIST] => Some(ObjectPath {
            stream,
            media: None,
            kind: ObjectKind::Multivariant,
        }),
        [session, rendition, file] => {
            validate_session(session).ok()?;
            validate_name("rendition", rendition).ok()?;
            let kind = match *file {
                PLAYLIST => ObjectKind::MediaPlaylist,
                INIT_SEGMENT => ObjectKind::Init,
                f => {
                    let number = |n: &str| !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit());
                    match f.strip_suffix(".m4s")?.split_once('.') {
                        None if number(&f[..f.len() - 4]) => ObjectKind::Segment,
                        Some((n, p)) if number(n) && number(p) => ObjectKind::Part,
                        _ => return None,
                    }
                }
            };
            Some(ObjectPath {
                stream,
                media: Some((session, rendition)),
                kind,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths() {
        let p = parse_object_path("/golive/index.m3u8").unwrap();
        assert_eq!((p.stream, p.media, p.kind), ("golive", None, ObjectKind::Multivariant));
        let p = parse_object_path("/golive/s1/720p/12.m4s").unwrap();
        assert_eq!((p.media, p.kind), (Some(("s1", "720p")), ObjectKind::Segment));
        assert_eq!(
            parse_object_path("/golive/s1/720p/12.3.m4s").unwrap().kind,
            ObjectKind::Part
        );
        assert_eq!(
            parse_object_path("/golive/s1/720p/init.mp4").unwrap().kind,
            ObjectKind::Init
        );
        assert_eq!(
            parse_object_path("/golive/s1/720p/index.m3u8").unwrap().kind,
            ObjectKind::MediaPlaylist
        );
        for bad in [
            "",
            "/",
            "golive/index.m3u8",
            "/golive",
            "/golive/",
            "/../etc/passwd",
            "/golive/../../x",
            "/%2e%2e/index.m3u8",
            "/golive/s1/720p/..",
            "/golive/s1/../index.m3u8",
            "/Golive/index.m3u8",
            "/golive/s1/720p/x.m4s",
            "/golive/s1/720p/.index.m3u8.tmp",
            "/golive/s1/720p/index.m3u8/x",
            "/golive/s1/index.m3u8",
            "/golive/s.1/720p/1.m4s",
            "/golive//720p/1.m4s",
            "/golive/s1/720p/1.ts",
            "/golive/s1/720p/1..m4s",
            "/golive/s1/720p/.1.m4s",
            "/golive/s1/720p/1.2.3.m4s",
            "/golive/s1/720p/1.x.m4s",
        ] {
            assert!(parse_object_path(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn media_uris_round_trip() {
        let uri = media_playlist_uri("s1", "720p");
        assert_eq!(parse_media_playlist_uri(&uri), Some(("s1", "720p")));
        assert_eq!(parse_media_playlist_uri("s1/720p/other.m3u8"), None);
        assert_eq!(parse_media_playlist_uri("s1/index.m3u8"), None);
        assert_eq!(parse_media_playlist_uri("a/b/c/index.m3u8"), None);
        assert_eq!(multivariant_path("golive"), "golive/index.m3u8");
    }
}
