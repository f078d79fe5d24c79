//! What a two-hour DVR window costs the origin's packager and HTTP server,
//! for `loadtest/bench/dvr.sh`: the real `SessionWriter` is fed a
//! synthesized LL-HLS session (3,600 segments of 2 s, six parts each, a
//! few hundred bytes of media each, as fast as it takes them), then the
//! real HTTP server (`origin::serve`) serves it from its live state, whole
//! and as delta updates, until stopped.
//!
//!   dvr_playlist OUTPUT_DIR PORT [SEGMENTS] [PLAIN]
//!
//! Prints one JSON line when ready: the paths served, the bytes of the
//! whole playlist and of its delta update, the CPU time per playlist change
//! while the window is full (render of the whole playlist and of the delta,
//! the file written: what every part costs), the renderer alone per
//! render, and the process's resident memory once fed (and after the
//! renderer's own 400 renders). `PLAIN` (any value): plain
//! HLS (one render per segment) instead of LL-HLS (one per part).
//! A benchmark aid, not part of the origin.

use origin::metrics::Metrics;
use origin::package::live::Live;
use origin::package::playlist::{MediaPlaylist, Part, RenditionReport, Segment, segment_uri};
use origin::package::session::{Kind, LowLatency, MuxBuffer, Observer, SessionWriter};
use origin::serve::{self, ServeState};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const SEGMENT: Duration = Duration::from_secs(2);
const PARTS: u32 = 6;
const WINDOW: Duration = Duration::from_secs(7200);

struct Quiet;
impl Observer for Quiet {
    fn segment_written(&self, _: &str, _: Duration, _: Duration) {}
}

/// CPU seconds this (main) thread has run so far, in nanoseconds'
/// precision (`/proc/thread-self/schedstat`).
fn cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn buf(data: &[u8], header: bool, delta: bool, marker: bool, pts: Duration, duration: Duration) -> MuxBuffer<'_> {
    MuxBuffer {
        data,
        header,
        discont: false,
        delta,
        marker,
        pts: Some(pts),
        duration: Some(duration),
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() >= 3,
        "usage: dvr_playlist OUTPUT_DIR PORT [SEGMENTS] [PLAIN]"
    );
    let out = std::path::PathBuf::from(&args[1]);
    let port: u16 = args[2].parse()?;
    let segments: u32 = args.get(3).map_or(Ok(3600), |s| s.parse())?;
    let plain = args.get(4).is_some();
    let live = Live::new();
    let ll = (!plain).then_some(LowLatency {
        part_target: Duration::from_millis(334),
        segment: SEGMENT,
    });
    let writer = SessionWriter::new(
        &out,
        "dvr",
        "bench",
        SEGMENT,
        ll,
        Duration::from_secs(30),
        Arc::new(Quiet),
        live.clone(),
    )?
    .with_dvr_window(Some(WINDOW));
    writer.add_rendition(
        "video",
        Kind::Video {
            width: 1280,
            height: 720,
            fps: Some(30.0),
            nominal_bps: Some(2_800_000),
        },
    )?;
    writer.set_codec("video", "avc1.64001f".into(), None);
    writer.push_buffer(
        "video",
        MuxBuffer {
            discont: true,
            ..buf(b"init", true, false, false, Duration::ZERO, Duration::ZERO)
        },
    )?;
    writer.first_frame_arrived();
    let media = vec![0u8; 300];
    let part = SEGMENT / PARTS;
    // The last tenth is timed: the window is full by then.
    let timed_from = segments - segments / 10;
    let (mut cpu0, mut changes) = (0.0, 0u64);
    for n in 0..segments {
        if n == timed_from {
            cpu0 = cpu();
        }
        if plain {
            let at = SEGMENT * n;
            writer.push_buffer("video", buf(b"moof", true, false, false, at, SEGMENT))?;
            writer.push_buffer("video", buf(&media, false, true, true, at, SEGMENT))?;
            changes += u64::from(n >= timed_from);
        } else {
            for p in 0..PARTS {
                let at = SEGMENT * n + part * p;
                writer.push_buffer("video", buf(b"moof", true, p != 0, false, at, part))?;
                writer.push_buffer("video", buf(&media, false, true, true, at, part))?;
                changes += u64::from(n >= timed_from);
            }
        }
    }
    let per_change_us = (cpu() - cpu0) / changes.max(1) as f64 * 1e6;
    let rss_fed = rss_kib();

    // The renderer alone, on a model of the same window.
    let mut model = if plain {
        MediaPlaylist::new(SEGMENT, "init.mp4")
    } else {
        MediaPlaylist::low_latency(SEGMENT, Duration::from_millis(334), "init.mp4")
    }
    .with_dvr_window(Some(WINDOW));
    let t0 = SystemTime::now();
    for n in 0..u64::from(segments) {
        model.push(Segment {
            sequence: n,
            uri: segment_uri(n),
            program_date_time: t0 + SEGMENT * n as u32,
            parts: (0..PARTS)
                .map(|p| Part {
                    duration: part,
                    independent: p == 0,
                })
                .collect(),
        })?;
    }
    let reports = [RenditionReport {
        uri: "../audio/index.m3u8".into(),
        last_part: (u64::from(segments), 0),
    }];
    let time = |skip: bool| {
        let (start, rounds) = (Instant::now(), 200);
        let mut bytes = 0;
        for _ in 0..rounds {
            bytes = std::hint::black_box(model.render(&reports, skip)).len();
        }
        (start.elapsed().as_secs_f64() / f64::from(rounds) * 1e6, bytes)
    };
    let (full_us, full_bytes) = time(false);
    let (delta_us, delta_bytes) = time(true);
    let listed = model.segments().count();

    let path = "/dvr/bench/video/index.m3u8";
    let snapshot = live.subscribe("dvr/bench/video").expect("live").borrow().clone();
    println!(
        "{}",
        serde_json::json!({
            "ready": true,
            "path": path,
            "mode": if plain { "plain" } else { "ll" },
            "segments_listed": listed,
            "full_bytes": snapshot.full.len(),
            "delta_bytes": snapshot.delta.as_ref().map_or(0, |d| d.len()),
            "cpu_per_change_us": (per_change_us * 10.0).round() / 10.0,
            "render_full_us": (full_us * 10.0).round() / 10.0,
            "render_delta_us": (delta_us * 10.0).round() / 10.0,
            "model_full_bytes": full_bytes,
            "model_delta_bytes": delta_bytes,
            "rss_kib": rss_fed,
            "rss_after_renders_kib": rss_kib(),
        })
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let state = ServeState::new(out, Arc::new(Metrics::new()), 1, live, 4096);
        let limits = ops::http::HttpLimits::default();
        // Until SIGTERM or SIGINT; the writer stays alive, so its rendition
        // stays live.
        serve::run(listener, state, &limits, ops::shutdown_signal()).await?;
        drop(writer);
        Ok(())
    })
}
