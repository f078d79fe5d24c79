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

#[cfg(test)]
mod tests {
    use super::*;

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
