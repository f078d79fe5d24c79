//! ffprobe as a player: which streams an HLS URL (or a file) carries.

use std::process::Command;

/// One stream as ffprobe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// `h264`, `aac`, ...
    pub codec: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// The colour matrix a video stream signals (`bt709`, `smpte170m`, ...).
    pub color_space: Option<String>,
}

/// Runs ffprobe on `url` and returns every stream it finds. Panics with
/// ffprobe's own words when it finds none.
pub fn streams(url: &str) -> Vec<Probed> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height,color_space",
        ])
        .args(["-of", "json", url])
        .output()
        .expect("run ffprobe");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let streams: Vec<Probed> = json["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| Probed {
                    codec: s["codec_name"].as_str().unwrap_or_default().to_string(),
                    width: s["width"].as_i64(),
                    height: s["height"].as_i64(),
                    color_space: s["color_space"].as_str().map(String::from),
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !streams.is_empty(),
        "ffprobe found no stream in {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    streams
}

/// The distinct sizes of the H.264 streams, smallest first.
pub fn h264_sizes(streams: &[Probed]) -> Vec<(i64, i64)> {
    let mut sizes: Vec<(i64, i64)> = streams
        .iter()
        .filter(|s| s.codec == "h264")
        .filter_map(|s| Some((s.width?, s.height?)))
        .collect();
    sizes.sort();
    sizes.dedup();
    sizes
}
