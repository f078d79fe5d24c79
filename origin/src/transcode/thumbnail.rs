//! Live thumbnails: `{stream}/thumbnail.jpg` (at most [`FULL_WIDTH`] wide)
//! and `{stream}/thumbnail-small.jpg` ([`SMALL_WIDTH`]), remade from the
//! keyframe that starts each segment of one rendition: the first video rung
//! for a transcoding profile, the source for `passthrough`.
//!
//! Why keyframes of an encoded rendition: a keyframe decodes on its own, so
//! one picture per segment costs one intra-frame decode, whatever the
//! profile, and passthrough (which decodes nothing else) pays no more. The
//! alternative for transcoding profiles, taking the decoded source frame at
//! the segment cut from the decoder's tee, saves that decode (a few ms per
//! segment, `docs/operations.md` has the figures) but has to guess the cut
//! before the muxer decides it, and does not exist for passthrough.
//!
//! ```text
//! rendition's encoded video ! (pad probe: one keyframe per segment) --> bounded hand-off (1)
//!   thumbnail thread: [pad] ! h264parse ! avdec_h264 ! videoscale ! FULL ! videoconvert ! RGB ! tee
//!                       tee. ! jpegenc ! appsink                        -> thumbnail.jpg
//!                       tee. ! videoscale ! SMALL ! jpegenc ! appsink   -> thumbnail-small.jpg
//! ```
//!
//! The decoding pipeline is a separate pipeline on a thread of its own, fed
//! from our own pad: nothing in it can stop the stream. A keyframe that
//! comes while the previous one is still being made is skipped, an error
//! rebuilds the pipeline for the next keyframe; both are logged and counted
//! (`origin_thumbnail_failures_total`), and the stream goes on. The decoder
//! sees a key-units trick-mode segment: measured, a decoder fed only the
//! keyframes of a source with B-frames (two reordered frames) without it
//! gave no picture at all, holding each for frames that never come; with
//! it, each keyframe's picture comes out at once. A GAP event after each
//! keyframe asks for the same drain once more (`GstVideoDecoder` drains on
//! GAP in that mode).
//!
//! Files are replaced atomically ([`write_atomic`]); the last one stays when
//! the session ends and goes with the stream folder (the janitor removes a
//! stream's files once none of its sessions is left).

use crate::metrics::Metrics;
use crate::package::fsio::write_atomic;
use api_types::layout::{THUMBNAIL, THUMBNAIL_SMALL};
use gst::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Widest `thumbnail.jpg` (never wider than the rendition).
pub const FULL_WIDTH: u32 = 640;
/// Widest `thumbnail-small.jpg`.
pub const SMALL_WIDTH: u32 = 160;
/// How long the thread waits for a keyframe's pictures.
const DECODE_TIMEOUT: Duration = Duration::from_secs(2);

/// Fails when a GStreamer element thumbnails need is missing (call after
/// [`super::init`]).
pub fn check_elements() -> Result<(), super::TranscodeError> {
    for needed in [
        "h264parse",
        "avdec_h264",
        "videoscale",
        "videoconvert",
        "tee",
        "jpegenc",
    ] {
        if gst::ElementFactory::find(needed).is_none() {
            return Err(super::TranscodeError::Gst(format!(
                "GStreamer element {needed} is missing (run scripts/setup.sh, or start with --thumbnails false)"
            )));
        }
    }
    Ok(())
}

/// The origin's thumbnail service: whether thumbnails are made, and each
/// live stream's segment duration (the Cache-Control max-age of its
/// thumbnails).
pub struct Thumbnails {
    enabled: bool,
    metrics: Arc<Metrics>,
    /// The max-age of a stream that is not live here (its last thumbnail
    /// no longer changes; the default profile's segment duration).
    fallback: Duration,
    /// Stream -> (the live writer's number, its segment duration).
    segments: Mutex<HashMap<String, (u64, Duration)>>,
    /// Numbers writers, so that a publish ending late leaves its
    /// successor's entry alone.
    writers: AtomicU64,
}

impl Thumbnails {
    pub fn new(enabled: bool, metrics: Arc<Metrics>, fallback: Duration) -> Thumbnails {
        Thumbnails {
            enabled,
            metrics,
            fallback,
            segments: Mutex::default(),
            writers: AtomicU64::new(0),
        }
    }

    /// The Cache-Control max-age of `stream`'s thumbnails: its segment
    /// duration, in whole seconds (at least 1).
    pub fn max_age(&self, stream: &str) -> u64 {
        let segment = self
            .segments
            .lock()
            .expect("thumbnails lock")
            .get(stream)
            .map_or(self.fallback, |(_, segment)| *segment);
        segment.as_secs_f64().round().max(1.0) as u64
    }

    /// A writer for a publish of `stream` (files under `output_dir/stream`),
    /// cutting segments of `segment`; `None` when thumbnails are off.
    pub fn writer(self: &Arc<Self>, output_dir: &Path, stream: &str, segment: Duration) -> Option<ThumbnailWriter> {
        if !self.enabled {
            return None;
        }
        let id = self.writers.fetch_add(1, Ordering::Relaxed);
        self.segments
            .lock()
            .expect("thumbnails lock")
            .insert(stream.to_string(), (id, segment));
        let (tx, rx) = sync_channel::<Job>(1);
        let out = Out {
            dir: output_dir.join(stream),
            stream: stream.to_string(),
            service: self.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("thumbs-{stream}"))
            .spawn(move || run(rx, out));
        if let Err(e) = spawned {
            tracing::warn!(%stream, error = %e, "cannot start the thumbnail thread; no thumbnails");
            return None;
        }
        Some(ThumbnailWriter {
            tx,
            stream: stream.to_string(),
            id,
            segment,
            last: Mutex::new(None),
            service: self.clone(),
        })
    }

    fn failed(&self, reason: &'static str) {
        self.metrics.thumbnail_failures.with_label_values(&[reason]).inc();
    }
}

/// A keyframe to make thumbnails of.
struct Job {
    caps: gst::Caps,
    buffer: gst::Buffer,
}

/// One publish's thumbnails: takes keyframes from the rendition's pad, hands
/// them to the publish's thumbnail thread. Dropping it ends the thread.
pub struct ThumbnailWriter {
    tx: SyncSender<Job>,
    stream: String,
    /// This writer's number in [`Thumbnails`].
    id: u64,
    segment: Duration,
    /// PTS of the last keyframe taken.
    last: Mutex<Option<gst::ClockTime>>,
    service: Arc<Thumbnails>,
}

impl ThumbnailWriter {
    /// Watches the encoded H.264 (AVC, access units) leaving `pad`.
    pub fn tap(self: &Arc<Self>, pad: &gst::Pad) {
        let this = self.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                this.frame(pad, buffer);
            }
            gst::PadProbeReturn::Ok
        });
    }

    fn frame(&self, pad: &gst::Pad, buffer: &gst::Buffer) {
        let flags = buffer.flags();
        // (A keyframe may carry the HEADER flag too: its SPS and PPS.)
        if flags.contains(gst::BufferFlags::DELTA_UNIT) {
            return;
        }
        let Some(pts) = buffer.pts() else { return };
        {
            // One keyframe per segment: a source with shorter GOPs than
            // the segment (passthrough) gives more keyframes than segments.
            // The muxer cuts at the last keyframe at or before a segment's
            // end, so a keyframe a quarter segment short of it still starts one.
            let mut last = self.last.lock().expect("thumbnail lock");
            let (pts_ns, segment) = (pts.nseconds(), self.segment.as_nanos() as u64);
            if let Some(l) = *last
                && pts_ns >= l.nseconds()
                && pts_ns + segment / 4 < l.nseconds() + segment
            {
                return;
            }
            *last = Some(pts);
        }
        let Some(caps) = pad.current_caps() else { return };
        match self.tx.try_send(Job {
            caps,
            buffer: buffer.clone(),
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::debug!(stream = %self.stream, "thumbnail still being made; keyframe skipped");
                self.service.failed("busy");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl Drop for ThumbnailWriter {
    fn drop(&mut self) {
        // The thumbnail stays on disk; its max-age falls back once the
        // stream is not live here.
        let mut segments = self.service.segments.lock().expect("thumbnails lock");
        if segments.get(&self.stream).is_some_and(|(id, _)| *id == self.id) {
            segments.remove(&self.stream);
        }
    }
}

/// Where a thread's thumbnails go.
struct Out {
    dir: PathBuf,
    stream: String,
    service: Arc<Thumbnails>,
}

/// The thumbnail thread: one keyframe at a time until the writer is dropped.
fn run(rx: Receiver<Job>, out: Out) {
    let mut decoder: Option<Decoder> = None;
    while let Ok(job) = rx.recv() {
        if decoder.as_ref().is_some_and(|d| d.caps != job.caps) {
            decoder = None;
        }
        let started = Instant::now();
        let made = match decoder.take() {
            Some(d) => Ok(d),
            None => Decoder::new(&job.caps),
        }
        .and_then(|d| d.pictures(job.buffer).map(|p| (d, p)));
        let (d, (full, small)) = match made {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(stream = %out.stream, error = %e, "cannot make a thumbnail; the stream goes on");
                out.service.failed("decode");
                continue;
            }
        };
        decoder = Some(d);
        let metrics = &out.service.metrics;
        metrics.thumbnail_seconds.observe(started.elapsed().as_secs_f64());
        for (name, size, bytes) in [(THUMBNAIL, "full", full), (THUMBNAIL_SMALL, "small", small)] {
            match write_atomic(&out.dir.join(name), &bytes) {
                Ok(()) => metrics.thumbnails_written.with_label_values(&[size]).inc(),
                Err(e) => {
                    tracing::warn!(stream = %out.stream, error = %e, "cannot write a thumbnail");
                    out.service.failed("write");
                }
            }
        }
    }
}

/// `(width, height)` at most `max_width` wide, square pixels, aspect kept,
/// never upscaled, even sizes (chroma subsampling).
pub fn fit(width: u32, height: u32, par: (i32, i32), max_width: u32) -> (u32, u32) {
    let (pn, pd) = if par.0 > 0 && par.1 > 0 {
        (par.0 as u64, par.1 as u64)
    } else {
        (1, 1)
    };
    let display_w = (width as u64 * pn / pd).max(1);
    let w = display_w.min(max_width as u64).max(2);
    let h = (height as u64 * w + display_w / 2) / display_w;
    let even = |v: u64| ((v / 2) * 2).max(2) as u32;
    (even(w), even(h))
}

/// A persistent decode pipeline for one set of caps.
struct Decoder {
    caps: gst::Caps,
    pipeline: gst::Pipeline,
    src: gst::Pad,
    full: gst_app::AppSink,
    small: gst_app::AppSink,
}

fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| format!("cannot create {factory}: {e}"))
}

fn sized(w: u32, h: u32) -> Result<gst::Element, String> {
    let f = make("capsfilter")?;
    f.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("width", w as i32)
            .field("height", h as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    );
    Ok(f)
}

fn sink() -> gst_app::AppSink {
    let s = gst_app::AppSink::builder()
        .sync(false)
        .max_buffers(2)
        .drop(true)
        .build();
    s.set_property("async", false);
    s
}

impl Decoder {
    fn new(caps: &gst::Caps) -> Result<Decoder, String> {
        let s = caps.structure(0).ok_or("caps without a structure")?;
        let (w, h) = (
            s.get::<i32>("width").map_err(|_| "caps without a width")?,
            s.get::<i32>("height").map_err(|_| "caps without a height")?,
        );
        if w <= 0 || h <= 0 {
            return Err(format!("bad size {w}x{h}"));
        }
        let par = s
            .get::<gst::Fraction>("pixel-aspect-ratio")
            .map_or((1, 1), |f| (f.numer(), f.denom()));
        let (fw, fh) = fit(w as u32, h as u32, par, FULL_WIDTH);
        let (sw, sh) = fit(fw, fh, (1, 1), SMALL_WIDTH);
        let pipeline = gst::Pipeline::new();
        let dec = make("avdec_h264")?;
        // One thread: no frame-threading delay on a keyframe-only input.
        dec.set_property("max-threads", 1i32);
        let tee = make("tee")?;
        let (full, small) = (sink(), sink());
        // JPEG (JFIF) is full-range BT.601, video mostly limited range (and
        // BT.709 for HD): put in as it is, the picture comes out washed out.
        // A YUV capsfilter would only relabel the decoder's output; RGB
        // makes videoconvert convert from what the decoder says it has, and
        // jpegenc (libjpeg) converts to JFIF's YCbCr. After scaling: fewer
        // pixels.
        let rgb = make("capsfilter")?;
        rgb.set_property("caps", gst::Caps::builder("video/x-raw").field("format", "RGB").build());
        let head = [
            make("h264parse")?,
            dec,
            make("videoscale")?,
            sized(fw, fh)?,
            make("videoconvert")?,
            rgb,
            tee.clone(),
        ];
        let full_branch = [make("jpegenc")?, full.clone().upcast()];
        let small_branch = [
            make("videoscale")?,
            sized(sw, sh)?,
            make("jpegenc")?,
            small.clone().upcast(),
        ];
        for chain in [&head[..], &full_branch[..], &small_branch[..]] {
            pipeline.add_many(chain).map_err(|e| e.to_string())?;
            gst::Element::link_many(chain).map_err(|e| e.to_string())?;
        }
        tee.link(&full_branch[0]).map_err(|e| e.to_string())?;
        tee.link(&small_branch[0]).map_err(|e| e.to_string())?;
        let src = gst::Pad::builder(gst::PadDirection::Src).name("thumbnail-src").build();
        let sink_pad = head[0].static_pad("sink").ok_or("h264parse has no sink pad")?;
        src.link(&sink_pad).map_err(|e| format!("{e:?}"))?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("cannot start the thumbnail pipeline: {e}"))?;
        src.set_active(true).map_err(|e| e.to_string())?;
        let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
        // Key units only: the decoder drains on GAP (see the module doc).
        segment.set_flags(gst::SegmentFlags::TRICKMODE_KEY_UNITS);
        for ev in [
            gst::event::StreamStart::new("thumbnail"),
            gst::event::Caps::new(caps),
            gst::event::Segment::new(&segment),
        ] {
            if !src.push_event(ev) {
                let _ = pipeline.set_state(gst::State::Null);
                return Err("the thumbnail pipeline refused its stream".into());
            }
        }
        Ok(Decoder {
            caps: caps.clone(),
            pipeline,
            src,
            full,
            small,
        })
    }

    /// The JPEGs (full, small) of one keyframe.
    fn pictures(&self, buffer: gst::Buffer) -> Result<(Vec<u8>, Vec<u8>), String> {
        let (pts, duration) = (buffer.pts(), buffer.duration());
        self.src
            .push(buffer)
            .map_err(|e| format!("decoding refused the keyframe: {e:?}"))?;
        // Pushed downstream by this thread: when it returns, the decoder has
        // drained and both pictures wait in their sinks.
        self.src.push_event(
            gst::event::Gap::builder(pts.unwrap_or(gst::ClockTime::ZERO))
                .duration(duration)
                .build(),
        );
        let timeout = gst::ClockTime::from_nseconds(DECODE_TIMEOUT.as_nanos() as u64);
        let jpeg = |s: &gst_app::AppSink| -> Result<Vec<u8>, String> {
            let sample = s.try_pull_sample(timeout).ok_or("no picture came out of the decoder")?;
            let buffer = sample.buffer().ok_or("an empty sample")?;
            let map = buffer.map_readable().map_err(|e| e.to_string())?;
            Ok(map.as_slice().to_vec())
        };
        Ok((jpeg(&self.full)?, jpeg(&self.small)?))
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.src.set_active(false);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One H.264 keyframe (AVC, access unit) of a 320x180 test picture.
    fn keyframe() -> (gst::Caps, gst::Buffer) {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "videotestsrc num-buffers=1 ! video/x-raw,width=320,height=180 ! x264enc ! h264parse \
             ! video/x-h264,stream-format=avc,alignment=au ! appsink name=out",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let sink = pipeline.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(10))
            .expect("a keyframe");
        pipeline.set_state(gst::State::Null).unwrap();
        (sample.caps().unwrap().to_owned(), sample.buffer_owned().unwrap())
    }

    /// A keyframe that makes no picture is logged and counted; the next
    /// one makes both thumbnails. (A corrupt keyframe comes out as a
    /// concealed picture; a stream whose caps say no size makes none.)
    #[test]
    fn a_keyframe_without_pictures_is_counted_and_the_next_makes_thumbnails() {
        let (caps, good) = keyframe();
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let service = Arc::new(Thumbnails::new(true, metrics.clone(), Duration::from_secs(1)));
        let (tx, rx) = sync_channel(4);
        let out = Out {
            dir: dir.path().to_path_buf(),
            stream: "s".into(),
            service,
        };
        let thread = std::thread::spawn(move || run(rx, out));
        let sizeless = gst::Caps::builder("video/x-h264")
            .field("stream-format", "avc")
            .field("alignment", "au")
            .build();
        for caps in [sizeless, caps] {
            tx.send(Job {
                caps,
                buffer: good.clone(),
            })
            .unwrap();
        }
        drop(tx);
        thread.join().unwrap();
        assert_eq!(metrics.thumbnail_failures.with_label_values(&["decode"]).get(), 1);
        assert_eq!(metrics.thumbnails_written.with_label_values(&["full"]).get(), 1);
        assert_eq!(metrics.thumbnails_written.with_label_values(&["small"]).get(), 1);
        let full = std::fs::read(dir.path().join(THUMBNAIL)).unwrap();
        assert_eq!(&full[..2], &[0xff, 0xd8], "a JPEG");
        assert!(dir.path().join(THUMBNAIL_SMALL).exists());
    }

    #[test]
    fn max_age_is_the_live_publishs_segment_even_when_an_old_one_ends_late() {
        let dir = tempfile::tempdir().unwrap();
        let service = Arc::new(Thumbnails::new(true, Arc::new(Metrics::new()), Duration::from_secs(2)));
        assert_eq!(service.max_age("s"), 2, "not live: the fallback");
        let old = service.writer(dir.path(), "s", Duration::from_secs(1)).unwrap();
        assert_eq!(service.max_age("s"), 1);
        let new = service.writer(dir.path(), "s", Duration::from_secs(4)).unwrap();
        drop(old);
        assert_eq!(service.max_age("s"), 4, "the old publish's end leaves the new one's");
        drop(new);
        assert_eq!(service.max_age("s"), 2);
        let off = Arc::new(Thumbnails::new(false, Arc::new(Metrics::new()), Duration::from_secs(2)));
        assert!(off.writer(dir.path(), "s", Duration::from_secs(1)).is_none());
    }

    #[test]
    fn fit_keeps_the_aspect_and_never_upscales() {
        assert_eq!(fit(1280, 720, (1, 1), FULL_WIDTH), (640, 360));
        assert_eq!(fit(640, 360, (1, 1), FULL_WIDTH), (640, 360));
        assert_eq!(fit(426, 240, (1, 1), FULL_WIDTH), (426, 240));
        assert_eq!(fit(640, 360, (1, 1), SMALL_WIDTH), (160, 90));
        // 720x576 of 16:15 pixels is 768x576 on screen (4:3).
        assert_eq!(fit(720, 576, (16, 15), FULL_WIDTH), (640, 480));
        // Odd sizes come out even.
        assert_eq!(fit(1920, 1080, (1, 1), 201), (200, 112));
        assert_eq!(fit(1, 1, (0, 0), 640), (2, 2));
    }
}
