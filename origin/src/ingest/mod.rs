//! Ingest protocols. Each turns a publisher's connection into container
//! bytes for a [`crate::publish::Publish`]:
//! - [`rtmp`]: RTMP (OBS, ffmpeg), on the workspace's bounded, fuzzed `rtmp`
//!   codec, with connection limits; re-framed as FLV ([`flv`]);
//! - [`srt`]: SRT listener carrying MPEG-TS, key in the streamid.

pub mod flv;
pub mod rtmp;
pub mod srt;
