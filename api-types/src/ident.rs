//! Validation of the identifiers that appear in URLs, Redis keys and file
//! paths across Dionysia.
//!
//! These strings come from clients (operators, publishers, agents), end up in
//! Redis keys and on-disk paths, and are echoed into playlists. Restricting
//! them to a small alphabet is what keeps `../`, NUL bytes, URL-encoding
//! tricks and Redis key injection out of every later stage.

use thiserror::Error;

/// The longest stream name, origin id or profile name we accept.
pub const MAX_NAME_LEN: usize = 64;
/// The longest session id we accept.
pub const MAX_SESSION_LEN: usize = 64;
/// The longest manifest path an agent may report.
pub const MAX_MANIFEST_LEN: usize = 256;

/// Why an identifier was refused. The message is safe to return to the client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidIdent {
    #[error("{what} must match [a-z0-9][a-z0-9_-]{{0,63}}")]
    Name { what: &'static str },
    #[error("session must match [A-Za-z0-9_-]{{1,64}}")]
    Session,
    #[error("host must be host:port with a port in 1..=65535")]
    HostPort,
    #[error("manifest must be a relative path of [A-Za-z0-9._-] segments without '..'")]
    Manifest,
    #[error("stream name {0:?} is reserved")]
    Reserved(&'static str),
}

/// Stream names no stream may take, because edges serve something else
/// under them: `/watch/...` is the player page, `/t/{token}/...` a playback
/// token's prefix.
pub const RESERVED_STREAM_NAMES: &[&str] = &["watch", "t"];

/// Checks a stream name, origin id or profile name: `[a-z0-9][a-z0-9_-]{0,63}`.
///
/// `what` names the field in the error ("stream name", "origin id", ...).
pub fn validate_name(what: &'static str, s: &str) -> Result<(), InvalidIdent> {
    let bytes = s.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
        && bytes[1..]
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
    if ok { Ok(()) } else { Err(InvalidIdent::Name { what }) }
}

/// Checks the name of a stream being created: [`validate_name`], and not one
/// of [`RESERVED_STREAM_NAMES`].
pub fn validate_new_stream_name(s: &str) -> Result<(), InvalidIdent> {
    validate_name("stream name", s)?;
    match RESERVED_STREAM_NAMES.iter().find(|r| **r == s) {
        Some(r) => Err(InvalidIdent::Reserved(r)),
        None => Ok(()),
    }
}

/// Checks a publish session id: `[A-Za-z0-9_-]{1,64}`.
pub fn validate_session(s: &str) -> Result<(), InvalidIdent> {
    let ok = !s.is_empty()
        && s.len() <= MAX_SESSION_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(InvalidIdent::Session) }
}

/// Checks an advertised `host:port` (a DNS name, an IPv4 address, or a
/// bracketed IPv6 address, then a port in 1..=65535).
pub fn validate_host_port(s: &str) -> Result<(), InvalidIdent> {
    let (host, port) = s.rsplit_once(':').ok_or(InvalidIdent::HostPort)?;
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && matches!(port.parse::<u32>(), Ok(1..=65535));
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    };
    if port_ok && host_ok {
        Ok(())
    } else {
        Err(InvalidIdent::HostPort)
    }
}

/// Checks a manifest path relative to an origin's HTTP root, e.g.
/// `golive/index.m3u8`: `/`-separated segments of `[A-Za-z0-9._-]`, none of
/// them empty, `.` or `..`.
pub fn validate_manifest_path(s: &str) -> Result<(), InvalidIdent> {
    let ok = !s.is_empty()
        && s.len() <= MAX_MANIFEST_LEN
        && s.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        });
    if ok { Ok(()) } else { Err(InvalidIdent::Manifest) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_stream_names() {
        assert_eq!(validate_new_stream_name("watch"), Err(InvalidIdent::Reserved("watch")));
        assert!(validate_new_stream_name("watcher").is_ok());
        // `/t/{token}/...` is a playback token's prefix.
        assert_eq!(validate_new_stream_name("t"), Err(InvalidIdent::Reserved("t")));
        assert!(validate_new_stream_name("tv").is_ok());
        assert!(
            validate_name("stream name", "watch").is_ok(),
            "existing names keep working"
        );
    }

    #[test]
    fn names() {
        for ok in ["golive", "a", "0", "a-b_c", &"a".repeat(64)] {
            assert!(validate_name("stream name", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "a.b",
            "a/b",
            "..",
            "a b",
            "é",
            &"a".repeat(65),
            "a\0",
        ] {
            assert!(validate_name("stream name", bad).is_err(), "{bad:?}");
            assert!(validate_new_stream_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sessions() {
        assert!(validate_session("AbC-123_x").is_ok());
        for bad in ["", "a/b", "a.b", &"a".repeat(65)] {
            assert!(validate_session(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_ports() {
        for ok in ["127.0.0.1:8080", "origin-a.internal:80", "[::1]:9000", "h:65535"] {
            assert!(validate_host_port(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "host", ":80", "h:0", "h:65536", "h:8a", "h/x:80", "[zz]:80", "h:80/x", "h :80",
        ] {
            assert!(validate_host_port(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn manifests() {
        for ok in ["golive/index.m3u8", "index.m3u8", "a/b/c.m3u8"] {
            assert!(validate_manifest_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/abs.m3u8",
            "../x.m3u8",
            "a/../b",
            "a//b",
            "a/./b",
            "a\\b",
            "a b",
            "a%2e%2e/b",
        ] {
            assert!(validate_manifest_path(bad).is_err(), "{bad:?}");
        }
    }
}
