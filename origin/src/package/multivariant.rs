//! The multivariant playlist of one publish session.
//!
//! Written once per session, when every rendition has produced its first
//! segment (so codecs and resolutions are known from the real output).
//! Video renditions are EXT-X-STREAM-INF entries; audio is one EXT-X-MEDIA
//! group that every video variant references.

use m3u8_rs::{AlternativeMedia, AlternativeMediaType, MasterPlaylist, Resolution, VariantStream};

/// What the multivariant playlist needs to know about a rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionInfo {
    pub name: String,
    /// Media playlist URI relative to the multivariant playlist.
    pub uri: String,
    /// RFC 6381 codec string, e.g. `avc1.64001f` or `mp4a.40.2`.
    pub codec: String,
    /// Peak and average bits per second of this rendition alone.
    pub peak_bps: u64,
    pub average_bps: u64,
    /// Video only.
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
}

const AUDIO_GROUP: &str = "audio";

/// Renders the playlist. `audio` is the audio rendition, if the stream has
/// one; its bitrate is added to every variant's BANDWIDTH since a player
/// fetches both.
pub fn render(video: &[RenditionInfo], audio: Option<&RenditionInfo>) -> String {
    let mut variants: Vec<VariantStream> = video
        .iter()
        .map(|v| {
            let codecs = match audio {
                Some(a) => format!("{},{}", v.codec, a.codec),
                None => v.codec.clone(),
            };
            VariantStream {
                uri: v.uri.clone(),
                bandwidth: v.peak_bps + audio.map_or(0, |a| a.peak_bps),
                average_bandwidth: Some(v.average_bps + audio.map_or(0, |a| a.average_bps)),
                codecs: Some(codecs),
                resolution: v.resolution.map(|(w, h)| Resolution {
                    width: w.into(),
                    height: h.into(),
                }),
                frame_rate: v.frame_rate,
                audio: audio.map(|_| AUDIO_GROUP.to_string()),
                ..Default::default()
            }
        })
        .collect();
    // Highest quality first is what most players expect to see listed.
    variants.sort_by_key(|v| std::cmp::Reverse(v.bandwidth));
    let alternatives = audio
        .map(|a| {
            vec![AlternativeMedia {
                media_type: AlternativeMediaType::Audio,
                uri: Some(a.uri.clone()),
                group_id: AUDIO_GROUP.into(),
                name: a.name.clone(),
                default: true,
                autoselect: true,
                channels: Some("2".into()),
                ..Default::default()
            }]
        })
        .unwrap_or_default();
    let playlist = MasterPlaylist {
        version: Some(7),
        variants,
        alternatives,
        independent_segments: true,
        ..Default::default()
    };
    let mut out = vec![];
    playlist.write_to(&mut out).expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("m3u8-rs writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(name: &str, bps: u64, h: u32) -> RenditionInfo {
        RenditionInfo {
            name: name.into(),
            uri: format!("s1/{name}/index.m3u8"),
            codec: "avc1.64001f".into(),
            peak_bps: bps,
            average_bps: bps * 4 / 5,
            resolution: Some((h * 16 / 9, h)),
            frame_rate: Some(30.0),
        }
    }

    #[test]
    fn lists_variants_with_audio_group() {
        let audio = RenditionInfo {
            name: "audio".into(),
            uri: "s1/audio/index.m3u8".into(),
            codec: "mp4a.40.2".into(),
            peak_bps: 128_000,
            average_bps: 128_000,
            resolution: None,
            frame_rate: None,
        };
        let text = render(
            &[video("360p", 700_000, 360), video("720p", 2_800_000, 720)],
            Some(&audio),
        );
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
        assert!(parsed.independent_segments);
        assert_eq!(parsed.variants[0].uri, "s1/720p/index.m3u8");
        assert_eq!(parsed.variants[0].bandwidth, 2_928_000);
        assert_eq!(parsed.variants[0].codecs.as_deref(), Some("avc1.64001f,mp4a.40.2"));
        assert_eq!(parsed.variants[1].resolution.unwrap().height, 360);
        assert_eq!(parsed.variants[0].audio.as_deref(), Some("audio"));
        assert_eq!(parsed.alternatives[0].uri.as_deref(), Some("s1/audio/index.m3u8"));
        assert!(text.contains("FRAME-RATE=30"), "{text}");
        assert!(text.contains("AVERAGE-BANDWIDTH="), "{text}");
    }
}
