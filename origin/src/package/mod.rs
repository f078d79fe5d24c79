//! Packaging: turns encoded media into CMAF HLS on disk.
//!
//! - [`playlist`]: the live media playlist model (segments made of parts,
//!   sliding window, retention of segments that left it) and its rendering.
//! - [`fsio`]: atomic file replacement, so readers never see half a playlist.

pub mod fsio;
pub mod playlist;
