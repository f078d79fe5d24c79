//! The RTMP server: `rtmp://HOST:1935/live/{stream_key}`.
//!
//! The protocol (handshake, chunk stream, AMF commands) is `rml_rtmp`'s; this
//! module owns the connection: time limits, the `live` application, the
//! publish request (authorized by the router API before it is accepted) and
//! the media messages, re-framed as FLV for the pipeline. Anything a
//! publisher gets wrong (garbage, a truncated chunk, a refused key, a codec we
//! do not take) ends that connection alone, with a log line saying why.

use super::flv::{FlvMuxer, TagKind};
use crate::publish::{OriginContext, Publish};
use crate::transcode::Container;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The RTMP application publishers must use.
pub const APP: &str = "live";
/// Time allowed for the handshake and the publish request.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A publisher silent for this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 256;

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad handshake: {0:?}")]
    Handshake(rml_rtmp::handshake::HandshakeError),
    #[error("malformed RTMP: {0:?}")]
    Protocol(rml_rtmp::sessions::ServerSessionError),
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Refused(String),
}

pub async fn serve(listener: TcpListener, ctx: Arc<OriginContext>) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "RTMP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(%peer, "RTMP connection refused: too many connections");
            continue;
        }
        let (ctx, active) = (ctx.clone(), active.clone());
        tokio::spawn(async move {
            let _ = socket.set_nodelay(true);
            let mut conn = Connection {
                socket,
                peer,
                ctx,
                publish: None,
                flv: FlvMuxer::default(),
            };
            let result = conn.run().await;
            let stream = conn.publish.as_ref().map(|p| p.stream().to_string());
            if let Some(p) = conn.publish.take() {
                p.end().await;
            }
            match result {
                Ok(()) => tracing::debug!(%peer, "RTMP connection closed"),
                Err(e) => {
                    tracing::warn!(%peer, stream = stream.as_deref().unwrap_or("-"), "RTMP publisher dropped: {e}")
                }
            }
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

struct Connection {
    socket: TcpStream,
    peer: SocketAddr,
    ctx: Arc<OriginContext>,
    publish: Option<Publish>,
    flv: FlvMuxer,
}

impl Connection {
    async fn read(&mut self, buf: &mut [u8], limit: Duration) -> Result<usize, ConnError> {
        tokio::time::timeout(limit, self.socket.read(buf))
            .await
            .map_err(|_| ConnError::Timeout)?
            .map_err(Into::into)
    }

    async fn run(&mut self) -> Result<(), ConnError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut handshake = Handshake::new(PeerType::Server);
        let leftover = loop {
            let n = self.read(&mut buf, SETUP_TIMEOUT).await?;
            if n == 0 {
                return Ok(());
            }
            match handshake.process_bytes(&buf[..n]).map_err(ConnError::Handshake)? {
                HandshakeProcessResult::InProgress { response_bytes } => self.socket.write_all(&response_bytes).await?,
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.socket.write_all(&response_bytes).await?;
                    break remaining_bytes;
                }
            }
        };
        let (mut session, results) = ServerSession::new(ServerSessionConfig::new()).map_err(ConnError::Protocol)?;
        self.process(&mut session, results).await?;
        let results = session.handle_input(&leftover).map_err(ConnError::Protocol)?;
        self.process(&mut session, results).await?;
        loop {
            let limit = if self.publish.is_some() {
                IDLE_TIMEOUT
            } else {
                SETUP_TIMEOUT
            };
            let n = self.read(&mut buf, limit).await?;
            if n == 0 {
                return Ok(());
            }
            let results = session.handle_input(&buf[..n]).map_err(ConnError::Protocol)?;
            self.process(&mut session, results).await?;
        }
    }

    /// Sends responses and acts on events, in order.
    async fn process(
        &mut self,
        session: &mut ServerSession,
        results: Vec<ServerSessionResult>,
    ) -> Result<(), ConnError> {
        let mut queue: VecDeque<ServerSessionResult> = results.into();
        while let Some(r) = queue.pop_front() {
            match r {
                ServerSessionResult::OutboundResponse(packet) => self.socket.write_all(&packet.bytes).await?,
                ServerSessionResult::RaisedEvent(ev) => {
                    let more = self.event(session, ev).await?;
                    queue.extend(more);
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    async fn event(
        &mut self,
        session: &mut ServerSession,
        ev: ServerSessionEvent,
    ) -> Result<Vec<ServerSessionResult>, ConnError> {
        let protocol = ConnError::Protocol;
        match ev {
            ServerSessionEvent::ConnectionRequested { request_id, app_name } => {
                if app_name != APP {
                    let r = session.reject_request(request_id, "NetConnection.Connect.Rejected", "unknown application");
                    self.flush(r).await;
                    return Err(ConnError::Refused(format!(
                        "unknown application {app_name:?} (use rtmp://HOST/{APP})"
                    )));
                }
                session.accept_request(request_id).map_err(protocol)
            }
            ServerSessionEvent::ReleaseStreamRequested { request_id, .. } => {
                session.accept_request(request_id).map_err(protocol)
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id, stream_key, ..
            } => {
                if self.publish.is_some() {
                    return Err(ConnError::Refused("a second publish on one connection".into()));
                }
                match Publish::begin(&self.ctx, &stream_key, Container::Flv).await {
                    Ok(p) => {
                        tracing::info!(peer = %self.peer, stream = p.stream(), "RTMP publish accepted");
                        self.publish = Some(p);
                        session.accept_request(request_id).map_err(protocol)
                    }
                    Err(e) => {
                        self.ctx
                            .metrics
                            .publishers_refused
                            .with_label_values(&[e.reason()])
                            .inc();
                        let r = session.reject_request(request_id, "NetStream.Publish.BadName", &e.to_string());
                        self.flush(r).await;
                        Err(ConnError::Refused(format!("publish refused: {e}")))
                    }
                }
            }
            ServerSessionEvent::VideoDataReceived { data, timestamp, .. } => {
                self.media(TagKind::Video, timestamp.value, &data)?;
                Ok(vec![])
            }
            ServerSessionEvent::AudioDataReceived { data, timestamp, .. } => {
                self.media(TagKind::Audio, timestamp.value, &data)?;
                Ok(vec![])
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                if let Some(p) = self.publish.take() {
                    p.end().await;
                }
                Ok(vec![])
            }
            _ => Ok(vec![]),
        }
    }

    fn media(&mut self, kind: TagKind, ts: u32, data: &[u8]) -> Result<(), ConnError> {
        let Some(publish) = &self.publish else {
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

    /// Sends a rejection's packets, best effort (the connection ends next).
    async fn flush(&mut self, results: Result<Vec<ServerSessionResult>, rml_rtmp::sessions::ServerSessionError>) {
        for r in results.unwrap_or_default() {
            if let ServerSessionResult::OutboundResponse(p) = r {
                let _ = self.socket.write_all(&p.bytes).await;
            }
        }
    }
}
