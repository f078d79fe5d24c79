//! The server side of one RTMP connection as a sans-IO state machine: bytes
//! in ([`ServerSession::feed`]), events and answer bytes out.
//!
//! It does the simple handshake (C0/C1 -> S0/S1/S2, then C2), reads the
//! chunk stream ([`crate::chunk`]), answers protocol control (Set Chunk
//! Size, Abort, Window Acknowledgement Size with the acknowledgements it
//! asks for, pings) and the publish sequence of OBS and ffmpeg: `connect`,
//! `releaseStream`, `FCPublish`, `createStream`, `publish`,
//! `@setDataFrame onMetaData`, `FCUnpublish`, `deleteStream`. Decisions
//! (which application, whether a key may publish) are the caller's: a
//! [`Event::Connect`] or [`Event::Publish`] is answered with
//! [`ServerSession::accept_connect`] / [`ServerSession::reject_connect`] or
//! [`ServerSession::accept_publish`] / [`ServerSession::reject_publish`].
//!
//! Commands are lenient where publishers differ (a missing transaction id
//! or command object reads as 0 or null) and strict where it is safe:
//! anything before `connect` other than `connect` ends the connection.

use crate::amf0::{self, Amf0Error, Amf0Limits, Value};
use crate::chunk::{self, ChunkError, ChunkLimits, ChunkReader, Message};
use thiserror::Error;

/// Every bound of one connection. Defaults are what [`Limits::default`]
/// says; the per-connection memory bound follows from them (see the crate
/// doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub chunk: ChunkLimits,
    pub amf0: Amf0Limits,
    /// Longest command or data message decoded (AMF0 is decoded whole).
    pub max_command_len: usize,
    /// Answer bytes waiting for the caller to send; a peer that makes the
    /// server answer faster than the caller drains is cut here.
    pub max_output_bytes: usize,
}

impl Limits {
    pub fn new(chunk: ChunkLimits) -> Limits {
        Limits {
            chunk,
            amf0: Amf0Limits::default(),
            max_command_len: 64 << 10,
            max_output_bytes: 1 << 20,
        }
    }
}

#[derive(Debug, Error)]
pub enum RtmpError {
    #[error("handshake: client asked for RTMP version {0} (only 3 is served)")]
    Version(u8),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    #[error("command message of {0} bytes is longer than the limit of {1}")]
    CommandTooLong(usize, usize),
    #[error("malformed AMF0 command")]
    Amf0(#[source] Amf0Error),
    #[error("protocol: {0}")]
    Protocol(&'static str),
    #[error("the peer does not read: more than {0} answer bytes pending")]
    OutputFull(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

/// What the caller must know or decide.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// `connect` to application `app`: answer with `accept_connect` or
    /// `reject_connect`.
    Connect { app: String },
    /// `publish` of `key` on message stream `stream_id`: answer with
    /// `accept_publish` or `reject_publish`. The key is a secret: never log it.
    Publish { key: String, stream_id: u32 },
    /// An audio or video message: an FLV tag body.
    Media {
        kind: MediaKind,
        timestamp: u32,
        data: Vec<u8>,
    },
    /// `FCUnpublish`, `deleteStream` or `closeStream`: the publisher stops.
    Unpublish,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for C0 and C1 (1537 bytes).
    HandshakeC0C1,
    /// Waiting for C2 (1536 bytes).
    HandshakeC2,
    /// Chunk stream, before `connect`.
    Connecting,
    /// `connect` asked, waiting for the caller's decision.
    ConnectPending,
    Connected,
}

const HANDSHAKE_SIZE: usize = 1536;
/// The window we ask the peer to acknowledge, and assume for it until it
/// says its own.
const WINDOW: u32 = 2_500_000;
/// Our chunk size for answers (the initial one; we never change it).
const OUT_CHUNK: u32 = chunk::DEFAULT_CHUNK_SIZE;
/// Message streams one connection may create.
const MAX_STREAMS: u32 = 8;

/// One connection's protocol state.
pub struct ServerSession {
    limits: Limits,
    state: State,
    handshake: Vec<u8>,
    reader: ChunkReader,
    out: Vec<u8>,
    messages: Vec<Message>,
    received: u64,
    acked: u64,
    peer_window: u32,
    connect_txn: f64,
    next_stream: u32,
    /// (transaction id, stream id) of a publish awaiting the caller.
    publish_pending: Option<(f64, u32)>,
}

impl ServerSession {
    pub fn new(limits: Limits) -> ServerSession {
        ServerSession {
            limits,
            state: State::HandshakeC0C1,
            handshake: Vec::new(),
            reader: ChunkReader::new(limits.chunk),
            out: Vec::new(),
            messages: Vec::new(),
            received: 0,
            acked: 0,
            peer_window: WINDOW,
            connect_txn: 0.0,
            next_stream: 1,
            publish_pending: None,
        }
    }

    /// Answer bytes to send to the peer; the caller sends them all.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether the handshake and `connect` are done.
    pub fn connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Bytes this session holds (partial messages, answers, handshake),
    /// for tests of the memory bound.
    pub fn held_bytes(&self) -> usize {
        self.reader.buffered() + self.out.capacity() + self.handshake.capacity()
    }

    /// Reads `input`, appending events to `events`. After an error the
    /// connection must be closed (answers already produced may still be
    /// sent).
    pub fn feed(&mut self, mut input: &[u8], events: &mut Vec<Event>) -> Result<(), RtmpError> {
        while !input.is_empty() {
            match self.state {
                State::HandshakeC0C1 | State::HandshakeC2 => {
                    if self.state == State::HandshakeC0C1 && self.handshake.is_empty() && input[0] != 3 {
                        return Err(RtmpError::Version(input[0]));
                    }
                    let need = if self.state == State::HandshakeC0C1 {
                        1 + HANDSHAKE_SIZE
                    } else {
                        HANDSHAKE_SIZE
                    };
                    let n = (need - self.handshake.len()).min(input.len());
                    self.handshake.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.handshake.len() == need {
                        self.handshake_step()?;
                    }
                }
                _ => {
                    let n = self.reader.read(input, &mut self.messages)?;
                    self.count_received(n);
                    input = &input[n..];
                    let messages = std::mem::take(&mut self.messages);
                    for m in messages {
                        self.message(m, events)?;
                    }
                }
            }
            self.check_output()?;
        }
        Ok(())
    }

    fn check_output(&self) -> Result<(), RtmpError> {
        if self.out.len() > self.limits.max_output_bytes {
            return Err(RtmpError::OutputFull(self.limits.max_output_bytes));
        }
        Ok(())
    }

    fn handshake_step(&mut self) -> Result<(), RtmpError> {
        if self.state == State::HandshakeC0C1 {
            // S0, S1 (time, zero version: the simple handshake, which OBS's
            // librtmp and ffmpeg publish with), S2 (C1 echoed).
            self.out.push(3);
            self.out.extend_from_slice(&[0; 8]);
            let mut x = seed();
            for _ in 0..(HANDSHAKE_SIZE - 8) / 8 {
                // xorshift64: S1's random field needs no cryptographic
                // strength, only to differ between connections.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                self.out.extend_from_slice(&x.to_be_bytes());
            }
            self.out.extend_from_slice(&self.handshake[1..]);
            self.state = State::HandshakeC2;
        } else {
            // C2 should echo S1; publishers differ, and nothing depends on it.
            self.state = State::Connecting;
        }
        self.handshake = Vec::new();
        Ok(())
    }

    fn count_received(&mut self, n: usize) {
        self.received += n as u64;
        if self.received - self.acked >= self.peer_window as u64 {
            self.acked = self.received;
            // The sequence number is the byte count, modulo 2^32.
            self.control(3, &(self.received as u32).to_be_bytes());
        }
    }

    fn control(&mut self, type_id: u8, payload: &[u8]) {
        chunk::write(&mut self.out, OUT_CHUNK, 2, type_id, 0, 0, payload);
    }

    fn user_control(&mut self, event: u16, data: &[u8]) {
        let mut p = event.to_be_bytes().to_vec();
        p.extend_from_slice(data);
        self.control(4, &p);
    }

    fn command(&mut self, stream_id: u32, values: &[Value]) {
        let mut p = Vec::new();
        for v in values {
            amf0::encode(&mut p, v);
        }
        chunk::write(&mut self.out, OUT_CHUNK, 3, 20, stream_id, 0, &p);
    }

    fn message(&mut self, m: Message, events: &mut Vec<Event>) -> Result<(), RtmpError> {
        let be32 = |p: &[u8]| p.get(..4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")));
        match m.type_id {
            1 => {
                let size = be32(&m.payload).ok_or(RtmpError::Protocol("short Set Chunk Size"))?;
                self.reader.set_chunk_size(size & 0x7fff_ffff)?;
            }
            2 => {
                let csid = be32(&m.payload).ok_or(RtmpError::Protocol("short Abort Message"))?;
                self.reader.abort(csid);
            }
            3 | 6 => {} // acknowledgement of our bytes; peer bandwidth
            // Ping request: answer with the same timestamp.
            4 if m.payload.len() >= 6 && m.payload[..2] == [0, 6] => {
                let data = m.payload[2..6].to_vec();
                self.user_control(7, &data);
            }
            4 => {} // other user control events: Set Buffer Length, ...
            5 => {
                let w = be32(&m.payload).ok_or(RtmpError::Protocol("short Window Acknowledgement Size"))?;
                self.peer_window = w.max(1);
            }
            8 | 9 if self.state == State::Connected => events.push(Event::Media {
                kind: if m.type_id == 8 {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                },
                timestamp: m.timestamp,
                data: m.payload,
            }),
            8 | 9 => return Err(RtmpError::Protocol("media before connect")),
            // AMF0 data (@setDataFrame onMetaData): the pipeline reads the
            // codec from the media itself, so metadata is dropped unread.
            15 | 18 => {}
            17 | 20 => {
                // AMF3 commands carry AMF0 after a zero format byte.
                let body = if m.type_id == 17 {
                    m.payload.get(1..).unwrap_or_default()
                } else {
                    &m.payload
                };
                if body.len() > self.limits.max_command_len {
                    return Err(RtmpError::CommandTooLong(body.len(), self.limits.max_command_len));
                }
                let values = amf0::decode_all(body, self.limits.amf0).map_err(RtmpError::Amf0)?;
                self.invoke(m.stream_id, &values, events)?;
            }
            _ => {} // aggregate and shared-object messages: not used by publishers
        }
        Ok(())
    }

    fn invoke(&mut self, stream_id: u32, values: &[Value], events: &mut Vec<Event>) -> Result<(), RtmpError> {
        let name = values.first().and_then(Value::as_str).unwrap_or_default();
        let txn = values.get(1).and_then(Value::as_number).unwrap_or(0.0);
        let arg = |i: usize| values.get(3 + i);
        if self.state == State::Connecting {
            if name != "connect" {
                return Err(RtmpError::Protocol("command before connect"));
            }
            let app = values
                .get(2)
                .and_then(|o| o.get("app"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            // Some clients append the query or a trailing slash to the app.
            let app = app.split(['?', '/']).next().unwrap_or_default().to_string();
            self.connect_txn = txn;
            self.state = State::ConnectPending;
            events.push(Event::Connect { app });
            return Ok(());
        }
        if self.state != State::Connected {
            return Err(RtmpError::Protocol("command while connect is pending"));
        }
        match name {
            "connect" => return Err(RtmpError::Protocol("second connect")),
            "releaseStream" | "FCPublish" | "_checkbw" if txn != 0.0 => {
                self.command(0, &[s("_result"), Value::Number(txn), Value::Null, Value::Undefined]);
            }
            "releaseStream" | "FCPublish" | "_checkbw" => {} // no transaction: no answer
            "createStream" => {
                if self.next_stream > MAX_STREAMS {
                    return Err(RtmpError::Protocol("too many createStream"));
                }
                let id = self.next_stream;
                self.next_stream += 1;
                self.command(
                    0,
                    &[s("_result"), Value::Number(txn), Value::Null, Value::Number(id as f64)],
                );
            }
            "publish" => {
                if self.publish_pending.is_some() {
                    return Err(RtmpError::Protocol("a second publish on one connection"));
                }
                let key = arg(0).and_then(Value::as_str).unwrap_or_default().to_string();
                self.publish_pending = Some((txn, stream_id));
                events.push(Event::Publish { key, stream_id });
            }
            "FCUnpublish" | "deleteStream" | "closeStream" => events.push(Event::Unpublish),
            _ => {} // play, getStreamLength, ...: not served; ignored
        }
        Ok(())
    }

    /// Accepts the pending `connect`.
    pub fn accept_connect(&mut self) -> Result<(), RtmpError> {
        if self.state != State::ConnectPending {
            return Err(RtmpError::Protocol("no connect pending"));
        }
        self.control(5, &WINDOW.to_be_bytes());
        let mut bw = WINDOW.to_be_bytes().to_vec();
        bw.push(2); // dynamic
        self.control(6, &bw);
        self.user_control(0, &0u32.to_be_bytes()); // Stream Begin, stream 0
        let props = obj(&[("fmsVer", s("FMS/3,0,1,123")), ("capabilities", Value::Number(31.0))]);
        let info = obj(&[
            ("level", s("status")),
            ("code", s("NetConnection.Connect.Success")),
            ("description", s("Connection succeeded.")),
            ("objectEncoding", Value::Number(0.0)),
        ]);
        self.command(0, &[s("_result"), Value::Number(self.connect_txn), props, info]);
        self.state = State::Connected;
        self.check_output()
    }

    /// Refuses the pending `connect`; the caller closes the connection next.
    pub fn reject_connect(&mut self, description: &str) {
        let info = obj(&[
            ("level", s("error")),
            ("code", s("NetConnection.Connect.Rejected")),
            ("description", s(description)),
        ]);
        self.command(0, &[s("_error"), Value::Number(self.connect_txn), Value::Null, info]);
    }

    /// Accepts the pending `publish`: Stream Begin and `NetStream.Publish.Start`.
    pub fn accept_publish(&mut self) -> Result<(), RtmpError> {
        let (_, stream_id) = self.publish_pending.ok_or(RtmpError::Protocol("no publish pending"))?;
        self.user_control(0, &stream_id.to_be_bytes());
        self.on_status(stream_id, "status", "NetStream.Publish.Start", "Publishing.");
        self.check_output()
    }

    /// Refuses the pending `publish`; the caller closes the connection next.
    pub fn reject_publish(&mut self, description: &str) {
        if let Some((_, stream_id)) = self.publish_pending {
            self.on_status(stream_id, "error", "NetStream.Publish.BadName", description);
        }
    }

    fn on_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        let info = obj(&[("level", s(level)), ("code", s(code)), ("description", s(description))]);
        self.command(stream_id, &[s("onStatus"), Value::Number(0.0), Value::Null, info]);
    }
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn obj(members: &[(&str, Value)]) -> Value {
    Value::Object(members.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
}

/// A different seed per connection, from std's per-process random keys and
/// the clock.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{ChunkLimits, ChunkReader};
    use crate::fuzzing::client_handshake;

    fn cmd(csid: u8, stream_id: u32, values: &[Value]) -> Vec<u8> {
        let mut p = vec![];
        for v in values {
            amf0::encode(&mut p, v);
        }
        let mut out = vec![];
        chunk::write(&mut out, 128, csid, 20, stream_id, 0, &p);
        out
    }

    /// The server's answers, as messages.
    fn answers(bytes: &[u8]) -> Vec<(u8, Vec<Value>)> {
        let mut r = ChunkReader::new(ChunkLimits::default());
        let mut msgs = vec![];
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = r.read(rest, &mut msgs).unwrap();
            rest = &rest[n..];
        }
        msgs.into_iter()
            .map(|m| {
                let v = if m.type_id == 20 {
                    amf0::decode_all(&m.payload, Amf0Limits::default()).unwrap()
                } else {
                    vec![]
                };
                (m.type_id, v)
            })
            .collect()
    }

    fn connected() -> ServerSession {
        let mut s = ServerSession::new(Limits::new(ChunkLimits::default()));
        let mut ev = vec![];
        s.feed(&client_handshake(), &mut ev).unwrap();
        let hs = s.take_output();
        assert_eq!(hs.len(), 1 + 2 * 1536);
        assert_eq!(hs[0], 3);
        assert_eq!(&hs[1 + 1536..], &client_handshake()[1..1537], "S2 echoes C1");
        let connect = obj(&[("app", s_("live")), ("tcUrl", s_("rtmp://h/live"))]);
        s.feed(&cmd(3, 0, &[s_("connect"), Value::Number(1.0), connect]), &mut ev)
            .unwrap();
        assert_eq!(ev, [Event::Connect { app: "live".into() }]);
        s.accept_connect().unwrap();
        let a = answers(&s.take_output());
        assert_eq!(a.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [5, 6, 4, 20]);
        assert_eq!(a[3].1[0], s_("_result"));
        assert_eq!(a[3].1[3].get("code"), Some(&s_("NetConnection.Connect.Success")));
        s
    }

    fn s_(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn takes_the_obs_and_ffmpeg_publish_sequence() {
        let mut s = connected();
        let mut ev = vec![];
        let mut input = vec![];
        // Set Chunk Size 4096 first, as OBS does.
        chunk::write(&mut input, 128, 2, 1, 0, 0, &4096u32.to_be_bytes());
        s.feed(&input, &mut ev).unwrap();
        let big = |values: &[Value], stream: u32| {
            let mut p = vec![];
            for v in values {
                amf0::encode(&mut p, v);
            }
            let mut out = vec![];
            chunk::write(&mut out, 4096, 3, 20, stream, 0, &p);
            out
        };
        let mut input = big(&[s_("releaseStream"), Value::Number(2.0), Value::Null, s_("KEY")], 0);
        input.extend(big(&[s_("FCPublish"), Value::Number(3.0), Value::Null, s_("KEY")], 0));
        input.extend(big(&[s_("createStream"), Value::Number(4.0), Value::Null], 0));
        s.feed(&input, &mut ev).unwrap();
        let a = answers(&s.take_output());
        assert_eq!(a.len(), 3);
        assert_eq!(a[2].1[3], Value::Number(1.0), "stream id 1");
        s.feed(
            &big(
                &[s_("publish"), Value::Number(5.0), Value::Null, s_("KEY"), s_("live")],
                1,
            ),
            &mut ev,
        )
        .unwrap();
        assert_eq!(
            ev,
            [Event::Publish {
                key: "KEY".into(),
                stream_id: 1
            }]
        );
        ev.clear();
        s.accept_publish().unwrap();
        let a = answers(&s.take_output());
        assert_eq!(a[1].1[3].get("code"), Some(&s_("NetStream.Publish.Start")));
        // @setDataFrame onMetaData, then media, then the end.
        let mut input = vec![];
        let mut meta = vec![];
        amf0::encode(&mut meta, &s_("@setDataFrame"));
        amf0::encode(&mut meta, &s_("onMetaData"));
        amf0::encode(&mut meta, &obj(&[("width", Value::Number(640.0))]));
        chunk::write(&mut input, 4096, 4, 18, 1, 0, &meta);
        chunk::write(&mut input, 4096, 4, 18, 1, 0, &[2, 0, 13]); // truncated: dropped unread
        chunk::write(&mut input, 4096, 6, 9, 1, 33, &[0x17, 0, 0, 0, 0, 1]);
        chunk::write(&mut input, 4096, 4, 8, 1, 34, &[0xaf, 1]);
        input.extend(big(&[s_("FCUnpublish"), Value::Number(6.0), Value::Null, s_("KEY")], 1));
        input.extend(big(
            &[s_("deleteStream"), Value::Number(7.0), Value::Null, Value::Number(1.0)],
            0,
        ));
        s.feed(&input, &mut ev).unwrap();
        assert_eq!(
            ev,
            [
                Event::Media {
                    kind: MediaKind::Video,
                    timestamp: 33,
                    data: vec![0x17, 0, 0, 0, 0, 1]
                },
                Event::Media {
                    kind: MediaKind::Audio,
                    timestamp: 34,
                    data: vec![0xaf, 1]
                },
                Event::Unpublish,
                Event::Unpublish
            ]
        );
    }

    #[test]
    fn short_commands_and_odd_orders_never_panic() {
        for values in [
            vec![],
            vec![s_("connect")],
            vec![Value::Null],
            vec![s_("publish"), Value::Number(1.0)],
        ] {
            let mut s = ServerSession::new(Limits::new(ChunkLimits::default()));
            let mut ev = vec![];
            s.feed(&client_handshake(), &mut ev).unwrap();
            let _ = s.feed(&cmd(3, 0, &values), &mut ev);
        }
        let mut s = connected();
        let mut ev = vec![];
        for values in [
            vec![],
            vec![s_("publish")],
            vec![s_("createStream")],
            vec![s_("FCPublish"), Value::Number(2.0)],
        ] {
            s.feed(&cmd(3, 0, &values), &mut ev).unwrap();
        }
        assert_eq!(
            ev,
            [Event::Publish {
                key: String::new(),
                stream_id: 0
            }]
        );
        assert!(s.feed(&cmd(3, 0, &[s_("publish")]), &mut ev).is_err(), "second publish");
        let mut s = connected();
        assert!(s.feed(&cmd(3, 0, &[s_("connect")]), &mut vec![]).is_err());
        let mut s = ServerSession::new(Limits::new(ChunkLimits::default()));
        assert!(matches!(s.feed(&[6], &mut vec![]), Err(RtmpError::Version(6))));
    }

    #[test]
    fn acknowledges_the_window_the_peer_asks_for() {
        let mut s = connected();
        let mut ev = vec![];
        let mut input = vec![];
        chunk::write(&mut input, 128, 2, 5, 0, 0, &1000u32.to_be_bytes());
        s.feed(&input, &mut ev).unwrap();
        let mut media = vec![];
        for i in 0..20 {
            chunk::write(&mut media, 128, 4, 8, 1, i, &[0xaf; 100]);
        }
        for piece in media.chunks(100) {
            s.feed(piece, &mut ev).unwrap();
        }
        let acks: Vec<_> = answers(&s.take_output()).into_iter().filter(|(t, _)| *t == 3).collect();
        // About 2.3 KB received since the window was set: two acks.
        assert_eq!(acks.len(), 2);
        // A ping is answered.
        let mut ping = vec![];
        chunk::write(&mut ping, 128, 2, 4, 0, 0, &[0, 6, 0, 0, 0, 9]);
        s.feed(&ping, &mut ev).unwrap();
        assert_eq!(answers(&s.take_output()).last().unwrap().0, 4);
    }

    #[test]
    fn deep_amf0_commands_end_the_connection_cleanly() {
        let mut s = connected();
        let mut body = vec![2, 0, 7];
        body.extend_from_slice(b"connect");
        for _ in 0..10_000 {
            body.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
        }
        let mut input = vec![];
        chunk::write(&mut input, 128, 3, 20, 0, 0, &body);
        let e = s.feed(&input, &mut vec![]).unwrap_err();
        assert!(matches!(e, RtmpError::Amf0(Amf0Error::TooDeep(16))), "{e}");
    }
}
