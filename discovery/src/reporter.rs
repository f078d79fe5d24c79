//! The reporter: makes the router API know what [`Desired`] says.
//!
//! It works in rounds. Each round sends what is due, concurrently:
//! - a PUT for a live stream the router has not been told about in this form
//!   (new, new session, new renditions), or whose heartbeat is due;
//! - a DELETE for a stream that ended.
//!
//! A round with failures is retried after an exponential backoff with full
//! jitter, capped well below one heartbeat, so when the router comes back
//! every live stream is re-reported within one heartbeat.
//!
//! A report the router *refuses* (a 4xx: a rotated agent token, a profile
//! with more renditions than it accepts) is not retried in that tight loop:
//! the stream waits a capped, jittered backoff of its own ([`refusal_backoff`],
//! 1 s doubling to 60 s) before the same report is sent again, and at once
//! when the report changes. Refused streams show in the metrics and make
//! `/readyz` answer 503 (see [`crate::metrics`]). Withdrawals that
//! cannot be delivered are dropped once the router's TTL would have expired
//! them anyway, which keeps memory bounded during a long outage.
//!
//! Recordings take the same path (`PUT`/`DELETE
//! /origins/{origin}/recordings/{name}/{session}`), heartbeated within a
//! third of the recording TTL the router answers (its own, longer than the
//! live one). A refused recording (its stream was deleted) waits the same
//! capped backoff but does not make the agent unready.

use crate::desired::{Desired, Report, Subject, Want};
use crate::metrics::Metrics;
use crate::settings::Settings;
use api_types::ReportAccepted;
use rand::Rng;
use reqwest::{Client, StatusCode, Url};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Requests in flight at once.
const CONCURRENCY: usize = 16;
/// First retry delay after a failed round.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Longest retry delay: keeps recovery well within one heartbeat.
const BACKOFF_CAP: Duration = Duration::from_secs(1);
/// First wait before a refused report is sent again.
const REFUSED_BASE: Duration = Duration::from_secs(1);
/// Longest wait before a refused report is sent again.
const REFUSED_CAP: Duration = Duration::from_secs(60);
/// TTL assumed until the router has told us its own.
const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// What the router was last successfully told about a stream.
struct Sent {
    report: Report,
    at: Instant,
}

/// A stream whose report the router refused.
struct Refusal {
    report: Report,
    count: u32,
    retry_at: Instant,
}

enum Job {
    Put(Subject, Report),
    Delete(Subject),
}

enum Outcome {
    Put(Subject, Report, Option<Duration>),
    Deleted(Subject),
    /// The router refused the request for good (4xx): retrying cannot help.
    Refused(Subject, Option<Report>, StatusCode),
    Failed,
}

pub struct Reporter {
    client: Client,
    base: Url,
    origin: String,
    token: String,
    heartbeat: Duration,
    /// The live reports' TTL, as the router last answered.
    ttl: Duration,
    /// The recordings' TTL, as the router last answered.
    recording_ttl: Duration,
    desired: Arc<Desired>,
    metrics: Arc<Metrics>,
    sent: HashMap<Subject, Sent>,
    refused: HashMap<Subject, Refusal>,
}

impl Reporter {
    pub fn new(s: &Settings, desired: Arc<Desired>, metrics: Arc<Metrics>) -> anyhow::Result<Reporter> {
        let client = Client::builder()
            .timeout(s.request_timeout)
            .connect_timeout(s.request_timeout)
            .pool_max_idle_per_host(CONCURRENCY)
            .build()?;
        Ok(Reporter {
            client,
            base: s.router.clone(),
            origin: s.origin_id.clone(),
            token: s.agent_token.clone(),
            heartbeat: s.heartbeat,
            ttl: DEFAULT_TTL,
            recording_ttl: DEFAULT_TTL,
            desired,
            metrics,
            sent: HashMap::new(),
            refused: HashMap::new(),
        })
    }

    /// Heartbeat actually used: the configured one, but at most a third of
    /// the router's TTL so a single lost heartbeat never expires a report.
    fn effective_heartbeat(&self) -> Duration {
        self.heartbeat.min(self.ttl / 3)
    }

    /// The heartbeat of `subject`: [`Reporter::effective_heartbeat`] for a
    /// live stream, a third of the recording TTL for a recording.
    fn heartbeat_of(&self, subject: &Subject) -> Duration {
        match subject {
            Subject::Live(_) => self.effective_heartbeat(),
            Subject::Recording(..) => self.recording_ttl / 3,
        }
    }

    /// The router's TTL for `subject`'s kind.
    fn ttl_of(&self, subject: &Subject) -> Duration {
        match subject {
            Subject::Live(_) => self.ttl,
            Subject::Recording(..) => self.recording_ttl,
        }
    }

    fn update_refused_metrics(&self) {
        let recordings = self.refused.keys().filter(|s| s.is_recording()).count();
        self.metrics.set_refused(self.refused.len() - recordings, recordings);
    }

    pub async fn run(mut self) {
        let mut failed_rounds: u32 = 0;
        loop {
            let jobs = self.due_jobs(Instant::now());
            let delay = if jobs.is_empty() {
                failed_rounds = 0;
                self.until_next_heartbeat().min(self.until_next_refused_retry())
            } else if self.send_round(jobs).await {
                failed_rounds = 0;
                // Something new may have come in while we were sending.
                Duration::ZERO
            } else {
                failed_rounds = failed_rounds.saturating_add(1);
                backoff(failed_rounds)
            };
            if delay.is_zero() {
                continue;
            }
            tokio::select! {
                _ = self.desired.changed(), if failed_rounds == 0 => {}
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// What must be sent now.
    fn due_jobs(&mut self, now: Instant) -> Vec<Job> {
        let mut jobs = vec![];
        let snapshot = self.desired.snapshot();
        if !self.refused.is_empty() {
            let reported: std::collections::HashSet<&Subject> = snapshot
                .iter()
                .filter(|(_, w)| w.report.is_some())
                .map(|(n, _)| n)
                .collect();
            self.refused.retain(|name, _| reported.contains(name));
        }
        self.update_refused_metrics();
        for (name, Want { report, since }) in snapshot {
            let heartbeat = self.heartbeat_of(&name);
            match report {
                Some(r) => {
                    let waiting = self
                        .refused
                        .get(&name)
                        .is_some_and(|f| f.report == r && now < f.retry_at);
                    if waiting {
                        continue;
                    }
                    let fresh = self
                        .sent
                        .get(&name)
                        .is_some_and(|s| s.report == r && now - s.at < heartbeat);
                    if !fresh {
                        jobs.push(Job::Put(name, r));
                    }
                }
                None if now - since > self.ttl_of(&name) => {
                    // The router has expired it by now; stop trying.
                    self.desired.forget_withdrawn(&name);
                    self.sent.remove(&name);
                }
                None => jobs.push(Job::Delete(name)),
            }
        }
        jobs
    }

    /// Time until the oldest live report needs a heartbeat.
    fn until_next_heartbeat(&self) -> Duration {
        let now = Instant::now();
        let hb = self.effective_heartbeat();
        self.sent
            .iter()
            .map(|(subject, s)| (s.at + self.heartbeat_of(subject)).saturating_duration_since(now))
            .min()
            .unwrap_or(hb)
    }

    /// Time until the next refused report may be sent again.
    fn until_next_refused_retry(&self) -> Duration {
        let now = Instant::now();
        self.refused
            .values()
            .map(|f| f.retry_at.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::MAX)
    }

    /// Sends one round of jobs; `true` if none failed.
    async fn send_round(&mut self, jobs: Vec<Job>) -> bool {
        let mut set = JoinSet::new();
        let mut pending = jobs.into_iter();
        let mut ok = true;
        for job in pending.by_ref().take(CONCURRENCY) {
            set.spawn(self.send(job));
        }
        while let Some(res) = set.join_next().await {
            if let Some(job) = pending.next() {
                set.spawn(self.send(job));
            }
            let Ok(outcome) = res else { continue };
            ok &= self.record(outcome);
        }
        ok
    }

    /// Applies one outcome; `false` for a failure worth retrying.
    fn record(&mut self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Put(name, report, ttl) => {
                self.metrics
                    .report_ok(if name.is_recording() { "put_recording" } else { "put" });
                self.refused.remove(&name);
                match (ttl, &name) {
                    (Some(ttl), Subject::Live(_)) => self.ttl = ttl,
                    (Some(ttl), Subject::Recording(..)) => self.recording_ttl = ttl,
                    (None, _) => {}
                }
                self.sent.insert(
                    name,
                    Sent {
                        report,
                        at: Instant::now(),
                    },
                );
                true
            }
            Outcome::Deleted(name) => {
                self.metrics.report_ok(if name.is_recording() {
                    "delete_recording"
                } else {
                    "delete"
                });
                self.sent.remove(&name);
                self.desired.forget_withdrawn(&name);
                true
            }
            Outcome::Refused(name, report, status) => {
                self.metrics.report_failed();
                self.metrics.report_refused();
                self.sent.remove(&name);
                match report {
                    Some(report) => {
                        let count = self.refused.get(&name).map_or(0, |f| f.count).saturating_add(1);
                        let wait = refusal_backoff(count);
                        tracing::error!(subject = ?name, %status, retry_in = ?wait, "router refused the report");
                        self.refused.insert(
                            name,
                            Refusal {
                                report,
                                count,
                                retry_at: Instant::now() + wait,
                            },
                        );
                        self.update_refused_metrics();
                    }
                    None => {
                        tracing::error!(subject = ?name, %status, "router refused the withdrawal; dropping it");
                        self.desired.forget_withdrawn(&name);
                    }
                }
                true
            }
            Outcome::Failed => {
                self.metrics.report_failed();
                false
            }
        }
    }

    /// One request, as a future that owns everything it needs.
    fn send(&self, job: Job) -> impl Future<Output = Outcome> + Send + 'static {
        let client = self.client.clone();
        let token = self.token.clone();
        let url = |subject: &Subject| {
            let mut u = self.base.clone();
            u.path_segments_mut()
                .map(|mut p| {
                    let p = p.pop_if_empty().extend(["origins", &self.origin]);
                    match subject {
                        Subject::Live(name) => p.extend(["streams", name]),
                        Subject::Recording(name, session) => p.extend(["recordings", name, session]),
                    };
                })
                .ok();
            u
        };
        let (req, name, report): (_, _, Option<Report>) = match job {
            Job::Put(name, r) => {
                let req = match &r {
                    Report::Live(live) => client.put(url(&name)).json(live),
                    Report::Recording(rec) => client.put(url(&name)).json(rec),
                };
                (req, name, Some(r))
            }
            Job::Delete(name) => (client.delete(url(&name)), name, None),
        };
        async move {
            let resp = match req.bearer_auth(token).send().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(subject = ?name, error = %e, "router API unreachable");
                    return Outcome::Failed;
                }
            };
            let status = resp.status();
            match (report, status) {
                (Some(r), s) if s.is_success() => {
                    let ttl = resp
                        .json::<ReportAccepted>()
                        .await
                        .ok()
                        .map(|a| Duration::from_millis(a.ttl_ms));
                    Outcome::Put(name, r, ttl)
                }
                (None, s) if s.is_success() || s == StatusCode::NOT_FOUND => Outcome::Deleted(name),
                (report, s)
                    if s.is_client_error()
                        && s != StatusCode::REQUEST_TIMEOUT
                        && s != StatusCode::TOO_MANY_REQUESTS =>
                {
                    Outcome::Refused(name, report, s)
                }
                (_, s) => {
                    tracing::warn!(subject = ?name, status = %s, "router API answered with an error");
                    Outcome::Failed
                }
            }
        }
    }
}

/// Exponential backoff with full jitter: uniform in [0, min(cap, base·2ⁿ)],
/// so many agents recovering together do not hit the router in lock-step.
fn backoff(failed_rounds: u32) -> Duration {
    let exp = BACKOFF_BASE
        .saturating_mul(1u32 << failed_rounds.min(10))
        .min(BACKOFF_CAP);
    let jitter = rand::rng().random_range(0.0..=1.0);
    exp.mul_f64(jitter).max(Duration::from_millis(10))
}

/// The wait before refused report number `count` (1, 2, ...) is sent again:
/// doubling from [`REFUSED_BASE`] to [`REFUSED_CAP`], with "equal jitter"
/// (uniform in the upper half), so it is never short and agents refused
/// together do not retry together.
fn refusal_backoff(count: u32) -> Duration {
    let exp = REFUSED_BASE
        .saturating_mul(1u32 << count.saturating_sub(1).min(10))
        .min(REFUSED_CAP);
    let jitter = rand::rng().random_range(0.0..=1.0);
    exp / 2 + (exp / 2).mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_reports_wait_longer_each_time_up_to_the_cap() {
        for n in 1..40 {
            let d = refusal_backoff(n);
            let exp = REFUSED_BASE.saturating_mul(1u32 << (n - 1).min(10)).min(REFUSED_CAP);
            assert!(d >= exp / 2 && d <= exp, "{n}: {d:?}");
        }
        assert!(refusal_backoff(1) >= Duration::from_millis(500));
        assert!(refusal_backoff(30) <= REFUSED_CAP);
    }

    #[test]
    fn backoff_is_bounded_and_jittered() {
        for n in 0..50 {
            let d = backoff(n);
            assert!(d >= Duration::from_millis(10) && d <= BACKOFF_CAP, "{n}: {d:?}");
        }
        let samples: std::collections::HashSet<_> = (0..20).map(|_| backoff(5)).collect();
        assert!(samples.len() > 1, "jittered");
    }
}
