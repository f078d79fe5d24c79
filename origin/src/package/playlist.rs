//! The live media playlist of one rendition (RFC 8216bis, section 6.2.2).
//!
//! The model is segments made of parts: a segment is complete when its last
//! part is, and low-latency HLS will list the parts of the segment in
//! progress (EXT-X-PART) without changing this shape. Rules kept here:
//! - EXT-X-TARGETDURATION is fixed when the playlist is created and never
//!   changes; a segment whose rounded duration would exceed it is refused.
//! - The window lists at least three target durations of media.
//! - Every segment carries EXT-X-PROGRAM-DATE-TIME.
//! - A segment that leaves the window is handed back to the caller, which
//!   deletes it only after a grace period (players may still be fetching it).
//! - Once ended (EXT-X-ENDLIST), nothing more is added.
//! - EXTINF is printed in milliseconds at most (`1.963`, not the f32
//!   `1.9626666`): a segment's duration is whole AAC or video frames, and
//!   players need no more.

use chrono::{DateTime, Utc};
use m3u8_rs::{Map, MediaPlaylist as M3u8Media, MediaSegment};
use std::collections::VecDeque;
use std::time::{Duration, SystemTime};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum PlaylistError {
    #[error("segment of {0:?} exceeds the target duration of {1}s")]
    TooLong(Duration, u64),
    #[error("the playlist has ended")]
    Ended,
}

/// A chunk of a segment (a CMAF chunk; an LL-HLS partial segment later).
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub duration: Duration,
    /// Starts with a keyframe.
    pub independent: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number.
    pub sequence: u64,
    /// URI relative to the playlist, e.g. `42.m4s`.
    pub uri: String,
    /// Wall-clock time of the segment's first sample.
    pub program_date_time: SystemTime,
    pub parts: Vec<Part>,
}

impl Segment {
    pub fn duration(&self) -> Duration {
        self.parts.iter().map(|p| p.duration).sum()
    }
}

/// EXTINF's value: `d` rounded to the millisecond. m3u8-rs prints the f32 in
/// its shortest exact form, so a value rounded here prints at most three
/// decimals.
fn extinf(d: Duration) -> f32 {
    ((d.as_secs_f64() * 1000.0).round() / 1000.0) as f32
}

#[derive(Debug)]
pub struct MediaPlaylist {
    target_duration: u64,
    init_uri: String,
    segments: VecDeque<Segment>,
    ended: bool,
}

impl MediaPlaylist {
    /// `target` is the segment duration the encoder aims at (its GOP);
    /// EXT-X-TARGETDURATION is that rounded up to whole seconds.
    pub fn new(target: Duration, init_uri: &str) -> MediaPlaylist {
        MediaPlaylist {
            target_duration: target.as_secs_f64().ceil().max(1.0) as u64,
            init_uri: init_uri.to_string(),
            segments: VecDeque::new(),
            ended: false,
        }
    }

    pub fn target_duration(&self) -> u64 {
        self.target_duration
    }

    /// The sequence number the next segment must carry.
    pub fn next_sequence(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.sequence + 1)
    }

    /// Whether a segment lasting `d` may be listed: RFC 8216bis 4.4.3.1,
    /// EXTINF rounded to the nearest integer must not exceed the target
    /// duration. [`MediaPlaylist::push`] checks it too.
    pub fn accepts(&self, d: Duration) -> Result<(), PlaylistError> {
        if d.as_secs_f64().round() as u64 > self.target_duration {
            return Err(PlaylistError::TooLong(d, self.target_duration));
        }
        Ok(())
    }

    /// Appends a complete segment; returns the segments that left the window.
    pub fn push(&mut self, segment: Segment) -> Result<Vec<Segment>, PlaylistError> {
        if self.ended {
            return Err(PlaylistError::Ended);
        }
        self.accepts(segment.duration())?;
        self.segments.push_back(segment);
        let min_window = Duration::from_secs(3 * self.target_duration);
        let mut total: Duration = self.segments.iter().map(Segment::duration).sum();
        let mut left = vec![];
        while let Some(oldest) = self.segments.front() {
            if total.saturating_sub(oldest.duration()) < min_window {
                break;
            }
            total -= oldest.duration();
            left.extend(self.segments.pop_front());
        }
        Ok(left)
    }

    /// Marks the playlist ended (EXT-X-ENDLIST).
    pub fn end(&mut self) {
        self.ended = true;
    }

    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter()
    }

    /// The playlist's text.
    pub fn render(&self) -> String {
        let map = Map {
            uri: self.init_uri.clone(),
            ..Default::default()
        };
        let segments = self
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| MediaSegment {
                uri: s.uri.clone(),
                duration: extinf(s.duration()),
                // EXT-X-MAP once, before the first segment: it applies to all.
                map: (i == 0).then(|| map.clone()),
                program_date_time: Some(DateTime::<Utc>::from(s.program_date_time).fixed_offset()),
                ..Default::default()
            })
            .collect();
        let playlist = M3u8Media {
            version: Some(7),
            target_duration: self.target_duration,
            media_sequence: self.segments.front().map_or(0, |s| s.sequence),
            segments,
            end_list: self.ended,
            independent_segments: true,
            ..Default::default()
        };
        let mut out = vec![];
        playlist.write_to(&mut out).expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("m3u8-rs writes UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u64, secs: f64) -> Segment {
        Segment {
            sequence: seq,
            uri: format!("{seq}.m4s"),
            program_date_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seq * 2),
            parts: vec![
                Part {
                    duration: Duration::from_secs_f64(secs / 2.0),
                    independent: true,
                },
                Part {
                    duration: Duration::from_secs_f64(secs / 2.0),
                    independent: false,
                },
            ],
        }
    }

    #[test]
    fn window_holds_at_least_three_target_durations() {
        let mut p = MediaPlaylist::new(Duration::from_secs(2), "init.mp4");
        let mut left = vec![];
        for n in 0..10 {
            assert_eq!(p.next_sequence(), n);
            left.extend(p.push(seg(n, 2.0)).unwrap());
            let listed: Duration = p.segments().map(Segment::duration).sum();
            if n >= 2 {
                assert!(listed >= Duration::from_secs(6), "window {listed:?} after {n}");
            }
            assert!(listed <= Duration::from_secs(8));
        }
        assert_eq!(
            left.iter().map(|s| s.sequence).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6]
        );
    }

    #[test]
    fn renders_a_valid_live_playlist_then_ends() {
        let mut p = MediaPlaylist::new(Duration::from_secs(2), "init.mp4");
        for n in 0..5 {
            p.push(seg(n, 2.0)).unwrap();
        }
        let text = p.render();
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.target_duration, 2);
        assert_eq!(parsed.media_sequence, 2);
        assert!(parsed.independent_segments && !parsed.end_list);
        assert_eq!(parsed.segments.len(), 3);
        assert!(parsed.segments.iter().all(|s| s.program_date_time.is_some()));
        assert_eq!(parsed.segments[0].map.as_ref().unwrap().uri, "init.mp4");
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24"), "{text}");

        p.end();
        assert!(
            m3u8_rs::parse_media_playlist_res(p.render().as_bytes())
                .unwrap()
                .end_list
        );
        assert_eq!(p.push(seg(5, 2.0)), Err(PlaylistError::Ended));
    }

    #[test]
    fn extinf_has_at_most_three_decimals() {
        let mut p = MediaPlaylist::new(Duration::from_secs(2), "init.mp4");
        // 92 AAC frames at 48 kHz, 90 at 44.1 kHz, one frame, two video seconds.
        for (n, d) in [
            Duration::from_nanos(92 * 1024 * 1_000_000_000 / 48_000),
            Duration::from_nanos(90 * 1024 * 1_000_000_000 / 44_100),
            Duration::from_nanos(21_333_333),
            Duration::from_secs(2),
        ]
        .into_iter()
        .enumerate()
        {
            let mut s = seg(n as u64, 0.0);
            s.parts = vec![Part {
                duration: d,
                independent: true,
            }];
            p.push(s).unwrap();
        }
        let text = p.render();
        let extinf: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .map(|l| l.trim_end_matches(','))
            .collect();
        assert_eq!(extinf, ["1.963", "2.09", "0.021", "2"], "{text}");
    }

    #[test]
    fn target_duration_is_fixed_and_enforced() {
        let mut p = MediaPlaylist::new(Duration::from_millis(1500), "init.mp4");
        assert_eq!(p.target_duration(), 2);
        assert!(p.push(seg(0, 2.4)).is_ok(), "2.4 rounds to 2");
        assert_eq!(
            p.push(seg(1, 2.6)),
            Err(PlaylistError::TooLong(Duration::from_secs_f64(2.6), 2))
        );
    }
}
