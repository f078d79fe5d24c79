//! The router API's connection to Redis: one fixed address (`--redis`), or
//! the master of a Sentinel-monitored set (`--redis-sentinel` +
//! `--redis-master`), found again after a failover without a restart.
//!
//! The connection is made lazily, on first use, so the process starts and
//! keeps running while Redis is down; [`ConnectionManager`] then reconnects by
//! itself when a connection breaks. Behind Sentinel that is not enough: the
//! manager would keep reconnecting to the old master's address. So every
//! failed operation *forgets* the connection it used (see
//! [`Connector::forget`]), and the next one asks the Sentinels again.
//!
//! Finding the master is written here rather than taken from the `redis`
//! crate's `sentinel` feature: that feature pulls in another major version of
//! `rand`, and what we need is the documented client protocol's two steps
//! (<https://redis.io/docs/latest/develop/reference/sentinel-clients/>): ask
//! each Sentinel in turn `SENTINEL get-master-addr-by-name`, then check with
//! `ROLE` that the address given really is a master (a demoted master
//! answers writes with `READONLY`, which also makes us forget it).

use crate::store::StoreError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;
use tokio::sync::Mutex;

/// Where the Redis master is.
#[derive(Debug, Clone)]
pub enum Target {
    /// A fixed URL (`redis://[user:password@]host:port[/db]`).
    Direct(String),
    /// Ask these Sentinels (`host:port` each) for the master named `master`.
    Sentinel { sentinels: Vec<String>, master: String },
}

enum Source {
    Direct(redis::Client),
    Sentinel {
        sentinels: Vec<(String, redis::Client)>,
        master: String,
    },
}

/// A lazily (re)connected connection to the current master.
pub struct Connector {
    source: Source,
    config: ConnectionManagerConfig,
    timeout: Duration,
    /// The connection in use and its generation (so that a failure forgets
    /// only the connection it happened on, not a newer one).
    slot: Mutex<(u64, Option<ConnectionManager>)>,
}

impl Connector {
    /// `timeout` bounds connecting and each command.
    pub fn new(target: &Target, timeout: Duration) -> Result<Connector, redis::RedisError> {
        let source = match target {
            Target::Direct(url) => Source::Direct(redis::Client::open(url.as_str())?),
            Target::Sentinel { sentinels, master } => Source::Sentinel {
                sentinels: sentinels
                    .iter()
                    .map(|s| Ok((s.clone(), redis::Client::open(format!("redis://{s}"))?)))
                    .collect::<Result<_, redis::RedisError>>()?,
                master: master.clone(),
            },
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        Ok(Connector {
            source,
            config,
            timeout,
            slot: Mutex::new((0, None)),
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connection to use and its generation (for [`Connector::forget`]).
    pub async fn get(&self) -> Result<(u64, ConnectionManager), StoreError> {
        let mut slot = self.slot.lock().await;
        if let Some(m) = slot.1.as_ref() {
            return Ok((slot.0, m.clone()));
        }
        let m = match &self.source {
            Source::Direct(client) => self.manager(client.clone()).await?,
            Source::Sentinel { sentinels, master } => self.master_from_sentinels(sentinels, master).await?,
        };
        slot.0 += 1;
        slot.1 = Some(m.clone());
        Ok((slot.0, m))
    }

    /// The connection in use, if there is one and nobody is replacing it
    /// (for best-effort background work that must not wait).
    pub fn current(&self) -> Option<ConnectionManager> {
        self.slot.try_lock().ok().and_then(|s| s.1.clone())
    }

    /// Called after an operation on connection `generation` failed. Behind
    /// Sentinel the master may have moved, so the connection is dropped and
    /// the next operation asks the Sentinels again; a fixed address keeps its
    /// manager, which reconnects by itself.
    pub async fn forget(&self, generation: u64) {
        if matches!(self.source, Source::Direct(_)) {
            return;
        }
        let mut slot = self.slot.lock().await;
        if slot.0 == generation && slot.1.take().is_some() {
            tracing::info!("dropped the Redis connection; the next operation asks Sentinel for the master");
        }
    }

    async fn manager(&self, client: redis::Client) -> Result<ConnectionManager, StoreError> {
        let connect = ConnectionManager::new_with_config(client, self.config.clone());
        Ok(tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| StoreError::Unavailable("connect timed out".into()))??)
    }

    /// Asks each Sentinel in turn for the master's address; the first answer
    /// whose server says it is a master wins.
    async fn master_from_sentinels(
        &self,
        sentinels: &[(String, redis::Client)],
        master: &str,
    ) -> Result<ConnectionManager, StoreError> {
        let mut last = StoreError::Unavailable("no Sentinel configured".into());
        for (name, sentinel) in sentinels {
            match self.ask(sentinel, master).await {
                Ok(m) => return Ok(m),
                Err(e) => {
                    tracing::warn!(sentinel = %name, error = %e, "Sentinel gave no usable master");
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn ask(&self, sentinel: &redis::Client, master: &str) -> Result<ConnectionManager, StoreError> {
        let question = async {
            let mut c = sentinel.get_multiplexed_async_connection().await?;
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(master)
                .query_async::<Option<(String, u16)>>(&mut c)
                .await
        };
        let addr = tokio::time::timeout(self.timeout, question)
            .await
            .map_err(|_| StoreError::Unavailable("Sentinel did not answer in time".into()))??;
        let Some((host, port)) = addr else {
            return Err(StoreError::Unavailable(format!(
                "Sentinel knows no master named {master}"
            )));
        };
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        let client = redis::Client::open(format!("redis://{host}:{port}"))?;
        let mut m = self.manager(client).await?;
        let role = tokio::time::timeout(self.timeout, redis::cmd("ROLE").query_async::<redis::Value>(&mut m))
            .await
            .map_err(|_| StoreError::Unavailable("ROLE timed out".into()))??;
        let is_master = match &role {
            redis::Value::Array(items) => {
                matches!(items.first(), Some(redis::Value::BulkString(b)) if b.as_slice() == b"master")
            }
            _ => false,
        };
        if !is_master {
            return Err(StoreError::Unavailable(format!(
                "{host}:{port}, named master by Sentinel, is not a master (yet)"
            )));
        }
        tracing::info!(master = %format!("{host}:{port}"), "connected to the Redis master named by Sentinel");
        Ok(m)
    }
}
