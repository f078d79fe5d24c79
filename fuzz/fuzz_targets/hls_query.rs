//! Fuzz target: `api_types::hls_query` (the `_HLS_*` directives of a media
//! playlist request, parsed by the origin and the edge). A query that
//! parses must print back canonically and parse again to the same value.
#![no_main]

use api_types::hls_query::HlsQuery;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    if let Ok(q) = HlsQuery::parse(Some(query)) {
        let canonical = q.to_string();
        assert_eq!(HlsQuery::parse(Some(&canonical)), Ok(q), "{canonical}");
    }
});
