//! Fuzz target: `rtmp::fuzzing::streamid` (the regression corpus test replays
//! its crash inputs through the same function).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rtmp::fuzzing::streamid(data));
