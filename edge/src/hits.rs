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
//! and whose object is fresh in the cache ([`crate::proxy::Edge::plain_hit`]),
//! or, for an LL-HLS blocking reload, that the edge's freshest copy of the
//! playlist satisfies ([`crate::live`]).
//! Anything else, including every malformed or oversized head, goes to
//! pingora with the bytes read so far (as a pipelined prefix), so errors,
//! misses, ranges, revalidation, redirects and the edge's own pages behave
//! exactly as in the proxy. After pingora finishes a request on a reusable
//! connection, the next request comes back here.
//!
//! Limits ([`Limits`], flags `--http-*`), all enforced here because every
//! request head of a connection is read here, pingora's requests included:
//! - a whole request head must arrive within the head timeout of its first
//!   byte (a dribbling client is disconnected); only the head, so a request
//!   held open after its head (an LL-HLS blocking reload or hinted part,
//!   bounded by `--max-held-requests` and `--hold-timeout` in
//!   [`crate::proxy`]) is not cut by it, but keeps its connection's permit;
//! - heads larger than [`MAX_HEAD`] get `431` here (pingora would read up to
//!   1 MiB);
//! - an idle keep-alive connection is closed after the idle timeout, and at
//!   shutdown as soon as it is idle;
//! - a write that makes no progress for the write timeout closes the
//!   connection (a viewer that stopped reading); the timer is armed only
//!   when the first write of an answer does not complete at once, so a hit
//!   costs no timer work; pingora's session gets the same write timeout;
//! - past the connection cap a connection is answered `503` with
//!   `Retry-After` and closed; each connection holds an owned semaphore
//!   permit, returned on every exit.
//!
//! Connections of the TLS listener (`--tls-listen`) take their permit, then
//! do their TLS handshake within the head timeout ([`crate::tls`]); HTTP/1.1
//! over TLS then goes through this same path, and HTTP/2 goes to pingora's
//! HTTP/2 server and the proxy (this fast path is HTTP/1 only).
//!
//! "One answer for one request": a head is plain only with exactly one
//! `Host` and at most one `Content-Length`; anything odd (obs-fold, which
//! `httparse` refuses, duplicate or missing `Host`, conflicting framing)
//! goes to pingora and [`crate::proxy`], whatever the cache holds, so a
//! cached and an uncached object get the same status for the same bytes.

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
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// Largest request head accepted; larger ones get 431. A player's request
/// is a few hundred bytes; nginx's default buffers take 1 KiB + 4 x 8 KiB.
pub const MAX_HEAD: usize = 16 * 1024;
/// Headers that make pingora's cache answer differently from a plain hit: a
/// byte range, or a request that may be answered with 304.
const NOT_PLAIN: [&str; 4] = ["range", "if-range", "if-none-match", "if-modified-since"];
/// Heads with more headers than this go to pingora.
const MAX_HEADERS: usize = 32;

/// The time and count limits of viewer connections (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub head_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections: usize,
}

/// The edge's listening application: plain hits here, the rest to pingora.
pub struct HitFirst {
    edge: Edge,
    proxy: Arc<HttpProxy<Edge>>,
    limits: Limits,
    /// How often a waiting connection checks its clocks.
    tick: Duration,
    permits: Arc<Semaphore>,
    /// Set for the TLS listener's connections: handshake first (see
    /// [`crate::tls`]).
    tls: Option<Arc<crate::tls::Tls>>,
}

impl HitFirst {
    pub fn new(edge: Edge, proxy: HttpProxy<Edge>, limits: Limits) -> HitFirst {
        let tick = TICK
            .min(limits.head_timeout / 4)
            .min(limits.idle_timeout / 4)
            .max(Duration::from_millis(10));
        HitFirst {
            edge,
            proxy: Arc::new(proxy),
            limits,
            tick,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            tls: None,
        }
    }

    /// The application of the TLS listener: the same edge, proxy, limits
    /// and connection cap (one cap for both listeners), with a TLS
    /// handshake before HTTP.
    pub fn tls_twin(&self, tls: Arc<crate::tls::Tls>) -> HitFirst {
        HitFirst {
            edge: self.edge.clone(),
            proxy: self.proxy.clone(),
            limits: self.limits,
            tick: self.tick,
            permits: self.permits.clone(),
            tls: Some(tls),
        }
    }
}

/// What a connection past the cap is told before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 22\r\n\r\ntoo many connections\r\n";

/// What a head larger than [`MAX_HEAD`] is told before the connection closes.
const TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n\
connection: close\r\ncontent-length: 23\r\n\r\nrequest head too large\n";

/// What became of reading the next request head.
enum Head {
    /// A complete head of this many bytes is at the start of the buffer.
    Complete(usize),
    /// Malformed, or a complete head with too many headers: pingora answers it.
    ForPingora,
    /// Larger than [`MAX_HEAD`]: answered 431 here.
    TooLarge,
    /// The viewer closed, went idle too long, was too slow with its head,
    /// or the server is stopping.
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
    let (mut hosts, mut lengths) = (0u32, 0u32);
    for h in req.headers.iter() {
        let name = h.name;
        hosts += u32::from(name.eq_ignore_ascii_case("host"));
        lengths += u32::from(name.eq_ignore_ascii_case("content-length"));
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
    // RFC 9112 3.2: exactly one Host; framing stated at most once.
    if hosts != 1 || lengths > 1 {
        return None;
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

/// A connection's clocks. One timer per connection ticks every
/// [`HitFirst::tick`]; reads only note the time, so a request costs no timer
/// work.
struct Idle {
    tick: Pin<Box<tokio::time::Sleep>>,
    last_read: Instant,
    /// When the first byte of the head being read arrived.
    head_started: Option<Instant>,
}

/// How often a waiting connection checks its clocks and the shutdown, at
/// most (shorter when a limit is short).
const TICK: Duration = Duration::from_secs(1);

impl Idle {
    fn new(tick: Duration) -> Idle {
        Idle {
            tick: Box::pin(tokio::time::sleep(tick)),
            last_read: Instant::now(),
            head_started: None,
        }
    }
}

/// Whether `buf` holds the blank line that ends a head.
fn head_ends(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n")
}

impl HitFirst {
    /// Reads until `buf` starts with a complete request head.
    async fn read_head(
        &self,
        stream: &mut Stream,
        buf: &mut BytesMut,
        idle: &mut Idle,
        shutdown: &ShutdownWatch,
    ) -> Head {
        if !buf.is_empty() && idle.head_started.is_none() {
            idle.head_started = Some(Instant::now());
        }
        loop {
            if !buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                match httparse::Request::new(&mut headers).parse(buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        idle.head_started = None;
                        return Head::Complete(n);
                    }
                    Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) if buf.len() >= MAX_HEAD => {
                        return Head::TooLarge;
                    }
                    Ok(httparse::Status::Partial) => {}
                    // More headers than a plain request has: pingora's, once
                    // the whole head is here.
                    Err(httparse::Error::TooManyHeaders) if !head_ends(buf) => {}
                    _ => {
                        idle.head_started = None;
                        return Head::ForPingora;
                    }
                }
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(4096);
            }
            tokio::select! {
                read = stream.read_buf(buf) => match read {
                    Ok(n) if n > 0 => {
                        idle.last_read = Instant::now();
                        idle.head_started.get_or_insert(idle.last_read);
                    }
                    _ => return Head::Closed,
                },
                () = idle.tick.as_mut() => {
                    // Stopping: an idle connection closes now; a request that
                    // has begun is read to its end (or to the head deadline).
                    let metrics = &self.edge.metrics;
                    if buf.is_empty() && *shutdown.borrow() {
                        return Head::Closed;
                    }
                    if idle.head_started.is_some_and(|t| t.elapsed() >= self.limits.head_timeout) {
                        metrics.timed_out[0].inc();
                        return Head::Closed;
                    }
                    if buf.is_empty() && idle.last_read.elapsed() >= self.limits.idle_timeout {
                        metrics.timed_out[1].inc();
                        return Head::Closed;
                    }
                    idle.tick.as_mut().reset(tokio::time::Instant::now() + self.tick);
                }
            }
        }
    }
}

/// `f`, failing with `TimedOut` when it is still pending `limit` after its
/// first poll. The first poll has no timer: a write the socket takes at once
/// costs no timer work.
async fn timed<T>(f: impl Future<Output = std::io::Result<T>>, limit: Duration) -> std::io::Result<T> {
    let mut f = std::pin::pin!(f);
    if let Poll::Ready(r) = std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await {
        return r;
    }
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Ends a connection after a refusal so that the client reads it: closing
/// with its request unread would reset the connection, and a reset throws
/// away the answer before the client reads it. So: FIN, then read and drop
/// what the client sends, for at most a second and 64 KiB.
async fn close_gently(stream: &mut Stream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => total += n,
            }
        }
        std::io::Result::Ok(())
    })
    .await;
}

/// Writes `head` then `body` with as few system calls as the socket takes;
/// fails when a write makes no progress for `limit`.
async fn send(stream: &mut Stream, head: &[u8], body: &[u8], limit: Duration) -> std::io::Result<()> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() || !body.is_empty() {
        let n = timed(stream.write_vectored(&[IoSlice::new(head), IoSlice::new(body)]), limit).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    timed(stream.flush(), limit).await
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
        conn: &mut crate::playback::Conn,
        idle: &mut Idle,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        loop {
            let len = match self.read_head(&mut stream, buf, idle, shutdown).await {
                Head::Complete(n) => n,
                Head::ForPingora => return Some(stream),
                Head::TooLarge => {
                    let _ = send(&mut stream, TOO_LARGE, &[], Duration::from_secs(1)).await;
                    close_gently(&mut stream).await;
                    let labels = ["other", "ERROR"];
                    self.edge.metrics.requests.with_label_values(&labels).inc();
                    return None;
                }
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
            // One pass over the headers: the User-Agent (viewer counting
            // without a session), and whether an edge below sent this (a
            // shield's traffic goes through pingora's path, which knows to
            // skip the viewer's checks for it).
            let mut user_agent = None;
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case(crate::proxy::TIER_HEADER) {
                    return Some(stream);
                }
                if user_agent.is_none() && h.name.eq_ignore_ascii_case("user-agent") {
                    user_agent = Some(h.value);
                }
            }
            // The viewer's address places it on an origin for a
            // multivariant playlist; looked up once per connection.
            let ip = *conn.addr.get_or_insert_with(|| {
                stream
                    .get_socket_digest()
                    .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
            });
            let Some((kind, hit)) = self
                .edge
                .plain_hit(p.path, p.query, ip, user_agent, conn, wire_head)
                .await
            else {
                return Some(stream);
            };
            let age = SystemTime::now()
                .duration_since(hit.created)
                .unwrap_or_default()
                .as_secs();
            finish_head(out, &hit.head, age);
            let sent = if p.head { &[][..] } else { &hit.body[..] };
            if let Err(e) = send(&mut stream, out, sent, self.limits.write_timeout).await {
                // The viewer went away or stopped reading: not an error of ours.
                let kind = crate::metrics::abort_kind_of_io(&e);
                self.edge.metrics.client_aborts.with_label_values(&[kind]).inc();
                if kind == "timeout" {
                    self.edge.metrics.timed_out[2].inc();
                }
                tracing::debug!(error = %e, "viewer connection ended during a hit");
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
        let mut stream = stream;
        let metrics = &self.edge.metrics;
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            metrics.connections_refused.inc();
            // Before a TLS handshake there is no way to answer: just close.
            if self.tls.is_none() {
                let _ = send(&mut stream, REFUSAL, &[], Duration::from_secs(1)).await;
                close_gently(&mut stream).await;
            }
            return None;
        };
        let _open = metrics.open_connection();
        if let Some(tls) = &self.tls {
            stream = match tls.accept(stream, self.limits.head_timeout).await {
                Ok(s) => s,
                Err(e) => {
                    if matches!(e, crate::tls::AcceptError::TimedOut) {
                        metrics.timed_out[0].inc();
                    }
                    tracing::debug!(error = %e, "viewer TLS connection ended before HTTP");
                    return None;
                }
            };
            if crate::tls::is_h2(&stream) {
                // HTTP/2: pingora's server and proxy (the fast path here is
                // HTTP/1 only).
                if !crate::tls::serve_h2(stream, &self.proxy, self.limits.head_timeout, shutdown).await {
                    metrics.timed_out[0].inc();
                }
                return None;
            }
        }
        let mut buf = BytesMut::with_capacity(4096);
        let mut out = Vec::with_capacity(512);
        let mut conn = crate::playback::Conn::default();
        let mut idle = Idle::new(self.tick);
        let keepalive = self.limits.idle_timeout.as_secs().max(1);
        loop {
            stream = self
                .serve_hits(stream, &mut buf, &mut out, &mut conn, &mut idle, shutdown)
                .await?;
            let mut session = ServerSession::new_http1(stream);
            session.set_keepalive((!*shutdown.borrow()).then_some(keepalive));
            session.set_write_timeout(Some(self.limits.write_timeout));
            session.set_read_timeout(Some(self.limits.idle_timeout));
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
        parsed(
            b"HEAD /s/index.m3u8 HTTP/1.1\r\nHost: e\r\nConnection: Keep-Alive\r\n\r\n",
            |p| assert!(p.expect("plain").head),
        );
        parsed(
            b"GET /s/index.m3u8 HTTP/1.1\r\nhost: e\r\ncontent-length: 0\r\n\r\n",
            |p| assert!(p.is_some()),
        );
        for raw in [
            &b"POST /s/index.m3u8 HTTP/1.1\r\n\r\n"[..],
            b"GET /s/index.m3u8 HTTP/1.1\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nHost: e\r\nHost: f\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nHost: e\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.0\r\nHost: e\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nHost: e\r\nRange: bytes=0-1\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nHost: e\r\nif-none-match: \"x\"\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nHost: e\r\nIf-Modified-Since: Mon, 23 Nov 2026 00:00:00 GMT\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nHost: e\r\nContent-Length: 3\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nHost: e\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /s/index.m3u8 HTTP/1.1\r\nHost: e\r\nExpect: 100-continue\r\n\r\n",
            b"GET http://e/s/index.m3u8 HTTP/1.1\r\nHost: e\r\n\r\n",
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
