//! One simulated viewer: what an HLS player does, minus decoding.
//!
//! - Loads the multivariant playlist and picks a variant (and its audio
//!   rendition, if any).
//! - Starts where RFC 8216bis 6.3.3 says and hls.js does: at the newest
//!   segment that begins at least HOLD-BACK (`EXT-X-SERVER-CONTROL`, else
//!   three target durations) before the end of the playlist. A playlist
//!   shorter than that (a stream that just went live) is not started: the
//!   viewer reloads until it is long enough, and that wait is start-up time,
//!   not a stall. The audio rendition starts at the same media sequence
//!   number (the origin cuts every rendition at the same times).
//! - Reloads the live media playlists as RFC 8216bis 6.3.4 says, measured
//!   from when the last reload began: the last segment's duration after a
//!   reload that changed the playlist, half a target duration after an
//!   unchanged one.
//! - Keeps a play-out buffer per track: media downloaded minus time played.
//!   Playback needs video and audio, so it runs on the smaller of the two;
//!   when that runs dry the viewer stalls until both have media again.
//! - Live latency is wall-clock time minus the EXT-X-PROGRAM-DATE-TIME of
//!   the media being played.

use crate::settings::{Ll, Pick};
use crate::stats::{Kind, Stats};
use m3u8_rs::{MasterPlaylist, MediaPlaylist};
use rand::Rng;
use reqwest::{Client, Url};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Target durations behind the end of the playlist a player starts at
/// without an `EXT-X-SERVER-CONTROL:HOLD-BACK` (RFC 8216bis 6.3.3; hls.js's
/// `liveSyncDurationCount`).
const HOLD_BACK_TARGETS: f64 = 3.0;

pub struct Viewer {
    /// The viewer's number (join order), as the stall timeline shows it.
    pub id: u32,
    pub client: Client,
    pub url: Url,
    pub pick: Pick,
    pub ll: Ll,
    /// LL-HLS: request the EXT-X-PRELOAD-HINT part ahead.
    pub preload_hints: bool,
    pub stats: Arc<Stats>,
    pub stop_at: Instant,
}

/// A media playlist being followed.
struct Track {
    url: Url,
    /// Index into [`Buffer::downloaded`]: [`VIDEO`] or [`AUDIO`].
    index: usize,
    /// The media sequence number it started at, once started.
    start: Option<u64>,
    next_seq: Option<u64>,
    init_loaded: bool,
    last_text: String,
}

const VIDEO: usize = 0;
const AUDIO: usize = 1;

impl Track {
    fn new(url: Url, index: usize) -> Track {
        Track {
            url,
            index,
            start: None,
            next_seq: None,
            init_loaded: false,
            last_text: String::new(),
        }
    }
}

/// The HOLD-BACK of a media playlist, in seconds. (m3u8-rs keeps the tags
/// it does not know with the segment that follows them.)
fn hold_back(pl: &MediaPlaylist) -> f64 {
    pl.unknown_tags
        .iter()
        .chain(pl.segments.iter().flat_map(|s| &s.unknown_tags))
        .filter(|t| t.tag == "X-SERVER-CONTROL")
        .filter_map(|t| t.rest.as_deref())
        .flat_map(|rest| rest.split(','))
        .find_map(|attr| attr.strip_prefix("HOLD-BACK=").and_then(|v| v.parse::<f64>().ok()))
        .unwrap_or(HOLD_BACK_TARGETS * pl.target_duration as f64)
}

/// The media sequence number a player joining `pl` starts at: the newest
/// segment that begins at least HOLD-BACK before the end of the playlist;
/// `None` while the playlist is shorter than that.
fn start_seq(pl: &MediaPlaylist) -> Option<u64> {
    let hold = hold_back(pl);
    let mut from_end = 0.0;
    for (i, seg) in pl.segments.iter().enumerate().rev() {
        from_end += f64::from(seg.duration);
        // EXTINF has three decimals: a millisecond short still counts.
        if from_end >= hold - 0.001 {
            return Some(pl.media_sequence + i as u64);
        }
    }
    None
}

/// How long after the start of a reload the next one begins (RFC 8216bis
/// 6.3.4): the last segment's duration when the playlist changed, half a
/// target duration when it did not.
fn reload_wait(changed: bool, last_segment: f64, target: f64) -> Duration {
    let s = if changed && last_segment > 0.0 {
        last_segment
    } else if changed {
        target
    } else {
        target / 2.0
    };
    Duration::from_secs_f64(s.max(0.1))
}

/// The play-out buffer: media downloaded per track since the start
/// position, and time played. Times are passed in so the model can be
/// tested without a clock.
struct Buffer {
    /// Seconds of media downloaded: [video, audio].
    downloaded: [f64; 2],
    has_audio: bool,
    played: f64,
    playing: bool,
    last_tick: Instant,
    stalled_since: Option<Instant>,
    /// PDT of the end of the newest downloaded video segment.
    edge_pdt: Option<SystemTime>,
}

impl Buffer {
    fn new(has_audio: bool, now: Instant) -> Buffer {
        Buffer {
            downloaded: [0.0; 2],
            has_audio,
            played: 0.0,
            playing: false,
            last_tick: now,
            stalled_since: None,
            edge_pdt: None,
        }
    }

    /// Media buffered ahead of the playhead, the smaller over the tracks
    /// playback needs.
    fn level(&self) -> f64 {
        let audio = if self.has_audio {
            self.downloaded[AUDIO]
        } else {
            f64::INFINITY
        };
        self.downloaded[VIDEO].min(audio) - self.played
    }

    /// Plays from the last tick to `now`; a buffer that runs dry on the way
    /// stops playback at the instant it ran dry.
    fn tick(&mut self, now: Instant) {
        if self.playing {
            self.played += now.saturating_duration_since(self.last_tick).as_secs_f64();
            let level = self.level();
            if level <= 0.0 {
                // Ran dry at now + level (level is negative or zero).
                let dry_for = Duration::from_secs_f64(-level).min(now - self.last_tick);
                self.stalled_since = Some(now - dry_for);
                self.played += level;
                self.playing = false;
            }
        }
        self.last_tick = now;
    }

    /// A segment of `seconds` of `track` arrived at `now`. Returns when the
    /// stall this ends began, if it ends one.
    fn add(&mut self, now: Instant, track: usize, seconds: f64, pdt_end: Option<SystemTime>) -> Option<Instant> {
        self.tick(now);
        self.downloaded[track] += seconds;
        if track == VIDEO && pdt_end.is_some() {
            self.edge_pdt = pdt_end;
        }
        if !self.playing && self.level() > 0.0 {
            self.playing = true;
            return self.stalled_since.take();
        }
        None
    }

    /// The PDT of the media being played, while playing.
    fn playhead_pdt(&self) -> Option<SystemTime> {
        let ahead = self.downloaded[VIDEO] - self.played;
        self.edge_pdt
            .filter(|_| self.playing)
            .and_then(|e| e.checked_sub(Duration::from_secs_f64(ahead.max(0.0))))
    }
}

pub(crate) enum Fetch {
    Ok(Vec<u8>),
    Failed,
}

/// The largest body read of a kind: playlists as the LL parser takes them,
/// media far above any segment of ours.
fn max_body(kind: Kind) -> usize {
    match kind {
        Kind::Multivariant | Kind::Playlist => crate::llhls::MAX_BYTES,
        Kind::Init | Kind::Segment | Kind::Part => 64 << 20,
    }
}

/// One answered (or failed) request, with its timing.
pub(crate) enum Fetched {
    Ok {
        body: Vec<u8>,
        /// Time to the response head.
        ttfb: Duration,
        /// Time to the end of the body.
        total: Duration,
        /// Where the body came from, after any redirect: the base of the
        /// relative URIs in it (the edge redirects a multivariant playlist
        /// into a playback session of the viewer's own).
        url: Url,
    },
    /// 404 where the caller said it may happen (a preload hint that never
    /// came): not counted as an error, nor as a response.
    NotFound,
    /// Counted as an error.
    Failed,
}

impl Fetched {
    /// The body's throughput, bit/s, from the response head to its end
    /// (what a held request waited is not the network's speed).
    pub(crate) fn rate(&self) -> Option<f64> {
        match self {
            Fetched::Ok { body, ttfb, total, .. } => {
                Some(body.len() as f64 * 8.0 / (*total - *ttfb).as_secs_f64().max(1e-4))
            }
            _ => None,
        }
    }
}

impl Viewer {
    async fn fetch(&self, kind: Kind, url: &Url) -> Fetch {
        match self.fetch_timed(kind, url, false).await {
            Fetched::Ok { body, .. } => Fetch::Ok(body),
            _ => Fetch::Failed,
        }
    }

    /// A GET, counted in the stats; `may_404` makes a 404 [`Fetched::NotFound`].
    pub(crate) async fn fetch_timed(&self, kind: Kind, url: &Url, may_404: bool) -> Fetched {
        let start = Instant::now();
        let resp = match self.client.get(url.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "request"
                };
                self.stats.error(kind, what.into());
                return Fetched::Failed;
            }
        };
        let ttfb = start.elapsed();
        let status = resp.status();
        let final_url = resp.url().clone();
        let cache = resp
            .headers()
            .get("x-cache-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if may_404 && status == reqwest::StatusCode::NOT_FOUND {
            self.stats.unanswered(kind);
            return Fetched::NotFound;
        }
        if !status.is_success() {
            self.stats.error(kind, format!("http {}", status.as_u16()));
            return Fetched::Failed;
        }
        // Read up to the kind's bound: a server that sends more is an error,
        // not memory.
        let limit = max_body(kind);
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            self.stats.error(kind, "too long".into());
            return Fetched::Failed;
        }
        let mut resp = resp;
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() > limit => {
                    self.stats.error(kind, "too long".into());
                    return Fetched::Failed;
                }
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(_) => {
                    self.stats.error(kind, "body".into());
                    return Fetched::Failed;
                }
            }
        }
        let total = start.elapsed();
        self.stats
            .response(kind, url.as_str(), ttfb, total, body.len() as u64, cache.as_deref());
        Fetched::Ok {
            body,
            ttfb,
            total,
            url: final_url,
        }
    }

    pub(crate) async fn sleep_until_or_stop(&self, until: Instant) -> bool {
        tokio::time::sleep_until(until.min(self.stop_at).into()).await;
        Instant::now() < self.stop_at
    }

    pub(crate) fn choose<'a>(
        &self,
        master: &'a MasterPlaylist,
        throughput_bps: Option<f64>,
    ) -> Option<&'a m3u8_rs::VariantStream> {
        let mut variants: Vec<&m3u8_rs::VariantStream> = master.variants.iter().filter(|v| !v.is_i_frame).collect();
        variants.sort_by_key(|v| v.bandwidth);
        match self.pick {
            Pick::Lowest => variants.first().copied(),
            Pick::Highest => variants.last().copied(),
            Pick::Random => {
                let i = rand::rng().random_range(0..variants.len().max(1));
                variants.get(i).copied()
            }
            Pick::Adaptive => match throughput_bps {
                // The best variant the measured throughput sustains with margin.
                Some(bps) => variants
                    .iter()
                    .rev()
                    .find(|v| (v.bandwidth as f64) * 1.3 < bps)
                    .or(variants.first())
                    .copied(),
                None => variants.first().copied(),
            },
        }
    }

    pub async fn run(mut self) {
        // The multivariant playlist, retried until it loads; what it lists
        // is relative to where it came from after any redirect.
        let master = loop {
            if let Fetched::Ok { body, url, .. } = self.fetch_timed(Kind::Multivariant, &self.url, false).await {
                match m3u8_rs::parse_master_playlist_res(&body) {
                    Ok(m) if !m.variants.is_empty() => {
                        self.url = url;
                        break m;
                    }
                    _ => self.stats.error(Kind::Multivariant, "unparsable".into()),
                }
            }
            if !self.sleep_until_or_stop(Instant::now() + Duration::from_secs(1)).await {
                return;
            }
        };
        let Some(mut variant) = self.choose(&master, None) else {
            return;
        };
        let audio_url = variant.audio.as_ref().and_then(|group| {
            master
                .alternatives
                .iter()
                .find(|a| &a.group_id == group)
                .and_then(|a| a.uri.as_ref())
                .and_then(|u| self.url.join(u).ok())
        });
        let Ok(video_url) = self.url.join(&variant.uri) else {
            return;
        };
        if self.ll != Ll::Off {
            // Which kind of player: the media playlist says (EXT-X-PART-INF).
            let first = loop {
                match self.fetch(Kind::Playlist, &video_url).await {
                    Fetch::Ok(body) => match crate::llhls::Playlist::parse(&body) {
                        Ok(pl) => break pl,
                        Err(_) => self.stats.error(Kind::Playlist, "unparsable".into()),
                    },
                    Fetch::Failed => {}
                }
                if !self.sleep_until_or_stop(Instant::now() + Duration::from_secs(1)).await {
                    return;
                }
            };
            if first.is_ll() {
                return crate::llviewer::play(&self, &master, variant, video_url, audio_url, first).await;
            }
            if self.ll == Ll::On {
                self.stats.error(Kind::Playlist, "not LL-HLS".into());
                return;
            }
        }
        let mut video = Track::new(video_url, VIDEO);
        let mut audio = audio_url.map(|u| Track::new(u, AUDIO));
        let mut buffer = Buffer::new(audio.is_some(), Instant::now());
        let mut target = 2.0f64;
        while Instant::now() < self.stop_at {
            let began = Instant::now();
            let reload = self.follow(&mut video, &mut buffer).await;
            if let Some(a) = audio.as_mut() {
                // Audio starts where video started.
                if a.start.is_none() {
                    a.start = video.start;
                    a.next_seq = video.start;
                }
                if a.next_seq.is_some() {
                    self.follow(a, &mut buffer).await;
                }
            }
            if reload.target > 0.0 {
                target = reload.target;
            }
            if self.pick == Pick::Adaptive
                && let Some(bps) = reload.rate
                && let Some(next) = self.choose(&master, Some(bps))
                && next.uri != variant.uri
                && let Ok(u) = self.url.join(&next.uri)
            {
                variant = next;
                self.stats
                    .rendition_switches
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // The new rendition continues where the old one was.
                let (start, next_seq) = (video.start, video.next_seq);
                video = Track::new(u, VIDEO);
                video.start = start;
                video.next_seq = next_seq;
            }
            self.tick(&mut buffer);
            let wait = reload_wait(reload.changed, reload.last_segment, target);
            if !self.sleep_until_or_stop(began + wait).await {
                break;
            }
        }
        // A stall still going on when the run ends counts too: an edge that
        // fails near the end must not read as a clean run.
        self.tick(&mut buffer);
        if let Some(since) = buffer.stalled_since.take() {
            self.stats.stall(self.id, since);
        }
    }

    /// Plays up to now and samples the live latency.
    fn tick(&self, buffer: &mut Buffer) {
        buffer.tick(Instant::now());
        if let Some(playhead) = buffer.playhead_pdt()
            && let Ok(lat) = SystemTime::now().duration_since(playhead)
        {
            self.stats.latency(lat);
        }
    }

    /// Reloads a media playlist and downloads its new segments.
    async fn follow(&self, track: &mut Track, buffer: &mut Buffer) -> Reload {
        let mut out = Reload {
            changed: false,
            target: 0.0,
            last_segment: 0.0,
            rate: None,
        };
        let Fetched::Ok { body, url, .. } = self.fetch_timed(Kind::Playlist, &track.url, false).await else {
            return out;
        };
        // Redirected to another session (the edge moves a player whose
        // origin died to the publisher's new session): follow it there,
        // from its first segment, as a player does at a discontinuity.
        let moved = url.path() != track.url.path() && track.next_seq.is_some();
        if url.path() != track.url.path() {
            track.url = url;
            track.url.set_query(None);
            track.init_loaded = false;
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        out.changed = text != track.last_text;
        track.last_text = text;
        let Ok(pl): Result<MediaPlaylist, _> = m3u8_rs::parse_media_playlist_res(&body) else {
            self.stats.error(Kind::Playlist, "unparsable".into());
            return out;
        };
        out.target = pl.target_duration as f64;
        out.last_segment = pl.segments.last().map_or(0.0, |s| f64::from(s.duration));
        let first_seq = pl.media_sequence;
        let last_seq = first_seq + pl.segments.len() as u64;
        if moved {
            track.next_seq = Some(first_seq);
        }
        if track.next_seq.is_none() {
            // Not started: start once the playlist is HOLD-BACK long.
            track.next_seq = start_seq(&pl);
            track.start = track.next_seq;
        }
        let Some(next) = track.next_seq else {
            return out;
        };
        if !track.init_loaded
            && let Some(map) = pl.segments.iter().find_map(|s| s.map.as_ref())
            && let Ok(u) = track.url.join(&map.uri)
        {
            track.init_loaded = matches!(self.fetch(Kind::Init, &u).await, Fetch::Ok(_));
        }
        for seq in next.max(first_seq)..last_seq {
            if Instant::now() >= self.stop_at {
                break;
            }
            let seg = &pl.segments[(seq - first_seq) as usize];
            let Ok(u) = track.url.join(&seg.uri) else { continue };
            let start = Instant::now();
            if let Fetch::Ok(bytes) = self.fetch(Kind::Segment, &u).await {
                let secs = start.elapsed().as_secs_f64().max(1e-6);
                out.rate = Some(bytes.len() as f64 * 8.0 / secs);
                let seconds = f64::from(seg.duration).max(0.0);
                let end = seg
                    .program_date_time
                    .map(|p| SystemTime::from(p) + Duration::from_secs_f64(seconds));
                if let Some(since) = buffer.add(Instant::now(), track.index, seconds, end) {
                    self.stats.stall(self.id, since);
                }
            }
            track.next_seq = Some(seq + 1);
        }
        if track.next_seq < Some(first_seq) {
            // Fell out of the window: jump forward to the oldest segment left.
            track.next_seq = Some(first_seq);
        }
        out
    }
}

/// What one reload of a media playlist found.
struct Reload {
    changed: bool,
    target: f64,
    /// EXTINF of the playlist's last segment.
    last_segment: f64,
    /// Throughput of the last segment download, bit/s.
    rate: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playlist(durations: &[f64], server_control: &str) -> MediaPlaylist {
        let mut text =
            format!("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n{server_control}#EXT-X-MEDIA-SEQUENCE:10\n");
        for (i, d) in durations.iter().enumerate() {
            text += &format!("#EXTINF:{d:.3},\nseg{i}.m4s\n");
        }
        m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap()
    }

    #[test]
    fn starts_three_target_durations_from_the_end() {
        assert_eq!(start_seq(&playlist(&[2.0; 5], "")), Some(12));
        assert_eq!(start_seq(&playlist(&[2.0; 3], "")), Some(10));
        // Segments a little short of the target: one more segment back.
        assert_eq!(start_seq(&playlist(&[1.98; 5], "")), Some(11));
    }

    #[test]
    fn a_playlist_shorter_than_hold_back_is_not_started() {
        assert_eq!(start_seq(&playlist(&[2.0; 2], "")), None);
        assert_eq!(start_seq(&playlist(&[], "")), None);
    }

    #[test]
    fn server_control_hold_back_wins() {
        let pl = playlist(&[2.0; 5], "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=4.0\n");
        assert_eq!(hold_back(&pl), 4.0);
        assert_eq!(start_seq(&pl), Some(13));
    }

    #[test]
    fn reloads_wait_the_last_segment_or_half_a_target() {
        assert_eq!(reload_wait(true, 1.5, 2.0), Duration::from_secs_f64(1.5));
        assert_eq!(reload_wait(false, 1.5, 2.0), Duration::from_secs(1));
        assert_eq!(reload_wait(true, 0.0, 2.0), Duration::from_secs(2));
    }

    #[test]
    fn playback_stops_when_audio_runs_dry_even_with_video_buffered() {
        let t0 = Instant::now();
        let mut b = Buffer::new(true, t0);
        assert_eq!(b.add(t0, VIDEO, 4.0, None), None);
        assert!(!b.playing, "no audio yet");
        assert_eq!(b.add(t0, AUDIO, 1.9, None), None);
        assert!(b.playing);
        b.tick(t0 + Duration::from_secs_f64(1.95));
        assert!(!b.playing);
        // The stall began when audio ran out, not at the tick.
        let dry = t0 + Duration::from_millis(1900);
        let close = |a: Instant| a.max(dry) - a.min(dry) < Duration::from_micros(1);
        assert!(b.stalled_since.is_some_and(close), "{:?}", b.stalled_since);
        let since = b.add(t0 + Duration::from_secs(2), AUDIO, 2.0, None);
        assert!(since.is_some_and(close), "{since:?}");
        assert!(b.playing);
    }

    /// Stalls of a viewer that has `start` segments of 2 s at once and then
    /// one more every 2 s, each up to 3 s late (a playlist cached 0.5 s, a
    /// reload half a target late, a slow download).
    fn stalls(start: usize) -> usize {
        let t0 = Instant::now();
        let mut b = Buffer::new(false, t0);
        let mut stalls = 0;
        for _ in 0..start {
            stalls += usize::from(b.add(t0, VIDEO, 2.0, None).is_some());
        }
        for k in 1..60u32 {
            let late = f64::from((k * 7919) % 300) / 100.0;
            let at = t0 + Duration::from_secs_f64(2.0 * f64::from(k) + late);
            stalls += usize::from(b.add(at, VIDEO, 2.0, None).is_some());
        }
        stalls
    }

    #[test]
    fn a_viewer_started_at_hold_back_rides_out_late_segments() {
        assert_eq!(stalls(3), 0);
        // Started at the live edge (one segment), the same arrivals stall it
        // again and again, a little each time: the stalls issue 20 counted.
        assert_eq!(stalls(1), 3);
    }
}
