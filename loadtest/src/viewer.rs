//! One simulated viewer: what an HLS player does, minus decoding.
//!
//! - Loads the multivariant playlist and picks a variant (and its audio
//!   rendition, if any).
//! - Reloads the live media playlists as RFC 8216bis 6.3.4 says: one target
//!   duration after a reload that changed the playlist, half of one after an
//!   unchanged reload.
//! - Starts three segments from the live edge, downloads new segments in
//!   order, and keeps a play-out buffer: media downloaded minus time played.
//!   When the buffer runs dry the viewer stalls until a segment arrives.
//! - Live latency is wall-clock time minus the EXT-X-PROGRAM-DATE-TIME of
//!   the media being played.

use crate::settings::Pick;
use crate::stats::{Kind, Stats};
use m3u8_rs::{MasterPlaylist, MediaPlaylist};
use rand::Rng;
use reqwest::{Client, Url};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Segments behind the live edge a player starts at.
const START_BEHIND: usize = 3;

pub struct Viewer {
    /// The viewer's number (join order), as the stall timeline shows it.
    pub id: u32,
    pub client: Client,
    pub url: Url,
    pub pick: Pick,
    pub stats: Arc<Stats>,
    pub stop_at: Instant,
}

/// A media playlist being followed.
struct Track {
    url: Url,
    next_seq: Option<u64>,
    init_loaded: bool,
    last_text: String,
}

impl Track {
    fn new(url: Url) -> Track {
        Track {
            url,
            next_seq: None,
            init_loaded: false,
            last_text: String::new(),
        }
    }
}

/// The play-out buffer of the video track.
struct Buffer {
    viewer: u32,
    seconds: f64,
    playing: bool,
    last_tick: Instant,
    stalled_since: Option<Instant>,
    /// PDT of the end of the newest downloaded segment.
    edge_pdt: Option<SystemTime>,
}

impl Buffer {
    fn tick(&mut self, stats: &Stats) {
        let now = Instant::now();
        if self.playing {
            self.seconds -= (now - self.last_tick).as_secs_f64();
            if self.seconds <= 0.0 {
                // Ran dry at now + seconds (seconds is negative).
                let dry_for = Duration::from_secs_f64(-self.seconds);
                self.stalled_since = Some(now - dry_for.min(now - self.last_tick));
                self.seconds = 0.0;
                self.playing = false;
            }
        }
        self.last_tick = now;
        if self.playing
            && let Some(edge) = self.edge_pdt
        {
            let playhead = edge - Duration::from_secs_f64(self.seconds);
            if let Ok(lat) = SystemTime::now().duration_since(playhead) {
                stats.latency(lat);
            }
        }
    }

    fn add(&mut self, seconds: f64, pdt_end: Option<SystemTime>, stats: &Stats) {
        self.tick(stats);
        self.seconds += seconds;
        if pdt_end.is_some() {
            self.edge_pdt = pdt_end;
        }
        if !self.playing && self.seconds > 0.0 {
            if let Some(since) = self.stalled_since.take() {
                stats.stall(self.viewer, since);
            }
            self.playing = true;
        }
    }
}

enum Fetch {
    Ok(Vec<u8>),
    Failed,
}

impl Viewer {
    async fn fetch(&self, kind: Kind, url: &Url) -> Fetch {
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
                return Fetch::Failed;
            }
        };
        let ttfb = start.elapsed();
        let status = resp.status();
        let cache = resp
            .headers()
            .get("x-cache-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !status.is_success() {
            self.stats.error(kind, format!("http {}", status.as_u16()));
            return Fetch::Failed;
        }
        match resp.bytes().await {
            Ok(body) => {
                self.stats.response(
                    kind,
                    url.as_str(),
                    ttfb,
                    start.elapsed(),
                    body.len() as u64,
                    cache.as_deref(),
                );
                Fetch::Ok(body.to_vec())
            }
            Err(_) => {
                self.stats.error(kind, "body".into());
                Fetch::Failed
            }
        }
    }

    async fn sleep_until_or_stop(&self, d: Duration) -> bool {
        let until = (Instant::now() + d).min(self.stop_at);
        tokio::time::sleep_until(until.into()).await;
        Instant::now() < self.stop_at
    }

    fn choose<'a>(
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

    pub async fn run(self) {
        // The multivariant playlist, retried until it loads.
        let master = loop {
            match self.fetch(Kind::Multivariant, &self.url).await {
                Fetch::Ok(body) => match m3u8_rs::parse_master_playlist_res(&body) {
                    Ok(m) if !m.variants.is_empty() => break m,
                    _ => self.stats.error(Kind::Multivariant, "unparsable".into()),
                },
                Fetch::Failed => {}
            }
            if !self.sleep_until_or_stop(Duration::from_secs(1)).await {
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
        let mut video = Track::new(video_url);
        let mut audio = audio_url.map(Track::new);
        let mut buffer = Buffer {
            viewer: self.id,
            seconds: 0.0,
            playing: false,
            last_tick: Instant::now(),
            stalled_since: None,
            edge_pdt: None,
        };
        let mut target = 2.0f64;
        while Instant::now() < self.stop_at {
            let (changed, td, rate) = self.follow(&mut video, Some(&mut buffer)).await;
            if let Some(a) = audio.as_mut() {
                self.follow(a, None).await;
            }
            if td > 0.0 {
                target = td;
            }
            if self.pick == Pick::Adaptive
                && let Some(bps) = rate
                && let Some(next) = self.choose(&master, Some(bps))
                && next.uri != variant.uri
                && let Ok(u) = self.url.join(&next.uri)
            {
                variant = next;
                video = Track::new(u);
            }
            buffer.tick(&self.stats);
            let wait = if changed { target } else { target / 2.0 };
            if !self.sleep_until_or_stop(Duration::from_secs_f64(wait)).await {
                break;
            }
        }
        // A stall still going on when the run ends counts too: an edge that
        // fails near the end must not read as a clean run.
        buffer.tick(&self.stats);
        if let Some(since) = buffer.stalled_since.take() {
            self.stats.stall(self.id, since);
        }
    }

    /// Reloads a media playlist and downloads its new segments. Returns
    /// (playlist changed, target duration, measured throughput in bit/s).
    async fn follow(&self, track: &mut Track, mut buffer: Option<&mut Buffer>) -> (bool, f64, Option<f64>) {
        let Fetch::Ok(body) = self.fetch(Kind::Playlist, &track.url).await else {
            return (false, 0.0, None);
        };
        let text = String::from_utf8_lossy(&body).into_owned();
        let changed = text != track.last_text;
        track.last_text = text;
        let Ok(pl): Result<MediaPlaylist, _> = m3u8_rs::parse_media_playlist_res(&body) else {
            self.stats.error(Kind::Playlist, "unparsable".into());
            return (false, 0.0, None);
        };
        let td = pl.target_duration as f64;
        if !track.init_loaded
            && let Some(map) = pl.segments.iter().find_map(|s| s.map.as_ref())
            && let Ok(u) = track.url.join(&map.uri)
        {
            track.init_loaded = matches!(self.fetch(Kind::Init, &u).await, Fetch::Ok(_));
        }
        let first_seq = pl.media_sequence;
        let last_seq = first_seq + pl.segments.len() as u64;
        let next = *track
            .next_seq
            .get_or_insert(last_seq.saturating_sub(START_BEHIND as u64).max(first_seq));
        let mut rate = None;
        for seq in next.max(first_seq)..last_seq {
            if Instant::now() >= self.stop_at {
                break;
            }
            let seg = &pl.segments[(seq - first_seq) as usize];
            let Ok(u) = track.url.join(&seg.uri) else { continue };
            let start = Instant::now();
            if let Fetch::Ok(bytes) = self.fetch(Kind::Segment, &u).await {
                let secs = start.elapsed().as_secs_f64().max(1e-6);
                rate = Some(bytes.len() as f64 * 8.0 / secs);
                if let Some(b) = buffer.as_deref_mut() {
                    let end = seg
                        .program_date_time
                        .map(|p| SystemTime::from(p) + Duration::from_secs_f64(f64::from(seg.duration).max(0.0)));
                    b.add(f64::from(seg.duration), end, &self.stats);
                }
            }
            track.next_seq = Some(seq + 1);
        }
        if track.next_seq < Some(first_seq) {
            // Fell out of the window: jump back to the live edge.
            track.next_seq = Some(last_seq.saturating_sub(START_BEHIND as u64));
        }
        (changed, td, rate)
    }
}
