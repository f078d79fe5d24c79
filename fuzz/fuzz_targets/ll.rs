//! Fuzz target: the edge's LL-HLS reading of network input
//! (`edge/src/ll.rs`, compiled in from its source: the edge is a binary
//! crate): a media playlist body from an origin, and a viewer's query
//! string (read by `api_types::hls_query`, as the edge and the origin do).
//! The input is the query, a NUL byte, then the playlist. Every verdict is
//! taken, so no arithmetic on what was read can panic.
#![no_main]

#[path = "../../edge/src/ll.rs"]
#[allow(dead_code)]
mod ll;

use api_types::hls_query::HlsQuery;
use std::time::Duration;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (query, playlist) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let directives = std::str::from_utf8(query).ok().map(|q| HlsQuery::parse(Some(q)));
    // The canonical query (the edge's cache key) reads back as the same
    // directives.
    if let Some(Ok(d)) = directives {
        assert_eq!(HlsQuery::parse(Some(&d.to_string())), Ok(d));
    }
    let Some(pos) = std::str::from_utf8(playlist).ok().and_then(ll::Position::parse) else {
        return;
    };
    let _ = pos.in_progress();
    let (msn, part) = match directives {
        Some(Ok(d)) => (d.msn.unwrap_or(0), d.part),
        _ => (pos.last_segment.unwrap_or(0), Some(0)),
    };
    for age in [Duration::ZERO, Duration::from_secs(10)] {
        let _ = pos.judge(msn, part, age);
    }
    let _ = pos.judge_part(msn, part.unwrap_or(0));
    let _ = pos.not_behind(&pos);
});
