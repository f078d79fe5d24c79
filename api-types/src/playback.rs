//! Playback tokens: who may watch a stream whose policy is `token`.
//!
//! This module is the whole scheme, pure (no I/O, no clock: callers pass
//! `now_ms`), shared by the router API (which mints tokens) and the edges
//! (which check them without calling the router). An operator's own backend
//! can mint tokens from the description below without calling us either.
//!
//! # The token
//!
//! ```text
//! {kid}.{exp_ms}.{viewer}.{sig}
//! sig = base64url-nopad(HMAC-SHA256(secret_of(kid), "dionysia-playback-v1\n{stream}\n{exp_ms}\n{viewer}"))
//! ```
//!
//! - `kid`: the key id, `[a-z0-9]{1,16}`; it names the secret, so secrets can
//!   rotate (edges know several keys; the router signs with the first).
//! - `exp_ms`: expiry, milliseconds since the Unix epoch, decimal, no sign,
//!   no leading zeros beyond `0` itself, at most 20 digits.
//! - `viewer`: an optional binding to a viewer, `[A-Za-z0-9_-]{0,64}` (empty
//!   when unbound). It is signed, so it can be logged and counted, but it is
//!   not checked against anything.
//! - `sig`: 43 characters (32 bytes, base64url without padding).
//! - `stream` is signed but not carried: a token for one stream is a bad
//!   signature for any other ([`TokenError::BadSignature`]).
//!
//! Secrets are at least [`MIN_SECRET_LEN`] bytes. A token is at most
//! [`MAX_TOKEN_LEN`] characters and contains only `[A-Za-z0-9._-]`, so it is
//! safe in a path segment without escaping.
//!
//! # Where it travels
//!
//! As a path prefix: `/t/{token}/{stream}/index.m3u8`. Playlists use relative
//! URIs, so every object a player loads from there (media playlists, init,
//! parts, segments) carries the same prefix without any rewriting, and the
//! edge strips it ([`split_token_path`]) before routing and caching, so two
//! viewers with two tokens share one cached copy.
//!
//! The parser is hand-written because the grammar is four fixed fields with
//! bounded lengths; a general parser would only add ways to be lenient.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The first line of every signed message: the scheme's version.
pub const CONTEXT: &str = "dionysia-playback-v1";
/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;
/// Longest key id.
pub const MAX_KID_LEN: usize = 16;
/// Longest viewer binding.
pub const MAX_VIEWER_LEN: usize = 64;
/// Longest `exp_ms` (u64::MAX has 20 digits).
const MAX_EXP_DIGITS: usize = 20;
/// Length of the signature field.
const SIG_LEN: usize = 43;
/// Longest token: every field at its longest, and three dots.
pub const MAX_TOKEN_LEN: usize = MAX_KID_LEN + MAX_EXP_DIGITS + MAX_VIEWER_LEN + SIG_LEN + 3;
/// The path segment that starts a token-carrying playback path.
pub const PATH_PREFIX: &str = "/t/";

type HmacSha256 = Hmac<Sha256>;

/// Why a token was refused. [`TokenError::reason`] is the short form edges
/// put in their 403 bodies and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the form `{kid}.{exp_ms}.{viewer}.{sig}` within the bounds.
    #[error("malformed playback token")]
    Malformed,
    /// Its key id is not among the keys this process knows.
    #[error("playback token signed with an unknown key")]
    UnknownKey,
    /// The signature does not match (tampered, or made for another stream).
    #[error("playback token signature does not match")]
    BadSignature,
    /// Genuine, but past its expiry.
    #[error("playback token expired")]
    Expired,
}

impl TokenError {
    /// `malformed`, `unknown_key`, `bad_signature` or `expired`: a fixed set,
    /// fit for a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
        }
    }
}

/// A key (id and secret) that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a playback key is KID:SECRET")]
    Syntax,
    #[error("playback key id {0:?} must be [a-z0-9]{{1,16}}")]
    Kid(String),
    #[error("the secret of playback key {0:?} must be at least {MIN_SECRET_LEN} bytes")]
    ShortSecret(String),
    #[error("playback key id {0:?} is given twice")]
    Duplicate(String),
    #[error("a viewer binding must be [A-Za-z0-9_-]{{0,64}}")]
    Viewer,
}

/// One signing key.
#[derive(Clone)]
pub struct PlaybackKey {
    kid: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for PlaybackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("PlaybackKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl PlaybackKey {
    pub fn new(kid: &str, secret: &[u8]) -> Result<PlaybackKey, KeyError> {
        if !valid_kid(kid) {
            return Err(KeyError::Kid(kid.to_string()));
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::ShortSecret(kid.to_string()));
        }
        Ok(PlaybackKey {
            kid: kid.to_string(),
            secret: secret.to_vec(),
        })
    }

    /// `KID:SECRET` (the secret is taken as its UTF-8 bytes).
    pub fn parse(s: &str) -> Result<PlaybackKey, KeyError> {
        let (kid, secret) = s.split_once(':').ok_or(KeyError::Syntax)?;
        PlaybackKey::new(kid, secret.as_bytes())
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn mac(&self, stream: &str, exp_ms: u64, viewer: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(message(stream, exp_ms, viewer).as_bytes());
        mac
    }
}

/// The keys a process knows: the first signs, all verify (rotation: add the
/// new key second, let edges learn it, then move it first, then drop the old).
#[derive(Debug, Clone, Default)]
pub struct PlaybackKeys {
    keys: Vec<PlaybackKey>,
}

impl PlaybackKeys {
    pub fn new(keys: Vec<PlaybackKey>) -> Result<PlaybackKeys, KeyError> {
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.kid == k.kid) {
                return Err(KeyError::Duplicate(k.kid.clone()));
            }
        }
        Ok(PlaybackKeys { keys })
    }

    /// Every `KID:SECRET` of `specs`, each of which may itself be a
    /// comma-separated list (the `PLAYBACK_KEYS` environment variable).
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<PlaybackKeys, KeyError> {
        let keys = specs
            .iter()
            .flat_map(|s| s.as_ref().split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PlaybackKey::parse)
            .collect::<Result<Vec<_>, _>>()?;
        PlaybackKeys::new(keys)
    }

    /// The key that signs new tokens, if any key is known.
    pub fn signing(&self) -> Option<&PlaybackKey> {
        self.keys.first()
    }

    pub fn get(&self, kid: &str) -> Option<&PlaybackKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub kid: String,
    pub exp_ms: u64,
    /// The viewer binding, `None` when the token has none.
    pub viewer: Option<String>,
}

fn valid_kid(kid: &str) -> bool {
    (1..=MAX_KID_LEN).contains(&kid.len()) && kid.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `[A-Za-z0-9_-]{0,64}`.
pub fn valid_viewer(viewer: &str) -> bool {
    viewer.len() <= MAX_VIEWER_LEN
        && viewer
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The signed message.
fn message(stream: &str, exp_ms: u64, viewer: &str) -> String {
    format!("{CONTEXT}\n{stream}\n{exp_ms}\n{viewer}")
}

/// A token for `stream`, valid until `exp_ms`, optionally bound to `viewer`.
pub fn mint(key: &PlaybackKey, stream: &str, exp_ms: u64, viewer: Option<&str>) -> Result<String, KeyError> {
    let viewer = viewer.unwrap_or("");
    if !valid_viewer(viewer) {
        return Err(KeyError::Viewer);
    }
    let sig = URL_SAFE_NO_PAD.encode(key.mac(stream, exp_ms, viewer).finalize().into_bytes());
    Ok(format!("{}.{exp_ms}.{viewer}.{sig}", key.kid))
}

/// Checks `token` for `stream` at `now_ms`. The signature is compared in
/// constant time, and checked before the expiry, so only a genuine token is
/// ever told it expired.
pub fn verify(token: &str, stream: &str, now_ms: u64, keys: &PlaybackKeys) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut fields = token.split('.');
    let (Some(kid), Some(exp), Some(viewer), Some(sig), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(TokenError::Malformed);
    };
    if !valid_kid(kid) || !valid_viewer(viewer) || sig.len() != SIG_LEN {
        return Err(TokenError::Malformed);
    }
    let exp_ms = parse_exp(exp).ok_or(TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Malformed)?;
    let key = keys.get(kid).ok_or(TokenError::UnknownKey)?;
    key.mac(stream, exp_ms, viewer)
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    if exp_ms <= now_ms {
        return Err(TokenError::Expired);
    }
    Ok(Claims {
        kid: kid.to_string(),
        exp_ms,
        viewer: (!viewer.is_empty()).then(|| viewer.to_string()),
    })
}

/// Canonical decimal only, so one expiry has one spelling (and one signature).
fn parse_exp(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > MAX_EXP_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// The playback path of `stream` for a token: what a player opens on any edge.
pub fn token_url(token: &str, stream: &str) -> String {
    format!("{PATH_PREFIX}{token}/{stream}/index.m3u8")
}

/// Splits `/t/{token}/{rest...}` into the token and the path without the
/// prefix (`/{rest...}`, starting with `/`), for the edge to route and cache
/// as if no token were there. `None` when `path` does not start with `/t/`,
/// the token segment is empty or longer than [`MAX_TOKEN_LEN`], or nothing
/// follows it. The token itself is not checked here: [`verify`] does that.
pub fn split_token_path(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix(PATH_PREFIX)?;
    let slash = after.find('/')?;
    let (token, rest) = after.split_at(slash);
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || rest.len() < 2 {
        return None;
    }
    Some((token, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> PlaybackKeys {
        PlaybackKeys::parse(&["k1:0123456789abcdef0123456789abcdef,k2:fedcba9876543210fedcba9876543210"]).unwrap()
    }

    #[test]
    fn minted_tokens_verify_for_their_stream_only() {
        let ks = keys();
        let t = mint(ks.signing().unwrap(), "golive", 2_000, Some("alice")).unwrap();
        assert!(t.starts_with("k1.2000.alice."), "{t}");
        assert!(t.len() <= MAX_TOKEN_LEN);
        let c = verify(&t, "golive", 1_999, &ks).unwrap();
        assert_eq!(c.viewer.as_deref(), Some("alice"));
        assert_eq!(c.exp_ms, 2_000);
        assert_eq!(verify(&t, "other", 1_000, &ks), Err(TokenError::BadSignature));
        assert_eq!(verify(&t, "golive", 2_000, &ks), Err(TokenError::Expired));
        let unbound = mint(ks.signing().unwrap(), "golive", 2_000, None).unwrap();
        assert_eq!(verify(&unbound, "golive", 0, &ks).unwrap().viewer, None);
    }

    #[test]
    fn matches_the_documented_scheme() {
        // What an operator's backend computes from the module doc.
        let mut mac = HmacSha256::new_from_slice(SECRET).unwrap();
        mac.update(b"dionysia-playback-v1\ngolive\n1700000000000\n");
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let key = PlaybackKey::new("k1", SECRET).unwrap();
        assert_eq!(
            mint(&key, "golive", 1_700_000_000_000, None).unwrap(),
            format!("k1.1700000000000..{sig}")
        );
    }

    #[test]
    fn rotation_verifies_with_any_known_key() {
        let old = PlaybackKey::parse("k2:fedcba9876543210fedcba9876543210").unwrap();
        let t = mint(&old, "golive", 10, None).unwrap();
        assert!(verify(&t, "golive", 0, &keys()).is_ok());
        let only_k1 = PlaybackKeys::parse(&["k1:0123456789abcdef0123456789abcdef"]).unwrap();
        assert_eq!(verify(&t, "golive", 0, &only_k1), Err(TokenError::UnknownKey));
    }

    #[test]
    fn tampering_and_junk_are_refused() {
        let ks = keys();
        let t = mint(ks.signing().unwrap(), "golive", 5_000, Some("bob")).unwrap();
        let tampered = [
            t.replace(".5000.", ".6000."),
            t.replace(".bob.", ".eve."),
            t.replace(".bob.", ".."),
        ];
        for x in &tampered {
            assert_eq!(verify(x, "golive", 0, &ks), Err(TokenError::BadSignature), "{x}");
        }
        let mut flipped = t.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(verify(&flipped, "golive", 0, &ks), Err(TokenError::BadSignature));
        let sig = t.rsplit('.').next().unwrap();
        let long = "x".repeat(MAX_TOKEN_LEN + 1);
        let junk = [
            "",
            "...",
            "k1.5000.bob",
            &format!("k1.5000.bob.{sig}.x"),
            &format!("K1.5000.bob.{sig}"),
            &format!("k1.05000.bob.{sig}"),
            &format!("k1.-5.bob.{sig}"),
            &format!("k1.99999999999999999999.bob.{sig}"),
            &format!("k1.5000.b%20b.{sig}"),
            &format!("k1.5000.bob.{}", &sig[1..]),
            &format!("k1.5000.bob.{}=", &sig[1..]),
            &long,
        ];
        for x in junk {
            assert_eq!(verify(x, "golive", 0, &ks), Err(TokenError::Malformed), "{x}");
        }
        assert_eq!(
            verify(&format!("k9.5000.bob.{sig}"), "golive", 0, &ks),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn keys_are_checked() {
        assert!(matches!(PlaybackKey::parse("k1"), Err(KeyError::Syntax)));
        assert!(matches!(
            PlaybackKey::parse("K1:0123456789abcdef0123456789abcdef"),
            Err(KeyError::Kid(_))
        ));
        assert!(matches!(PlaybackKey::parse("k1:short"), Err(KeyError::ShortSecret(_))));
        assert!(matches!(
            PlaybackKeys::parse(&[
                "k1:0123456789abcdef0123456789abcdef",
                "k1:0123456789abcdef0123456789abcdeX"
            ]),
            Err(KeyError::Duplicate(_))
        ));
        assert!(
            !format!("{:?}", keys()).contains("0123456789abcdef"),
            "secrets are never printed"
        );
        let key = PlaybackKey::new("k1", SECRET).unwrap();
        assert_eq!(mint(&key, "golive", 1, Some("not ok")), Err(KeyError::Viewer));
        assert_eq!(mint(&key, "golive", 1, Some(&"v".repeat(65))), Err(KeyError::Viewer));
    }

    #[test]
    fn token_paths_split() {
        assert_eq!(
            split_token_path("/t/k1.5.a.sig/golive/index.m3u8"),
            Some(("k1.5.a.sig", "/golive/index.m3u8"))
        );
        assert_eq!(
            split_token_path("/t/tok/golive/s1/720p/3.m4s"),
            Some(("tok", "/golive/s1/720p/3.m4s"))
        );
        for p in [
            "/golive/index.m3u8",
            "/t/",
            "/t//golive/index.m3u8",
            "/t/tok",
            "/t/tok/",
            "/tt/tok/x",
        ] {
            assert_eq!(split_token_path(p), None, "{p}");
        }
        let long = format!("/t/{}/golive/index.m3u8", "x".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(split_token_path(&long), None);
        assert_eq!(token_url("tok", "golive"), "/t/tok/golive/index.m3u8");
    }
}
