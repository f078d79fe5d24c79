//! Entry points shared by the fuzz targets (`fuzz/fuzz_targets/`) and the
//! regression corpus test (`rtmp/tests/regressions.rs`), so a crash input
//! found by the fuzzer is replayed through exactly the code that crashed.
//!
//! Each entry point also checks properties, not just the absence of
//! panics: the session's held bytes stay under its stated bound, AMF0
//! re-encodes stably, FLV tags frame back to their bodies.

use crate::amf0::{self, Amf0Limits};
use crate::chunk::ChunkLimits;
use crate::flv::{FILE_HEADER, FlvMuxer, TagKind};
use crate::session::{Event, Limits, ServerSession};

/// Small limits, so the fuzzer reaches every one of them quickly.
pub fn small_limits() -> Limits {
    let mut l = Limits::new(ChunkLimits {
        max_message_len: 4096,
        max_chunk_size: 8192,
        max_chunk_streams: 6,
        max_buffered_bytes: 8192,
    });
    l.max_command_len = 2048;
    l.max_output_bytes = 4096;
    l.amf0.max_depth = 4;
    l
}

/// A valid C0+C1 then C2.
pub fn client_handshake() -> Vec<u8> {
    let mut b = vec![3u8];
    b.extend((0..1536 * 2).map(|i| (i % 251) as u8));
    b
}

/// A whole server session: the first byte picks whether a valid handshake
/// comes first and how the rest is cut into reads; the session's events are
/// answered as the origin answers them (connect and publish accepted, media
/// re-framed as FLV).
pub fn session(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let limits = small_limits();
    let mut s = ServerSession::new(limits);
    let mut events = Vec::new();
    let mut flv = FlvMuxer::default();
    if mode & 1 == 1 && s.feed(&client_handshake(), &mut events).is_err() {
        panic!("a valid handshake was refused");
    }
    let piece = 1 + (mode as usize >> 1) * 7;
    // Bound: partial messages, messages completed in one read, answers,
    // the handshake buffer.
    let bound = 2 * limits.chunk.max_buffered_bytes + limits.max_output_bytes + 4096 + 2 * 1537;
    for chunk in rest.chunks(piece) {
        let r = s.feed(chunk, &mut events);
        assert!(s.held_bytes() <= bound, "held {} > bound {bound}", s.held_bytes());
        for ev in events.drain(..) {
            match ev {
                Event::Connect { .. } => {
                    let _ = s.accept_connect();
                }
                Event::Publish { .. } => {
                    let _ = s.accept_publish();
                }
                Event::Media { kind, timestamp, data } => {
                    let kind = match kind {
                        crate::MediaKind::Audio => TagKind::Audio,
                        crate::MediaKind::Video => TagKind::Video,
                    };
                    let _ = flv.tag(kind, timestamp, &data);
                }
                Event::Unpublish => {}
            }
        }
        s.take_output();
        if r.is_err() {
            return;
        }
    }
}

/// The AMF0 decoder; what decodes must re-encode to bytes that decode and
/// re-encode to the same bytes.
pub fn amf0(data: &[u8]) {
    let limits = Amf0Limits {
        max_depth: 8,
        max_values: 512,
    };
    let Ok(values) = amf0::decode_all(data, limits) else {
        return;
    };
    let encode = |vs: &[amf0::Value]| {
        let mut b = Vec::new();
        for v in vs {
            amf0::encode(&mut b, v);
        }
        b
    };
    let once = encode(&values);
    let again = amf0::decode_all(&once, limits).expect("our own encoding decodes");
    assert_eq!(encode(&again), once, "AMF0 re-encoding is not stable");
}

/// FLV re-framing: the input is cut into (kind, timestamp, body) records;
/// every accepted tag must frame back to its body.
pub fn flv(data: &[u8]) {
    let mut m = FlvMuxer::default();
    let mut rest = data;
    let mut first = true;
    while rest.len() >= 6 {
        let kind = if rest[0] & 1 == 0 {
            TagKind::Audio
        } else {
            TagKind::Video
        };
        let ts = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let len = (rest[5] as usize).min(rest.len() - 6);
        let body = &rest[6..6 + len];
        rest = &rest[6 + len..];
        let Ok(out) = m.tag(kind, ts, body) else { continue };
        if body.is_empty() {
            assert!(out.is_empty());
            continue;
        }
        let tag = if first {
            assert_eq!(&out[..13], &FILE_HEADER);
            first = false;
            &out[13..]
        } else {
            &out[..]
        };
        assert_eq!(tag[0], kind as u8);
        let size = u32::from_be_bytes([0, tag[1], tag[2], tag[3]]) as usize;
        assert_eq!(size, body.len());
        let t = u32::from_be_bytes([tag[7], tag[4], tag[5], tag[6]]);
        assert_eq!(t, ts);
        assert_eq!(&tag[11..11 + size], body);
        let prev = u32::from_be_bytes(tag[11 + size..].try_into().expect("4 bytes"));
        assert_eq!(prev as usize, size + 11);
    }
}

/// The SRT streamid: a key, if found, is a non-empty part of the streamid.
pub fn streamid(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Some(k) = crate::key_from_streamid(s) {
        assert!(!k.is_empty() && s.contains(k));
    }
}
