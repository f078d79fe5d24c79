//! Origin host names to addresses, asynchronously, with a short-TTL cache.
//!
//! Why it exists: discovery agents advertise origins as `host:port`, and in
//! docker compose the host is a container name. pingora 0.9's
//! `HttpPeer::new` resolves a name synchronously, on the request's worker
//! thread, and panics when it does not resolve (a stopped container's name
//! stops resolving): every request placed on that origin lost its
//! connection and skipped the failover. So the proxy never hands pingora a
//! name: [`Resolver::resolve`] turns it into a [`SocketAddr`] first
//! (`tokio::net::lookup_host`, the system resolver on tokio's blocking
//! pool), and a failure is treated like a refused connection.
//!
//! - Literal addresses are parsed, never looked up.
//! - Answers and failures are cached for the TTL (a few seconds: a moved
//!   container is followed quickly, a thousand viewers cost one look-up);
//!   concurrent look-ups of one name are coalesced (`moka`'s `try_get_with`).
//! - A look-up that takes longer than its time limit is a failure.

use moka::future::Cache;
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Clone, Error)]
pub enum ResolveError {
    #[error("{host} does not resolve: {reason}")]
    NotFound { host: String, reason: String },
    #[error("resolving {host} took longer than {limit:?}")]
    TimedOut { host: String, limit: Duration },
}

/// Most distinct origin hosts remembered.
const MAX_HOSTS: u64 = 10_000;

pub struct Resolver {
    cache: Cache<String, Result<SocketAddr, ResolveError>>,
    timeout: Duration,
}

impl Resolver {
    pub fn new(ttl: Duration, timeout: Duration) -> Resolver {
        Resolver {
            cache: Cache::builder().max_capacity(MAX_HOSTS).time_to_live(ttl).build(),
            timeout,
        }
    }

    /// The address of `host` (`name:port` or `ip:port`).
    pub async fn resolve(&self, host: &str) -> Result<SocketAddr, ResolveError> {
        if let Ok(addr) = host.parse::<SocketAddr>() {
            return Ok(addr);
        }
        self.cache.get_with_by_ref(host, self.lookup(host)).await
    }

    async fn lookup(&self, host: &str) -> Result<SocketAddr, ResolveError> {
        let found = tokio::time::timeout(self.timeout, tokio::net::lookup_host(host.to_string())).await;
        match found {
            Err(_) => Err(ResolveError::TimedOut {
                host: host.to_string(),
                limit: self.timeout,
            }),
            Ok(Err(e)) => Err(ResolveError::NotFound {
                host: host.to_string(),
                reason: e.to_string(),
            }),
            Ok(Ok(mut addrs)) => addrs.next().ok_or_else(|| ResolveError::NotFound {
                host: host.to_string(),
                reason: "no address".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_names_and_names_that_do_not_resolve() {
        let r = Resolver::new(Duration::from_secs(5), Duration::from_secs(5));
        assert_eq!(
            r.resolve("127.0.0.1:8080").await.unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(r.resolve("localhost:8080").await.unwrap().port(), 8080);
        // RFC 6761: .invalid never resolves.
        let e = r.resolve("origin-a.invalid:8080").await.unwrap_err();
        assert!(e.to_string().contains("origin-a.invalid"), "{e}");
        // The failure is remembered: the second answer is the cached one.
        assert!(r.resolve("origin-a.invalid:8080").await.is_err());
        assert!(r.resolve("no-port").await.is_err());
    }
}
