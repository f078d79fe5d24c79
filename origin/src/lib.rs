//! The origin: ingest (RTMP, SRT) -> transcode (GStreamer ABR ladder) ->
//! package (CMAF HLS) -> serve (HTTP).
//!
//! Being built (issue 3). What exists so far:
//! - [`profiles`]: named ABR ladders from the origin's configuration, fitted
//!   to each source (never upscaled).
//! - [`package`]: the live media playlist model (segments made of parts,
//!   sliding window, PROGRAM-DATE-TIME) and atomic playlist writes.

pub mod package;
pub mod profiles;
