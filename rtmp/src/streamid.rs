//! The stream key inside an SRT streamid: the whole streamid, or the
//! resource of the access-control form `#!::r=live/KEY,m=publish`.
//!
//! Here, beside the RTMP codec, so the fuzz build needs no GStreamer; the
//! origin's SRT listener re-exports it.

/// The stream key inside an SRT streamid, if there is one.
pub fn key_from_streamid(streamid: &str) -> Option<&str> {
    let key = match streamid.strip_prefix("#!::") {
        Some(fields) => fields
            .split(',')
            .find_map(|f| f.strip_prefix("r="))?
            .rsplit('/')
            .next()?,
        None => streamid,
    };
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_streamids() {
        assert_eq!(key_from_streamid("abc123"), Some("abc123"));
        assert_eq!(key_from_streamid("#!::r=live/abc123,m=publish"), Some("abc123"));
        assert_eq!(key_from_streamid("#!::m=publish,r=abc123"), Some("abc123"));
        assert_eq!(key_from_streamid("#!::m=publish"), None);
        assert_eq!(key_from_streamid("#!::r=live/"), None);
        assert_eq!(key_from_streamid(""), None);
    }
}
