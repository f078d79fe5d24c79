//! FLV framing of RTMP media messages, and the codec check.
//!
//! An RTMP audio or video message body *is* an FLV tag body, so the RTMP
//! server turns the stream of messages back into an FLV byte stream (file
//! header, then tag header + body + previous-tag-size per message) that
//! GStreamer's `flvdemux` reads. The codec is checked here, on the first
//! byte of each tag, so that a publisher sending a codec we do not take is
//! refused with a clear reason before anything reaches GStreamer.
//!
//! Enhanced RTMP (OBS 30+ for HEVC and AV1) sets bit 0x80 of the first video
//! byte and names the codec with a FourCC in bytes 1..5 (`hvc1`, `av01`,
//! `vp09`, `avc1`). GStreamer 1.22's `flvdemux` reads only the legacy codec
//! ids, so such a publish is refused with the FourCC in the reason.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FlvError {
    #[error("video codec id {0} is not supported: send H.264 (codec id 7)")]
    VideoCodec(u8),
    #[error(
        "enhanced-RTMP video {0} is not supported (this origin's FLV demuxer takes legacy H.264 only): send H.264 without enhanced RTMP"
    )]
    EnhancedVideo(FourCc),
    #[error("audio format {0} is not supported: send AAC (format 10)")]
    AudioFormat(u8),
}

/// An enhanced-RTMP codec FourCC, shown as text when it is printable
/// ASCII and in hex otherwise (it comes from the network: never echo
/// arbitrary bytes into a log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FourCc(pub [u8; 4]);

impl std::fmt::Display for FourCc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match &self.0 {
            b"hvc1" => Some("HEVC"),
            b"av01" => Some("AV1"),
            b"vp09" => Some("VP9"),
            b"avc1" => Some("H.264"),
            _ => None,
        };
        if self.0.iter().all(|b| b.is_ascii_alphanumeric()) {
            let text = std::str::from_utf8(&self.0).expect("ASCII");
            match name {
                Some(n) => write!(f, "codec {text} ({n})"),
                None => write!(f, "codec {text}"),
            }
        } else {
            write!(f, "codec 0x{:08x}", u32::from_be_bytes(self.0))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Audio = 8,
    Video = 9,
}

/// `FLV`, version 1, audio+video flags, header size 9, PreviousTagSize0.
pub const FILE_HEADER: [u8; 13] = [b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0];

/// Turns media messages into an FLV byte stream.
#[derive(Debug, Default)]
pub struct FlvMuxer {
    started: bool,
}

/// Checks the codec of one tag body (its first bytes).
pub fn check_codec(kind: TagKind, body: &[u8]) -> Result<(), FlvError> {
    let Some(&first) = body.first() else { return Ok(()) };
    match kind {
        TagKind::Video if first & 0x80 != 0 => {
            let mut cc = [0u8; 4];
            let got = body.get(1..5).unwrap_or(&body[1..]);
            cc[..got.len()].copy_from_slice(got);
            Err(FlvError::EnhancedVideo(FourCc(cc)))
        }
        TagKind::Video if first & 0x0f != 7 => Err(FlvError::VideoCodec(first & 0x0f)),
        TagKind::Audio if first >> 4 != 10 => Err(FlvError::AudioFormat(first >> 4)),
        _ => Ok(()),
    }
}

impl FlvMuxer {
    /// The FLV bytes for one message (with the file header before the first),
    /// or why the message's codec is refused. Empty messages yield nothing.
    pub fn tag(&mut self, kind: TagKind, timestamp_ms: u32, body: &[u8]) -> Result<Vec<u8>, FlvError> {
        if body.is_empty() {
            return Ok(vec![]);
        }
        check_codec(kind, body)?;
        let mut out = Vec::with_capacity(body.len() + 11 + 4 + 13);
        if !self.started {
            out.extend_from_slice(&FILE_HEADER);
            self.started = true;
        }
        // An RTMP message is at most 2^24-1 bytes long (its length field),
        // so the FLV tag's 24-bit size always holds it.
        let size = body.len().min(0xff_ffff) as u32;
        out.push(kind as u8);
        out.extend_from_slice(&size.to_be_bytes()[1..]);
        out.extend_from_slice(&timestamp_ms.to_be_bytes()[1..]);
        out.push((timestamp_ms >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&body[..size as usize]);
        out.extend_from_slice(&(size + 11).to_be_bytes());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_tags_after_one_file_header() {
        let mut m = FlvMuxer::default();
        let first = m.tag(TagKind::Video, 0x0102_0304, &[0x17, 0, 0, 0, 0]).unwrap();
        assert_eq!(&first[..13], &FILE_HEADER);
        let tag = &first[13..];
        assert_eq!(tag[0], 9);
        assert_eq!(&tag[1..4], &[0, 0, 5]);
        assert_eq!(
            &tag[4..8],
            &[0x02, 0x03, 0x04, 0x01],
            "24-bit timestamp then the extension byte"
        );
        assert_eq!(&tag[tag.len() - 4..], &16u32.to_be_bytes());
        let second = m.tag(TagKind::Audio, 5, &[0xaf, 1, 2]).unwrap();
        assert_eq!(second[0], 8, "no second file header");
        assert!(m.tag(TagKind::Audio, 5, &[]).unwrap().is_empty());
    }

    #[test]
    fn refuses_other_codecs() {
        let mut m = FlvMuxer::default();
        assert_eq!(m.tag(TagKind::Video, 0, &[0x12]), Err(FlvError::VideoCodec(2)));
        assert_eq!(m.tag(TagKind::Audio, 0, &[0x2f]), Err(FlvError::AudioFormat(2)));
    }

    #[test]
    fn refuses_enhanced_rtmp_naming_the_codec() {
        let mut m = FlvMuxer::default();
        // IsExHeader | keyframe, PacketType SequenceStart, FourCC.
        for (cc, name) in [
            (b"hvc1", "codec hvc1 (HEVC)"),
            (b"av01", "codec av01 (AV1)"),
            (b"vp09", "codec vp09 (VP9)"),
        ] {
            let mut body = vec![0x90];
            body.extend_from_slice(cc);
            body.extend_from_slice(&[1, 2, 3]);
            let e = m.tag(TagKind::Video, 0, &body).unwrap_err();
            assert_eq!(e, FlvError::EnhancedVideo(FourCc(*cc)));
            assert!(e.to_string().contains(name), "{e}");
        }
        let e = m.tag(TagKind::Video, 0, &[0x80, b'\n', 0xff]).unwrap_err();
        assert_eq!(
            e.to_string().split(':').next().unwrap(),
            "enhanced-RTMP video codec 0x0aff0000 is not supported (this origin's FLV demuxer takes legacy H.264 only)"
        );
    }
}
