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
//! {stream}/manifest.mpd                        the live stream as a dynamic DASH MPD
//! {stream}/thumbnail.jpg                       the live picture (and thumbnail-small.jpg)
//! {stream}/{session}/vod.m3u8                  a recording: multivariant playlist (VOD)
//! {stream}/{session}/{rendition}/vod.m3u8      a recording: media playlist (VOD, ENDLIST)
//! {stream}/{session}/manifest.mpd              a recording as a static DASH MPD
//! {stream}/{session}/recording.json            a recording's metadata ([`RECORDING_META`]):
//!                                              written last, so its presence means complete
//! ```
//!
//! A recording's init and media segments are the live session's own
//! (`{stream}/{session}/{rendition}/...`): one set of bytes serves live, DVR
//! and the recording.
//!
//! `{session}` changes on every publish, so a segment URI is never reused
//! (a cache can never serve an old session's segment under a new name).

/// File name of a stream's multivariant playlist, and of each media playlist.
pub const PLAYLIST: &str = "index.m3u8";
/// File name of a rendition's CMAF init segment.
pub const INIT_SEGMENT: &str = "init.mp4";
/// File name of a recording's playlists (multivariant under the session,
/// media under each rendition).
pub const VOD_PLAYLIST: &str = "vod.m3u8";
/// File name of a DASH MPD: dynamic under the stream, static under a
/// recorded session.
pub const MPD: &str = "manifest.mpd";
/// File name of a stream's live thumbnail.
pub const THUMBNAIL: &str = "thumbnail.jpg";
/// File name of a stream's small live thumbnail.
pub const THUMBNAIL_SMALL: &str = "thumbnail-small.jpg";
/// File name of a recorded session's metadata (JSON: `api_types::router::RecordingMeta`),
/// not served over HTTP.
pub const RECORDING_META: &str = "recording.json";

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
    /// The live stream's dynamic DASH MPD (`{stream}/manifest.mpd`).
    Mpd,
    /// A live thumbnail (`{stream}/thumbnail.jpg`, `thumbnail-small.jpg`).
    Thumbnail,
    /// A recording's multivariant playlist (`{stream}/{session}/vod.m3u8`).
    VodMultivariant,
    /// A recording's media playlist (`{stream}/{session}/{rendition}/vod.m3u8`).
    VodPlaylist,
    /// A recording's static DASH MPD (`{stream}/{session}/manifest.mpd`).
    VodMpd,
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
            ObjectKind::Mpd => "mpd",
            ObjectKind::Thumbnail => "thumbnail",
            ObjectKind::VodMultivariant => "vod_multivariant",
            ObjectKind::VodPlaylist => "vod_playlist",
            ObjectKind::VodMpd => "vod_mpd",
        }
    }

    /// Whether the object belongs to a recording (routed by its session,
    /// which may no longer be live anywhere).
    pub fn is_vod(self) -> bool {
        matches!(
            self,
            ObjectKind::VodMultivariant | ObjectKind::VodPlaylist | ObjectKind::VodMpd
        )
    }
}

/// A URL path (`/golive/index.m3u8`, `/golive/{session}/720p/12.m4s`, ...)
/// taken apart. Only the shapes of the layout, with every component valid,
/// parse: anything else (`..`, encodings, dot-files, other files) does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectPath<'a> {
    pub stream: &'a str,
    /// The session, for every object under one (a rendition's objects and
    /// a recording's session-level playlist and MPD).
    pub session: Option<&'a str>,
    /// `(session, rendition)` for a rendition's objects (playlists, init,
    /// segments, parts).
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
        [file] => {
            let kind = match *file {
                PLAYLIST => ObjectKind::Multivariant,
                MPD => ObjectKind::Mpd,
                THUMBNAIL | THUMBNAIL_SMALL => ObjectKind::Thumbnail,
                _ => return None,
            };
            Some(ObjectPath {
                stream,
                session: None,
                media: None,
                kind,
            })
        }
        [session, file] => {
            validate_session(session).ok()?;
            let kind = match *file {
                VOD_PLAYLIST => ObjectKind::VodMultivariant,
                MPD => ObjectKind::VodMpd,
                _ => return None,
            };
            Some(ObjectPath {
                stream,
                session: Some(session),
                media: None,
                kind,
            })
        }
        [session, rendition, file] => {
            validate_session(session).ok()?;
            validate_name("rendition", rendition).ok()?;
            let kind = match *file {
                PLAYLIST => ObjectKind::MediaPlaylist,
                VOD_PLAYLIST => ObjectKind::VodPlaylist,
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
                session: Some(session),
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
        for (path, kind, session) in [
            ("/golive/manifest.mpd", ObjectKind::Mpd, None),
            ("/golive/thumbnail.jpg", ObjectKind::Thumbnail, None),
            ("/golive/thumbnail-small.jpg", ObjectKind::Thumbnail, None),
            ("/golive/s1/vod.m3u8", ObjectKind::VodMultivariant, Some("s1")),
            ("/golive/s1/manifest.mpd", ObjectKind::VodMpd, Some("s1")),
            ("/golive/s1/720p/vod.m3u8", ObjectKind::VodPlaylist, Some("s1")),
            ("/golive/s1/720p/1.m4s", ObjectKind::Segment, Some("s1")),
        ] {
            let p = parse_object_path(path).unwrap();
            assert_eq!((p.kind, p.session), (kind, session), "{path}");
        }
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
            "/golive/s1/recording.json",
            "/golive/recording.json",
            "/golive/s1/thumbnail.jpg",
            "/golive/s1/720p/manifest.mpd",
            "/golive/thumbnail.png",
            "/golive/s.1/vod.m3u8",
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
