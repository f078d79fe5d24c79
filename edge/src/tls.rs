//! HTTPS for viewers: the TLS handshake of the `--tls-listen` connections,
//! ALPN (`h2`, then `http/1.1`), HTTP/2 handed to pingora, and the
//! certificate pair reloaded without a restart.
//!
//! Why it exists: Apple's players take LL-HLS only over HTTP/2, and a page
//! served over HTTPS cannot load an `http://` stream.
//!
//! Why the handshake is ours and not pingora's TLS listener: pingora runs a
//! listener's handshake before the application sees the connection, with a
//! fixed 60 s limit and outside the connection cap. Here the TLS port is a
//! plain TCP listener of pingora's, and [`crate::hits::HitFirst`] takes the
//! connection's cap permit first, then runs the handshake ([`Tls::accept`],
//! pingora's own openssl handshake) within the head timeout: a client that
//! never finishes its handshake is dropped like one that never finishes its
//! request head.
//!
//! After the handshake:
//! - `http/1.1` (or no ALPN): the connection goes through `hits` exactly as a
//!   plain one does (fast hits, the head/idle/write limits, pingora's proxy
//!   for the rest).
//! - `h2`: [`serve_h2`] reads the client's connection preface within the
//!   head timeout, then hands the connection to pingora's own HTTP/2 server
//!   ([`pingora_proxy::HttpProxy`] as a `ServerApp`), which runs every request
//!   through the same [`crate::proxy::Edge`] phases: routing, stickiness,
//!   caching, CORS. The fast hit path of `hits` is HTTP/1 only; an HTTP/2
//!   hit takes pingora's cache path (same `X-Cache-Status: HIT` and `Age`).
//!   Limits over HTTP/2: the preface within the head timeout, a connection
//!   with no request in flight closed after the idle timeout (pingora's
//!   `h2_idle_timeout`), each response body write bounded by the write
//!   timeout (set in `Edge::early_request_filter`), at most 100 concurrent
//!   streams and 64 KiB of decoded header list per request (pingora's
//!   bounded h2 defaults).
//!
//! Reloads: every handshake takes the acceptor current at its start
//! ([`Tls::current`]); [`Tls::reload`] builds a whole new acceptor from the
//! files and swaps it in only if the pair loads and matches, so a bad new
//! pair keeps the old one (logged as an error, counted in
//! `edge_tls_reloads_total{result="error"}`). [`Tls::watch`] reloads on
//! SIGHUP and when the files change (polled: two `stat` calls an interval;
//! a change is loaded once both files have stayed the same for one interval,
//! so a renewal writing one file then the other is not loaded half-done).

use crate::proxy::Edge;
use bytes::Bytes;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::tls::{SslDigest, TlsRef};
use pingora_core::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream, TimingDigest,
    UniqueID, UniqueIDType,
};
use pingora_core::server::ShutdownWatch;
use pingora_core::tls::error::ErrorStack;
use pingora_core::tls::hash::MessageDigest;
use pingora_core::tls::pkey::PKey;
use pingora_core::tls::ssl::{AlpnError, SslAcceptor, SslMethod, select_next_proto};
use pingora_core::tls::x509::X509;
use pingora_proxy::HttpProxy;
use prometheus::{IntCounterVec, Opts, Registry};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The ALPN protocols offered, in preference order (wire format).
const ALPN_WIRE: &[u8] = b"\x02h2\x08http/1.1";

/// The HTTP/2 client connection preface (RFC 9113, 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Why a certificate pair did not load.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    Certificate {
        path: PathBuf,
        #[source]
        source: ErrorStack,
    },
    #[error("{path} holds no PEM private key")]
    Key {
        path: PathBuf,
        #[source]
        source: ErrorStack,
    },
    #[error("the key does not match the certificate, or OpenSSL refused the pair")]
    Pair(#[source] ErrorStack),
}

/// The loaded pair's identity, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// SHA-256 of the leaf certificate (DER), upper-case hex with colons, as
    /// `openssl x509 -fingerprint -sha256` prints it.
    pub fingerprint: String,
    /// The leaf certificate's notAfter, as OpenSSL prints it.
    pub not_after: String,
}

/// The certificate pair of the TLS listener, swappable while running.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<SslAcceptor>>,
    reloads: IntCounterVec,
    handshakes_failed: IntCounterVec,
    /// Handshaken connections by the protocol ALPN chose.
    connections: IntCounterVec,
}

/// A file's identity: what a change of it changes.
type FileStamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Builds an acceptor (Mozilla's intermediate settings, ALPN h2 then
/// http/1.1) from the files; each is read once.
fn build(cert: &Path, key: &Path) -> Result<(SslAcceptor, Loaded), TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    let chain = X509::stack_from_pem(&cert_pem)
        .and_then(|c| if c.is_empty() { Err(ErrorStack::get()) } else { Ok(c) })
        .map_err(|source| TlsError::Certificate {
            path: cert.to_owned(),
            source,
        })?;
    let pkey = PKey::private_key_from_pem(&key_pem).map_err(|source| TlsError::Key {
        path: key.to_owned(),
        source,
    })?;
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).map_err(TlsError::Pair)?;
    b.set_certificate(&chain[0]).map_err(TlsError::Pair)?;
    for extra in &chain[1..] {
        b.add_extra_chain_cert(extra.clone()).map_err(TlsError::Pair)?;
    }
    b.set_private_key(&pkey).map_err(TlsError::Pair)?;
    b.check_private_key().map_err(TlsError::Pair)?;
    b.set_alpn_select_callback(|_, offered| select_next_proto(ALPN_WIRE, offered).ok_or(AlpnError::NOACK));
    let digest = chain[0].digest(MessageDigest::sha256()).map_err(TlsError::Pair)?;
    let fingerprint = digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    let loaded = Loaded {
        fingerprint,
        not_after: chain[0].not_after().to_string(),
    };
    Ok((b.build(), loaded))
}

/// Why a TLS connection ended before HTTP.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("the TLS handshake did not finish within the head timeout")]
    TimedOut,
    #[error("TLS handshake failed")]
    Handshake(#[source] Box<pingora_error::Error>),
    #[error("the TLS listener got a connection that is not TCP")]
    NotTcp,
}

impl Tls {
    /// Loads the pair (an error if it does not load) and registers the TLS
    /// metrics in `registry`.
    pub fn load(cert: PathBuf, key: PathBuf, registry: &Registry) -> Result<(Tls, Loaded), TlsError> {
        let (acceptor, loaded) = build(&cert, &key)?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "edge_tls_reloads_total",
                "Certificate reloads (SIGHUP or changed files) by result: ok, error (the previous pair kept)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let handshakes_failed = IntCounterVec::new(
            Opts::new(
                "edge_tls_handshakes_failed_total",
                "Viewer TLS handshakes that failed (error) or did not finish within the head timeout (timeout)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let connections = IntCounterVec::new(
            Opts::new(
                "edge_tls_connections_total",
                "Viewer TLS connections handshaken, by the protocol ALPN chose: h2, http/1.1 (also without ALPN)",
            ),
            &["protocol"],
        )
        .expect("valid metric");
        for (c, labels) in [
            (&reloads, ["ok", "error"]),
            (&handshakes_failed, ["error", "timeout"]),
            (&connections, ["h2", "http/1.1"]),
        ] {
            for l in labels {
                c.with_label_values(&[l]);
            }
            // Registered once per process; a second edge in one process would
            // share the names, which never happens.
            let _ = registry.register(Box::new(c.clone()));
        }
        let tls = Tls {
            cert,
            key,
            current: RwLock::new(Arc::new(acceptor)),
            reloads,
            handshakes_failed,
            connections,
        };
        Ok((tls, loaded))
    }

    /// The acceptor new handshakes use.
    pub fn current(&self) -> Arc<SslAcceptor> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Loads the files again; on success new handshakes use the new pair,
    /// on failure the previous pair stays.
    pub fn reload(&self) -> Result<Loaded, TlsError> {
        let (acceptor, loaded) = build(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(acceptor);
        Ok(loaded)
    }

    /// [`Tls::reload`], logged and counted.
    fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(l) => {
                self.reloads.with_label_values(&["ok"]).inc();
                tracing::info!(why, fingerprint = %l.fingerprint, not_after = %l.not_after, "TLS certificate reloaded");
            }
            Err(e) => {
                self.reloads.with_label_values(&["error"]).inc();
                tracing::error!(why, error = %e, cause = ?std::error::Error::source(&e).map(|c| c.to_string()),
                    "TLS certificate reload failed; keeping the previous pair");
            }
        }
    }

    fn stamps(&self) -> (FileStamp, FileStamp) {
        (stamp(&self.cert), stamp(&self.key))
    }

    /// Starts a thread that reloads on SIGHUP and when the files change
    /// (checked every `every`). SIGHUP is handled from the moment this
    /// returns (its default action would end the process).
    pub fn watch(self: &Arc<Self>, every: Duration) -> std::io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let mut hup = {
            let _in_rt = rt.enter();
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?
        };
        let tls = self.clone();
        let every = every.max(Duration::from_millis(10));
        std::thread::Builder::new().name("tls-reload".into()).spawn(move || {
            rt.block_on(async move {
                let mut seen = tls.stamps();
                let mut pending = None;
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        got = hup.recv() => {
                            if got.is_none() {
                                return;
                            }
                            tls.reload_logged("SIGHUP");
                            seen = tls.stamps();
                            pending = None;
                        }
                        _ = tick.tick() => {
                            let now = tls.stamps();
                            if now == seen {
                                pending = None;
                            } else if pending == Some(now) {
                                tls.reload_logged("files changed");
                                seen = now;
                                pending = None;
                            } else {
                                pending = Some(now);
                            }
                        }
                    }
                }
            });
        })?;
        Ok(())
    }

    /// The TLS handshake of a connection of the TLS listener, within
    /// `limit` of its start.
    pub async fn accept(&self, stream: Stream, limit: Duration) -> Result<Stream, AcceptError> {
        let tcp = stream
            .into_any()
            .downcast::<L4Stream>()
            .map_err(|_| AcceptError::NotTcp)?;
        let acceptor = self.current();
        let handshake = pingora_core::protocols::tls::server::handshake(&acceptor, *tcp);
        match tokio::time::timeout(limit, handshake).await {
            Ok(Ok(tls)) => {
                let stream: Stream = Box::new(tls);
                let protocol = if is_h2(&stream) { "h2" } else { "http/1.1" };
                self.connections.with_label_values(&[protocol]).inc();
                Ok(stream)
            }
            Ok(Err(e)) => {
                self.handshakes_failed.with_label_values(&["error"]).inc();
                Err(AcceptError::Handshake(e))
            }
            Err(_) => {
                self.handshakes_failed.with_label_values(&["timeout"]).inc();
                Err(AcceptError::TimedOut)
            }
        }
    }
}

/// Whether the TLS handshake of `stream` chose HTTP/2.
pub fn is_h2(stream: &Stream) -> bool {
    matches!(stream.selected_alpn_proto(), Some(ALPN::H2))
}

/// Serves an HTTP/2 connection: its preface within `head_timeout`, then
/// pingora's HTTP/2 server with the edge's proxy. `false` when the preface
/// did not come in time (the head limit), `true` otherwise.
pub async fn serve_h2(
    mut stream: Stream,
    proxy: &Arc<HttpProxy<Edge>>,
    head_timeout: Duration,
    shutdown: &ShutdownWatch,
) -> bool {
    let mut preface = [0u8; H2_PREFACE.len()];
    match tokio::time::timeout(head_timeout, stream.read_exact(&mut preface)).await {
        Ok(Ok(_)) if preface == H2_PREFACE => {}
        // Not HTTP/2 after choosing it, or gone: nothing to answer.
        Ok(_) => return true,
        Err(_) => return false,
    }
    let replay = Replay {
        prefix: Bytes::from_static(H2_PREFACE),
        inner: stream,
    };
    // pingora's HTTP/2 connection loop; it returns when the connection ends.
    let _ = ServerApp::process_new(proxy, Box::new(replay), shutdown).await;
    true
}

/// A stream whose first bytes, already read, are read again: the HTTP/2
/// preface read by [`serve_h2`] for pingora's HTTP/2 server. Everything else
/// is the inner stream's.
#[derive(Debug)]
struct Replay {
    prefix: Bytes,
    inner: Stream,
}

impl AsyncRead for Replay {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait::async_trait]
impl Shutdown for Replay {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(self.inner.as_mut()).await;
    }
}

impl UniqueID for Replay {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Replay {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Replay {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Replay {
    fn get_proxy_digest(&self) -> Option<Arc<pingora_core::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Replay {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

impl Peek for Replay {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed pair made with the openssl CLI, in `dir`.
    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        testkit::self_signed_pair(dir, name)
    }

    fn fingerprint_of(cert: &Path) -> String {
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(cert)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.trim().split_once('=').unwrap().1.to_string()
    }

    #[test]
    fn a_pair_loads_and_a_bad_new_pair_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path(), "a");
        let (_, other_key) = pair(dir.path(), "b");
        let live = (dir.path().join("live.crt"), dir.path().join("live.key"));
        std::fs::copy(&cert, &live.0).unwrap();
        std::fs::copy(&key, &live.1).unwrap();
        let (tls, loaded) = Tls::load(live.0.clone(), live.1.clone(), &Registry::new()).unwrap();
        assert_eq!(loaded.fingerprint, fingerprint_of(&cert));
        let before = Arc::as_ptr(&tls.current());

        // A key of another certificate: refused, the acceptor stays.
        std::fs::copy(&other_key, &live.1).unwrap();
        assert!(
            matches!(tls.reload(), Err(TlsError::Pair(_))),
            "mismatched pair refused"
        );
        assert_eq!(Arc::as_ptr(&tls.current()), before);
        // Garbage and a missing file: refused too.
        std::fs::write(&live.1, b"not a key").unwrap();
        assert!(matches!(tls.reload(), Err(TlsError::Key { .. })));
        std::fs::write(&live.0, b"").unwrap();
        assert!(matches!(tls.reload(), Err(TlsError::Certificate { .. })));
        std::fs::remove_file(&live.0).unwrap();
        assert!(matches!(tls.reload(), Err(TlsError::Read { .. })));
        assert_eq!(Arc::as_ptr(&tls.current()), before);

        // A good pair again: swapped in.
        std::fs::copy(&cert, &live.0).unwrap();
        std::fs::copy(&key, &live.1).unwrap();
        assert_eq!(tls.reload().unwrap().fingerprint, fingerprint_of(&cert));
        assert_ne!(Arc::as_ptr(&tls.current()), before);
    }

    #[tokio::test]
    async fn replay_reads_the_prefix_then_the_stream() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut r = Replay {
            prefix: Bytes::from_static(b"abc"),
            inner: Box::new(server),
        };
        tokio::io::AsyncWriteExt::write_all(&mut client, b"def").await.unwrap();
        drop(client);
        let mut all = Vec::new();
        r.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"abcdef");
    }
}
