//! The RTMP chunk stream: messages cut into chunks, interleaved over chunk
//! stream ids, reassembled here with every buffer bounded.
//!
//! The reader is incremental: header bytes gather in a fixed 18-byte array
//! and payload bytes go straight into their message's buffer, so no input
//! is held beyond the chunk being read, whatever the chunk size. What a
//! connection can make it hold is the partial messages, and those are
//! bounded together by [`ChunkLimits::max_buffered_bytes`] (counted as
//! allocated capacity), each by [`ChunkLimits::max_message_len`], and in
//! number by [`ChunkLimits::max_chunk_streams`]. A message's buffer grows
//! with the bytes that arrive, never from the length its header claims.

use thiserror::Error;

/// Bounds on one connection's chunk stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Longest message accepted (its header's length field).
    pub max_message_len: u32,
    /// Largest chunk size a peer may set (Set Chunk Size).
    pub max_chunk_size: u32,
    /// Chunk stream ids a peer may use on one connection (OBS and ffmpeg use
    /// at most 6).
    pub max_chunk_streams: usize,
    /// Bytes held in partial messages, all chunk streams together.
    pub max_buffered_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_message_len: 8 << 20,
            max_chunk_size: 16 << 20,
            max_chunk_streams: 16,
            max_buffered_bytes: 16 << 20,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("message of {0} bytes is longer than the limit of {1}")]
    MessageTooLong(u32, u32),
    #[error("more than {0} chunk streams")]
    TooManyChunkStreams(usize),
    #[error("partial messages hold more than {0} bytes")]
    Buffered(usize),
    #[error("chunk stream {0} continues a message it never started")]
    NoPreviousHeader(u32),
    #[error("chunk size {0} refused (1..={1})")]
    ChunkSize(u32, u32),
}

/// The first chunk size of every RTMP connection.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// A complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub csid: u32,
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub payload: Vec<u8>,
}

#[derive(Debug, Default)]
struct StreamState {
    timestamp: u32,
    /// The last header's timestamp field (absolute for type 0, as ffmpeg
    /// reads it), added when a type-3 chunk starts a new message.
    delta: u32,
    len: u32,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    /// Seen a type-0 header: types 1 to 3 need one first.
    started: bool,
    /// The message being reassembled; empty between messages.
    partial: Vec<u8>,
    /// A message is in progress (`partial` may still be empty if it is).
    in_progress: bool,
}

/// Reassembles messages from chunk-stream bytes.
#[derive(Debug)]
pub struct ChunkReader {
    limits: ChunkLimits,
    chunk_size: u32,
    /// Chunk stream id -> state. A short vector: at most `max_chunk_streams`.
    streams: Vec<(u32, StreamState)>,
    header: [u8; 18],
    header_len: usize,
    /// Bytes of payload still due in the current chunk, and on which stream.
    payload: Option<(usize, u32)>,
    buffered: usize,
}

impl ChunkReader {
    pub fn new(limits: ChunkLimits) -> ChunkReader {
        ChunkReader {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
            header: [0; 18],
            header_len: 0,
            payload: None,
            buffered: 0,
        }
    }

    /// Bytes held in partial messages (allocated capacity).
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Applies the peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > self.limits.max_chunk_size {
            return Err(ChunkError::ChunkSize(size, self.limits.max_chunk_size));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Drops the partial message of a chunk stream (Abort Message).
    pub fn abort(&mut self, csid: u32) {
        if let Some(i) = self.index(csid) {
            let s = &mut self.streams[i].1;
            self.buffered -= s.partial.capacity();
            s.partial = Vec::new();
            s.in_progress = false;
        }
    }

    fn index(&self, csid: u32) -> Option<usize> {
        self.streams.iter().position(|(id, _)| *id == csid)
    }

    /// Reads `input`, appending each message it completes to `out`.
    ///
    /// The caller must act on a Set Chunk Size before reading further, so
    /// this stops after each protocol control message (type 1 or 2) and
    /// returns how much of `input` it consumed.
    pub fn read(&mut self, input: &[u8], out: &mut Vec<Message>) -> Result<usize, ChunkError> {
        let mut pos = 0;
        while pos < input.len() {
            if let Some((left, csid)) = self.payload {
                let n = left.min(input.len() - pos);
                let i = self.index(csid).expect("payload stream exists");
                let s = &mut self.streams[i].1;
                let before = s.partial.capacity();
                s.partial.extend_from_slice(&input[pos..pos + n]);
                self.buffered = self.buffered - before + s.partial.capacity();
                pos += n;
                if self.buffered > self.limits.max_buffered_bytes {
                    return Err(ChunkError::Buffered(self.limits.max_buffered_bytes));
                }
                if n < left {
                    self.payload = Some((left - n, csid));
                    continue;
                }
                self.payload = None;
                if s.partial.len() as u32 == s.len {
                    let m = self.complete(i);
                    let control = matches!(m.type_id, 1 | 2);
                    out.push(m);
                    if control {
                        return Ok(pos);
                    }
                }
                continue;
            }
            // Header: gather bytes until its length is known and reached.
            self.header[self.header_len] = input[pos];
            self.header_len += 1;
            pos += 1;
            if let Some(need) = self.header_needed()?
                && self.header_len == need
            {
                let started = self.start_chunk();
                self.header_len = 0;
                if let Some(m) = started? {
                    let control = matches!(m.type_id, 1 | 2);
                    out.push(m);
                    if control {
                        return Ok(pos);
                    }
                }
            }
        }
        Ok(pos)
    }

    /// The basic header's length and chunk stream id, once known.
    fn basic(&self) -> Option<(usize, u32)> {
        let h = &self.header[..self.header_len];
        let first = *h.first()?;
        match first & 0x3f {
            0 => Some((2, 64 + *h.get(1)? as u32)),
            1 => Some((3, 64 + *h.get(1)? as u32 + ((*h.get(2)? as u32) << 8))),
            id => Some((1, id as u32)),
        }
    }

    /// The whole header's length, once the bytes so far decide it.
    fn header_needed(&self) -> Result<Option<usize>, ChunkError> {
        let Some((basic, csid)) = self.basic() else {
            return Ok(None);
        };
        let fmt = self.header[0] >> 6;
        let msg = [11, 7, 3, 0][fmt as usize];
        let base = basic + msg;
        if self.header_len < base {
            return Ok(None);
        }
        let extended = if fmt == 3 {
            match self.index(csid) {
                Some(i) => self.streams[i].1.extended,
                None => return Err(ChunkError::NoPreviousHeader(csid)),
            }
        } else {
            self.header[basic..basic + 3] == [0xff, 0xff, 0xff]
        };
        Ok(Some(if extended { base + 4 } else { base }))
    }

    /// Acts on a complete chunk header; a message of length 0 completes
    /// at once.
    fn start_chunk(&mut self) -> Result<Option<Message>, ChunkError> {
        let (basic, csid) = self.basic().expect("header complete");
        let h = self.header;
        let fmt = h[0] >> 6;
        let be24 = |b: &[u8]| (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let i = match self.index(csid) {
            Some(i) => i,
            None => {
                if fmt != 0 {
                    return Err(ChunkError::NoPreviousHeader(csid));
                }
                if self.streams.len() >= self.limits.max_chunk_streams {
                    return Err(ChunkError::TooManyChunkStreams(self.limits.max_chunk_streams));
                }
                self.streams.push((csid, StreamState::default()));
                self.streams.len() - 1
            }
        };
        let m = &h[basic..];
        let s = &mut self.streams[i].1;
        if fmt != 0 && !s.started {
            return Err(ChunkError::NoPreviousHeader(csid));
        }
        let continuing = fmt == 3 && s.in_progress;
        if !continuing {
            if s.in_progress {
                // A new message header abandons the partial one.
                self.buffered -= s.partial.capacity();
                s.partial = Vec::new();
            }
            let mut field = if fmt < 3 { be24(&m[0..3]) } else { s.delta };
            let ext_at = [11, 7, 3, 0][fmt as usize];
            if fmt < 3 {
                s.extended = field == 0xff_ffff;
            }
            if s.extended && fmt < 3 {
                field = u32::from_be_bytes(m[ext_at..ext_at + 4].try_into().expect("4 bytes"));
            }
            match fmt {
                0 => {
                    s.timestamp = field;
                    s.len = be24(&m[3..6]);
                    s.type_id = m[6];
                    s.stream_id = u32::from_le_bytes(m[7..11].try_into().expect("4 bytes"));
                    s.started = true;
                }
                1 => {
                    s.timestamp = s.timestamp.wrapping_add(field);
                    s.len = be24(&m[3..6]);
                    s.type_id = m[6];
                }
                2 => s.timestamp = s.timestamp.wrapping_add(field),
                _ => s.timestamp = s.timestamp.wrapping_add(field),
            }
            s.delta = field;
            if s.len > self.limits.max_message_len {
                return Err(ChunkError::MessageTooLong(s.len, self.limits.max_message_len));
            }
            s.in_progress = true;
        }
        let due = (s.len as usize - s.partial.len()).min(self.chunk_size as usize);
        if due == 0 {
            return Ok(Some(self.complete(i)));
        }
        self.payload = Some((due, csid));
        Ok(None)
    }

    fn complete(&mut self, i: usize) -> Message {
        let (csid, s) = &mut self.streams[i];
        self.buffered -= s.partial.capacity();
        s.in_progress = false;
        Message {
            csid: *csid,
            timestamp: s.timestamp,
            type_id: s.type_id,
            stream_id: s.stream_id,
            payload: std::mem::take(&mut s.partial),
        }
    }
}

/// Appends `payload` as one message in chunks of `chunk_size`: a type-0
/// header, then type-3 headers.
pub fn write(
    out: &mut Vec<u8>,
    chunk_size: u32,
    csid: u8,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    payload: &[u8],
) {
    debug_assert!((2..64).contains(&csid));
    let ts = timestamp.min(0xff_ffff);
    out.push(csid);
    out.extend_from_slice(&ts.to_be_bytes()[1..]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    let mut chunks = payload.chunks(chunk_size.max(1) as usize);
    if let Some(first) = chunks.next() {
        out.extend_from_slice(first);
    }
    for c in chunks {
        out.push(0xc0 | csid);
        out.extend_from_slice(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut ChunkReader, mut input: &[u8]) -> Result<Vec<Message>, ChunkError> {
        let mut out = vec![];
        while !input.is_empty() {
            let n = r.read(input, &mut out)?;
            if let Some(m) = out.last()
                && m.type_id == 1
            {
                r.set_chunk_size(u32::from_be_bytes(m.payload[..4].try_into().unwrap()))?;
            }
            input = &input[n..];
        }
        Ok(out)
    }

    #[test]
    fn reassembles_what_write_cuts_at_any_split() {
        let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut bytes = vec![];
        write(&mut bytes, 128, 6, 9, 1, 40, &payload);
        write(&mut bytes, 128, 4, 8, 1, 41, b"audio");
        for split in [1, 7, 128, 500, bytes.len()] {
            let mut r = ChunkReader::new(ChunkLimits::default());
            let mut out = vec![];
            for piece in bytes.chunks(split) {
                assert_eq!(r.read(piece, &mut out).unwrap(), piece.len());
            }
            assert_eq!(out.len(), 2);
            assert_eq!((out[0].type_id, out[0].timestamp, out[0].stream_id), (9, 40, 1));
            assert_eq!(out[0].payload, payload);
            assert_eq!(out[1].payload, b"audio");
            assert_eq!(r.buffered(), 0);
        }
    }

    #[test]
    fn type_1_2_3_headers_and_extended_timestamps() {
        let mut b = vec![
            0x04, 0xff, 0xff, 0xff, 0, 0, 2, 8, 1, 0, 0, 0, 0x01, 0, 0, 0, b'a', b'b',
        ];
        b.extend_from_slice(&[0x44, 0, 0, 10, 0, 0, 1, 9, b'c']); // type 1: delta 10
        b.extend_from_slice(&[0x84, 0, 0, 5, b'd']); // type 2: delta 5
        b.push(0xc4); // type 3 starting a message: same delta
        b.push(b'e');
        let mut r = ChunkReader::new(ChunkLimits::default());
        let out = read_all(&mut r, &b).unwrap();
        let ts: Vec<u32> = out.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, [0x0100_0000, 0x0100_000a, 0x0100_000f, 0x0100_0014]);
        assert_eq!(out[1].type_id, 9);
        assert_eq!(out[3].payload, b"e");
    }

    #[test]
    fn set_chunk_size_applies_to_what_follows() {
        let mut b = vec![];
        write(&mut b, 128, 2, 1, 0, 0, &4096u32.to_be_bytes());
        let payload = vec![7u8; 3000];
        write(&mut b, 4096, 6, 9, 1, 0, &payload);
        let mut r = ChunkReader::new(ChunkLimits::default());
        let out = read_all(&mut r, &b).unwrap();
        assert_eq!(out[1].payload, payload);
        assert!(r.set_chunk_size(0).is_err());
        assert!(r.set_chunk_size(u32::MAX).is_err());
    }

    #[test]
    fn interleaved_messages_that_never_complete_hit_the_buffer_limit() {
        let limits = ChunkLimits {
            max_buffered_bytes: 64 << 10,
            ..ChunkLimits::default()
        };
        let mut r = ChunkReader::new(limits);
        let mut out = vec![];
        let mut err = None;
        // Two chunk streams, each announcing 8 MiB, then sending one chunk at
        // a time, alternately.
        'feed: for round in 0..10_000u32 {
            for csid in [4u8, 5] {
                let mut b = vec![csid, 0, 0, 0, 0x7f, 0xff, 0xff, 9, 1, 0, 0, 0];
                if round > 0 {
                    b = vec![0xc0 | csid];
                }
                b.extend_from_slice(&[0u8; 128]);
                if let Err(e) = r.read(&b, &mut out) {
                    err = Some(e);
                    break 'feed;
                }
                assert!(r.buffered() <= limits.max_buffered_bytes + 128 * 2);
            }
        }
        assert_eq!(err, Some(ChunkError::Buffered(64 << 10)));
        assert!(out.is_empty());
    }

    #[test]
    fn limits_on_length_streams_and_headers() {
        let mut r = ChunkReader::new(ChunkLimits::default());
        let long = [0x04, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0];
        assert_eq!(
            r.read(&long, &mut vec![]),
            Err(ChunkError::MessageTooLong(0xff_ffff, 8 << 20))
        );
        let mut r = ChunkReader::new(ChunkLimits::default());
        assert_eq!(r.read(&[0xc5], &mut vec![]), Err(ChunkError::NoPreviousHeader(5)));
        let mut r = ChunkReader::new(ChunkLimits::default());
        let mut b = vec![];
        for csid in 3..40u8 {
            b.extend_from_slice(&[csid, 0, 0, 0, 0, 0, 0, 9, 1, 0, 0, 0]);
        }
        assert_eq!(r.read(&b, &mut vec![]), Err(ChunkError::TooManyChunkStreams(16)));
        // Two- and three-byte basic headers.
        let mut r = ChunkReader::new(ChunkLimits::default());
        let mut out = vec![];
        r.read(&[0x00, 10, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, b'x'], &mut out)
            .unwrap();
        r.read(&[0x01, 0, 1, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, b'y'], &mut out)
            .unwrap();
        assert_eq!((out[0].csid, out[1].csid), (74, 320));
    }
}
