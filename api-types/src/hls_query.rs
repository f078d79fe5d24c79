//! The LL-HLS delivery directives of a media playlist request
//! (RFC 8216bis 6.2.5): `_HLS_msn`, `_HLS_part` and `_HLS_skip`.
//!
//! Shared by the origin (which holds blocking reloads) and the edge (which
//! collapses them and keys its cache on exactly these values), so that both
//! accept and refuse the same queries. Every other query parameter is
//! ignored here (a player's cache-buster, a playback token): it is not part
//! of what the playlist answer depends on.
//!
//! Hand-written: the grammar is three `key=value` pairs of digits or one of
//! two words, and a URL-decoding query crate would accept encodings of them
//! (`%5FHLS_msn`) that no player sends and that would split one cache key
//! into many.

use std::fmt;
use thiserror::Error;

/// The spec's directives, validated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct HlsQuery {
    /// `_HLS_msn`: hold until the playlist holds this media sequence number.
    pub msn: Option<u64>,
    /// `_HLS_part`: and this part of it.
    pub part: Option<u64>,
    /// `_HLS_skip=YES` or `v2`: a delta update.
    pub skip: Option<Skip>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// `YES`: skip old segments.
    Yes,
    /// `v2`: skip old segments and old date ranges.
    V2,
}

/// Why a query is refused (the answer is 400 Bad Request).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HlsQueryError {
    #[error("{0} must be a non-negative integer")]
    NotANumber(&'static str),
    #[error("_HLS_skip must be YES or v2")]
    BadSkip,
    #[error("{0} appears more than once")]
    Repeated(&'static str),
    #[error("_HLS_part needs _HLS_msn")]
    PartWithoutMsn,
}

/// Longest number accepted: `u64::MAX` has 20 digits.
const MAX_DIGITS: usize = 20;

fn number(key: &'static str, v: &str) -> Result<u64, HlsQueryError> {
    if v.is_empty() || v.len() > MAX_DIGITS || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HlsQueryError::NotANumber(key));
    }
    v.parse().map_err(|_| HlsQueryError::NotANumber(key))
}

/// Sets a directive that may appear once.
fn once<T>(slot: &mut Option<T>, value: T, key: &'static str) -> Result<(), HlsQueryError> {
    match slot.replace(value) {
        Some(_) => Err(HlsQueryError::Repeated(key)),
        None => Ok(()),
    }
}

impl HlsQuery {
    /// Parses a URL's query string (without `?`); `None` is no query.
    pub fn parse(query: Option<&str>) -> Result<HlsQuery, HlsQueryError> {
        let mut q = HlsQuery::default();
        for pair in query.unwrap_or("").split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "_HLS_msn" => once(&mut q.msn, number("_HLS_msn", v)?, "_HLS_msn")?,
                "_HLS_part" => once(&mut q.part, number("_HLS_part", v)?, "_HLS_part")?,
                "_HLS_skip" => {
                    let skip = match v {
                        "YES" => Skip::Yes,
                        "v2" => Skip::V2,
                        _ => return Err(HlsQueryError::BadSkip),
                    };
                    once(&mut q.skip, skip, "_HLS_skip")?;
                }
                _ => {}
            }
        }
        if q.part.is_some() && q.msn.is_none() {
            return Err(HlsQueryError::PartWithoutMsn);
        }
        Ok(q)
    }

    /// Whether the request asks to be held (a blocking reload).
    pub fn is_blocking(&self) -> bool {
        self.msn.is_some()
    }

    /// Whether there are no directives at all.
    pub fn is_empty(&self) -> bool {
        *self == HlsQuery::default()
    }
}

/// The canonical query string (`_HLS_msn=12&_HLS_part=3&_HLS_skip=YES`, in
/// that order; empty without directives): what an edge forwards and keys on.
impl fmt::Display for HlsQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(m) = self.msn {
            write!(f, "_HLS_msn={m}")?;
            sep = "&";
        }
        if let Some(p) = self.part {
            write!(f, "{sep}_HLS_part={p}")?;
            sep = "&";
        }
        match self.skip {
            Some(Skip::Yes) => write!(f, "{sep}_HLS_skip=YES"),
            Some(Skip::V2) => write!(f, "{sep}_HLS_skip=v2"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_directives_in_any_order_and_ignores_the_rest() {
        let q = HlsQuery::parse(Some("t=abc&_HLS_skip=YES&_HLS_part=3&_HLS_msn=12&x")).unwrap();
        assert_eq!(
            q,
            HlsQuery {
                msn: Some(12),
                part: Some(3),
                skip: Some(Skip::Yes)
            }
        );
        assert_eq!(q.to_string(), "_HLS_msn=12&_HLS_part=3&_HLS_skip=YES");
        assert!(q.is_blocking());
        let q = HlsQuery::parse(Some("_HLS_skip=v2")).unwrap();
        assert_eq!(q.to_string(), "_HLS_skip=v2");
        assert!(!q.is_blocking());
        assert!(HlsQuery::parse(None).unwrap().is_empty());
        assert!(HlsQuery::parse(Some("")).unwrap().is_empty());
        assert_eq!(HlsQuery::parse(Some("cb=1")).unwrap().to_string(), "");
        assert_eq!(
            HlsQuery::parse(Some("_HLS_msn=18446744073709551615")).unwrap().msn,
            Some(u64::MAX)
        );
    }

    #[test]
    fn refuses_what_the_spec_calls_bad_requests() {
        use HlsQueryError::*;
        for (q, e) in [
            ("_HLS_part=1", PartWithoutMsn),
            ("_HLS_msn=-1", NotANumber("_HLS_msn")),
            ("_HLS_msn=", NotANumber("_HLS_msn")),
            ("_HLS_msn", NotANumber("_HLS_msn")),
            ("_HLS_msn=1e3", NotANumber("_HLS_msn")),
            ("_HLS_msn=+1", NotANumber("_HLS_msn")),
            ("_HLS_msn=18446744073709551616", NotANumber("_HLS_msn")),
            ("_HLS_msn=1&_HLS_part=x", NotANumber("_HLS_part")),
            ("_HLS_msn=1&_HLS_msn=2", Repeated("_HLS_msn")),
            ("_HLS_skip=yes", BadSkip),
            ("_HLS_skip=YES&_HLS_skip=v2", Repeated("_HLS_skip")),
        ] {
            assert_eq!(HlsQuery::parse(Some(q)), Err(e), "{q}");
        }
    }
}
