//! Packaging: turns encoded media into CMAF HLS on disk.
//!
//! - [`playlist`]: the live media playlist model (segments made of parts,
//!   sliding window, retention of segments that left it) and its rendering.
//! - [`multivariant`]: the multivariant playlist (variants + audio group).
//! - [`session`]: writes one publish session from `cmafmux` output.
//! - [`vod`]: recordings: VOD playlists, `recording.json`, finalizing a
//!   recording cut short by a crash.
//! - [`mpd`]: DASH MPDs over the same segments (live dynamic, recordings static).
//! - [`fsio`]: atomic file replacement, so readers never see half a playlist.

pub mod fsio;
pub mod live;
pub mod mpd;
pub mod multivariant;
pub mod playlist;
pub mod session;
pub mod vod;
