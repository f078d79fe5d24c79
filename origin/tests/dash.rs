//! The live DASH MPD (issue 17), from the real origin binary (real router API
//! on a real Redis, ffmpeg publishing over RTMP):
//! - it is well-formed XML of the shape `package::mpd` documents, served as
//!   `application/dash+xml` with a playlist's short max-age;
//! - it lists every rendition of the multivariant playlist;
//! - it is in step with the HLS media playlists read at the same moment:
//!   the same segment numbers with the same durations, each starting at the
//!   same wall-clock time (availabilityStartTime + S@t = PROGRAM-DATE-TIME),
//!   at most a segment behind, never ahead;
//! - every URL its SegmentTemplates imply exists, and each segment's own
//!   media time (`tfdt`) is the S@t that names it;
//! - ffmpeg's DASH demuxer opens it and decodes what its window lists;
//! - when the publish ends it stays dynamic, stops asking for updates and
//!   announces the presentation's duration.
//!
//! for a transcoded ladder, for low-latency HLS (parts stay HLS's; the MPD
//! lists whole segments) and for passthrough of a source whose keyframes
//! come at uneven intervals (segments of 1 to 2.2 s: the timeline's `d`
//! varies). A recording's static MPD (`render_static`, fed the segments the
//! live MPDs listed) plays whole in ffmpeg from the same files.
//!
//! A DASH schema check (xmllint with the ISO XSD) is not run: the schema is
//! published by ISO only, not in any package registry this project can use.

use quick_xml::Reader;
use quick_xml::events::Event;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};
use testkit::http_get;
use testkit::stack::{H264, Stack, ffmpeg_publish};

/// Transcoding takes both cores: one stream at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

type Attrs = BTreeMap<String, String>;

/// One AdaptationSet of an MPD.
#[derive(Debug, Default)]
struct Set {
    attrs: Attrs,
    template: Attrs,
    /// The timeline's `<S>` elements.
    s: Vec<Attrs>,
    reps: Vec<Attrs>,
}

#[derive(Debug)]
struct Mpd {
    attrs: Attrs,
    period: Attrs,
    sets: Vec<Set>,
    utc: Vec<Attrs>,
}

/// Parses an MPD, checking it is well-formed XML (end names match, one root).
fn parse(xml: &str) -> Mpd {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut mpd = Mpd {
        attrs: Attrs::new(),
        period: Attrs::new(),
        sets: vec![],
        utc: vec![],
    };
    let mut roots = 0;
    let mut depth = 0;
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{xml}"));
        let (e, empty) = match event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                depth -= 1;
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        if depth == 0 {
            roots += 1;
        }
        if !empty {
            depth += 1;
        }
        let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
        let attrs: Attrs = e
            .attributes()
            .map(|a| {
                let a = a.expect("attribute");
                (
                    String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                    a.unescape_value().expect("attribute value").into_owned(),
                )
            })
            .collect();
        match name.as_str() {
            "MPD" => mpd.attrs = attrs,
            "Period" => mpd.period = attrs,
            "AdaptationSet" => mpd.sets.push(Set {
                attrs,
                ..Set::default()
            }),
            "SegmentTemplate" => mpd.sets.last_mut().expect("template in a set").template = attrs,
            "S" => mpd.sets.last_mut().expect("S in a set").s.push(attrs),
            "Representation" => mpd.sets.last_mut().expect("representation in a set").reps.push(attrs),
            "UTCTiming" => mpd.utc.push(attrs),
            _ => {}
        }
    }
    assert_eq!(roots, 1, "one root element\n{xml}");
    assert_eq!(depth, 0, "every element closed\n{xml}");
    mpd
}

/// A set's segments from its timeline: (number, t, d) in its timescale.
fn segments(set: &Set) -> Vec<(u64, u64, u64)> {
    let num = |a: &Attrs, k: &str| a.get(k).map(|v| v.parse::<u64>().expect(k));
    let mut number = num(&set.template, "startNumber").unwrap_or(1);
    let mut t = 0;
    let mut out = vec![];
    for s in &set.s {
        if let Some(explicit) = num(s, "t") {
            t = explicit;
        }
        let d = num(s, "d").expect("S@d");
        for _ in 0..=num(s, "r").unwrap_or(0) {
            out.push((number, t, d));
            number += 1;
            t += d;
        }
    }
    out
}

/// `PT1.5S` -> 1.5 s (the forms the origin writes).
fn xs_duration(s: &str) -> f64 {
    s.strip_prefix("PT")
        .and_then(|s| s.strip_suffix('S'))
        .unwrap_or_else(|| panic!("duration {s}"))
        .parse()
        .unwrap()
}

fn epoch_secs(date: &str) -> f64 {
    let t = chrono::DateTime::parse_from_rfc3339(date).unwrap_or_else(|e| panic!("{date}: {e}"));
    t.timestamp_millis() as f64 / 1000.0
}

/// A media playlist: media sequence -> (PROGRAM-DATE-TIME, EXTINF) in
/// seconds, and whether it has ended.
type Playlist = (BTreeMap<u64, (f64, f64)>, bool);

fn media_playlist(text: &str) -> Playlist {
    let p = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("media playlist");
    let segs = p
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let pdt = s.program_date_time.expect("PROGRAM-DATE-TIME");
            (
                p.media_sequence + i as u64,
                (pdt.timestamp_millis() as f64 / 1000.0, f64::from(s.duration)),
            )
        })
        .collect();
    (segs, p.end_list)
}

fn get_bytes(addr: SocketAddr, path: &str) -> Option<Vec<u8>> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "10", &format!("http://{addr}{path}")])
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

/// The boxes of an ISO BMFF buffer: (type, body).
fn boxes(mut data: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = vec![];
    while data.len() >= 8 {
        let size = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        let (head, size) = if size == 1 {
            (16, u64::from_be_bytes(data[8..16].try_into().unwrap()) as usize)
        } else {
            (8, size)
        };
        if size < head || size > data.len() {
            break;
        }
        out.push((&data[4..8], &data[head..size]));
        data = &data[size..];
    }
    out
}

fn find<'a>(data: &'a [u8], path: &[&[u8]]) -> Option<&'a [u8]> {
    let (first, rest) = path.split_first()?;
    let body = boxes(data).into_iter().find(|(t, _)| t == first)?.1;
    if rest.is_empty() { Some(body) } else { find(body, rest) }
}

/// The media timescale of an init segment (`mdhd`).
fn timescale(init: &[u8]) -> u64 {
    let mdhd = find(init, &[b"moov", b"trak", b"mdia", b"mdhd"]).expect("mdhd");
    let at = if mdhd[0] == 1 { 20 } else { 12 };
    u64::from(u32::from_be_bytes(mdhd[at..at + 4].try_into().unwrap()))
}

/// A fragment's base media decode time (`tfdt`), in its timescale.
fn tfdt(segment: &[u8]) -> u64 {
    let b = find(segment, &[b"moof", b"traf", b"tfdt"]).expect("tfdt");
    if b[0] == 1 {
        u64::from_be_bytes(b[4..12].try_into().unwrap())
    } else {
        u64::from(u32::from_be_bytes(b[4..8].try_into().unwrap()))
    }
}

/// `curl -sD-`: the response head, lower-cased.
fn head(addr: SocketAddr, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "--max-time", "10"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
}

/// At most this far apart (seconds): EXTINF and PROGRAM-DATE-TIME have
/// millisecond precision, and the MPD folds hairline gaps of up to a
/// millisecond into a segment's duration.
const SLACK: f64 = 0.0025;

/// A representation's (id, codec, bandwidth, width, height) and each set's
/// segments, number -> (t, d), as the live MPDs listed them.
#[derive(Default)]
struct Seen {
    reps: BTreeMap<String, (bool, Attrs)>,
    segments: BTreeMap<bool, BTreeMap<u64, (u64, u64)>>,
}

/// Publishes 30 s of `video` (encoder arguments) as `profile` and checks
/// the module doc's rules of the live MPD; returns the origin (still
/// running), the session and what the MPDs listed.
fn run(profile: &str, video: &[&str], renditions: usize) -> (Stack, String, Seen) {
    let mut stack = Stack::new();
    let origin = stack.add_origin("origin-a").http;
    let rtmp = stack.origins[0].rtmp;
    let key = stack.create_stream_with("golive", Some(profile));
    let mut ffmpeg = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{key}"), "flv", 30, video);
    let origin_log = |stack: &Stack| stack.origins[0].process.log();
    let mut seen = Seen::default();

    testkit::wait_until("the MPD to be written", Duration::from_secs(30), || {
        matches!(http_get(origin, "/golive/manifest.mpd"), Some((200, _)))
    });
    let h = head(origin, "/golive/manifest.mpd");
    assert!(h.contains("content-type: application/dash+xml"), "{h}");
    let max_age: u64 = h
        .split("cache-control: public, max-age=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a max-age: {h}"));
    assert!((1..=2).contains(&max_age), "a playlist's short max-age: {h}");

    let (_, master) = http_get(origin, "/golive/index.m3u8").expect("multivariant playlist");
    let master = m3u8_rs::parse_master_playlist_res(master.as_bytes()).expect("multivariant");
    // rendition -> media playlist path
    let mut playlists: BTreeMap<String, String> = BTreeMap::new();
    for uri in master
        .variants
        .iter()
        .map(|v| v.uri.clone())
        .chain(master.alternatives.iter().filter_map(|a| a.uri.clone()))
    {
        let (_, rendition) = api_types::layout::parse_media_playlist_uri(&uri).expect("layout URI");
        playlists.insert(rendition.to_string(), format!("/golive/{uri}"));
    }
    assert_eq!(playlists.len(), renditions, "{playlists:?}");
    let session = api_types::layout::parse_media_playlist_uri(&master.variants[0].uri)
        .unwrap()
        .0
        .to_string();

    // Several moments: the MPD, then every media playlist at once.
    let mut checked = 0;
    let mut tfdt_checked = 0;
    let mut worst = (0.0f64, 0.0f64, 0.0f64);
    let rounds_until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < rounds_until {
        let (status, text) = http_get(origin, "/golive/manifest.mpd").expect("MPD");
        assert_eq!(status, 200);
        let hls: BTreeMap<&str, Playlist> = playlists
            .iter()
            .map(|(r, p)| (r.as_str(), media_playlist(&http_get(origin, p).expect("playlist").1)))
            .collect();
        let mpd = parse(&text);
        assert_eq!(mpd.attrs["type"], "dynamic", "{text}");
        assert_eq!(mpd.attrs["xmlns"], "urn:mpeg:dash:schema:mpd:2011");
        assert!(mpd.attrs["profiles"].contains("urn:mpeg:dash:profile:isoff-live:2011"));
        for k in [
            "minimumUpdatePeriod",
            "timeShiftBufferDepth",
            "suggestedPresentationDelay",
            "minBufferTime",
        ] {
            xs_duration(&mpd.attrs[k]);
        }
        // The delay keeps a player inside the window once it is filled.
        let (delay, depth, longest) = (
            xs_duration(&mpd.attrs["suggestedPresentationDelay"]),
            xs_duration(&mpd.attrs["timeShiftBufferDepth"]),
            xs_duration(&mpd.attrs["maxSegmentDuration"]),
        );
        assert!(delay <= 3.0 * longest, "{text}");
        if depth >= 2.0 * longest {
            assert!(delay < depth, "{text}");
        }
        assert_eq!(mpd.period["id"], session);
        assert_eq!(mpd.utc.len(), 1);
        assert_eq!(mpd.utc[0]["schemeIdUri"], "urn:mpeg:dash:utc:direct:2014");
        let utc = epoch_secs(&mpd.utc[0]["value"]);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - utc).abs() < 3.0, "UTCTiming {utc} now {now}");
        let ast = epoch_secs(&mpd.attrs["availabilityStartTime"]);
        let listed: Vec<String> = mpd.sets.iter().flat_map(|s| &s.reps).map(|r| r["id"].clone()).collect();
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(sorted, playlists.keys().cloned().collect::<Vec<_>>(), "{text}");
        let kinds: Vec<&str> = mpd.sets.iter().map(|s| s.attrs["contentType"].as_str()).collect();
        assert_eq!(kinds, ["video", "audio"], "{text}");
        for set in &mpd.sets {
            let video = set.attrs["contentType"] == "video";
            for r in &set.reps {
                seen.reps.insert(r["id"].clone(), (video, r.clone()));
            }
            let ts: u64 = set.template["timescale"].parse().unwrap();
            assert_eq!(
                set.template["media"],
                format!("{session}/$RepresentationID$/$Number$.m4s")
            );
            let segs = segments(set);
            assert!(!segs.is_empty(), "{text}");
            for &(n, t, d) in &segs {
                let known = seen.segments.entry(video).or_default();
                if let Some(&before) = known.get(&n) {
                    assert_eq!(before, (t, d), "segment {n} changed in the timeline");
                }
                known.insert(n, (t, d));
            }
            for rep in &set.reps {
                let id = rep["id"].as_str();
                assert!(rep["bandwidth"].parse::<u64>().unwrap() > 0);
                let (hls_segs, _) = &hls[id];
                let (&hls_last, _) = hls_segs.last_key_value().unwrap();
                let mpd_last = segs.last().unwrap().0;
                assert!(
                    mpd_last <= hls_last && mpd_last + 1 >= hls_last,
                    "{id}: MPD lists up to {mpd_last}, HLS {hls_last}"
                );
                for &(n, t, d) in &segs {
                    let Some(&(pdt, extinf)) = hls_segs.get(&n) else {
                        // Left the HLS window since the MPD was read.
                        assert!(n < *hls_segs.keys().next().unwrap(), "{id}/{n} not in HLS");
                        continue;
                    };
                    let (start, length) = (t as f64 / ts as f64, d as f64 / ts as f64);
                    let d_len = (length - extinf).abs();
                    let d_wall = (ast + start - pdt).abs();
                    assert!(d_len <= SLACK, "{id}/{n}: MPD {length} s, EXTINF {extinf} s");
                    assert!(
                        d_wall <= SLACK,
                        "{id}/{n}: AST + t = {} but PROGRAM-DATE-TIME {pdt}",
                        ast + start
                    );
                    worst.0 = worst.0.max(d_len);
                    worst.1 = worst.1.max(d_wall);
                    checked += 1;
                }
                // Every URL the template implies for this Representation.
                let dir = format!("/golive/{session}/{id}");
                let init = get_bytes(origin, &format!("{dir}/init.mp4")).expect("init segment");
                let media_ts = timescale(&init);
                for &(n, t, _) in segs.iter().rev().take(3) {
                    let seg = get_bytes(origin, &format!("{dir}/{n}.m4s"))
                        .unwrap_or_else(|| panic!("{dir}/{n}.m4s listed but missing"));
                    let own = tfdt(&seg) as f64 / media_ts as f64;
                    let d = (own - t as f64 / ts as f64).abs();
                    assert!(d <= 0.0015, "{id}/{n}: tfdt {own} s, S@t {} s", t as f64 / ts as f64);
                    worst.2 = worst.2.max(d);
                    tfdt_checked += 1;
                }
            }
        }
        // Paces the rounds: one per segment (1 s) gives new moments to compare.
        std::thread::sleep(Duration::from_millis(900));
    }
    assert!(checked > 40, "only {checked} segments compared");

    // ffmpeg's DASH demuxer opens the live MPD and decodes what its window
    // lists (three target durations at least). It reads no further: past
    // the last listed segment it asks for the next number before the MPD
    // lists it and, on the 404, skips on to the next (dash.c), so it can
    // only be asked for what is listed when it opens the MPD.
    let out = Command::new("timeout")
        .args(["60", "ffmpeg", "-hide_banner", "-nostats", "-v", "error"])
        .args(["-i", &format!("http://{origin}/golive/manifest.mpd")])
        // A loaded machine may deliver one representation's segments well
        // before the other's: ffmpeg's default muxing queue (128 packets)
        // then gives up before the first audio packet ("Too many packets
        // buffered").
        .args(["-max_muxing_queue_size", "4096"])
        .args(["-t", "2.5", "-f", "null", "-", "-progress", "pipe:1"])
        .output()
        .expect("run ffmpeg");
    let progress = String::from_utf8_lossy(&out.stdout);
    let last = |key: &str| -> Option<f64> {
        progress
            .lines()
            .filter_map(|l| l.strip_prefix(key)?.parse::<f64>().ok())
            .next_back()
    };
    let (frames, out_us) = (last("frame=").unwrap_or(0.0), last("out_time_us=").unwrap_or(0.0));
    assert!(
        out.status.success() && frames >= 15.0 && out_us >= 2.4e6,
        "ffmpeg decoded {frames} frames, {} s: {}\n{progress}",
        out_us / 1e6,
        String::from_utf8_lossy(&out.stderr)
    );

    // The end: still dynamic, no more updates, the duration announced.
    testkit::wait_until("ffmpeg to finish publishing", Duration::from_secs(40), || {
        !ffmpeg.is_running()
    });
    let mut ended = None;
    testkit::wait_until("the MPD to announce the end", Duration::from_secs(20), || {
        let text = http_get(origin, "/golive/manifest.mpd")
            .map(|(_, t)| t)
            .unwrap_or_default();
        let mpd = parse(&text);
        let done = mpd.attrs.contains_key("mediaPresentationDuration");
        if done {
            ended = Some(mpd);
        }
        done
    });
    let mpd = ended.unwrap();
    assert_eq!(mpd.attrs["type"], "dynamic");
    assert!(!mpd.attrs.contains_key("minimumUpdatePeriod"), "{:?}", mpd.attrs);
    let announced = xs_duration(&mpd.attrs["mediaPresentationDuration"]);
    let hls_end = playlists
        .values()
        .map(|p| {
            let (segs, end_list) = media_playlist(&http_get(origin, p).expect("playlist").1);
            assert!(end_list, "{p} ended");
            let (_, (pdt, extinf)) = segs.last_key_value().unwrap();
            pdt + extinf
        })
        .fold(0.0f64, f64::max);
    let ast = epoch_secs(&mpd.attrs["availabilityStartTime"]);
    assert!(
        (ast + announced - hls_end).abs() <= 0.01,
        "ends at {} by the MPD, {hls_end} by HLS\n{}",
        ast + announced,
        origin_log(&stack)
    );
    println!(
        "{profile}: {checked} segments in step (worst |MPD - EXTINF| {:.4} s, |AST + t - PDT| {:.4} s), {tfdt_checked} tfdt checked (worst {:.4} s); \
         ffmpeg decoded {frames} frames; presentation {announced} s",
        worst.0, worst.1, worst.2
    );
    (stack, session, seen)
}

#[test]
fn the_live_mpd_of_a_ladder_is_in_step_with_hls_and_so_is_a_recordings_static_mpd() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (stack, session, seen) = run("default", H264, 4);
    let origin = &stack.origins[0];
    // A recording of the first segments the live MPDs listed (contiguous
    // from 0, still on disk within the segment grace), as the recording
    // writer will call it beside its VOD playlists.
    let tick = |t: u64| Duration::from_nanos(t * 1_000_000_000 / origin::package::mpd::TIMESCALE);
    let mut reps = vec![];
    let mut length = [0u64; 2];
    for (id, (video, a)) in &seen.reps {
        let num = |k: &str| a.get(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        let listed = &seen.segments[video];
        let segments: Vec<origin::package::mpd::SegmentTime> = (0..)
            .map_while(|n| listed.get(&n).map(|&(t, d)| (n, t, d)))
            .take(10)
            .map(|(number, t, d)| origin::package::mpd::SegmentTime {
                number,
                start: tick(t),
                duration: tick(d),
            })
            .collect();
        assert!(segments.len() >= 5, "{id}: {} segments from 0", segments.len());
        length[usize::from(*video)] = segments
            .last()
            .map(|s| ((s.start + s.duration) - segments[0].start).as_millis() as u64)
            .unwrap();
        reps.push(origin::package::mpd::Representation {
            id: id.clone(),
            media: if *video {
                origin::package::mpd::Media::Video {
                    width: num("width"),
                    height: num("height"),
                    fps: a.get("frameRate").and_then(|f| f.parse().ok()),
                }
            } else {
                origin::package::mpd::Media::Audio
            },
            codec: a["codecs"].clone(),
            bandwidth: a["bandwidth"].parse().unwrap(),
            segments,
        });
    }
    let text = origin::package::mpd::render_static(&session, Duration::from_secs(1), &reps).expect("a static MPD");
    std::fs::write(
        origin.out.path().join("golive").join(&session).join("manifest.mpd"),
        &text,
    )
    .unwrap();
    let path = format!("/golive/{session}/manifest.mpd");
    let h = head(origin.http, &path);
    assert!(h.contains("content-type: application/dash+xml"), "{h}");
    assert!(h.contains("cache-control: public, max-age=3600"), "{h}");
    let mpd = parse(&text);
    assert_eq!(mpd.attrs["type"], "static");
    let announced = xs_duration(&mpd.attrs["mediaPresentationDuration"]);
    let longest = length.iter().max().copied().unwrap() as f64 / 1000.0;
    assert!(
        (announced - longest).abs() <= 0.002,
        "{announced} s announced, {longest} s listed"
    );
    // ffmpeg reads it whole from the same files: every frame of the video.
    let out = Command::new("timeout")
        .args(["60", "ffmpeg", "-hide_banner", "-nostats", "-v", "error"])
        .args(["-i", &format!("http://{}{path}", origin.http)])
        .args(["-max_muxing_queue_size", "4096"])
        .args(["-f", "null", "-", "-progress", "pipe:1"])
        .output()
        .expect("run ffmpeg");
    let progress = String::from_utf8_lossy(&out.stdout);
    let last = |key: &str| -> f64 {
        progress
            .lines()
            .filter_map(|l| l.strip_prefix(key)?.parse::<f64>().ok())
            .next_back()
            .unwrap_or(0.0)
    };
    let (frames, played) = (last("frame="), last("out_time_us=") / 1e6);
    let expected = (length[1] as f64 / 1000.0 * 15.0).round();
    assert!(
        out.status.success() && (frames - expected).abs() <= 2.0 && (played - announced).abs() <= 0.2,
        "the recording of {announced} s: ffmpeg decoded {frames} frames (expected {expected}) over {played} s: {}\n{progress}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("static MPD: {announced} s, ffmpeg decoded {frames} frames over {played:.3} s");
}

#[test]
fn the_live_mpd_of_low_latency_hls_lists_whole_segments_in_step() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("ll", H264, 3);
}

#[test]
fn the_live_mpd_of_passthrough_follows_uneven_keyframes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Keyframes 1, 1.6 and 2.2 s apart, in turn: passthrough cuts there.
    let mut at = 0.0f64;
    let mut times = vec![];
    for gap in [1.0, 1.6, 2.2].iter().cycle().take(24) {
        times.push(format!("{at:.1}"));
        at += gap;
    }
    let keys = times.join(",");
    let video = [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        "600",
        "-sc_threshold",
        "0",
        "-force_key_frames",
        &keys,
        "-pix_fmt",
        "yuv420p",
    ];
    let (_stack, _, seen) = run("passthrough", &video, 2);
    let durations: std::collections::BTreeSet<u64> = seen.segments[&true].values().map(|&(_, d)| d).collect();
    assert!(durations.len() >= 3, "uneven segments: {durations:?}");
}
