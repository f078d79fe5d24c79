//! Tiered caching: the shield edges this edge fetches through (`--shield`).
//!
//! A shield is an ordinary edge that other edges use as their upstream: it
//! routes to origins as every edge does, and its cache lock collapses the
//! fetches of every edge below it (LL-HLS blocking reloads included), so an
//! origin serves each object about once per shield however many edges there
//! are. The edge below still asks the router for routes: placement, cache
//! keys (origin id + path) and failover redirects are decided the same way
//! with or without a shield; only the connection goes elsewhere.
//!
//! Which shield: the stream's name hashed over the shields, so that every
//! edge sends one stream to the same shield (one fill per shield), then the
//! others in turn. A shield that refuses a connection is passed over for
//! [`DEAD_FOR`] (a short health memory, like origins' in `proxy`), and the
//! request is retried at once on the next one; with every shield passed
//! over, the edge goes to the origin itself.

use std::hash::{Hash, Hasher};
use std::time::Duration;
use thiserror::Error;

/// How long a shield that refused a connection is passed over.
pub const DEAD_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
#[error("--shield {0}: expected http://HOST:PORT")]
pub struct BadShield(String);

/// The configured shields and which of them failed lately.
pub struct Shields {
    /// `host:port` of each shield, in the order given.
    hosts: Vec<String>,
    dead: moka::sync::Cache<usize, ()>,
}

impl Shields {
    /// Shields from their URLs (`http://HOST:PORT`, nothing else).
    pub fn new(urls: &[reqwest::Url]) -> Result<Shields, BadShield> {
        let hosts = urls
            .iter()
            .map(|u| {
                let bad = || BadShield(u.to_string());
                if u.scheme() != "http" || !matches!(u.path(), "" | "/") || u.query().is_some() {
                    return Err(bad());
                }
                let host = u.host_str().ok_or_else(bad)?;
                let port = u.port_or_known_default().ok_or_else(bad)?;
                Ok(format!("{host}:{port}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Shields {
            hosts,
            dead: moka::sync::Cache::builder().time_to_live(DEAD_FOR).build(),
        })
    }

    /// `host:port` of shield `i`.
    pub fn host(&self, i: usize) -> &str {
        &self.hosts[i]
    }

    /// The shield for a request of `stream`, skipping those that failed
    /// lately and those in `failed` (tried by this request already); `None`:
    /// go to the origin.
    pub fn pick(&self, stream: &str, failed: &[usize]) -> Option<usize> {
        let n = self.hosts.len();
        if n == 0 {
            return None;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        stream.hash(&mut h);
        let first = (h.finish() % n as u64) as usize;
        (0..n)
            .map(|k| (first + k) % n)
            .find(|i| !failed.contains(i) && !self.dead.contains_key(i))
    }

    /// Shield `i` refused a connection: passed over for [`DEAD_FOR`].
    pub fn failed(&self, i: usize) {
        self.dead.insert(i, ());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shields(urls: &[&str]) -> Result<Shields, BadShield> {
        Shields::new(&urls.iter().map(|u| u.parse().unwrap()).collect::<Vec<_>>())
    }

    #[test]
    fn only_plain_http_host_port_urls_are_shields() {
        assert_eq!(shields(&["http://10.0.0.1:8081"]).unwrap().host(0), "10.0.0.1:8081");
        assert_eq!(shields(&["http://shield/"]).unwrap().host(0), "shield:80");
        for bad in ["https://s:1", "http://s:1/x", "http://s:1/?a=b"] {
            assert!(shields(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_stream_goes_to_one_shield_then_the_next_then_the_origin() {
        let s = shields(&["http://a:1", "http://b:1", "http://c:1"]).unwrap();
        let first = s.pick("golive", &[]).unwrap();
        assert_eq!(s.pick("golive", &[]), Some(first), "stable");
        let second = s.pick("golive", &[first]).unwrap();
        assert_ne!(second, first);
        s.failed(first);
        assert_eq!(s.pick("golive", &[]), Some(second), "a dead shield is passed over");
        let third = s.pick("golive", &[second]).unwrap();
        assert_eq!(s.pick("golive", &[second, third]), None, "then the origin");
        assert_eq!(shields(&[]).unwrap().pick("golive", &[]), None);
    }
}
