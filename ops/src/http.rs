//! Serving an axum [`Router`] with the limits every HTTP surface of ours
//! needs against slow and hostile clients (the router API, the origin's HTTP
//! server, the discovery agent's metrics port; the edge has its own, in
//! pingora's terms).
//!
//! Why not `axum::serve`: it has no connection cap and no time limits, so a
//! client that dribbles a request head a byte at a time, or asks for a
//! response and never reads it, holds a connection (and its task, buffers
//! and file descriptor) for ever. Here, on hyper's HTTP/1 server:
//!
//! - **head deadline** ([`HttpLimits::head_timeout`]): from the first byte of
//!   a request head to its end. It covers only the head, so a request held
//!   open on purpose after its head (an LL-HLS blocking playlist reload) is
//!   not cut by it. hyper has no such limit (its `header_read_timeout` also
//!   counts the idle wait before a head), so [`Limited`] watches the bytes
//!   read for the blank line that ends a head: a tiny state machine, not a
//!   parser.
//! - **idle keep-alive limit** ([`HttpLimits::idle_timeout`]): hyper's
//!   `header_read_timeout`, which runs from the moment a connection waits for
//!   its next request until that head is read.
//! - **write timeout** ([`HttpLimits::write_timeout`]): a write that makes no
//!   progress for this long fails, closing a connection whose client stopped
//!   reading.
//! - **connection cap** ([`HttpLimits::max_connections`]): a [`Semaphore`]
//!   with an owned permit per connection (returned on every exit, panics
//!   included); past the cap a connection is answered `503` with
//!   `Retry-After` and closed: FIN, then what the client sent is read and
//!   dropped for at most a second (closing with a request unread would reset
//!   the connection and lose the answer). At most [`REFUSING`] refusals are
//!   in progress; past that a connection is just closed.
//!
//! Shutdown: stop accepting, let open connections finish their request
//! (hyper's graceful shutdown), and give up on them after
//! [`HttpLimits::idle_timeout`].

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

/// The limits of one HTTP surface. The same flags (and environment
/// variables) in every service that serves HTTP with [`serve`].
#[derive(Debug, Clone, clap::Args)]
pub struct HttpLimits {
    /// Longest time from the first byte of a request head to its end; a
    /// slower client is disconnected. Only the head: a request held open on
    /// purpose after its head is not cut by it.
    #[arg(long = "http-head-timeout", env = "HTTP_HEAD_TIMEOUT", default_value = "10s",
          value_parser = humantime::parse_duration)]
    pub head_timeout: Duration,

    /// Longest time a connection may wait for its next request (keep-alive),
    /// head included.
    #[arg(long = "http-idle-timeout", env = "HTTP_IDLE_TIMEOUT", default_value = "30s",
          value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Longest time a response write may make no progress (a client that
    /// stopped reading) before the connection is closed.
    #[arg(long = "http-write-timeout", env = "HTTP_WRITE_TIMEOUT", default_value = "30s",
          value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// Most connections open at once; more are answered 503 and closed.
    #[arg(long = "http-max-connections", env = "HTTP_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Most refusals in progress at once (each lasts at most a second).
pub const REFUSING: usize = 64;

/// What a refused connection is told, in one write.
pub const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 22\r\n\r\ntoo many connections\r\n";

/// Connection metrics of one HTTP surface (bounded labels).
#[derive(Clone)]
pub struct ConnMetrics {
    open: IntGauge,
    refused: IntCounter,
    closed: IntCounterVec,
}

impl ConnMetrics {
    /// Registers `http_connections_open`, `http_connections_refused_total`
    /// and `http_connections_timed_out_total{limit}` in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<ConnMetrics> {
        let open = IntGauge::new("http_connections_open", "HTTP connections open now")?;
        let refused = IntCounter::new(
            "http_connections_refused_total",
            "HTTP connections refused at the connection cap",
        )?;
        let closed = IntCounterVec::new(
            Opts::new(
                "http_connections_timed_out_total",
                "HTTP connections closed by a time limit: head, idle or write",
            ),
            &["limit"],
        )?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(closed.clone()))?;
        for l in ["head", "idle", "write"] {
            closed.with_label_values(&[l]);
        }
        Ok(ConnMetrics { open, refused, closed })
    }

    fn unregistered() -> ConnMetrics {
        ConnMetrics {
            open: IntGauge::new("x", "x").expect("valid"),
            refused: IntCounter::new("x", "x").expect("valid"),
            closed: IntCounterVec::new(Opts::new("x", "x"), &["limit"]).expect("valid"),
        }
    }
}

/// Serves `app` on `listener` with `limits` until `shutdown` resolves, then
/// lets open requests finish for at most [`HttpLimits::idle_timeout`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &HttpLimits,
    metrics: Option<ConnMetrics>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let metrics = metrics.unwrap_or_else(ConnMetrics::unregistered);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause, not a busy loop.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.refused.inc();
            if let Ok(refusal) = refusing.clone().try_acquire_owned() {
                tokio::spawn(refuse(stream, refusal));
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = Limited::new(stream, limits.head_timeout, limits.write_timeout, metrics.clone());
        let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            metrics.open.inc();
            if let Err(e) = conn.await {
                if e.is_timeout() {
                    metrics.closed.with_label_values(&["idle"]).inc();
                }
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            metrics.open.dec();
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.idle_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("HTTP connections still open at the end of shutdown; closing them");
    }
    Ok(())
}

/// Headers the playback paths let browsers read (`Access-Control-Expose-Headers`).
pub const CORS_EXPOSE: &str = "Age, X-Cache-Status, Content-Length";
/// Methods of the playback paths (`Access-Control-Allow-Methods`, `Allow`).
pub const CORS_METHODS: &str = "GET, HEAD, OPTIONS";
/// How long a browser may reuse a preflight answer, in seconds.
pub const CORS_MAX_AGE: &str = "86400";
/// Longest `Access-Control-Request-Headers` echoed back.
const MAX_REQUESTED_HEADERS: usize = 1024;

/// The `Access-Control-Allow-Headers` answer to a preflight that asked for
/// `requested`: the list itself when it is a plain comma-separated list of
/// header names (tokens) of reasonable length, so a player may send any
/// header of its own (a token, a session id); `Range` otherwise.
pub fn cors_allow_headers(requested: Option<&[u8]>) -> String {
    let plain = |r: &[u8]| {
        r.len() <= MAX_REQUESTED_HEADERS
            && r.split(|b| *b == b',').all(|name| {
                let name = name.trim_ascii();
                !name.is_empty()
                    && name
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
            })
    };
    match requested {
        Some(r) if plain(r) => String::from_utf8_lossy(r).trim().to_string(),
        _ => "Range".to_string(),
    }
}

/// Tells a connection past the cap so, and closes it so that it can read it
/// (see the module docs); at most a second.
async fn refuse(mut stream: tokio::net::TcpStream, _refusal: tokio::sync::OwnedSemaphorePermit) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(REFUSAL).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => total += n,
            }
        }
        io::Result::Ok(())
    })
    .await;
}

/// Where a connection is in its request cycle, for the head deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a head (the idle limit is hyper's).
    Between,
    /// Reading a head: `line_empty` is whether the current line has had no
    /// byte but `\r` yet.
    Head { line_empty: bool },
    /// The head ended; body bytes, or a request held open.
    Message,
}

/// A stream with the head deadline and the write timeout (see the module
/// docs). One timer each, allocated once per connection.
pub struct Limited<S> {
    inner: S,
    head_timeout: Duration,
    write_timeout: Duration,
    phase: Phase,
    head_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    write_armed: bool,
    metrics: ConnMetrics,
}

impl<S> Limited<S> {
    pub fn new(inner: S, head_timeout: Duration, write_timeout: Duration, metrics: ConnMetrics) -> Limited<S> {
        Limited {
            inner,
            head_timeout,
            write_timeout,
            phase: Phase::Between,
            head_timer: Box::pin(tokio::time::sleep(head_timeout)),
            write_timer: Box::pin(tokio::time::sleep(write_timeout)),
            write_armed: false,
            metrics,
        }
    }

    /// Follows the bytes just read through the head.
    fn saw(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.phase = match self.phase {
                Phase::Message => return,
                Phase::Between => {
                    self.head_timer.as_mut().reset(Instant::now() + self.head_timeout);
                    Phase::Head { line_empty: false }
                }
                Phase::Head { line_empty } => match b {
                    b'\n' if line_empty => Phase::Message,
                    b'\n' => Phase::Head { line_empty: true },
                    b'\r' => Phase::Head { line_empty },
                    _ => Phase::Head { line_empty: false },
                },
            };
        }
    }

    /// `Err` once a pending write has made no progress for the write timeout.
    fn write_pending(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.write_armed {
            self.write_armed = true;
            self.write_timer.as_mut().reset(Instant::now() + self.write_timeout);
        }
        if self.write_timer.as_mut().poll(cx).is_ready() {
            self.metrics.closed.with_label_values(&["write"]).inc();
            return Err(io::Error::new(io::ErrorKind::TimedOut, "write timeout"));
        }
        Ok(())
    }

    fn wrote<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => {
                self.write_pending(cx)?;
                Poll::Pending
            }
            Poll::Ready(r) => {
                self.write_armed = false;
                // An answer is going out: what is read next is a new head.
                self.phase = Phase::Between;
                Poll::Ready(r)
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Limited<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if matches!(this.phase, Phase::Head { .. }) {
                    ready!(this.head_timer.as_mut().poll(cx));
                    this.metrics.closed.with_label_values(&["head"]).inc();
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "request head timeout")));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Limited<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        match r {
            Poll::Pending => {
                self.write_pending(cx)?;
                Poll::Pending
            }
            Poll::Ready(r) => {
                self.write_armed = false;
                Poll::Ready(r)
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        match r {
            Poll::Pending => {
                self.write_pending(cx)?;
                Poll::Pending
            }
            Poll::Ready(r) => Poll::Ready(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phases(chunks: &[&[u8]]) -> Vec<Phase> {
        let mut l = Limited::new(
            (),
            Duration::from_secs(1),
            Duration::from_secs(1),
            ConnMetrics::unregistered(),
        );
        chunks
            .iter()
            .map(|c| {
                l.saw(c);
                l.phase
            })
            .collect()
    }

    #[tokio::test]
    async fn the_head_clock_stops_at_the_blank_line() {
        use Phase::*;
        assert_eq!(
            phases(&[b"GET / HTTP/1.1\r\n", b"Host: x\r\n", b"\r", b"\n"]),
            [
                Head { line_empty: true },
                Head { line_empty: true },
                Head { line_empty: true },
                Message
            ]
        );
        // Bare line feeds end a head too (httparse accepts them).
        assert_eq!(phases(&[b"GET / HTTP/1.1\nHost: x\n\n{\"body\":1}"]), [Message]);
        assert_eq!(phases(&[b"GET / HTT"]), [Head { line_empty: false }]);
    }

    #[test]
    fn preflights_echo_plain_header_lists_only() {
        assert_eq!(
            cors_allow_headers(Some(b"x-player-token, range")),
            "x-player-token, range"
        );
        assert_eq!(cors_allow_headers(None), "Range");
        assert_eq!(cors_allow_headers(Some(b"x-a\r\nset-cookie: y")), "Range");
        assert_eq!(cors_allow_headers(Some(b"a,,b")), "Range");
        assert_eq!(cors_allow_headers(Some(&[b'a'; 2000])), "Range");
    }
}
