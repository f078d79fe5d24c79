//! Where a publish's segments start, shared by its renditions, so that the
//! same media sequence number covers the same time in every rendition.
//!
//! Video decides. Its `cmafmux` (automatic splitting) ends a fragment at the
//! last keyframe at or before fragment start + segment duration (or at the
//! next keyframe when a GOP is longer than that); transcoded rungs have a
//! keyframe exactly there, passthrough has the source's keyframes.
//! [`Cuts::video_frame`] replays that rule on the frames entering the
//! reference video rendition's muxer and records the cut running times.
//!
//! The audio `cmafmux` runs with `manual-split`: [`Cuts::audio_frame`] says
//! whether an AAC frame must start a new fragment, which it must when its
//! start is the nearest to a video cut (within half a frame). Cutting on
//! frames never drops or restamps a sample; only audio before video's first
//! frame (nearer to an earlier time than to it: the source encoder's priming
//! frame, typically) is left out, so segment 0 starts with video in every
//! rendition. Audio usually reaches its muxer
//! before the video of the same instant (video encoding is slower), so an
//! audio frame near a possible cut waits until video has decided; the wait
//! is bounded, and without video (none, failed, or stalled beyond
//! [`VIDEO_WAIT`]) audio cuts on its own grid of segment durations.
//!
//! Low-latency HLS: video muxers run with `manual-split` too, because
//! `cmafmux`'s own `chunk-duration` mode extends a fragment past its
//! keyframe when a chunk boundary falls on the fragment's end (parts of a
//! segment then start without a keyframe). [`Splitter`] decides, frame by
//! frame, where each video muxer starts a fragment (the first keyframe at
//! least a segment duration after the last) and a part (before the frame
//! that would take the part past its target); the reference rendition
//! reports its fragment starts with [`Cuts::video_cut`] instead of
//! [`Cuts::video_frame`], so audio follows the same cuts. Audio parts are
//! cut by the same target at AAC frames (in `transcode`).
//!
//! Hand-written because `cmafmux` cuts each muxer on its own timeline: with
//! one muxer per rendition (CMAF wants a track per file) nothing else aligns
//! an audio muxer to a video one.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest an audio frame waits for video to reach it before audio cuts on
/// its own grid.
pub const VIDEO_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
struct State {
    /// Video cuts audio has not reached yet (running times, ascending).
    pending: VecDeque<Duration>,
    /// The last video cut decided (the start of the open video segment).
    last_cut: Option<Duration>,
    /// A keyframe at or before `last_cut + segment`: the next cut unless a
    /// later keyframe, still before that time, replaces it.
    candidate: Option<Duration>,
    /// The latest running time video has reached.
    watermark: Option<Duration>,
    video_ended: bool,
    /// Video did not come or stopped: audio cuts on its own grid.
    video_absent: bool,
    /// Start of the open audio segment; `None` before the first frame.
    audio_start: Option<Duration>,
    /// Video cuts audio has passed. The first (video's first keyframe) opens
    /// segment 0: audio before it belongs to segment 0 too.
    consumed: u64,
}

impl State {
    /// Every cut at or before the returned time is in `pending` (or was
    /// consumed): later cuts can only come after it.
    fn decided_until(&self) -> Option<Duration> {
        if self.video_ended {
            return Some(Duration::MAX);
        }
        self.candidate.or(self.watermark)
    }
}

/// What the audio muxer does with an AAC frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCut {
    /// Into the open segment.
    Keep,
    /// First frame of a new segment (a split-now event before it).
    Split,
    /// Before video's first frame, nearer to it than to the first cut: left
    /// out, so segment 0 starts with video too.
    BeforeVideo,
}

/// The cut points of one publish (see the module doc).
#[derive(Debug)]
pub struct Cuts {
    segment: Duration,
    state: Mutex<State>,
    changed: Condvar,
}

impl Cuts {
    /// `segment`: the target segment duration (the muxers' fragment duration).
    pub fn new(segment: Duration) -> Cuts {
        Cuts {
            segment,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    /// A frame entering the reference video rendition's muxer, at running
    /// time `rt`, in decoding order.
    pub fn video_frame(&self, rt: Duration, keyframe: bool) {
        let mut st = self.state.lock().expect("cuts lock");
        if st.last_cut.is_none() && !keyframe {
            // cmafmux drops what comes before the first keyframe.
            return;
        }
        st.watermark = Some(st.watermark.map_or(rt, |w| w.max(rt)));
        match st.last_cut {
            None => {
                st.last_cut = Some(rt);
                st.pending.push_back(rt);
            }
            Some(last) => {
                let end = last + self.segment;
                if rt > end
                    && let Some(c) = st.candidate.take()
                {
                    st.last_cut = Some(c);
                    st.pending.push_back(c);
                }
                let last = st.last_cut.unwrap_or(last);
                if keyframe && rt > last {
                    if rt <= last + self.segment {
                        st.candidate = Some(rt);
                    } else {
                        // A GOP longer than a segment: the fragment ends at
                        // the next keyframe.
                        st.last_cut = Some(rt);
                        st.pending.push_back(rt);
                    }
                }
            }
        }
        drop(st);
        self.changed.notify_all();
    }

    /// Low-latency: a frame entering the reference video rendition's
    /// muxer at running time `rt`, which [`Splitter`] made the start of a
    /// fragment when `cut` (the first keyframe always is).
    pub fn video_cut(&self, rt: Duration, cut: bool) {
        let mut st = self.state.lock().expect("cuts lock");
        if st.last_cut.is_none() && !cut {
            return;
        }
        st.watermark = Some(st.watermark.map_or(rt, |w| w.max(rt)));
        if cut {
            st.last_cut = Some(rt);
            st.pending.push_back(rt);
        }
        drop(st);
        self.changed.notify_all();
    }

    /// The reference video rendition ended: its last candidate is not a cut
    /// (the fragment is drained at EOS), and audio waits no more.
    pub fn video_ended(&self) {
        self.state.lock().expect("cuts lock").video_ended = true;
        self.changed.notify_all();
    }

    /// An AAC frame entering the audio muxer, starting at running time `rt`
    /// and lasting `frame`: what to do with it. May wait (up to
    /// [`VIDEO_WAIT`]) for video to decide.
    pub fn audio_frame(&self, rt: Duration, frame: Duration) -> AudioCut {
        let horizon = rt + frame / 2;
        let mut st = self.state.lock().expect("cuts lock");
        let mut deadline = None;
        loop {
            if st.video_absent {
                return self.own_grid(&mut st, rt, horizon);
            }
            if st.consumed == 0 && st.audio_start.is_none() && st.pending.front().is_some_and(|c0| horizon < *c0) {
                // Nearer to a time before video's first frame than to it:
                // no segment covers it (typically the encoder's priming frame).
                return AudioCut::BeforeVideo;
            }
            if st.pending.front().is_some_and(|c| *c <= horizon) {
                let split = st.consumed > 0 && st.audio_start.is_some();
                while st.pending.front().is_some_and(|c| *c <= horizon) {
                    st.pending.pop_front();
                    st.consumed += 1;
                }
                st.audio_start = Some(rt);
                // Video's first cut opens segment 0, as does audio's first frame.
                return if split { AudioCut::Split } else { AudioCut::Keep };
            }
            if st.decided_until().is_some_and(|d| d > horizon) {
                st.audio_start.get_or_insert(rt);
                return AudioCut::Keep;
            }
            let now = Instant::now();
            let until = *deadline.get_or_insert(now + VIDEO_WAIT);
            if now >= until {
                tracing::warn!(
                    waited = ?VIDEO_WAIT,
                    "video did not reach the audio's time: audio segments are cut on their own"
                );
                st.video_absent = true;
                continue;
            }
            st = self.changed.wait_timeout(st, until - now).expect("cuts lock").0;
        }
    }

    /// Cuts without video: every segment duration from the last cut.
    fn own_grid(&self, st: &mut State, rt: Duration, horizon: Duration) -> AudioCut {
        match st.audio_start {
            None => {
                st.audio_start = Some(rt);
                AudioCut::Keep
            }
            Some(start) if start + self.segment <= horizon => {
                st.audio_start = Some(rt);
                AudioCut::Split
            }
            Some(_) => AudioCut::Keep,
        }
    }
}

/// Where a low-latency video muxer splits (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The frame goes into the part in progress.
    None,
    /// The frame starts a new part of the segment in progress.
    Part,
    /// The frame (a keyframe) starts a new segment; for the first keyframe
    /// no event is needed, the muxer starts there.
    Segment { first: bool },
    /// Before the first keyframe: the muxer drops it.
    BeforeKeyframe,
}

/// One low-latency video muxer's splitting state.
#[derive(Debug)]
pub struct Splitter {
    segment: Duration,
    part_target: Duration,
    segment_start: Option<Duration>,
    part_start: Duration,
}

/// Slack on time comparisons: frame times are rounded to the nanosecond,
/// and a keyframe a hair before a segment's end still starts the next.
const SLACK: Duration = Duration::from_millis(2);

impl Splitter {
    pub fn new(segment: Duration, part_target: Duration) -> Splitter {
        Splitter {
            segment,
            part_target,
            segment_start: None,
            part_start: Duration::ZERO,
        }
    }

    /// A frame at running time `rt` lasting `frame`.
    pub fn frame(&mut self, rt: Duration, frame: Duration, keyframe: bool) -> Split {
        let Some(start) = self.segment_start else {
            if !keyframe {
                return Split::BeforeKeyframe;
            }
            self.segment_start = Some(rt);
            self.part_start = rt;
            return Split::Segment { first: true };
        };
        if keyframe && rt + SLACK >= start + self.segment {
            self.segment_start = Some(rt);
            self.part_start = rt;
            return Split::Segment { first: false };
        }
        if rt > self.part_start && rt + frame > self.part_start + self.part_target + SLACK / 4 {
            self.part_start = rt;
            return Split::Part;
        }
        Split::None
    }
}

#[cfg(test)]
mod splitter_tests {
    use super::*;

    #[test]
    fn parts_of_whole_frames_within_the_target_and_segments_at_keyframes() {
        // 15 fps, keyframe every 15 frames, 1 s segments, 334 ms parts.
        let mut s = Splitter::new(Duration::from_secs(1), Duration::from_millis(334));
        let frame = Duration::from_nanos(66_666_667);
        let mut splits = vec![];
        for i in 0..46u64 {
            let rt = Duration::from_nanos(i * 1_000_000_000 / 15);
            match s.frame(rt, frame, i % 15 == 0) {
                Split::None => {}
                other => splits.push((i, other)),
            }
        }
        assert_eq!(
            splits,
            [
                (0, Split::Segment { first: true }),
                (5, Split::Part),
                (10, Split::Part),
                (15, Split::Segment { first: false }),
                (20, Split::Part),
                (25, Split::Part),
                (30, Split::Segment { first: false }),
                (35, Split::Part),
                (40, Split::Part),
                (45, Split::Segment { first: false }),
            ]
        );
        // Before the first keyframe, frames are dropped; a late keyframe
        // (a long source GOP) ends the segment only when it comes.
        let mut s = Splitter::new(Duration::from_secs(1), Duration::from_millis(334));
        assert_eq!(s.frame(Duration::ZERO, frame, false), Split::BeforeKeyframe);
        assert_eq!(s.frame(frame, frame, true), Split::Segment { first: true });
        assert_eq!(s.frame(Duration::from_millis(2100), frame, false), Split::Part);
        assert_eq!(
            s.frame(Duration::from_millis(2200), frame, true),
            Split::Segment { first: false }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_nanos(21_333_333);

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Feeds video at `fps` with a keyframe every `gop` frames for `secs`,
    /// then audio frames at 48 kHz; returns the audio frame indices that
    /// start a fragment.
    fn audio_splits(cuts: &Cuts, secs: u64) -> Vec<(u64, Duration)> {
        let mut splits = vec![];
        let frames = secs * 48_000 / 1024;
        for i in 0..frames {
            let rt = Duration::from_nanos(i * 1024 * 1_000_000_000 / 48_000);
            if cuts.audio_frame(rt, FRAME) == AudioCut::Split {
                splits.push((i, rt));
            }
        }
        splits
    }

    #[test]
    fn audio_cuts_at_the_frame_nearest_each_video_cut_without_drift() {
        let cuts = Cuts::new(Duration::from_secs(1));
        // 15 fps, keyframe every 15 frames, 600 s.
        for f in 0..(15 * 600 + 2) {
            cuts.video_frame(Duration::from_nanos(f * 1_000_000_000 / 15), f % 15 == 0);
        }
        cuts.video_ended();
        let splits = audio_splits(&cuts, 600);
        assert_eq!(splits.len(), 599, "one split per video cut after the first");
        for (k, (_, rt)) in splits.iter().enumerate() {
            let cut = Duration::from_secs(k as u64 + 1);
            let off = rt.as_secs_f64() - cut.as_secs_f64();
            assert!(off.abs() <= FRAME.as_secs_f64() / 2.0 + 1e-9, "cut {k}: {off}");
        }
    }

    #[test]
    fn passthrough_gops_follow_cmafmux_rule() {
        let cuts = Cuts::new(Duration::from_secs(1));
        // Keyframes every 0.8 s: cmafmux ends a fragment at the last keyframe
        // at or before start + 1 s, so fragments are 0.8 s each.
        for f in 0..(25 * 10) {
            cuts.video_frame(ms(f * 40), f % 20 == 0);
        }
        // Keyframes every 2.4 s from 10 s: fragments end at the next keyframe.
        for f in (25 * 10)..(25 * 20) {
            cuts.video_frame(ms(f * 40), (f - 250) % 60 == 0);
        }
        let st = cuts.state.lock().unwrap();
        let got: Vec<u128> = st.pending.iter().map(|d| d.as_millis()).collect();
        assert_eq!(&got[..4], [0, 800, 1600, 2400]);
        assert!(
            got.contains(&10_000) && got.contains(&12_400) && got.contains(&14_800),
            "{got:?}"
        );
    }

    #[test]
    fn audio_waits_for_video_then_gives_up_on_it() {
        let cuts = std::sync::Arc::new(Cuts::new(Duration::from_secs(1)));
        let video = {
            let cuts = cuts.clone();
            std::thread::spawn(move || {
                for f in 0..31u64 {
                    std::thread::sleep(Duration::from_millis(2));
                    cuts.video_frame(Duration::from_nanos(f * 1_000_000_000 / 15), f % 15 == 0);
                }
            })
        };
        // Audio runs ahead; it waits for the video thread instead of guessing.
        let splits = audio_splits(&cuts, 2);
        video.join().unwrap();
        assert_eq!(splits.len(), 1);
        assert!((splits[0].1.as_secs_f64() - 1.0).abs() <= FRAME.as_secs_f64() / 2.0);
        // Video stopped at 2 s: after the wait, audio cuts every second alone.
        let started = Instant::now();
        assert_eq!(cuts.audio_frame(ms(2_990), FRAME), AudioCut::Split, "a segment is due");
        assert!(started.elapsed() >= VIDEO_WAIT);
        assert_eq!(cuts.audio_frame(ms(3_500), FRAME), AudioCut::Keep);
        assert_eq!(cuts.audio_frame(ms(4_000), FRAME), AudioCut::Split);
    }

    #[test]
    fn audio_before_video_is_left_out_then_segment_zero_starts_with_video() {
        let cuts = Cuts::new(Duration::from_secs(1));
        // Video starts one AAC frame after audio (the encoder's priming).
        for f in 0..20u64 {
            cuts.video_frame(ms(21) + ms(f * 40), f % 25 == 0);
        }
        assert_eq!(cuts.audio_frame(ms(0), FRAME), AudioCut::BeforeVideo);
        assert_eq!(cuts.audio_frame(ms(21), FRAME), AudioCut::Keep);
        assert_eq!(cuts.audio_frame(ms(43), FRAME), AudioCut::Keep);
    }
}
