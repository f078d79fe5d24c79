//! The RTMP server: `rtmp://HOST:1935/live/{stream_key}`.
//!
//! The protocol (handshake, chunk stream, AMF0, the publish commands) is the
//! workspace's `rtmp` crate, a sans-IO state machine with explicit limits;
//! that crate's doc says why it replaced `rml_rtmp` (fuzz figures in
//! `docs/security.md`). This module drives it over tokio and owns the
//! connection: how many, from where, for how long, the `live` application,
//! the publish request (authorized by the router API before it is
//! accepted) and the media messages, re-framed as FLV for the pipeline.
//! Anything a client gets wrong (garbage, a truncated chunk, a refused key,
//! a codec we do not take) ends that connection alone, with a log line
//! saying why.
//!
//! Limits ([`RtmpLimits`], all flags with env fallbacks):
//! - a [`Semaphore`] permit per connection (`--rtmp-max-connections`),
//!   owned by the connection's task, so it comes back on every exit path,
//!   a panic included; connections past the cap are closed at once;
//! - a cap per client IP address (`--rtmp-max-per-address`), released the
//!   same way (a guard owned by the task);
//! - one deadline for the whole setup (`--rtmp-setup-timeout`): handshake,
//!   `connect`, `createStream`, `publish` and its authorization, however the
//!   bytes are dribbled;
//! - a time limit on every write (`--rtmp-write-timeout`): a client that
//!   does not read is dropped;
//! - an idle limit while publishing (`--rtmp-idle-timeout`).
//!
//! Memory per connection: at most 2 × `--rtmp-max-buffered` + 1.6 MiB:
//! partial messages and the messages one read completes (together at most
//! `--rtmp-max-buffered` plus the read), the FLV copy of one message (at
//! most `--rtmp-max-message`, never above `--rtmp-max-buffered`), one
//! decoded command (under 0.5 MiB), pending answers (1 MiB) and this
//! module's 64 KiB read buffer (see the `rtmp` crate doc). About 33.6 MiB
//! with the defaults, so `--rtmp-max-connections` × that bounds the RTMP
//! side of the origin; `origin/tests/hostile.rs` checks the origin's RSS
//! against it under attack. The publish pipeline's own queues are
//! GStreamer's, outside this bound.
//!
//! Shutdown: [`serve`] stops accepting when `ctx.shutdown` is cancelled;
//! each connection ends its publish when [`Publish::stopped`] resolves
//! (shutdown or key revocation), with [`Publish::end`] (EXT-X-ENDLIST);
//! [`serve`] returns once every connection has finished.

use super::flv::{FlvMuxer, TagKind};
use crate::publish::{OriginContext, Publish};
use crate::transcode::Container;
use rtmp::chunk::ChunkLimits;
use rtmp::{Event, MediaKind, RtmpError, ServerSession};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The RTMP application publishers must use.
pub const APP: &str = "live";
/// Bytes read from a socket at a time.
const READ_BUFFER: usize = 64 << 10;

/// The RTMP server's limits.
#[derive(Debug, Clone, clap::Args)]
pub struct RtmpLimits {
    /// RTMP connections served at once (publishers and anyone else on the
    /// port); a connection past the cap is closed at once.
    #[arg(
        id = "rtmp_max_connections",
        long = "rtmp-max-connections",
        env = "ORIGIN_RTMP_MAX_CONNECTIONS",
        default_value_t = 256
    )]
    pub max_connections: usize,

    /// RTMP connections at once from one IP address (0: no cap). Behind a
    /// TCP load balancer without the PROXY protocol every publisher has the
    /// balancer's address: raise it or set 0 there.
    #[arg(
        id = "rtmp_max_per_address",
        long = "rtmp-max-per-address",
        env = "ORIGIN_RTMP_MAX_PER_ADDRESS",
        default_value_t = 32
    )]
    pub max_per_address: usize,

    /// Time for the whole setup of an RTMP connection, from accept to the
    /// publish being accepted (handshake, connect, publish, authorization),
    /// however the client spreads its bytes.
    #[arg(id = "rtmp_setup_timeout", long = "rtmp-setup-timeout", env = "ORIGIN_RTMP_SETUP_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub setup_timeout: Duration,

    /// A publisher that sends nothing for this long is dropped.
    #[arg(id = "rtmp_idle_timeout", long = "rtmp-idle-timeout", env = "ORIGIN_RTMP_IDLE_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Time limit of each write to an RTMP client; a client that does not
    /// read its answers is dropped.
    #[arg(id = "rtmp_write_timeout", long = "rtmp-write-timeout", env = "ORIGIN_RTMP_WRITE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// Longest RTMP message accepted, in bytes (one video frame; the
    /// protocol's own limit is 16777215).
    #[arg(id = "rtmp_max_message", long = "rtmp-max-message", env = "ORIGIN_RTMP_MAX_MESSAGE", default_value_t = 8 << 20,
          value_parser = clap::value_parser!(u32).range(4096..=0xff_ffff))]
    pub max_message: u32,

    /// Bytes one RTMP connection may hold in partial messages, all chunk
    /// streams together (at least --rtmp-max-message). A connection's memory
    /// is at most twice this plus 1.6 MiB.
    #[arg(id = "rtmp_max_buffered", long = "rtmp-max-buffered", env = "ORIGIN_RTMP_MAX_BUFFERED", default_value_t = 16 << 20)]
    pub max_buffered: usize,
}

impl Default for RtmpLimits {
    fn default() -> Self {
        RtmpLimits {
            max_connections: 256,
            max_per_address: 32,
            setup_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(5),
            max_message: 8 << 20,
            max_buffered: 16 << 20,
        }
    }
}

impl RtmpLimits {
    /// The codec's limits for one connection.
    pub fn codec(&self) -> rtmp::Limits {
        rtmp::Limits::new(ChunkLimits {
            max_message_len: self.max_message,
            max_buffered_bytes: self.max_buffered.max(self.max_message as usize),
            ..ChunkLimits::default()
        })
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("connection error")]
    Io(#[from] std::io::Error),
    #[error("malformed RTMP")]
    Rtmp(#[from] RtmpError),
    #[error("setup not done within the setup timeout")]
    SetupTimeout,
    #[error("idle for longer than the idle timeout")]
    IdleTimeout,
    #[error("a write timed out: the client does not read")]
    WriteTimeout,
    #[error("{0}")]
    Refused(String),
}

/// The error and its sources on one line (`tracing` prints only the top).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(e) = src {
        s.push_str(": ");
        s.push_str(&e.to_string());
        src = e.source();
    }
    s
}

/// Connections per client address; a slot is released when its guard drops.
struct PerAddress {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn acquire(table: &Arc<PerAddress>, ip: IpAddr) -> Option<AddressSlot> {
        if table.max == 0 {
            return Some(AddressSlot {
                table: table.clone(),
                ip,
            });
        }
        let mut counts = table.counts.lock().expect("per-address lock");
        let n = counts.entry(ip).or_insert(0);
        if *n >= table.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if self.table.max == 0 {
            return;
        }
        let mut counts = self.table.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// At most one warning per interval for refused connections (a flood must
/// not flood the log); the count since the last one goes with it.
struct Throttle {
    last: Option<Instant>,
    refused: u64,
}

impl Throttle {
    fn refused(&mut self, reason: &'static str) {
        self.refused += 1;
        let now = Instant::now();
        if self.last.is_none_or(|t| now - t >= Duration::from_secs(10)) {
            tracing::warn!(
                reason,
                refused = self.refused,
                "RTMP connections refused (count since the last warning)"
            );
            self.last = Some(now);
            self.refused = 0;
        }
    }
}

/// Serves RTMP on `listener` until `ctx.shutdown` is cancelled, then waits
/// for every connection to finish (each ends its publish first).
pub async fn serve(listener: TcpListener, ctx: Arc<OriginContext>, limits: RtmpLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress {
        max: limits.max_per_address,
        counts: Mutex::default(),
    });
    let limits = Arc::new(limits);
    let mut tasks = JoinSet::new();
    let mut throttle = Throttle { last: None, refused: 0 };
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                reaped(done);
                continue;
            }
            a = listener.accept() => a,
        };
        let (socket, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors, usually: back off a little.
                tracing::warn!(error = %e, "RTMP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            ctx.metrics
                .publishers_refused
                .with_label_values(&["too_many_connections"])
                .inc();
            throttle.refused("too many connections");
            continue;
        };
        let Some(address_slot) = PerAddress::acquire(&per_address, peer.ip()) else {
            ctx.metrics
                .publishers_refused
                .with_label_values(&["too_many_from_address"])
                .inc();
            throttle.refused("too many connections from one address");
            continue;
        };
        let (ctx, limits) = (ctx.clone(), limits.clone());
        tasks.spawn(async move {
            // Held by the task: released however it ends, a panic included.
            let _permit = permit;
            let _address_slot = address_slot;
            connection(socket, peer, ctx, limits).await;
        });
    }
    drop(listener);
    tracing::info!(
        connections = tasks.len(),
        "RTMP server stopped accepting; ending its connections"
    );
    while let Some(done) = tasks.join_next().await {
        reaped(done);
    }
}

fn reaped(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!("RTMP connection task panicked (its slot is released)");
    }
}

async fn connection(socket: TcpStream, peer: SocketAddr, ctx: Arc<OriginContext>, limits: Arc<RtmpLimits>) {
    let _ = socket.set_nodelay(true);
    let mut conn = Connection {
        session: ServerSession::new(limits.codec()),
        socket,
        peer,
        ctx,
        limits,
        publish: None,
        ended: false,
        flv: FlvMuxer::default(),
    };
    let result = conn.run().await;
    let stream = conn.publish.as_ref().map(|p| p.stream().to_string());
    if let Some(p) = conn.publish.take() {
        p.end().await;
    }
    let stream = stream.as_deref().unwrap_or("-");
    match result {
        Ok(Close::Closed) => tracing::debug!(%peer, "RTMP connection closed"),
        Ok(Close::Stopped) => tracing::info!(%peer, stream, "RTMP publish stopped by the origin"),
        Err(e) => tracing::warn!(%peer, stream, "RTMP connection dropped: {}", chain(&e)),
    }
}

enum Close {
    /// The client closed the connection.
    Closed,
    /// The origin ended it (shutdown, or the key was revoked).
    Stopped,
}

struct Connection {
    socket: TcpStream,
    peer: SocketAddr,
    ctx: Arc<OriginContext>,
    limits: Arc<RtmpLimits>,
    session: ServerSession,
    publish: Option<Publish>,
    /// The publisher unpublished; the connection waits for it to close.
    ended: bool,
    flv: FlvMuxer,
}

/// Resolves when the connection must end on the origin's side.
async fn stopped(publish: &Option<Publish>, shutdown: &CancellationToken) {
    match publish {
        Some(p) => p.stopped().await,
        None => shutdown.cancelled().await,
    }
}

impl Connection {
    async fn run(&mut self) -> Result<Close, ConnError> {
        let setup_deadline = Instant::now() + self.limits.setup_timeout;
        let mut buf = vec![0u8; READ_BUFFER];
        let mut events = Vec::new();
        loop {
            let (deadline, timeout) = if self.publish.is_some() || self.ended {
                (Instant::now() + self.limits.idle_timeout, ConnError::IdleTimeout)
            } else {
                (setup_deadline, ConnError::SetupTimeout)
            };
            let n = tokio::select! {
                biased;
                _ = stopped(&self.publish, &self.ctx.shutdown) => return Ok(Close::Stopped),
                r = tokio::time::timeout_at(deadline, self.socket.read(&mut buf)) => match r {
                    Ok(r) => r?,
                    Err(_) => return Err(timeout),
                },
            };
            if n == 0 {
                return Ok(Close::Closed);
            }
            self.session.feed(&buf[..n], &mut events)?;
            self.flush().await?;
            for ev in std::mem::take(&mut events) {
                self.event(ev, setup_deadline).await?;
                self.flush().await?;
            }
        }
    }

    /// Sends the session's pending answers, within the write timeout.
    async fn flush(&mut self) -> Result<(), ConnError> {
        let out = self.session.take_output();
        if out.is_empty() {
            return Ok(());
        }
        tokio::time::timeout(self.limits.write_timeout, self.socket.write_all(&out))
            .await
            .map_err(|_| ConnError::WriteTimeout)??;
        Ok(())
    }

    async fn event(&mut self, ev: Event, setup_deadline: Instant) -> Result<(), ConnError> {
        match ev {
            Event::Connect { app } => {
                if app != APP {
                    self.session.reject_connect("unknown application");
                    let _ = self.flush().await;
                    // The app name may be a stream key put in the wrong
                    // place: only its length is logged.
                    return Err(ConnError::Refused(format!(
                        "unknown application (a name of {} bytes; use rtmp://HOST/{APP})",
                        app.len()
                    )));
                }
                self.session.accept_connect()?;
            }
            Event::Publish { key, .. } => {
                if self.publish.is_some() || self.ended {
                    return Err(ConnError::Refused("a second publish on one connection".into()));
                }
                let begun = tokio::time::timeout_at(setup_deadline, Publish::begin(&self.ctx, &key, Container::Flv))
                    .await
                    .map_err(|_| ConnError::SetupTimeout)?;
                match begun {
                    Ok(p) => {
                        tracing::info!(peer = %self.peer, stream = p.stream(), "RTMP publish accepted");
                        self.publish = Some(p);
                        self.session.accept_publish()?;
                    }
                    Err(e) => {
                        self.ctx
                            .metrics
                            .publishers_refused
                            .with_label_values(&[e.reason()])
                            .inc();
                        self.session.reject_publish(&e.to_string());
                        let _ = self.flush().await;
                        return Err(ConnError::Refused(format!("publish refused: {e}")));
                    }
                }
            }
            Event::Media { kind, timestamp, data } => {
                let kind = match kind {
                    MediaKind::Audio => TagKind::Audio,
                    MediaKind::Video => TagKind::Video,
                };
                self.media(kind, timestamp, &data)?;
            }
            Event::Unpublish => {
                if let Some(p) = self.publish.take() {
                    p.end().await;
                    self.ended = true;
                }
            }
        }
        Ok(())
    }

    fn media(&mut self, kind: TagKind, ts: u32, data: &[u8]) -> Result<(), ConnError> {
        let Some(publish) = &self.publish else {
            if self.ended {
                return Ok(()); // in flight when the publisher unpublished
            }
            return Err(ConnError::Refused("media before a publish request".into()));
        };
        let bytes = match self.flv.tag(kind, ts, data) {
            Ok(b) => b,
            Err(e) => {
                self.ctx.metrics.publishers_refused.with_label_values(&["codec"]).inc();
                return Err(ConnError::Refused(e.to_string()));
            }
        };
        if !bytes.is_empty() {
            publish.push(&bytes).map_err(|e| {
                self.ctx
                    .metrics
                    .publishers_refused
                    .with_label_values(&["pipeline"])
                    .inc();
                ConnError::Refused(e.to_string())
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_slots_come_back_when_dropped() {
        let table = Arc::new(PerAddress {
            max: 2,
            counts: Mutex::default(),
        });
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let a = PerAddress::acquire(&table, ip).unwrap();
        let b = PerAddress::acquire(&table, ip).unwrap();
        assert!(PerAddress::acquire(&table, ip).is_none());
        assert!(PerAddress::acquire(&table, "127.0.0.3".parse().unwrap()).is_some());
        drop(a);
        let c = PerAddress::acquire(&table, ip).unwrap();
        drop((b, c));
        assert!(table.counts.lock().unwrap().is_empty());
    }

    #[test]
    fn codec_limits_follow_the_flags() {
        let l = RtmpLimits {
            max_message: 1 << 20,
            max_buffered: 1000,
            ..RtmpLimits::default()
        };
        let c = l.codec();
        assert_eq!(c.chunk.max_message_len, 1 << 20);
        assert_eq!(c.chunk.max_buffered_bytes, 1 << 20, "never below one message");
    }
}
