//! The SRT listener: MPEG-TS (H.264 + AAC) over SRT, stream key in the
//! streamid (`srt://HOST:PORT?streamid=KEY`, or the access-control form
//! `#!::r=live/KEY,m=publish`).
//!
//! GStreamer's `srtsrc` in listener mode does the SRT protocol. A caller is
//! authorized in its `caller-connecting` signal, before the connection is
//! accepted, so a wrong key never gets a byte in. The received TS bytes go
//! to the same [`Publish`] path as RTMP. One publisher at a time per listen
//! port: a caller arriving while another publishes is refused (run more
//! ports, or use RTMP, for many simultaneous SRT publishers).
//!
//! The listener thread watches the origin's shutdown token and the publish's
//! stop token (a revoked key, a lost claim): either closes the connection and
//! ends the publish with EXT-X-ENDLIST; on shutdown the thread then returns.

use crate::publish::{OriginContext, Publish};
use crate::transcode::Container;
use gst::prelude::*;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The stream key inside an SRT streamid (in the pure `rtmp` crate, where it
/// is fuzzed).
pub use rtmp::key_from_streamid;

/// How often the listener thread looks at the shutdown and stop tokens.
const POLL: Duration = Duration::from_millis(200);

/// Starts the listener on a thread of its own; it rebuilds its receiving
/// pipeline after each publisher leaves, until the origin shuts down (the
/// returned thread ends then, its publish ended).
pub fn start(addr: SocketAddr, ctx: Arc<OriginContext>) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let handle = tokio::runtime::Handle::current();
    // Fail now, not later, if the element is missing.
    anyhow::ensure!(
        gst::ElementFactory::find("srtsrc").is_some(),
        "GStreamer element srtsrc is missing"
    );
    let thread = std::thread::Builder::new().name("srt-listener".into()).spawn(move || {
        while !ctx.shutdown.is_cancelled() {
            if let Err(e) = listen_once(addr, &ctx, &handle) {
                tracing::error!(%addr, error = %e, "SRT listener failed; restarting");
                // A back-off before the restart, cut short by shutdown.
                for _ in 0..5 {
                    if ctx.shutdown.is_cancelled() {
                        break;
                    }
                    std::thread::sleep(POLL);
                }
            }
        }
        tracing::info!(%addr, "SRT listener stopped");
    })?;
    tracing::info!(%addr, "SRT listener running");
    Ok(thread)
}

/// Serves one publisher: from listening to its departure.
fn listen_once(addr: SocketAddr, ctx: &Arc<OriginContext>, rt: &tokio::runtime::Handle) -> anyhow::Result<()> {
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("srtsrc")
        .property("uri", format!("srt://{}:{}?mode=listener", addr.ip(), addr.port()))
        .property("wait-for-connection", true)
        // Without this, GStreamer 1.22 never emits caller-connecting (the
        // property claims to default to true; the object does not).
        .property("authentication", true)
        .build()?;
    let sink = gst_app::AppSink::builder().sync(false).build();
    pipeline.add_many([&src, sink.upcast_ref()])?;
    src.link(&sink)?;

    let publish: Arc<Mutex<Option<Publish>>> = Arc::default();
    {
        let (publish, ctx, rt) = (publish.clone(), ctx.clone(), rt.clone());
        src.connect("caller-connecting", false, move |args| {
            let streamid = args
                .get(2)
                .and_then(|v| v.get::<Option<String>>().ok())
                .flatten()
                .unwrap_or_default();
            let mut slot = publish.lock().expect("publish lock");
            if slot.is_some() {
                tracing::warn!("SRT caller refused: this listener already has a publisher");
                return Some(false.to_value());
            }
            let Some(key) = key_from_streamid(&streamid) else {
                ctx.metrics.publishers_refused.with_label_values(&["key_refused"]).inc();
                tracing::warn!("SRT caller refused: no stream key in the streamid");
                return Some(false.to_value());
            };
            match rt.block_on(Publish::begin(&ctx, key, Container::MpegTs)) {
                Ok(p) => {
                    tracing::info!(stream = p.stream(), "SRT publish accepted");
                    *slot = Some(p);
                    Some(true.to_value())
                }
                Err(e) => {
                    ctx.metrics.publishers_refused.with_label_values(&[e.reason()]).inc();
                    tracing::warn!("SRT publish refused: {e}");
                    Some(false.to_value())
                }
            }
        });
    }
    {
        let publish = publish.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let slot = publish.lock().expect("publish lock");
                    if let Some(p) = slot.as_ref() {
                        match p.push(map.as_slice()) {
                            Ok(()) => {}
                            // Ended by its lifecycle: the listener loop closes it.
                            Err(crate::publish::PublishError::Stopped) => return Err(gst::FlowError::Eos),
                            Err(e) => {
                                tracing::warn!(stream = p.stream(), "SRT publisher dropped: {e}");
                                return Err(gst::FlowError::Error);
                            }
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    {
        let publish = publish.clone();
        let rt2 = rt.clone();
        src.connect("caller-removed", false, move |_| {
            if let Some(p) = publish.lock().expect("publish lock").take() {
                rt2.spawn(p.end());
            }
            None
        });
    }

    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or_else(|| anyhow::anyhow!("pipeline has no bus"))?;
    // Until the publisher leaves (EOS), the connection fails (error), the
    // publish is stopped (revoked key, lost claim) or the origin shuts down.
    let outcome = loop {
        let stopped = publish
            .lock()
            .expect("publish lock")
            .as_ref()
            .is_some_and(|p| p.is_stopped());
        if stopped || ctx.shutdown.is_cancelled() {
            break Ok(());
        }
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(POLL.as_millis() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) else {
            continue;
        };
        break match msg.view() {
            gst::MessageView::Error(e) => Err(anyhow::anyhow!("{}", e.error())),
            _ => Ok(()),
        };
    };
    let _ = pipeline.set_state(gst::State::Null);
    let ended = publish.lock().expect("publish lock").take();
    if let Some(p) = ended {
        // This is not a runtime thread: wait for EXT-X-ENDLIST here, so the
        // next listener starts after this publish has ended.
        rt.block_on(p.end());
    }
    outcome
}
