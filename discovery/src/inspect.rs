//! Judging one stream folder: is it live, and what should the router know?
//!
//! A stream is live while its multivariant playlist lists media playlists of
//! one session, none of them carries EXT-X-ENDLIST, and the newest was
//! modified within 1.5 target durations. This module only reads files; it is
//! a pure function of the folder and the clock, which keeps it testable.

use api_types::layout::{self, PLAYLIST};
use api_types::{OriginReport, Rendition, validate_manifest_path, validate_name, validate_session};
use m3u8_rs::{MasterPlaylist, MediaPlaylist};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Used when no media playlist states a target duration we can use.
const FALLBACK_TARGET_DURATION: Duration = Duration::from_secs(6);

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Report `report`; the stream goes stale at `stale_at` unless its
    /// playlists change before then.
    Live { report: OriginReport, stale_at: SystemTime },
    /// Not live, and why (for logs).
    NotLive(&'static str),
}

/// What the tracker needs to judge a folder.
pub struct Context<'a> {
    pub output_dir: &'a Path,
    pub advertise: &'a str,
    /// Overrides 1.5 × target duration.
    pub stale_after: Option<Duration>,
}

pub fn inspect(ctx: &Context<'_>, name: &str, now: SystemTime) -> Status {
    if validate_name("stream name", name).is_err() {
        return Status::NotLive("folder name is not a stream name");
    }
    let stream_dir = ctx.output_dir.join(name);
    let Ok(bytes) = std::fs::read(stream_dir.join(PLAYLIST)) else {
        return Status::NotLive("no multivariant playlist");
    };
    let Ok(master) = m3u8_rs::parse_master_playlist_res(&bytes) else {
        return Status::NotLive("unreadable multivariant playlist");
    };
    let Some((session, renditions, uris)) = renditions(&master) else {
        return Status::NotLive("multivariant playlist lists no media playlists of one session");
    };

    let mut newest: Option<SystemTime> = None;
    let mut target = Duration::ZERO;
    for uri in &uris {
        let path = stream_dir.join(uri);
        let (Ok(meta), Ok(bytes)) = (std::fs::metadata(&path), std::fs::read(&path)) else {
            continue; // not written yet
        };
        let Ok(media) = m3u8_rs::parse_media_playlist_res(&bytes) else {
            continue;
        };
        if media.end_list {
            return Status::NotLive("ended (EXT-X-ENDLIST)");
        }
        target = target.max(target_duration(&media));
        if let Ok(m) = meta.modified() {
            newest = Some(newest.map_or(m, |n| n.max(m)));
        }
    }
    let Some(newest) = newest else {
        return Status::NotLive("no media playlist yet");
    };
    if target.is_zero() {
        target = FALLBACK_TARGET_DURATION;
    }
    let stale_at = newest + ctx.stale_after.unwrap_or(target.mul_f64(1.5));
    if now > stale_at {
        return Status::NotLive("stale: playlists stopped changing");
    }
    let report = OriginReport {
        host: ctx.advertise.to_string(),
        manifest: layout::multivariant_path(name),
        session: session.to_string(),
        renditions,
    };
    Status::Live { report, stale_at }
}

fn target_duration(media: &MediaPlaylist) -> Duration {
    Duration::from_secs(media.target_duration)
}

/// The session, renditions and media playlist URIs a multivariant playlist
/// lists, if they follow the layout and all belong to one session.
fn renditions(master: &MasterPlaylist) -> Option<(&str, Vec<Rendition>, Vec<&str>)> {
    // Variants carry bandwidth, resolution and codecs; alternative media
    // (the audio group) only a URI.
    let variants = master.variants.iter().filter(|v| !v.is_i_frame).map(|v| {
        let details = Rendition {
            name: String::new(),
            bandwidth: Some(v.bandwidth),
            resolution: v.resolution.map(|r| format!("{}x{}", r.width, r.height)),
            codecs: v.codecs.clone(),
        };
        (v.uri.as_str(), details)
    });
    let alternatives = master.alternatives.iter().filter_map(|a| a.uri.as_deref()).map(|uri| {
        (
            uri,
            Rendition {
                name: String::new(),
                bandwidth: None,
                resolution: None,
                codecs: None,
            },
        )
    });

    let mut session = None;
    let mut renditions: Vec<Rendition> = vec![];
    let mut uris = vec![];
    for (uri, mut rendition) in variants.chain(alternatives) {
        validate_manifest_path(uri).ok()?;
        let (s, r) = layout::parse_media_playlist_uri(uri)?;
        validate_session(s).ok()?;
        validate_name("rendition name", r).ok()?;
        if *session.get_or_insert(s) != s {
            return None;
        }
        if !renditions.iter().any(|x| x.name == r) {
            rendition.name = r.to_string();
            renditions.push(rendition);
        }
        uris.push(uri);
    }
    Some((session?, renditions, uris))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, body: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    const MASTER: &str = "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"s1/audio/index.m3u8\"\n\
        #EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"aud\"\n\
        s1/720p/index.m3u8\n\
        #EXT-X-STREAM-INF:BANDWIDTH=1000000,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\",AUDIO=\"aud\"\n\
        s1/360p/index.m3u8\n";

    fn media(end: bool) -> String {
        let mut s = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
            #EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.0,\n0.m4s\n"
            .to_string();
        if end {
            s.push_str("#EXT-X-ENDLIST\n");
        }
        s
    }

    fn ctx(dir: &Path) -> Context<'_> {
        Context {
            output_dir: dir,
            advertise: "127.0.0.1:8080",
            stale_after: None,
        }
    }

    #[test]
    fn live_stream_is_reported_with_its_renditions() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "golive/index.m3u8", MASTER);
        for r in ["720p", "360p", "audio"] {
            write(d.path(), &format!("golive/s1/{r}/index.m3u8"), &media(false));
        }
        let now = SystemTime::now();
        let Status::Live { report, stale_at } = inspect(&ctx(d.path()), "golive", now) else {
            panic!("not live")
        };
        assert_eq!(report.session, "s1");
        assert_eq!(report.manifest, "golive/index.m3u8");
        let names: Vec<_> = report.renditions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["720p", "360p", "audio"]);
        assert_eq!(report.renditions[0].resolution.as_deref(), Some("1280x720"));
        // 1.5 × the 2 s target duration.
        assert!(stale_at > now + Duration::from_millis(2_500) && stale_at <= now + Duration::from_secs(3));
        assert_eq!(
            inspect(&ctx(d.path()), "golive", now + Duration::from_secs(4)),
            Status::NotLive("stale: playlists stopped changing")
        );
    }

    #[test]
    fn endlist_missing_files_and_bad_layouts_are_not_live() {
        let d = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        assert_eq!(
            inspect(&ctx(d.path()), "golive", now),
            Status::NotLive("no multivariant playlist")
        );
        write(d.path(), "golive/index.m3u8", MASTER);
        assert_eq!(
            inspect(&ctx(d.path()), "golive", now),
            Status::NotLive("no media playlist yet")
        );
        write(d.path(), "golive/s1/720p/index.m3u8", &media(false));
        assert!(matches!(inspect(&ctx(d.path()), "golive", now), Status::Live { .. }));
        write(d.path(), "golive/s1/360p/index.m3u8", &media(true));
        assert_eq!(
            inspect(&ctx(d.path()), "golive", now),
            Status::NotLive("ended (EXT-X-ENDLIST)")
        );

        for bad in ["../x/index.m3u8", "s1/720p/other.m3u8", "/abs/720p/index.m3u8"] {
            write(
                d.path(),
                "bad/index.m3u8",
                &format!("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n{bad}\n"),
            );
            assert!(
                matches!(inspect(&ctx(d.path()), "bad", now), Status::NotLive(_)),
                "{bad}"
            );
        }
        let mixed =
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\ns1/a/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1\ns2/b/index.m3u8\n";
        write(d.path(), "mixed/index.m3u8", mixed);
        assert!(matches!(inspect(&ctx(d.path()), "mixed", now), Status::NotLive(_)));
        write(d.path(), "Upper/index.m3u8", MASTER);
        assert_eq!(
            inspect(&ctx(d.path()), "Upper", now),
            Status::NotLive("folder name is not a stream name")
        );
        write(d.path(), "garbage/index.m3u8", "\u{0}\u{1}not a playlist");
        assert!(matches!(inspect(&ctx(d.path()), "garbage", now), Status::NotLive(_)));
    }
}
