//! Who may watch: playback tokens checked at the edge, and the path
//! prefixes a viewer's requests carry.
//!
//! Why it exists: a stream whose policy (in its route, fetched each second)
//! is `token` needs a valid token for that stream on every object, checked
//! here with the keys the router signs with (`--playback-key`), never by
//! calling the router. The scheme itself is `api_types::playback`.
//!
//! A playback path may start with two prefixes, in this order, both stripped
//! before routing, path checks and the cache key (so viewers with different
//! tokens or sessions share one cached copy):
//! - `/_v/{sid}`: the viewer's playback session (see [`crate::viewers`]),
//!   given by the edge's redirect of a multivariant playlist. `_v` cannot
//!   be a stream name (names start with `[a-z0-9]`), so it never collides
//!   with a stream's own path.
//! - `/t/{token}`: the playback token ([`api_types::playback::split_token_path`]).
//!
//! Playlists use relative URIs, so a player that opened a prefixed
//! multivariant playlist carries both prefixes on everything below it.

use api_types::playback::{self, PlaybackKeys, TokenError};
use api_types::{Playback, Route};
use std::time::SystemTime;

/// The session prefix.
pub const SESSION_PREFIX: &str = "/_v/";
/// A session id: this many lowercase hexadecimal digits.
pub const SID_LEN: usize = 16;

/// A playback path without its prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split<'a> {
    pub sid: Option<&'a str>,
    pub token: Option<&'a str>,
    /// The path as if no prefix were there (starts with `/`).
    pub rest: &'a str,
    /// What was stripped: `path = prefix + rest`.
    pub prefix: &'a str,
}

fn valid_sid(s: &str) -> bool {
    s.len() == SID_LEN && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Strips the prefixes of `path`. `None` when a prefix is there but
/// malformed (an invalid session id, an empty or oversized token).
pub fn split(path: &str) -> Option<Split<'_>> {
    let mut rest = path;
    let mut sid = None;
    if let Some(after) = rest.strip_prefix(SESSION_PREFIX) {
        let (s, r) = after.split_at(after.find('/')?);
        if !valid_sid(s) {
            return None;
        }
        sid = Some(s);
        rest = r;
    }
    let mut token = None;
    if rest.starts_with(playback::PATH_PREFIX) {
        let (t, r) = playback::split_token_path(rest)?;
        token = Some(t);
        rest = r;
    }
    Some(Split {
        sid,
        token,
        rest,
        prefix: &path[..path.len() - rest.len()],
    })
}

/// A new session id (not a secret: it only tells viewers apart).
pub fn new_sid() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Why a request was refused: the 403's JSON body and a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// A token stream asked for without a token.
    Missing,
    Token(TokenError),
}

impl Denied {
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::Missing => "missing",
            Denied::Token(e) => e.reason(),
        }
    }

    /// `{"error": "...", "reason": "..."}`.
    pub fn body(&self) -> String {
        let error = match self {
            Denied::Missing => "this stream needs a playback token".to_string(),
            Denied::Token(e) => e.to_string(),
        };
        serde_json::json!({ "error": error, "reason": self.reason() }).to_string() + "\n"
    }
}

/// One connection's last verified token, so a viewer's keep-alive
/// connection pays the HMAC once per token, not once per request (bounded:
/// one per connection).
#[derive(Debug, Default)]
pub struct Memo {
    last: Option<(String, String, u64)>,
}

/// What the fast hit path ([`crate::hits`]) keeps per connection.
#[derive(Debug, Default)]
pub struct Conn {
    /// The viewer's address, looked up once per connection.
    pub addr: Option<Option<std::net::IpAddr>>,
    pub memo: Memo,
    /// The viewer key last counted on this connection, and when.
    pub counted: Option<(u64, std::time::Instant)>,
}

/// The reasons [`Denied::reason`] gives: the label values of
/// `edge_playback_refusals_total`.
pub const REASONS: [&str; 5] = ["missing", "malformed", "unknown_key", "bad_signature", "expired"];

/// The token check.
pub struct Gate {
    keys: PlaybackKeys,
    refusals: prometheus::IntCounterVec,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Gate {
    pub fn new(keys: PlaybackKeys, registry: &prometheus::Registry) -> Gate {
        let refusals = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "edge_playback_refusals_total",
                "Requests of token streams refused (403), by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for r in REASONS {
            refusals.with_label_values(&[r]);
        }
        registry.register(Box::new(refusals.clone())).expect("registered once");
        Gate { keys, refusals }
    }

    /// Counts a refusal.
    pub fn refused(&self, denied: Denied) {
        self.refusals.with_label_values(&[denied.reason()]).inc();
    }

    /// Whether a request for `stream` carrying `token` may be answered.
    /// Public streams always may; token streams need a token for `stream`
    /// that verifies now (an edge without keys refuses them all as
    /// `unknown_key`).
    pub fn check(
        &self,
        route: &Route,
        stream: &str,
        token: Option<&str>,
        memo: Option<&mut Memo>,
    ) -> Result<(), Denied> {
        if route.playback == Playback::Public {
            return Ok(());
        }
        let token = token.ok_or(Denied::Missing)?;
        let now = now_ms();
        if let Some(m) = &memo
            && let Some((t, s, exp)) = &m.last
            && t == token
            && s == stream
            && *exp > now
        {
            return Ok(());
        }
        let claims = playback::verify(token, stream, now, &self.keys).map_err(Denied::Token)?;
        if let Some(m) = memo {
            m.last = Some((token.to_string(), stream.to_string(), claims.exp_ms));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_stripped_in_order() {
        let p = "/_v/0123456789abcdef/t/k1.5.a.sig/golive/s1/720p/3.m4s";
        let s = split(p).unwrap();
        assert_eq!(s.sid, Some("0123456789abcdef"));
        assert_eq!(s.token, Some("k1.5.a.sig"));
        assert_eq!(s.rest, "/golive/s1/720p/3.m4s");
        assert_eq!(format!("{}{}", s.prefix, s.rest), p);
        let plain = split("/golive/index.m3u8").unwrap();
        assert_eq!((plain.sid, plain.token, plain.prefix), (None, None, ""));
        let t = split("/t/tok/golive/index.m3u8").unwrap();
        assert_eq!((t.sid, t.token, t.rest), (None, Some("tok"), "/golive/index.m3u8"));
        for bad in [
            "/_v/short/golive/index.m3u8",
            "/_v/0123456789ABCDEF/golive/index.m3u8",
            "/_v/0123456789abcdef",
            "/t//golive/index.m3u8",
            "/_v/0123456789abcdef/t/tok",
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
        assert!(valid_sid(&new_sid()));
    }

    #[test]
    fn denials_are_json() {
        let v: serde_json::Value = serde_json::from_str(&Denied::Missing.body()).unwrap();
        assert_eq!(v["reason"], "missing");
        let v: serde_json::Value = serde_json::from_str(&Denied::Token(TokenError::Expired).body()).unwrap();
        assert_eq!(v["reason"], "expired");
        for e in [
            TokenError::Malformed,
            TokenError::UnknownKey,
            TokenError::BadSignature,
            TokenError::Expired,
        ] {
            assert!(REASONS.contains(&Denied::Token(e).reason()));
        }
    }
}
