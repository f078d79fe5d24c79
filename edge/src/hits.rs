//! The connection handler in front of pingora's HTTP session: fresh cached
//! objects asked for plainly are answered here; every other request is
//! handed to the pingora proxy ([`crate::proxy::Edge`]) unchanged.
//!
//! Why it exists: most of what an edge serves is the same few playlists and
//! segments, fresh in its cache, over and over. On a cached 2 KB playlist
//! pingora's per-request HTTP/1 machinery (a session object with owned
//! request and response headers, a boxed future per request, several
//! allocations) cost more CPU than the kernel's TCP send, and more than
//! nginx's whole request. Here a plain hit costs one `httparse` of the
//! head, two in-memory look-ups (route and object) and one `writev`.
//!
//! A request is *plain*, and may be answered here, when it is an HTTP/1.1
//! `GET` or `HEAD` with no body, no `Range`/`If-Range`, no conditional
//! header, no `Expect`, no `Connection` other than `keep-alive`, whose path
//! names an object of the layout, whose stream's route is fresh in memory
//! and whose object is fresh in the cache ([`crate::proxy::Edge::plain_hit`]).
//! Anything else, including every malformed or oversized head, goes to
//! pingora with the bytes read so far (as a pipelined prefix), so errors,
//! misses, ranges, revalidation, redirects and the edge's own pages behave
//! exactly as in the proxy. After pingora finishes a request on a reusable
//! connection, the next request comes back here.
//!
//! Keep-alive follows pingora's: an idle connection is closed after
//! [`KEEPALIVE`], and at shutdown as soon as it is idle.

use crate::proxy::Edge;
use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use pingora_core::apps::{HttpServerApp, ServerApp};
use pingora_core::protocols::Stream;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;
use pingora_http::ResponseHeader;
use pingora_proxy::HttpProxy;
use std::io::IoSlice;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long an idle viewer connection is kept, as pingora does.
pub const KEEPALIVE: Duration = Duration::from_secs(60);
/// Heads longer than this are pingora's to judge (it has its own limit and
/// error answer); a plain request is a few hundred bytes.
const MAX_HEAD: usize = 16 * 1024;
/// Headers that make pingora's cache answer differently from a plain hit: a
/// byte range, or a request that may be answered with 304.
const NOT_PLAIN: [&str; 4] = ["range", "if-range", "if-none-match", "if-modified-since"];
/// Heads with more headers than this go to pingora.
const MAX_HEADERS: usize = 32;

/// The edge's listening application: plain hits here, the rest to pingora.
pub struct HitFirst {
    edge: Edge,
    proxy: Arc<HttpProxy<Edge>>,
}

impl HitFirst {
    pub fn new(edge: Edge, proxy: HttpProxy<Edge>) -> HitFirst {
        HitFirst {
            edge,
            proxy: Arc::new(proxy),
        }
    }
}

/// What became of reading the next request head.
enum Head {
    /// A complete head of this many bytes is at the start of the buffer.
    Complete(usize),
    /// Malformed, too large or too many headers: pingora answers it.
    ForPingora,
    /// The viewer closed, went idle too long, or the server is stopping.
    Closed,
}

/// A plain request's parts that the answer needs.
struct Plain<'b> {
    path: &'b str,
    query: Option<&'b str>,
    head: bool,
}

/// `Some` when the parsed request may be answered here (see the module docs).
fn plain<'b>(req: &httparse::Request<'_, 'b>) -> Option<Plain<'b>> {
    let head = match req.method? {
        "GET" => false,
        "HEAD" => true,
        _ => return None,
    };
    if req.version? != 1 {
        return None;
    }
    for h in req.headers.iter() {
        let name = h.name;
        let refused = name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("upgrade")
            || (name.eq_ignore_ascii_case("content-length") && h.value != b"0")
            || (name.eq_ignore_ascii_case("connection") && !h.value.eq_ignore_ascii_case(b"keep-alive"))
            || NOT_PLAIN.iter().any(|n| name.eq_ignore_ascii_case(n));
        if refused {
            return None;
        }
    }
    let target = req.path?;
    if !target.starts_with('/') {
        return None;
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    Some(Plain { path, query, head })
}

/// A connection's idle clock. One timer per connection ticks every
/// [`TICK`]; reads only note the time, so a request costs no timer work.
struct Idle {
    tick: Pin<Box<tokio::time::Sleep>>,
    last_read: Instant,
}

/// How often an idle connection checks its keep-alive and the shutdown.
const TICK: Duration = Duration::from_secs(1);

impl Idle {
    fn new() -> Idle {
        Idle {
            tick: Box::pin(tokio::time::sleep(TICK)),
            last_read: Instant::now(),
        }
    }
}

/// Reads until `buf` starts with a complete request head.
async fn read_head(stream: &mut Stream, buf: &mut BytesMut, idle: &mut Idle, shutdown: &ShutdownWatch) -> Head {
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match httparse::Request::new(&mut headers).parse(buf) {
                Ok(httparse::Status::Complete(n)) => return Head::Complete(n),
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                _ => return Head::ForPingora,
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        tokio::select! {
            read = stream.read_buf(buf) => match read {
                Ok(n) if n > 0 => idle.last_read = Instant::now(),
                _ => return Head::Closed,
            },
            () = idle.tick.as_mut() => {
                // Stopping: an idle connection closes now; a request that
                // has begun is read to its end (or to the keep-alive limit).
                if (buf.is_empty() && *shutdown.borrow()) || idle.last_read.elapsed() >= KEEPALIVE {
                    return Head::Closed;
                }
                idle.tick.as_mut().reset(tokio::time::Instant::now() + TICK);
            }
        }
    }
}

/// Writes `head` then `body` with as few system calls as the socket takes.
async fn send(stream: &mut Stream, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() || !body.is_empty() {
        let n = stream.write_vectored(&[IoSlice::new(head), IoSlice::new(body)]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    stream.flush().await
}

/// Stored fields a hit does not repeat: those of the origin's connection,
/// not of the object (RFC 9110, 7.6.1), and `Content-Length`, which is
/// written from the stored body.
const NOT_REPEATED: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// A stored response's HTTP/1.1 head without its last line break: status
/// line, the stored fields but the connection's own (a complete body's
/// `Content-Length` instead of any `Transfer-Encoding`), and a `Date` of when
/// it was stored if the origin sent none. The per-request fields
/// ([`finish_head`]) follow it.
fn wire_head(header: &ResponseHeader, body_len: usize, created: SystemTime) -> Bytes {
    use http::header::DATE;
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(header.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(header.status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in header.headers.iter() {
        if NOT_REPEATED.contains(&name.as_str()) {
            continue;
        }
        line(&mut out, name.as_str(), value.as_bytes());
    }
    line(&mut out, "content-length", body_len.to_string().as_bytes());
    if !header.headers.contains_key(DATE) {
        line(&mut out, "date", httpdate::fmt_http_date(created).as_bytes());
    }
    Bytes::from(out)
}

fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The whole head of a hit: the stored part, then how the cache answered
/// and the object's age in seconds, as pingora's hit path marks them.
fn finish_head(out: &mut Vec<u8>, stored: &[u8], age: u64) {
    use std::io::Write;
    out.clear();
    out.extend_from_slice(stored);
    // Writing to a Vec cannot fail.
    let _ = write!(out, "x-cache-status: HIT\r\nage: {age}\r\n\r\n");
}

impl HitFirst {
    /// Answers the plain hits at the head of the connection; `Some` with the
    /// stream (and what was read of the next request) when pingora must
    /// take the next request, `None` when the connection is done.
    async fn serve_hits(
        &self,
        mut stream: Stream,
        buf: &mut BytesMut,
        out: &mut Vec<u8>,
        viewer: &mut Option<Option<IpAddr>>,
        idle: &mut Idle,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        loop {
            let len = match read_head(&mut stream, buf, idle, shutdown).await {
                Head::Complete(n) => n,
                Head::ForPingora => return Some(stream),
                Head::Closed => return None,
            };
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            if req.parse(buf).is_err() {
                return Some(stream);
            }
            let Some(p) = plain(&req) else {
                return Some(stream);
            };
            // The viewer's address places it on an origin for a
            // multivariant playlist; looked up once per connection.
            let ip = *viewer.get_or_insert_with(|| {
                stream
                    .get_socket_digest()
                    .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
            });
            let Some((kind, hit)) = self.edge.plain_hit(p.path, p.query, ip, wire_head).await else {
                return Some(stream);
            };
            let age = SystemTime::now()
                .duration_since(hit.created)
                .unwrap_or_default()
                .as_secs();
            finish_head(out, &hit.head, age);
            let sent = if p.head { &[][..] } else { &hit.body[..] };
            if send(&mut stream, out, sent).await.is_err() {
                return None;
            }
            let metrics = &self.edge.metrics;
            let labels = [kind.label(), "HIT"];
            metrics.requests.with_label_values(&labels).inc();
            metrics.bytes.with_label_values(&labels).inc_by(sent.len() as u64);
            buf.advance(len);
            if buf.is_empty() {
                buf.clear();
            }
            if *shutdown.borrow() {
                return None;
            }
        }
    }
}

#[async_trait]
impl ServerApp for HitFirst {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let mut buf = BytesMut::with_capacity(4096);
        let mut out = Vec::with_capacity(512);
        let mut viewer = None;
        let mut idle = Idle::new();
        let mut stream = stream;
        loop {
            stream = self
                .serve_hits(stream, &mut buf, &mut out, &mut viewer, &mut idle, shutdown)
                .await?;
            let mut session = ServerSession::new_http1(stream);
            session.set_keepalive((!*shutdown.borrow()).then_some(KEEPALIVE.as_secs()));
            if !buf.is_empty() {
                session.set_pipelined_prefix(buf.split());
            }
            // pingora's HTTP/1 pipelining is off, so a reused stream carries
            // no bytes of a next request: reading resumes on the socket.
            let (next, _settings) = self.proxy.process_new_http(session, shutdown).await?.consume();
            stream = next;
            idle.last_read = Instant::now();
        }
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn parsed(raw: &[u8], check: impl FnOnce(Option<Plain<'_>>)) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(raw).unwrap().is_complete());
        check(plain(&req));
    }

    #[test]
    fn only_plain_gets_and_heads_are_answered_here() {
        parsed(b"GET /s/a/720p/1.m4s?x=1 HTTP/1.1\r\nHost: e\r\n\r\n", |p| {
            let p = p.expect("plain");
            assert_eq!((p.path, p.query, p.head), ("/s/a/720p/1.m4s", Some("x=1"), false));
        });
        parsed(b"HEAD /s/index.m3u8 HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n", |p| {
            assert!(p.expect("plain").head)
        });
        for raw in [
            &b"POST /s/index.m3u8 HTTP/1.1\r\n\r\n"[..],
            b"GET /s/index.m3u8 HTTP/1.0\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nRange: bytes=0-1\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nif-none-match: \"x\"\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nIf-Modified-Since: Mon, 23 Nov 2026 00:00:00 GMT\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET http://e/s/index.m3u8 HTTP/1.1\r\n\r\n",
        ] {
            parsed(raw, |p| assert!(p.is_none(), "{}", String::from_utf8_lossy(raw)));
        }
    }

    #[test]
    fn a_hit_head_has_the_stored_fields_its_length_and_its_age() {
        let mut h = ResponseHeader::build(200, None).unwrap();
        h.insert_header("content-type", "application/vnd.apple.mpegurl")
            .unwrap();
        h.insert_header("transfer-encoding", "chunked").unwrap();
        h.insert_header("connection", "close").unwrap();
        let created = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let stored = wire_head(&h, 2466, created);
        let mut out = Vec::new();
        finish_head(&mut out, &stored, 7);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\ncontent-type: application/vnd.apple.mpegurl\r\ncontent-length: 2466\r\n\
             date: Wed, 18 Nov 2026 11:06:40 GMT\r\nx-cache-status: HIT\r\nage: 7\r\n\r\n"
        );
        // The origin's own Date is kept.
        h.insert_header("date", "Mon, 23 Nov 2026 12:00:00 GMT").unwrap();
        let text = String::from_utf8(wire_head(&h, 1, created).to_vec()).unwrap();
        assert!(text.contains("date: Mon, 23 Nov 2026 12:00:00 GMT\r\n"), "{text}");
        assert!(!text.contains("Wed, 18 Nov"), "{text}");
    }
}
