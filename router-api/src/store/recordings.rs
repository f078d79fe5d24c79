//! Recordings in Redis: which origin holds which recorded session of a
//! stream, reported by discovery agents and listed for operators, sites and
//! edges.
//!
//! One key per stream, `recordings:{name}` (a hash with a key TTL, like
//! `routes:{name}`): session -> JSON [`StoredRecording`]. A recording is live
//! while its `expires_at_ms` is in the future (the same rule as live
//! reports: Redis 7.0 has no per-field TTL, so the key's TTL bounds how long
//! dead data lingers and each field carries its own expiry). Recordings
//! outlive the live report: they have their own key and their own TTL
//! (`--recording-ttl`), and the agent heartbeats them while the session's
//! folder is on disk.
//!
//! Bounds: at most [`MAX_RECORDINGS_PER_STREAM`] entries per stream (a
//! report past it first prunes expired entries, then is refused with 409).
//! A report is accepted only for a stream the router manages and only if the
//! recording ended after the stream was created, so a stream deleted and
//! created again under the same name does not inherit the old recordings
//! from an agent that still heartbeats them. Deleting a stream deletes the
//! key. Every script gets its keys through `KEYS` (Cluster-safe).

use super::{Result, Store, StoreError, now_ms};
use api_types::{Playback, RecordingReport, Rendition};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

/// Most recordings listed for one stream at once.
pub const MAX_RECORDINGS_PER_STREAM: usize = 1000;

/// One recording as stored in `recordings:{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRecording {
    pub origin: String,
    pub host: String,
    pub started_at_ms: u64,
    pub ended_at_ms: u64,
    pub duration_s: f64,
    #[serde(default)]
    pub renditions: Vec<Rendition>,
    pub reported_at_ms: u64,
    pub expires_at_ms: u64,
}

/// Why a recording report was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutRecording {
    Stored,
    /// The router manages no stream of that name.
    NoStream,
    /// The recording ended before the stream was created.
    OlderThanStream,
    /// The stream has [`MAX_RECORDINGS_PER_STREAM`] live recordings.
    Full,
}

/// A recording's route, for edges.
#[derive(Debug, Clone)]
pub struct RecordingAt {
    pub recording: StoredRecording,
    pub playback: Playback,
}

// KEYS: recordings hash, stream hash. ARGV: session, JSON, ttl ms, cap, now
// ms, ended_at_ms. 1 stored, -2 no stream, -3 older than the stream, -1 full.
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local created = redis.call('HGET', KEYS[2], 'created_at_ms')
        if not created then return -2 end
        if tonumber(ARGV[6]) < tonumber(created) then return -3 end
        if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
            and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
            local all = redis.call('HGETALL', KEYS[1])
            for i = 1, #all, 2 do
                local ok, r = pcall(cjson.decode, all[i + 1])
                if not ok or type(r) ~= 'table' or tonumber(r.expires_at_ms) == nil
                    or tonumber(r.expires_at_ms) <= tonumber(ARGV[5]) then
                    redis.call('HDEL', KEYS[1], all[i])
                end
            end
            if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return -1 end
        end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
            redis.call('PEXPIRE', KEYS[1], ARGV[3])
        end
        return 1",
    )
});

// KEYS: recordings hash. ARGV: session, origin. Deletes the entry only if
// that origin holds it. 1 deleted, 0 not.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local v = redis.call('HGET', KEYS[1], ARGV[1])
        if not v then return 0 end
        local ok, r = pcall(cjson.decode, v)
        if ok and type(r) == 'table' and r.origin ~= ARGV[2] then return 0 end
        return redis.call('HDEL', KEYS[1], ARGV[1])",
    )
});

impl Store {
    /// The TTL of recording reports (`--recording-ttl`).
    pub fn recording_ttl(&self) -> Duration {
        self.recording_ttl
    }

    /// Sets the TTL of recording reports.
    pub fn with_recording_ttl(mut self, ttl: Duration) -> Store {
        self.recording_ttl = ttl;
        self
    }

    /// Records (or heartbeats) that `origin` holds recording `session` of `name`.
    pub async fn put_recording(
        &self,
        origin: &str,
        name: &str,
        session: &str,
        report: &RecordingReport,
    ) -> Result<PutRecording> {
        let (k_recs, k_stream) = (self.key(&["recordings", name]), self.key(&["stream", name]));
        let now = now_ms();
        let ttl_ms = self.recording_ttl.as_millis() as u64;
        let stored = StoredRecording {
            origin: origin.to_string(),
            host: report.host.clone(),
            started_at_ms: report.started_at_ms,
            ended_at_ms: report.ended_at_ms,
            duration_s: report.duration_s,
            renditions: report.renditions.clone(),
            reported_at_ms: now,
            expires_at_ms: now + ttl_ms,
        };
        let json = serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let answer: i64 = self
            .run(|mut c| async move {
                PUT.key(k_recs)
                    .key(k_stream)
                    .arg(session)
                    .arg(json)
                    .arg(ttl_ms)
                    .arg(MAX_RECORDINGS_PER_STREAM)
                    .arg(now)
                    .arg(report.ended_at_ms)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(match answer {
            1 => PutRecording::Stored,
            -2 => PutRecording::NoStream,
            -3 => PutRecording::OlderThanStream,
            _ => PutRecording::Full,
        })
    }

    /// Withdraws `origin`'s recording `session` of `name`; `false` if it held none.
    pub async fn delete_recording(&self, origin: &str, name: &str, session: &str) -> Result<bool> {
        let k = self.key(&["recordings", name]);
        let n: i64 = self
            .run(|mut c| async move { DELETE.key(k).arg(session).arg(origin).invoke_async(&mut c).await })
            .await?;
        Ok(n == 1)
    }

    /// `name`'s live recordings, newest first (by start, then session).
    pub async fn recordings(&self, name: &str) -> Result<Vec<(String, StoredRecording)>> {
        let k = self.key(&["recordings", name]);
        let h: HashMap<String, String> = self.run(|mut c| async move { c.hgetall(k).await }).await?;
        let now = now_ms();
        let mut out: Vec<(String, StoredRecording)> = h
            .into_iter()
            .filter_map(|(session, json)| {
                let r = serde_json::from_str::<StoredRecording>(&json).ok()?;
                (r.expires_at_ms > now).then_some((session, r))
            })
            .collect();
        out.sort_by(|(sa, a), (sb, b)| b.started_at_ms.cmp(&a.started_at_ms).then_with(|| sb.cmp(sa)));
        out.truncate(MAX_RECORDINGS_PER_STREAM);
        Ok(out)
    }

    /// Where recording `session` of `name` is, with the stream's playback
    /// policy, in one round trip; `None` when no live report names it.
    pub async fn recording(&self, name: &str, session: &str) -> Result<Option<RecordingAt>> {
        let mut pipe = redis::pipe();
        pipe.hget(self.key(&["recordings", name]), session);
        pipe.hget(self.key(&["stream", name]), "playback");
        let (json, playback): (Option<String>, Option<String>) =
            self.run(|mut c| async move { pipe.query_async(&mut c).await }).await?;
        let now = now_ms();
        let Some(recording) = json
            .and_then(|j| serde_json::from_str::<StoredRecording>(&j).ok())
            .filter(|r| r.expires_at_ms > now)
        else {
            return Ok(None);
        };
        let playback = if playback.as_deref() == Some("token") {
            Playback::Token
        } else {
            Playback::Public
        };
        Ok(Some(RecordingAt { recording, playback }))
    }

    /// Drops every recording entry of `name` (the stream was deleted).
    pub(super) async fn delete_recordings(&self, name: &str) -> Result<()> {
        let k = self.key(&["recordings", name]);
        self.run(|mut c| async move { c.del::<_, ()>(k).await }).await
    }
}
