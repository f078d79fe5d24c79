//! Audio keeps real time and matches video (issue 20): ffmpeg publishes over
//! RTMP to the real origin binary (real router API on a real Redis); a
//! recorder polls every media playlist over HTTP as a player does and fetches
//! every segment; the fragments' own boxes (tfdt, trun) and ffprobe say what
//! was written.
//!
//! Checked per stream: for every media sequence number, audio and video
//! segments start at the same media time and the same PROGRAM-DATE-TIME, and
//! last as long, within one AAC frame; audio has no gap; the audio frames
//! written are the source's (counted by ffprobe in a copy of what ffmpeg
//! published); EXTINF has at most three decimals.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::{Process, Redis, bin_path, free_addr, http_get, wait_until};

const ADMIN: &str = "admin-token-0123456789";
const AGENT: &str = "agent-token-0123456789";

/// Transcoding takes both cores: one stream at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Origin {
    _redis: Redis,
    _router: Process,
    origin: Process,
    router: SocketAddr,
    rtmp: SocketAddr,
    http: SocketAddr,
    _out: tempfile::TempDir,
}

impl Origin {
    fn start() -> Origin {
        let redis = Redis::start();
        let router = free_addr();
        let router_proc = Process::spawn(
            "router-api",
            bin_path("router-api"),
            ["--listen", &router.to_string(), "--redis", &redis.url()],
            &[("ROUTER_ADMIN_TOKEN", ADMIN), ("ROUTER_AGENT_TOKEN", AGENT)],
        );
        wait_until("router-api ready", Duration::from_secs(10), || {
            matches!(http_get(router, "/readyz"), Some((200, _)))
        });
        let (rtmp, http) = (free_addr(), free_addr());
        let out = tempfile::tempdir().unwrap();
        let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/audio-profiles.toml");
        let origin = Process::spawn(
            "origin",
            env!("CARGO_BIN_EXE_origin"),
            [
                "--origin-id",
                "origin-a",
                "--rtmp-listen",
                &rtmp.to_string(),
                "--http-listen",
                &http.to_string(),
                "--output-dir",
                out.path().to_str().unwrap(),
                "--router",
                &format!("http://{router}"),
                "--profiles",
                profiles.to_str().unwrap(),
                "--segment-grace",
                "30s",
            ],
            &[("ROUTER_AGENT_TOKEN", AGENT)],
        );
        wait_until("origin ready", Duration::from_secs(10), || {
            matches!(http_get(http, "/healthz"), Some((200, _)))
        });
        Origin {
            _redis: redis,
            _router: router_proc,
            origin,
            router,
            rtmp,
            http,
            _out: out,
        }
    }

    fn create_stream(&self, name: &str, profile: &str) -> String {
        let out = Command::new("curl")
            .args(["-fsS", "-H", &format!("Authorization: Bearer {ADMIN}")])
            .args(["-H", "content-type: application/json", "-d"])
            .arg(format!("{{\"name\":\"{name}\",\"profile\":\"{profile}\"}}"))
            .arg(format!("http://{}/admin/streams", self.router))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["key"].as_str().unwrap().to_string()
    }
}

/// What the test publisher sends.
struct Source {
    rate: u32,
    channels: u32,
    fps: u32,
    secs: u32,
}

/// ffmpeg publishing a test pattern and a tone to `rtmp://{rtmp}/live/{key}`,
/// with a copy of the FLV it sends in `copy`.
fn publish(rtmp: SocketAddr, key: &str, src: &Source, copy: &Path) -> Process {
    let video = format!("testsrc2=size=640x360:rate={}", src.fps);
    let audio = format!("sine=frequency=440:sample_rate={}", src.rate);
    let tee = format!("[f=flv]rtmp://{rtmp}/live/{key}|[f=flv]{}", copy.display());
    let (secs, gop, ac) = (src.secs.to_string(), src.fps.to_string(), src.channels.to_string());
    let args: Vec<&str> = vec![
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        &video,
        "-f",
        "lavfi",
        "-i",
        &audio,
        "-t",
        &secs,
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        &gop,
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-ac",
        &ac,
        // The tee muxer's FLV needs the codecs' headers up front.
        "-flags",
        "+global_header",
        "-f",
        "tee",
        &tee,
    ];
    Process::spawn("ffmpeg", "ffmpeg", args, &[])
}

/// A blocking GET of binary content; `None` unless 200.
fn get(addr: SocketAddr, path: &str) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = vec![];
    s.read_to_end(&mut buf).ok()?;
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    head.split_whitespace().nth(1).filter(|s| *s == "200")?;
    Some(buf[end + 4..].to_vec())
}

/// One segment as a player sees it.
#[derive(Debug, Clone)]
struct Seg {
    /// PROGRAM-DATE-TIME, seconds since the epoch.
    pdt: f64,
    extinf: f64,
    /// Media time of the first sample (tfdt), seconds.
    start: f64,
    samples: u64,
    /// Sum of the sample durations, seconds.
    duration: f64,
}

#[derive(Debug, Default)]
struct Recorded {
    /// rendition -> media sequence number -> segment.
    renditions: BTreeMap<String, BTreeMap<u64, Seg>>,
    /// Every playlist text seen.
    playlists: Vec<String>,
    /// rendition -> its media timescale (the sample rate, for audio).
    timescales: BTreeMap<String, u32>,
}

/// Polls the multivariant playlist's media playlists every 200 ms, fetching
/// each new segment, until every one has EXT-X-ENDLIST (or `within`).
fn record(http: SocketAddr, stream: &str, within: Duration) -> Result<Recorded, String> {
    let deadline = Instant::now() + within;
    let master = loop {
        if let Some(b) = get(http, &format!("{stream}/index.m3u8")) {
            break String::from_utf8(b).unwrap();
        }
        if Instant::now() >= deadline {
            return Err(format!("{stream} never became playable"));
        }
        // The poll interval of a wait bounded by `deadline`.
        std::thread::sleep(Duration::from_millis(100));
    };
    let m = m3u8_rs::parse_master_playlist_res(master.as_bytes()).unwrap();
    let mut uris: Vec<String> = m.variants.iter().map(|v| v.uri.clone()).collect();
    uris.extend(m.alternatives.iter().filter_map(|a| a.uri.clone()));
    assert!(uris.iter().any(|u| u.contains("/audio/")), "{master}");
    let mut rec = Recorded::default();
    let mut ended = vec![false; uris.len()];
    while !ended.iter().all(|e| *e) {
        if Instant::now() >= deadline {
            return Err(format!("the stream did not end within {within:?}"));
        }
        for (i, uri) in uris.iter().enumerate() {
            if ended[i] {
                continue;
            }
            let dir = uri.trim_end_matches("index.m3u8");
            let name = dir.trim_end_matches('/').rsplit('/').next().unwrap().to_string();
            let Some(text) = get(http, &format!("{stream}/{uri}")) else {
                continue;
            };
            let text = String::from_utf8(text).unwrap();
            let p = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
            let timescale = *rec.timescales.entry(name.clone()).or_insert_with(|| {
                let init = get(http, &format!("{stream}/{dir}init.mp4")).expect("init.mp4");
                mdhd_timescale(&init)
            });
            let segs = rec.renditions.entry(name.clone()).or_default();
            for (k, s) in p.segments.iter().enumerate() {
                let msn = p.media_sequence + k as u64;
                if segs.contains_key(&msn) {
                    continue;
                }
                let data = get(http, &format!("{stream}/{dir}{}", s.uri)).expect("listed segment");
                let (start, samples, duration) = fragment(&data, timescale);
                let pdt = s.program_date_time.expect("PROGRAM-DATE-TIME");
                segs.insert(
                    msn,
                    Seg {
                        pdt: pdt.timestamp_micros() as f64 / 1e6,
                        extinf: f64::from(s.duration),
                        start,
                        samples,
                        duration,
                    },
                );
            }
            ended[i] = p.end_list;
            rec.playlists.push(text);
        }
        // The reload interval of a recording bounded by `within`.
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(rec)
}

/// Iterates over the boxes in `data`: (type, body).
fn boxes(data: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        if off + 8 > data.len() {
            return None;
        }
        let size = u32::from_be_bytes(data[off..off + 4].try_into().unwrap()) as usize;
        let kind = &data[off + 4..off + 8];
        if size < 8 || off + size > data.len() {
            return None;
        }
        let body = &data[off + 8..off + size];
        off += size;
        Some((kind, body))
    })
}

fn child<'a>(data: &'a [u8], path: &[&[u8]]) -> Option<&'a [u8]> {
    let (first, rest) = path.split_first()?;
    let (_, body) = boxes(data).find(|(k, _)| k == first)?;
    if rest.is_empty() { Some(body) } else { child(body, rest) }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn mdhd_timescale(init: &[u8]) -> u32 {
    let mdhd = child(init, &[b"moov", b"trak", b"mdia", b"mdhd"]).expect("mdhd");
    if mdhd[0] == 1 { be32(mdhd, 20) } else { be32(mdhd, 12) }
}

/// (tfdt in seconds, sample count, summed sample durations in seconds) of a
/// CMAF fragment.
fn fragment(seg: &[u8], timescale: u32) -> (f64, u64, f64) {
    let tfdt = child(seg, &[b"moof", b"traf", b"tfdt"]).expect("tfdt");
    let base = if tfdt[0] == 1 {
        u64::from_be_bytes(tfdt[4..12].try_into().unwrap())
    } else {
        u64::from(be32(tfdt, 4))
    };
    let tfhd = child(seg, &[b"moof", b"traf", b"tfhd"]).expect("tfhd");
    let tf_flags = be32(tfhd, 0) & 0xff_ffff;
    let mut at = 8 + if tf_flags & 0x1 != 0 { 8 } else { 0 } + if tf_flags & 0x2 != 0 { 4 } else { 0 };
    let default_duration = (tf_flags & 0x8 != 0).then(|| be32(tfhd, at));
    let trun = child(seg, &[b"moof", b"traf", b"trun"]).expect("trun");
    let flags = be32(trun, 0) & 0xff_ffff;
    let count = be32(trun, 4);
    at = 8 + if flags & 0x1 != 0 { 4 } else { 0 } + if flags & 0x4 != 0 { 4 } else { 0 };
    let mut total = 0u64;
    for _ in 0..count {
        if flags & 0x100 != 0 {
            total += u64::from(be32(trun, at));
            at += 4;
        } else {
            total += u64::from(default_duration.expect("a sample duration"));
        }
        at += [0x200, 0x400, 0x800].iter().filter(|f| flags & **f != 0).count() * 4;
    }
    let ts = f64::from(timescale);
    (base as f64 / ts, u64::from(count), total as f64 / ts)
}

/// AAC frames in the source copy, counted by ffprobe.
fn source_audio_frames(copy: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a", "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(copy)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a packet count")
}

/// Publishes `src` to a fresh origin with `profile`, records the stream,
/// and checks every rule of the module doc. Returns the recording.
fn run(profile: &str, src: Source) -> Recorded {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let origin = Origin::start();
    let key = origin.create_stream("golive", profile);
    let dir = tempfile::tempdir().unwrap();
    let copy: PathBuf = dir.path().join("published.flv");
    let mut ffmpeg = publish(origin.rtmp, &key, &src, &copy);
    let rec = record(origin.http, "golive", Duration::from_secs(u64::from(src.secs) + 60))
        .unwrap_or_else(|e| panic!("{e}\norigin: {}\nffmpeg: {}", origin.origin.log(), ffmpeg.log()));
    wait_until("ffmpeg to exit", Duration::from_secs(10), || !ffmpeg.is_running());
    let frame = 1024.0 / f64::from(src.rate);
    let tolerance = frame + 0.0015;

    let audio = &rec.renditions["audio"];
    let videos: Vec<(&String, &BTreeMap<u64, Seg>)> = rec.renditions.iter().filter(|(n, _)| *n != "audio").collect();
    assert!(!videos.is_empty());
    // Every segment was fetched, from the first on.
    for (name, segs) in &rec.renditions {
        let msns: Vec<u64> = segs.keys().copied().collect();
        assert_eq!(msns[0], 0, "{name}");
        assert_eq!(msns.len() as u64, msns[msns.len() - 1] + 1, "{name}: missing segments");
    }
    let last = *audio.keys().last().unwrap();
    let mut worst = (0.0f64, 0.0f64, 0.0f64);
    for (name, video) in &videos {
        assert!(
            video.len().abs_diff(audio.len()) <= 1,
            "{name} has {} segments, audio {}",
            video.len(),
            audio.len()
        );
        for (msn, a) in audio {
            let Some(v) = video.get(msn) else { continue };
            let d_start = (a.start - v.start).abs();
            let d_pdt = (a.pdt - v.pdt).abs();
            assert!(
                d_start <= tolerance,
                "MSN {msn}: audio starts at {} and {name} at {}",
                a.start,
                v.start
            );
            assert!(
                d_pdt <= tolerance,
                "MSN {msn}: PDT of audio {} and of {name} {}",
                a.pdt,
                v.pdt
            );
            worst.0 = worst.0.max(d_start);
            worst.1 = worst.1.max(d_pdt);
            if *msn < last {
                let d_extinf = (a.extinf - v.extinf).abs();
                assert!(
                    d_extinf <= tolerance,
                    "MSN {msn}: EXTINF of audio {} and of {name} {}",
                    a.extinf,
                    v.extinf
                );
                worst.2 = worst.2.max(d_extinf);
            }
        }
    }
    // No gap and no overlap beyond the source's millisecond timestamps.
    let segs: Vec<&Seg> = audio.values().collect();
    for w in segs.windows(2) {
        let gap = w[1].start - (w[0].start + w[0].duration);
        assert!(gap.abs() <= 0.0015, "audio gap of {gap} s at {}", w[1].start);
    }
    // Every source sample, no more: in time, since transcoding resamples to
    // 48 kHz (the encoder may add a frame when it flushes).
    let written: u64 = audio.values().map(|s| s.samples).sum();
    let written_secs = written as f64 * 1024.0 / f64::from(rec.timescales["audio"]);
    let source = source_audio_frames(&copy);
    let source_secs = source as f64 * 1024.0 / f64::from(src.rate);
    assert!(
        (written_secs - source_secs).abs() <= 2.0 * 1024.0 / 44_100.0,
        "{written} AAC frames ({written_secs:.3} s) written, {source} ({source_secs:.3} s) published"
    );
    // The media of audio and video advanced alike.
    let a_end = segs.last().map(|s| s.start + s.duration).unwrap();
    let (_, video) = videos[0];
    let v_end = video.values().last().map(|s| s.start + s.duration).unwrap();
    assert!(
        (a_end - v_end).abs() <= 0.1,
        "audio media ends at {a_end}, video at {v_end}"
    );
    for text in &rec.playlists {
        for l in text.lines().filter_map(|l| l.strip_prefix("#EXTINF:")) {
            let v = l.trim_end_matches(',');
            let decimals = v.split_once('.').map_or(0, |(_, d)| d.len());
            assert!(decimals <= 3, "EXTINF:{v}");
        }
    }
    let per_segment: Vec<u64> = audio.values().take(5).map(|s| s.samples).collect();
    println!(
        "{profile} {} Hz x{}: {} segments, {written} AAC frames ({written_secs:.3} s) of {source} ({source_secs:.3} s), first audio segments {per_segment:?} frames, \
         worst |audio - video| start {:.4} s, PDT {:.4} s, EXTINF {:.4} s; media end audio {a_end:.3} video {v_end:.3}",
        src.rate,
        src.channels,
        audio.len(),
        worst.0,
        worst.1,
        worst.2
    );
    rec
}

#[test]
fn audio_keeps_real_time_for_three_minutes() {
    let rec = run(
        "default",
        Source {
            rate: 48_000,
            channels: 1,
            fps: 15,
            secs: 180,
        },
    );
    // 1 s segments of 46.875 frames: 46 or 47 each, never fewer.
    for (msn, s) in rec.renditions["audio"].iter().rev().skip(1) {
        assert!(
            (46..=47).contains(&s.samples) || *msn == 0,
            "MSN {msn}: {} frames",
            s.samples
        );
    }
}

#[test]
fn audio_at_44100_stereo_matches_video() {
    run(
        "default",
        Source {
            rate: 44_100,
            channels: 2,
            fps: 15,
            secs: 20,
        },
    );
}

#[test]
fn passthrough_audio_at_48000_stereo_matches_video() {
    run(
        "passthrough",
        Source {
            rate: 48_000,
            channels: 2,
            fps: 15,
            secs: 20,
        },
    );
}

#[test]
fn passthrough_audio_at_44100_mono_matches_video() {
    run(
        "passthrough",
        Source {
            rate: 44_100,
            channels: 1,
            fps: 15,
            secs: 20,
        },
    );
}

#[test]
fn a_twenty_second_read_from_a_live_start_gets_every_frame() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let origin = Origin::start();
    let key = origin.create_stream("golive", "fps30");
    let dir = tempfile::tempdir().unwrap();
    let src = Source {
        rate: 48_000,
        channels: 2,
        fps: 30,
        secs: 40,
    };
    let _ffmpeg = publish(origin.rtmp, &key, &src, &dir.path().join("published.flv"));
    wait_until("the stream to be playable", Duration::from_secs(15), || {
        matches!(http_get(origin.http, "/golive/index.m3u8"), Some((200, _)))
    });
    // ffmpeg as a player from the live start, for 20 s of output.
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(format!("http://{}/golive/index.m3u8", origin.http))
        .args(["-map", "0:v:0", "-t", "20", "-c", "copy", "-f", "framecrc", "-"])
        .output()
        .unwrap();
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    println!("20 s read from the live start: {frames} video frames");
    assert!(
        frames >= 590,
        "{frames} of 600 frames: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
