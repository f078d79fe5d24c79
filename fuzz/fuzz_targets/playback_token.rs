//! Fuzz target: `api_types::playback` (playback tokens and their path
//! prefix, parsed by the edge from every request path of a token stream).
//! Nothing may panic; a token that verifies must be the one minted for it,
//! and `split_token_path` must hand back pieces of the path it was given.
#![no_main]

use api_types::playback::{PlaybackKeys, mint, split_token_path, verify};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let keys = PlaybackKeys::parse(&["k1:0123456789abcdef0123456789abcdef"]).expect("valid key");
    if let Some((token, rest)) = split_token_path(input) {
        assert_eq!(format!("/t/{token}{rest}"), input);
        assert!(rest.starts_with('/') && !token.contains('/'));
    }
    for stream in ["golive", input] {
        if let Ok(claims) = verify(input, stream, 0, &keys) {
            let again = mint(keys.signing().unwrap(), stream, claims.exp_ms, claims.viewer.as_deref()).unwrap();
            assert_eq!(again, input);
        }
    }
});
