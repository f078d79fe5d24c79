//! FLV framing of RTMP media messages, and the codec check: re-exported
//! from the workspace's pure `rtmp` crate (`rtmp::flv`), where it is fuzzed
//! without GStreamer. An RTMP audio or video message body is an FLV tag
//! body; the RTMP server re-frames the messages as an FLV byte stream for
//! `flvdemux`, refusing codecs (enhanced-RTMP FourCCs included) by name
//! before anything reaches GStreamer.

pub use rtmp::flv::{FILE_HEADER, FlvError, FlvMuxer, FourCc, TagKind, check_codec};
