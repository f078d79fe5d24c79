//! One GStreamer pipeline per publish: demux the ingest container, decode
//! once, scale and encode every rung of the ladder (or repackage the source
//! for `passthrough`), and hand each rendition's `cmafmux` output to the
//! packager ([`SessionWriter`]).
//!
//! ```text
//! appsrc (FLV or MPEG-TS bytes) ! flvdemux|tsdemux
//!   video: queue ! h264parse ! avdec_h264 ! tee
//!            tee. ! queue ! videorate ! videoscale ! caps ! x264enc ! h264parse ! cmafmux ! appsink   (per rung)
//!   audio: queue ! aacparse ! avdec_aac ! audioconvert ! audioresample ! avenc_aac ! cmafmux ! appsink
//! ```
//!
//! The first rung's encoded keyframes (the source's, for `passthrough`)
//! also go to the publish's thumbnail thread ([`thumbnail`]), outside this
//! pipeline: thumbnails can fail, the stream cannot.
//!
//! Rungs are created when the decoder announces the source's size, so the
//! ladder is fitted to the real source (never upscaled). Every video
//! `cmafmux` cuts fragments at the same running times and asks its encoder
//! for a keyframe there, and every x264enc has a fixed GOP of one segment, so
//! keyframes line up across renditions and players can switch at any
//! segment. The audio `cmafmux` splits by hand at the AAC frame nearest each
//! video cut ([`cuts`]), so a media sequence number covers the same time in
//! every rendition.
//!
//! The pipeline is not live: nothing in it syncs to a clock (the appsinks
//! take buffers as they come), and a live `cmafmux` (an aggregator) ends a
//! fragment at a clock deadline. Media timestamps start when the publisher's
//! first tag arrives, later than the pipeline's clock, so every deadline came
//! early and the audio muxer cut ~0.92 s fragments out of 1 s, each fragment
//! restarting the schedule from its early end: audio segments fell behind
//! video by ~2 % (issue 20).

mod cuts;
pub mod thumbnail;

use crate::package::session::{Kind, MuxBuffer, SessionWriter};
use crate::profiles::{Profile, Source};
use cuts::{AudioCut, Cuts, Split, Splitter};
use gst::prelude::*;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use thiserror::Error;
use thumbnail::ThumbnailWriter;

#[derive(Debug, Error)]
pub enum TranscodeError {
    #[error("GStreamer: {0}")]
    Gst(String),
    #[error("pipeline failed: {0}")]
    Failed(String),
}

impl From<gst::glib::BoolError> for TranscodeError {
    fn from(e: gst::glib::BoolError) -> Self {
        TranscodeError::Gst(e.to_string())
    }
}

/// Registers GStreamer and the statically linked `cmafmux`. Call once.
pub fn init() -> Result<(), TranscodeError> {
    gst::init().map_err(|e| TranscodeError::Gst(e.to_string()))?;
    gstfmp4::plugin_register_static().map_err(|e| TranscodeError::Gst(e.to_string()))?;
    for needed in [
        "flvdemux",
        "tsdemux",
        "h264parse",
        "avdec_h264",
        "x264enc",
        "aacparse",
        "avdec_aac",
        "avenc_aac",
    ] {
        if gst::ElementFactory::find(needed).is_none() {
            return Err(TranscodeError::Gst(format!(
                "GStreamer element {needed} is missing (run scripts/setup.sh)"
            )));
        }
    }
    Ok(())
}

/// What an ingest hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Flv,
    MpegTs,
}

/// Per-rendition counters the transcoder feeds.
pub trait Counters: Send + Sync {
    fn frame_in(&self);
    fn frame_out(&self, rendition: &str);
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Eos,
    Error(String),
}

type Done = Arc<(Mutex<Option<Outcome>>, Condvar)>;

pub struct Transcoder {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    done: Done,
    cuts: Arc<Cuts>,
    writer: Arc<SessionWriter>,
    /// Kept for as long as the pipeline: dropping it ends the thumbnail thread.
    _thumbnails: Option<Arc<ThumbnailWriter>>,
}

/// Largest amount of input queued in the pipeline before input is dropped.
const MAX_QUEUED_INPUT: u64 = 32 * 1024 * 1024;
/// The passthrough rendition's name.
pub const SOURCE_RENDITION: &str = "source";
/// The audio rendition's name.
pub const AUDIO_RENDITION: &str = "audio";

fn make(factory: &str) -> Result<gst::Element, TranscodeError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| TranscodeError::Gst(format!("cannot create {factory}: {e}")))
}

/// Adds `chain` to the pipeline, links it in order, and starts it.
fn add_chain(pipeline: &gst::Pipeline, chain: &[gst::Element]) -> Result<(), TranscodeError> {
    pipeline.add_many(chain)?;
    gst::Element::link_many(chain)?;
    for e in chain {
        e.sync_state_with_parent()?;
    }
    Ok(())
}

impl Transcoder {
    /// `thumbnails`: where the reference rendition's keyframes go (`None`:
    /// no thumbnails).
    pub fn start(
        container: Container,
        profile: &Profile,
        writer: Arc<SessionWriter>,
        counters: Arc<dyn Counters>,
        thumbnails: Option<ThumbnailWriter>,
    ) -> Result<Transcoder, TranscodeError> {
        let thumbnails = thumbnails.map(Arc::new);
        let thumbs = thumbnails.clone();
        let pipeline = gst::Pipeline::new();
        let caps = match container {
            Container::Flv => gst::Caps::builder("video/x-flv").build(),
            Container::MpegTs => gst::Caps::builder("video/mpegts").field("systemstream", true).build(),
        };
        let src = gst_app::AppSrc::builder()
            .caps(&caps)
            // Not live: see the module doc.
            .is_live(false)
            .format(gst::Format::Bytes)
            .max_bytes(MAX_QUEUED_INPUT)
            .block(false)
            .build();
        src.set_property_from_str("leaky-type", "downstream");
        let demux = make(match container {
            Container::Flv => "flvdemux",
            Container::MpegTs => "tsdemux",
        })?;
        pipeline.add_many([src.upcast_ref(), &demux])?;
        src.link(&demux)?;

        let weak = pipeline.downgrade();
        let profile = profile.clone();
        let anchor = writer.clone();
        let cuts = Arc::new(Cuts::new(profile.segment_duration));
        let shared = cuts.clone();
        demux.connect_pad_added(move |demux, pad| {
            let Some(pipeline) = weak.upgrade() else { return };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let Some(s) = caps.structure(0) else { return };
            let result = match s.name().as_str() {
                "video/x-h264" => {
                    let c = counters.clone();
                    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                        c.frame_in();
                        gst::PadProbeReturn::Ok
                    });
                    link_video(&pipeline, pad, &profile, &writer, &counters, &shared, thumbs.clone())
                }
                "audio/mpeg" if matches!(s.get::<i32>("mpegversion"), Ok(2 | 4)) => {
                    link_audio(&pipeline, pad, &profile, &writer, &shared)
                }
                other => Err(TranscodeError::Failed(format!(
                    "unsupported codec {other}: we take H.264 video and AAC audio"
                ))),
            };
            if let Err(e) = result {
                gst::element_error!(demux, gst::StreamError::CodecNotFound, ("{}", e));
            }
        });

        let done: Done = Arc::default();
        watch_bus(&pipeline, done.clone());
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| TranscodeError::Gst(format!("cannot start the pipeline: {e}")))?;
        Ok(Transcoder {
            pipeline,
            src,
            done,
            cuts,
            writer: anchor,
            _thumbnails: thumbnails,
        })
    }

    /// Feeds ingest bytes; fails once the pipeline has failed. The first
    /// bytes anchor PROGRAM-DATE-TIME (their running time is 0).
    pub fn push(&self, data: &[u8]) -> Result<(), TranscodeError> {
        self.writer.first_frame_arrived();
        if let Some(Outcome::Error(e)) = self.done.0.lock().expect("done lock").clone() {
            return Err(TranscodeError::Failed(e));
        }
        self.src
            .push_buffer(gst::Buffer::from_slice(data.to_vec()))
            .map_err(|e| TranscodeError::Failed(format!("input refused: {e:?}")))?;
        Ok(())
    }

    /// The pipeline's error, if it failed.
    pub fn error(&self) -> Option<String> {
        match self.done.0.lock().expect("done lock").clone() {
            Some(Outcome::Error(e)) => Some(e),
            _ => None,
        }
    }

    /// Ends the input and waits up to `timeout` for the last fragments to be
    /// written; then stops the pipeline.
    pub fn finish(&self, timeout: Duration) {
        let _ = self.src.end_of_stream();
        let (lock, cvar) = &*self.done;
        let guard = lock.lock().expect("done lock");
        let _ = cvar
            .wait_timeout_while(guard, timeout, |o| o.is_none())
            .expect("done lock");
        self.cuts.video_ended();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for Transcoder {
    fn drop(&mut self) {
        // An audio frame waiting for video must not hold the shutdown.
        self.cuts.video_ended();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Watches the bus on a thread of its own until EOS or an error.
fn watch_bus(pipeline: &gst::Pipeline, done: Done) {
    let Some(bus) = pipeline.bus() else { return };
    let weak = pipeline.downgrade();
    std::thread::spawn(move || {
        loop {
            if weak.upgrade().is_none() {
                return;
            }
            let Some(msg) = bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(200),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            ) else {
                continue;
            };
            let outcome = match msg.view() {
                gst::MessageView::Error(e) => Outcome::Error(e.error().to_string()),
                _ => Outcome::Eos,
            };
            let (lock, cvar) = &*done;
            *lock.lock().expect("done lock") = Some(outcome);
            cvar.notify_all();
            return;
        }
    });
}

/// How a rendition's muxer takes part in the publish's [`Cuts`].
enum Cut {
    /// A video rung other than the first: its `cmafmux` cuts like the first's.
    Follow,
    /// The reference video rendition: its frames decide the cuts.
    Lead(Arc<Cuts>),
    /// Audio: `cmafmux` in manual-split mode, split at the cuts.
    Audio(Arc<Cuts>),
}

/// Running time of a buffer at `pad`, from the pad's segment.
fn running_time(pad: &gst::Pad, pts: Option<gst::ClockTime>) -> Option<Duration> {
    let ev = pad.sticky_event::<gst::event::Segment>(0)?;
    let rt = ev.segment().downcast_ref::<gst::ClockTime>()?.to_running_time(pts?)?;
    Some(Duration::from_nanos(rt.nseconds()))
}

/// cmafmux's event asking its manual-split mode to start a fragment (or,
/// with `chunk`, a chunk of the fragment: a part) with the next buffer.
fn split_now(chunk: bool) -> gst::Event {
    gst::event::CustomDownstream::new(gst::Structure::builder("FMP4MuxSplitNow").field("chunk", chunk).build())
}

/// The duration of an AAC frame at `pad`: the buffer's, or 1024 samples at
/// the caps' rate (aacparse leaves FLV's frames without a duration).
fn aac_frame(pad: &gst::Pad, buffer: &gst::BufferRef) -> Duration {
    if let Some(d) = buffer.duration().filter(|d| !d.is_zero()) {
        return Duration::from_nanos(d.nseconds());
    }
    let rate = pad
        .current_caps()
        .and_then(|c| c.structure(0).and_then(|s| s.get::<i32>("rate").ok()))
        .filter(|r| *r > 0)
        .unwrap_or(48_000);
    Duration::from_nanos(1024 * 1_000_000_000 / rate as u64)
}

/// The `cmafmux ! appsink` tail of a rendition, feeding `writer`.
/// `chunk`: for low-latency HLS, the part target; the muxer then runs in
/// manual-split mode, split by [`Splitter`] (video) or at AAC frames (audio).
fn cmaf_tail(
    name: &str,
    segment: Duration,
    writer: &Arc<SessionWriter>,
    counters: Option<Arc<dyn Counters>>,
    cut: Cut,
    chunk: Option<Duration>,
) -> Result<Vec<gst::Element>, TranscodeError> {
    let mux = make("cmafmux")?;
    mux.set_property("fragment-duration", segment.as_nanos() as u64);
    // Audio: (start of the part in progress, part target).
    let mut audio_chunks: Option<Mutex<(Option<Duration>, Duration)>> = None;
    // Low-latency video: where fragments and parts start.
    let mut splitter: Option<Mutex<Splitter>> = None;
    if matches!(cut, Cut::Audio(_)) {
        mux.set_property("manual-split", true);
        audio_chunks = chunk.map(|c| Mutex::new((None, c)));
    } else if let Some(c) = chunk {
        mux.set_property("manual-split", true);
        splitter = Some(Mutex::new(Splitter::new(segment, c)));
    }
    let sink_pad = mux
        .static_pad("sink")
        .ok_or_else(|| TranscodeError::Gst("cmafmux has no sink pad".into()))?;
    {
        let (writer, name) = (writer.clone(), name.to_string());
        sink_pad.add_probe(
            gst::PadProbeType::EVENT_DOWNSTREAM | gst::PadProbeType::BUFFER,
            move |pad, info| {
                match &info.data {
                    Some(gst::PadProbeData::Event(ev)) if matches!(ev.view(), gst::EventView::Eos(_)) => {
                        if let Cut::Lead(cuts) = &cut {
                            cuts.video_ended();
                        }
                    }
                    Some(gst::PadProbeData::Event(ev)) => {
                        if let gst::EventView::Caps(c) = ev.view() {
                            let caps = c.caps();
                            if let Ok(codec) = gst_pbutils::functions::codec_utils_caps_get_mime_codec(caps) {
                                let size = caps.structure(0).and_then(|s| {
                                    Some((s.get::<i32>("width").ok()? as u32, s.get::<i32>("height").ok()? as u32))
                                });
                                writer.set_codec(&name, codec.to_string(), size);
                            }
                        }
                    }
                    Some(gst::PadProbeData::Buffer(buffer)) => {
                        if let Some(c) = &counters {
                            c.frame_out(&name);
                        }
                        if let Some(splitter) = &splitter {
                            let Some(rt) = running_time(pad, buffer.pts()) else {
                                return gst::PadProbeReturn::Ok;
                            };
                            let frame = buffer
                                .duration()
                                .filter(|d| !d.is_zero())
                                .map_or(Duration::from_secs(1) / 30, |d| Duration::from_nanos(d.nseconds()));
                            let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                            let split = splitter.lock().expect("splitter lock").frame(rt, frame, keyframe);
                            if let Cut::Lead(cuts) = &cut {
                                cuts.video_cut(rt, matches!(split, Split::Segment { .. }));
                            }
                            let event = match split {
                                Split::BeforeKeyframe => return gst::PadProbeReturn::Drop,
                                Split::None | Split::Segment { first: true } => None,
                                Split::Part => Some(split_now(true)),
                                Split::Segment { first: false } => Some(split_now(false)),
                            };
                            // Serialized: cmafmux takes it before this buffer.
                            if let Some(ev) = event
                                && !pad.send_event(ev)
                            {
                                tracing::warn!("the video muxer refused a split");
                            }
                            return gst::PadProbeReturn::Ok;
                        }
                        match &cut {
                            Cut::Follow => {}
                            Cut::Lead(cuts) => {
                                if let Some(rt) = running_time(pad, buffer.pts()) {
                                    cuts.video_frame(rt, !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT));
                                }
                            }
                            Cut::Audio(cuts) => {
                                let Some(rt) = running_time(pad, buffer.pts()) else {
                                    return gst::PadProbeReturn::Ok;
                                };
                                let frame = aac_frame(pad, buffer);
                                match cuts.audio_frame(rt, frame) {
                                    AudioCut::Keep => {
                                        // Low-latency: a part ends before the
                                        // frame that would take it past its target.
                                        if let Some(c) = &audio_chunks {
                                            let mut c = c.lock().expect("chunk lock");
                                            let target = c.1;
                                            let start = c.0.get_or_insert(rt);
                                            if rt + frame > *start + target + Duration::from_micros(500) {
                                                *start = rt;
                                                if !pad.send_event(split_now(true)) {
                                                    tracing::warn!("the audio muxer refused a part split");
                                                }
                                            }
                                        }
                                    }
                                    AudioCut::Split => {
                                        // Serialized: cmafmux takes it before this buffer.
                                        if !pad.send_event(split_now(false)) {
                                            tracing::warn!("the audio muxer refused a split");
                                        }
                                        if let Some(c) = &audio_chunks {
                                            c.lock().expect("chunk lock").0 = Some(rt);
                                        }
                                    }
                                    AudioCut::BeforeVideo => return gst::PadProbeReturn::Drop,
                                }
                            }
                        }
                    }
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    let sink = gst_app::AppSink::builder().sync(false).build();
    sink.set_property("async", false);
    let (writer, name) = (writer.clone(), name.to_string());
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let flags = buffer.flags();
                let nanos = |t: Option<gst::ClockTime>| t.map(|t| Duration::from_nanos(t.nseconds()));
                // Running time: one timeline for every rendition (video
                // encoders shift their timestamps, the running time stays).
                let pts = sample
                    .segment()
                    .and_then(|s| s.downcast_ref::<gst::ClockTime>()?.to_running_time(buffer.pts()?))
                    .or(buffer.pts());
                writer
                    .push_buffer(
                        &name,
                        MuxBuffer {
                            data: map.as_slice(),
                            header: flags.contains(gst::BufferFlags::HEADER),
                            discont: flags.contains(gst::BufferFlags::DISCONT),
                            delta: flags.contains(gst::BufferFlags::DELTA_UNIT),
                            marker: flags.contains(gst::BufferFlags::MARKER),
                            pts: nanos(pts),
                            duration: nanos(buffer.duration()),
                        },
                    )
                    .map_err(|e| {
                        tracing::error!(rendition = %name, error = %e, "cannot write output");
                        gst::FlowError::Error
                    })?;
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(vec![mux, sink.upcast()])
}

fn link_pad(pad: &gst::Pad, first: &gst::Element) -> Result<(), TranscodeError> {
    let sink = first
        .static_pad("sink")
        .ok_or_else(|| TranscodeError::Gst("no sink pad".into()))?;
    pad.link(&sink)
        .map_err(|e| TranscodeError::Gst(format!("cannot link demuxer: {e:?}")))?;
    Ok(())
}

fn avc_caps() -> Result<gst::Element, TranscodeError> {
    let f = make("capsfilter")?;
    f.set_property(
        "caps",
        gst::Caps::builder("video/x-h264")
            .field("stream-format", "avc")
            .field("alignment", "au")
            .build(),
    );
    Ok(f)
}

fn link_video(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    profile: &Profile,
    writer: &Arc<SessionWriter>,
    counters: &Arc<dyn Counters>,
    cuts: &Arc<Cuts>,
    thumbnails: Option<Arc<ThumbnailWriter>>,
) -> Result<(), TranscodeError> {
    let segment = profile.segment_duration;
    if profile.passthrough {
        writer
            .add_rendition(
                SOURCE_RENDITION,
                Kind::Video {
                    width: 0,
                    height: 0,
                    fps: None,
                    nominal_bps: None,
                },
            )
            .map_err(|e| TranscodeError::Failed(e.to_string()))?;
        let parse = make("h264parse")?;
        let avc = avc_caps()?;
        if let (Some(t), Some(pad)) = (&thumbnails, avc.static_pad("src")) {
            t.tap(&pad);
        }
        let mut chain = vec![make("queue")?, parse, avc];
        chain.extend(cmaf_tail(
            SOURCE_RENDITION,
            segment,
            writer,
            Some(counters.clone()),
            Cut::Lead(cuts.clone()),
            profile.part_target,
        )?);
        add_chain(pipeline, &chain)?;
        return link_pad(pad, &chain[0]);
    }

    let tee = make("tee")?;
    tee.set_property("allow-not-linked", true);
    let decoder = make("avdec_h264")?;
    let chain = vec![make("queue")?, make("h264parse")?, decoder.clone(), tee.clone()];
    // Build the rungs when the decoder knows the source's size, before the
    // first frame reaches the tee.
    let dec_src = decoder
        .static_pad("src")
        .ok_or_else(|| TranscodeError::Gst("decoder has no src pad".into()))?;
    let weak = pipeline.downgrade();
    let (profile, writer, counters, cuts) = (profile.clone(), writer.clone(), counters.clone(), cuts.clone());
    // Taken by the first rung, once.
    let thumbnails = Mutex::new(thumbnails);
    dec_src.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        let Some(gst::PadProbeData::Event(ev)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let gst::EventView::Caps(c) = ev.view() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(s) = c.caps().structure(0) else {
            return gst::PadProbeReturn::Ok;
        };
        let (Ok(width), Ok(height)) = (s.get::<i32>("width"), s.get::<i32>("height")) else {
            return gst::PadProbeReturn::Ok;
        };
        let fps = s
            .get::<gst::Fraction>("framerate")
            .ok()
            .filter(|f| f.numer() > 0 && f.denom() > 0)
            .map_or(30, |f| (f.numer() as f64 / f.denom() as f64).ceil() as u32);
        let source = Source {
            width: width as u32,
            height: height as u32,
            fps,
        };
        // What the source's pixels mean. Caps often leave it out, and then
        // GStreamer assumes BT.709 for HD and BT.601 for SD sizes: every SD
        // rung would convert colours pixel by pixel (most of its scaling
        // cost) and the ladder would disagree on colour. Rungs keep the
        // source's colorimetry instead.
        let colorimetry = gst_video::VideoInfo::from_caps(c.caps())
            .map(|i| i.colorimetry().to_string())
            .ok();
        if let Some(pipeline) = weak.upgrade() {
            for (i, rendition) in profile.ladder_for(source).into_iter().enumerate() {
                // The first rung's frames decide the cuts; the others cut alike.
                let cut = if i == 0 { Cut::Lead(cuts.clone()) } else { Cut::Follow };
                // The first rung's keyframes make the thumbnails.
                let thumbnails = if i == 0 {
                    thumbnails.lock().expect("thumbnails lock").take()
                } else {
                    None
                };
                if let Err(e) = add_rung(
                    &pipeline,
                    &tee,
                    &rendition,
                    colorimetry.as_deref(),
                    segment,
                    &writer,
                    &counters,
                    cut,
                    profile.part_target,
                    thumbnails,
                ) {
                    tracing::error!(rendition = %rendition.name, error = %e, "cannot build rung");
                }
            }
        }
        gst::PadProbeReturn::Remove
    });
    add_chain(pipeline, &chain)?;
    link_pad(pad, &chain[0])
}

/// One rung: `queue ! videorate ! videoscale ! caps ! x264enc ! ...`.
/// `colorimetry` is the source's, kept by the rung.
#[allow(clippy::too_many_arguments)]
fn add_rung(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    r: &crate::profiles::Rendition,
    colorimetry: Option<&str>,
    segment: Duration,
    writer: &Arc<SessionWriter>,
    counters: &Arc<dyn Counters>,
    cut: Cut,
    part_target: Option<Duration>,
    thumbnails: Option<Arc<ThumbnailWriter>>,
) -> Result<(), TranscodeError> {
    writer
        .add_rendition(
            &r.name,
            Kind::Video {
                width: r.width,
                height: r.height,
                fps: Some(f64::from(r.fps)),
                nominal_bps: Some(u64::from(r.video_bitrate_kbps) * 1000),
            },
        )
        .map_err(|e| TranscodeError::Failed(e.to_string()))?;
    let queue = make("queue")?;
    queue.set_property("max-size-buffers", 0u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", gst::ClockTime::from_seconds(4).nseconds());
    let mut caps = gst::Caps::builder("video/x-raw")
        .field("width", r.width as i32)
        .field("height", r.height as i32)
        .field("framerate", gst::Fraction::new(r.fps as i32, 1))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    if let Some(colorimetry) = colorimetry {
        caps = caps.field("colorimetry", colorimetry);
    }
    let raw = make("capsfilter")?;
    raw.set_property("caps", caps.build());
    let enc = make("x264enc")?;
    enc.set_property("bitrate", r.video_bitrate_kbps);
    enc.set_property_from_str("speed-preset", &r.preset);
    enc.set_property_from_str("tune", "zerolatency");
    enc.set_property("bframes", 0u32);
    let gop = (f64::from(r.fps) * segment.as_secs_f64()).round().max(1.0) as u32;
    enc.set_property("key-int-max", gop);
    // Keyframes come where segments start (cmafmux asks for them), the same
    // for every rung. Scene-cut detection would only add keyframes that differ
    // per rung, and analyse every frame to find them.
    enc.set_property("option-string", "scenecut=0");
    let avc = avc_caps()?;
    if let (Some(t), Some(pad)) = (&thumbnails, avc.static_pad("src")) {
        t.tap(&pad);
    }
    // Frames a lower rung's rate drops are dropped before they are scaled.
    let mut chain = vec![
        queue,
        make("videorate")?,
        make("videoscale")?,
        raw,
        enc,
        make("h264parse")?,
        avc,
    ];
    chain.extend(cmaf_tail(
        &r.name,
        segment,
        writer,
        Some(counters.clone()),
        cut,
        part_target,
    )?);
    add_chain(pipeline, &chain)?;
    let tee_pad = tee
        .request_pad_simple("src_%u")
        .ok_or_else(|| TranscodeError::Gst("tee refused a pad".into()))?;
    link_pad(&tee_pad, &chain[0])
}

fn link_audio(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    profile: &Profile,
    writer: &Arc<SessionWriter>,
    cuts: &Arc<Cuts>,
) -> Result<(), TranscodeError> {
    let nominal = (!profile.passthrough).then(|| u64::from(profile.audio_bitrate_kbps) * 1000);
    writer
        .add_rendition(AUDIO_RENDITION, Kind::Audio { nominal_bps: nominal })
        .map_err(|e| TranscodeError::Failed(e.to_string()))?;
    // Audio frames near a cut wait for video to decide it (see `cuts`): the
    // queue holds what arrives meanwhile, so the demuxer keeps feeding video.
    let queue = make("queue")?;
    queue.set_property("max-size-buffers", 0u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", (cuts::VIDEO_WAIT * 2).as_nanos() as u64);
    let mut chain = vec![queue, make("aacparse")?];
    if let Some(bps) = nominal {
        let raw = make("capsfilter")?;
        raw.set_property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("rate", 48_000i32)
                .field("channels", 2i32)
                .build(),
        );
        let enc = make("avenc_aac")?;
        enc.set_property_from_str("bitrate", &bps.to_string());
        chain.extend([
            make("avdec_aac")?,
            make("audioconvert")?,
            make("audioresample")?,
            raw,
            enc,
        ]);
    }
    chain.extend(cmaf_tail(
        AUDIO_RENDITION,
        profile.segment_duration,
        writer,
        None,
        Cut::Audio(cuts.clone()),
        profile.part_target,
    )?);
    add_chain(pipeline, &chain)?;
    link_pad(pad, &chain[0])
}
