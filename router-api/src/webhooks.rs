//! Webhooks: `stream.live` and `stream.ended` POSTed to the operator's URLs.
//!
//! Why a queue and a task of their own: a publish must never wait for an
//! operator's server. Handlers only [`Webhooks::live`]/[`Webhooks::ended`],
//! which put the event on a bounded queue without waiting (a full queue
//! drops the event and counts it); one background task takes events off it
//! and delivers each to every URL, at most [`MAX_IN_FLIGHT`] deliveries at
//! once, each retried with capped exponential backoff and jitter a bounded
//! number of times.
//!
//! Claims that expire (their origin died) end without any request to say so,
//! so [`sweep`] asks Redis every second for expired claims
//! ([`Store::sweep_expired_claims`], bounded per pass) and sends their
//! `stream.ended`.
//!
//! Each delivery is signed: `X-Dionysia-Signature: t={unix seconds},v1={hex
//! HMAC-SHA256(secret, "{t}.{body}")}`; docs/router-api.md shows how to check
//! it.

use crate::store::{EndedClaim, Store, now_ms};
use api_types::WebhookEvent;
use hmac::{Hmac, Mac};
use prometheus::IntCounterVec;
use rand::Rng;
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// Most deliveries (event x URL) in progress at once.
pub const MAX_IN_FLIGHT: usize = 16;
/// Most expired claims one sweep pass reports.
const SWEEP_BATCH: usize = 100;
/// How often expired claims are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-dionysia-signature";

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct Config {
    pub urls: Vec<String>,
    pub secret: String,
    /// Attempts per delivery, the first included.
    pub attempts: u32,
    /// Events waiting for delivery at most.
    pub queue: usize,
    /// Time limit of one attempt.
    pub timeout: Duration,
    /// Wait before the first retry; doubled each retry up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

/// The sending side, cheap to clone; inert when no URL is configured.
#[derive(Clone)]
pub struct Webhooks {
    tx: Option<mpsc::Sender<WebhookEvent>>,
    deliveries: IntCounterVec,
}

impl Webhooks {
    /// Starts the delivery task when `config` has URLs.
    pub fn start(config: Config, deliveries: IntCounterVec) -> Webhooks {
        if config.urls.is_empty() {
            return Webhooks { tx: None, deliveries };
        }
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        tokio::spawn(deliver_all(Arc::new(config), rx, deliveries.clone()));
        Webhooks {
            tx: Some(tx),
            deliveries,
        }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// A claim was taken where none was.
    pub fn live(&self, stream: &str, origin: &str, session: &str) {
        self.emit("stream.live", stream, origin, session);
    }

    /// A claim was released, revoked or expired.
    pub fn ended(&self, c: &EndedClaim) {
        self.emit("stream.ended", &c.stream, &c.origin, &c.session);
    }

    fn emit(&self, event: &'static str, stream: &str, origin: &str, session: &str) {
        let Some(tx) = &self.tx else { return };
        let mut id = [0u8; 16];
        rand::rng().fill(&mut id);
        let ev = WebhookEvent {
            event: event.to_string(),
            stream: stream.to_string(),
            origin: origin.to_string(),
            session: session.to_string(),
            at_ms: now_ms(),
            id: hex::encode(id),
        };
        if tx.try_send(ev).is_err() {
            tracing::warn!(event, stream, "webhook queue full: event dropped");
            self.deliveries.with_label_values(&[event, "dropped"]).inc();
        }
    }
}

/// `t={ts},v1={hex hmac}` for `body` sent at `ts` (Unix seconds).
pub fn signature(secret: &str, ts: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{ts}.{body}").as_bytes());
    format!("t={ts},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver_all(config: Arc<Config>, mut rx: mpsc::Receiver<WebhookEvent>, deliveries: IntCounterVec) {
    let client = match reqwest::Client::builder()
        .timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks are off");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(ev) = rx.recv().await {
        let body = match serde_json::to_string(&ev) {
            Ok(b) => Arc::new(b),
            Err(_) => continue,
        };
        for url in &config.urls {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (client, config, body, deliveries, url) = (
                client.clone(),
                config.clone(),
                body.clone(),
                deliveries.clone(),
                url.clone(),
            );
            let event: &'static str = if ev.event == "stream.live" {
                "stream.live"
            } else {
                "stream.ended"
            };
            tokio::spawn(async move {
                let _permit = permit;
                deliver(&client, &config, &url, event, &body, &deliveries).await;
            });
        }
    }
}

/// One event to one URL: up to `attempts` tries, a 2xx ends it.
async fn deliver(
    client: &reqwest::Client,
    config: &Config,
    url: &str,
    event: &'static str,
    body: &str,
    deliveries: &IntCounterVec,
) {
    for attempt in 0..config.attempts.max(1) {
        let ts = now_ms() / 1000;
        let res = client
            .post(url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature(&config.secret, ts, body))
            .body(body.to_string())
            .send()
            .await;
        let failure = match res {
            Ok(r) if r.status().is_success() => {
                deliveries.with_label_values(&[event, "delivered"]).inc();
                return;
            }
            Ok(r) => format!("status {}", r.status().as_u16()),
            Err(e) => e.to_string(),
        };
        if attempt + 1 >= config.attempts {
            tracing::warn!(event, url, %failure, attempts = config.attempts, "webhook delivery failed; giving up");
            deliveries.with_label_values(&[event, "failed"]).inc();
            return;
        }
        deliveries.with_label_values(&[event, "retried"]).inc();
        let wait = backoff(config.backoff, config.max_backoff, attempt);
        tracing::info!(event, url, %failure, retry_in = ?wait, "webhook delivery failed; retrying");
        tokio::time::sleep(wait).await;
    }
}

/// `base * 2^attempt`, capped at `max`, then a random point in its upper half
/// (jitter, so receivers coming back are not hit by every retry at once).
fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let full = base.saturating_mul(1u32 << attempt.min(16)).min(max);
    let half = full / 2;
    half + full.saturating_sub(half).mul_f64(rand::rng().random::<f64>())
}

/// Reports claims that expired unreleased as `stream.ended`, every second,
/// until `shutdown` resolves. Redis trouble just waits for the next pass.
pub async fn sweep(store: Arc<Store>, hooks: Webhooks, shutdown: impl std::future::Future<Output = ()>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        if let Ok(ended) = store.sweep_expired_claims(SWEEP_BATCH).await {
            for c in &ended {
                tracing::info!(stream = %c.stream, origin = %c.origin, "claim expired: stream ended");
                hooks.ended(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_and_body() {
        // echo -n '1700000000.{}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature("secret", 1_700_000_000, "{}"),
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let (b, m) = (Duration::from_millis(500), Duration::from_secs(30));
        for attempt in 0..40 {
            let full = b.saturating_mul(1 << attempt.min(16)).min(m);
            let w = backoff(b, m, attempt);
            assert!(w >= full / 2 && w <= full, "attempt {attempt}: {w:?}");
        }
    }
}
