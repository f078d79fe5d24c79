//! `edge`: the binary. Builds the route table, the cache storage and lock,
//! and runs the Pingora proxy service until SIGTERM (graceful: stop
//! accepting after `--shutdown-grace`, finish in-flight requests within
//! `--shutdown-timeout`) or SIGINT (fast). With `--tls-listen`, a second
//! listener serves HTTPS (HTTP/2 and HTTP/1.1) through the same proxy and
//! cache, and SIGHUP reloads its certificate ([`tls`]).

mod hits;
mod live;
mod ll;
mod metrics;
mod playback;
mod player;
mod proxy;
mod recordings;
mod resolve;
mod routes;
mod settings;
mod shield;
mod storage;
mod tls;
mod viewers;

use anyhow::Context;
use clap::Parser;
use pingora_cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora_core::apps::HttpServerOptions;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig, TcpSocketOptions};
use pingora_core::server::Server;
use pingora_core::server::configuration::ServerConf;
use pingora_core::services::listening::Service;
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let s = settings::Settings::parse();
    ops::init_logging(&s.log);
    let routes = Arc::new(routes::RouteTable::new(
        s.router.clone(),
        s.route_ttl,
        s.route_stale,
        s.router_timeout,
    )?);
    // Pingora's cache wants storage and lock for the life of the process.
    let storage: &'static storage::MokaStorage = Box::leak(Box::new(storage::MokaStorage::new(s.cache_size)));
    let lock: &'static CacheKeyLockImpl = Box::leak(CacheLock::new_boxed(s.cache_lock_timeout));
    let hold_lock: &'static CacheKeyLockImpl = Box::leak(CacheLock::new_boxed(s.hold_timeout));
    let metrics = Arc::new(metrics::Metrics::new());
    let live = Arc::new(live::Live::new(
        s.max_held_requests,
        s.hold_timeout,
        metrics.held_requests.clone(),
    ));

    let keys = api_types::playback::PlaybackKeys::parse(&s.playback_keys).context("--playback-key")?;
    let viewers = Arc::new(viewers::Viewers::new(s.viewer_window, &metrics.registry));
    let gate = Arc::new(playback::Gate::new(keys, &metrics.registry));
    let reporter = viewers::Reporter {
        viewers: viewers.clone(),
        url: match &s.agent_token {
            Some(_) => {
                let id = &s.edge_id();
                api_types::validate_name("edge id", id).context("--edge-id")?;
                let mut url = s.router.clone();
                url.path_segments_mut()
                    .map_err(|()| anyhow::anyhow!("--router cannot be a base URL"))?
                    .pop_if_empty()
                    .extend(["viewers", id]);
                tracing::info!(edge_id = %id, "viewer reports on");
                Some(url)
            }
            None => None,
        },
        token: s.agent_token.clone().unwrap_or_default(),
        interval: s.viewer_report_interval,
        client: reqwest::Client::builder().timeout(s.router_timeout).build()?,
    };

    let conf = ServerConf {
        threads: s.threads.max(1),
        grace_period_seconds: Some(s.shutdown_grace),
        graceful_shutdown_timeout_seconds: Some(s.shutdown_timeout),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let edge = proxy::Edge {
        routes,
        storage,
        lock,
        hold_lock,
        live,
        metrics,
        playlist_ttl: s.playlist_ttl,
        multivariant_ttl: s.multivariant_ttl,
        segment_ttl: s.segment_ttl,
        connect_timeout: s.connect_timeout,
        read_timeout: s.read_timeout,
        resolver: Arc::new(resolve::Resolver::new(s.resolve_ttl, s.connect_timeout)),
        refused: moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(proxy::REFUSED_FOR)
            .build(),
        write_timeout: s.write_timeout,
        failover_wait: s.failover_wait,
        shields: Arc::new(shield::Shields::new(&s.shields)?),
        gate,
        tier_token: s.agent_token.as_deref().map(Arc::from),
        viewers,
    };
    // Plain hits are answered in front of pingora's HTTP session; the rest
    // goes through the proxy (see `hits`).
    let mut proxy = pingora_proxy::http_proxy(&server.configuration, edge.clone());
    // HTTP/2 (TLS listener only): an idle connection closes like an idle
    // HTTP/1 one.
    let mut options = HttpServerOptions::default();
    options.h2_idle_timeout = Some(s.idle_timeout);
    proxy.server_options = Some(options);
    // Loaded before anything listens: a pair that does not load stops the
    // start-up.
    let tls = match (&s.tls_listen, &s.tls_cert, &s.tls_key) {
        (Some(addr), Some(cert), Some(key)) => {
            let (tls, loaded) = tls::Tls::load(cert.clone(), key.clone(), &edge.metrics.registry)
                .with_context(|| format!("cannot load the TLS pair {} / {}", cert.display(), key.display()))?;
            tracing::info!(fingerprint = %loaded.fingerprint, not_after = %loaded.not_after, "TLS certificate loaded");
            let tls = Arc::new(tls);
            tls.watch(s.tls_watch_interval).context("cannot watch the TLS pair")?;
            Some((addr.clone(), tls))
        }
        _ => None,
    };
    let limits = hits::Limits {
        head_timeout: s.head_timeout,
        idle_timeout: s.idle_timeout,
        write_timeout: s.write_timeout,
        max_connections: s.max_connections,
    };
    let app = hits::HitFirst::new(edge, proxy, limits);
    let tls_app = tls.as_ref().map(|(_, t)| app.tls_twin(t.clone()));
    let mut service = Service::new("edge".to_string(), app);
    let buffers = L4BufferSettings::default().write(usize::try_from(s.write_buffer).context("--write-buffer")?);
    let mut socket = TcpSocketOptions::default();
    socket.tcp_snd_buf = match s.send_buffer {
        settings::SendBuffer::Auto => None,
        settings::SendBuffer::Bytes(b) => Some(usize::try_from(b).context("--send-buffer")?),
    };
    service.add_listener(
        ListenerConfig::tcp(&s.listen)
            .l4_buffer(buffers)
            .tcp_socket_options(socket.clone()),
    );
    server.add_service(service);
    std::net::TcpListener::bind(&s.listen)
        .map(drop)
        .with_context(|| format!("cannot listen on {}", s.listen))?;
    // The TLS port is a TCP listener of pingora's: the handshake is `hits`'
    // (under the connection cap and head timeout), not pingora's.
    if let (Some((addr, _)), Some(app)) = (&tls, tls_app) {
        let mut service = Service::new("edge-tls".to_string(), app);
        service.add_listener(ListenerConfig::tcp(addr).l4_buffer(buffers).tcp_socket_options(socket));
        server.add_service(service);
        std::net::TcpListener::bind(addr)
            .map(drop)
            .with_context(|| format!("cannot listen on {addr}"))?;
    }
    server.add_service(pingora_core::services::background::background_service(
        "viewer reports",
        reporter,
    ));
    tracing::info!(listen = %s.listen, tls_listen = ?s.tls_listen, router = %s.router, cache_size = s.cache_size, "edge running");
    server.run_forever()
}
