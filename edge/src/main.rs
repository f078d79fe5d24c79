//! `edge`: the binary. Builds the route table, the cache storage and lock,
//! and runs the Pingora proxy service until SIGTERM (graceful: stop
//! accepting after `--shutdown-grace`, finish in-flight requests within
//! `--shutdown-timeout`) or SIGINT (fast).

mod hits;
mod live;
mod ll;
mod metrics;
mod player;
mod proxy;
mod resolve;
mod routes;
mod settings;
mod shield;
mod storage;

use anyhow::Context;
use clap::Parser;
use pingora_cache::lock::{CacheKeyLockImpl, CacheLock};
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
        shields: Arc::new(shield::Shields::new(&s.shields)?),
    };
    // Plain hits are answered in front of pingora's HTTP session; the rest
    // goes through the proxy (see `hits`).
    let proxy = pingora_proxy::http_proxy(&server.configuration, edge.clone());
    let limits = hits::Limits {
        head_timeout: s.head_timeout,
        idle_timeout: s.idle_timeout,
        write_timeout: s.write_timeout,
        max_connections: s.max_connections,
    };
    let mut service = Service::new("edge".to_string(), hits::HitFirst::new(edge, proxy, limits));
    let buffers = L4BufferSettings::default().write(usize::try_from(s.write_buffer).context("--write-buffer")?);
    let mut socket = TcpSocketOptions::default();
    socket.tcp_snd_buf = match s.send_buffer {
        settings::SendBuffer::Auto => None,
        settings::SendBuffer::Bytes(b) => Some(usize::try_from(b).context("--send-buffer")?),
    };
    service.add_listener(
        ListenerConfig::tcp(&s.listen)
            .l4_buffer(buffers)
            .tcp_socket_options(socket),
    );
    server.add_service(service);
    tracing::info!(listen = %s.listen, router = %s.router, cache_size = s.cache_size, "edge running");
    std::net::TcpListener::bind(&s.listen)
        .map(drop)
        .with_context(|| format!("cannot listen on {}", s.listen))?;
    server.run_forever()
}
