//! FLV framing of RTMP media messages, and the codec check.
//!
//! An RTMP audio or video message body *is* an FLV tag body, so the RTMP
//! server turns the stream of messages back into an FLV byte stream (file
//! header, then tag header + body + previous-tag-size per message) that
//! GStreamer's `flvdemux` reads. The codec is checked here, on the first
//! byte of each tag, so that a publisher sending a codec we do not take is
//! refused with a clear reason before anything reaches GStreamer.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FlvError {
    #[error("video codec id {0} is not supported: send H.264 (codec id 7)")]
    VideoCodec(u8),
    #[error("audio format {0} is not supported: send AAC (format 10)")]
    AudioFormat(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Audio = 8,
    Video = 9,
}

/// `FLV`, version 1, audio+video flags, header size 9, PreviousTagSize0.
const FILE_HEADER: [u8; 13] = [b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0];

/// Turns media messages into an FLV byte stream.
#[derive(Debug, Default)]
pub struct FlvMuxer {
    started: bool,
}

impl FlvMuxer {
    /// The FLV bytes for one message (with the file header before the first),
    /// or why the message's codec is refused. Empty messages yield nothing.
    pub fn tag(&mut self, kind: TagKind, timestamp_ms: u32, body: &[u8]) -> Result<Vec<u8>, FlvError> {
        let Some(&first) = body.first() else { return Ok(vec![]) };
        match kind {
            TagKind::Video if first & 0x0f != 7 => return Err(FlvError::VideoCodec(first & 0x0f)),
            TagKind::Audio if first >> 4 != 10 => return Err(FlvError::AudioFormat(first >> 4)),
            _ => {}
        }
        let mut out = Vec::with_capacity(body.len() + 11 + 4 + 13);
        if !self.started {
            out.extend_from_slice(&FILE_HEADER);
            self.started = true;
        }
        let size = body.len() as u32;
        out.push(kind as u8);
        out.extend_from_slice(&size.to_be_bytes()[1..]);
        out.extend_from_slice(&timestamp_ms.to_be_bytes()[1..]);
        out.push((timestamp_ms >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(body);
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
}
