//! Transcoding profiles: named ABR ladders from the origin's configuration.
//!
//! The router API names a profile for each stream; the ladder itself is the
//! origin's business, so that operators can tune ladders per machine. A
//! profile is either `passthrough` (repackage the source, no re-encoding) or
//! a list of rungs. [`Profile::ladder_for`] fits a ladder to the actual
//! source: never above the source's height or frame rate.
//!
//! The file format (`--profiles FILE`):
//!
//! ```toml
//! [profiles.default]
//! segment_duration = "2s"      # GOP = segment duration, in every rung
//! part_target = "334ms"        # low-latency HLS parts; omit for plain HLS
//! dvr_window = "2h"            # time-shift window ("90s", or seconds: 5400);
//!                              # 0 or absent: the live window; at most 24h
//! audio_bitrate_kbps = 128
//!
//! [[profiles.default.rungs]]
//! name = "720p"
//! height = 720                 # width follows the source's aspect ratio
//! video_bitrate_kbps = 2800
//! fps = 30
//! preset = "veryfast"          # x264 speed preset
//!
//! [profiles.passthrough]
//! passthrough = true
//! ```

use api_types::validate_name;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ProfileError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid profiles file: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("profile {profile}: {reason}")]
    Invalid { profile: String, reason: String },
}

/// x264 speed presets, fastest first.
const PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// One rung of a ladder as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    /// Rendition name: its folder and its name in playlists.
    pub name: String,
    pub height: u32,
    pub video_bitrate_kbps: u32,
    pub fps: u32,
    #[serde(default = "default_preset")]
    pub preset: String,
}

fn default_preset() -> String {
    "veryfast".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub passthrough: bool,
    #[serde(default = "default_segment", with = "humantime_serde_compat")]
    pub segment_duration: Duration,
    #[serde(default = "default_audio")]
    pub audio_bitrate_kbps: u32,
    #[serde(default)]
    pub rungs: Vec<Rung>,
    /// Low-latency HLS: the part duration (`part_target = "334ms"`); none
    /// for plain HLS.
    #[serde(default, with = "humantime_serde_option")]
    pub part_target: Option<Duration>,
    /// DVR: how much media the media playlists list (and segments stay on
    /// disk), so players can seek back; `None` (or 0): the live window.
    #[serde(default, with = "dvr_window_serde")]
    pub dvr_window: Option<Duration>,
}

fn default_segment() -> Duration {
    Duration::from_secs(2)
}

fn default_audio() -> u32 {
    128
}

/// `"2s"`-style durations in TOML.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// Optional `"334ms"`-style durations in TOML.
mod humantime_serde_option {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// `dvr_window`: `"2h"`, `"90s"` or whole seconds; 0 is none.
mod dvr_window_serde {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Window {
        Seconds(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let w = match Option::<Window>::deserialize(d)? {
            None => return Ok(None),
            Some(Window::Seconds(s)) => Duration::from_secs(s),
            Some(Window::Text(t)) => humantime::parse_duration(&t).map_err(serde::de::Error::custom)?,
        };
        Ok(Some(w).filter(|w| !w.is_zero()))
    }
}

/// A rung fitted to a source: what the transcoder actually produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub video_bitrate_kbps: u32,
    pub fps: u32,
    pub preset: String,
}

/// The source as the demuxer/decoder reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub width: u32,
    pub height: u32,
    /// Frames per second, rounded up.
    pub fps: u32,
}

impl Profile {
    /// The renditions to produce for `source`: rungs above the source's
    /// height are dropped (never upscale) and frame rates are capped at the
    /// source's. If every rung is above the source, the lowest rung is kept
    /// at the source's own height. Empty for a passthrough profile.
    pub fn ladder_for(&self, source: Source) -> Vec<Rendition> {
        if self.passthrough {
            return vec![];
        }
        let fit = |r: &Rung, height: u32| {
            let width = even((u64::from(source.width) * u64::from(height) / u64::from(source.height.max(1))) as u32);
            Rendition {
                name: r.name.clone(),
                width,
                height: even(height),
                video_bitrate_kbps: r.video_bitrate_kbps,
                fps: r.fps.min(source.fps.max(1)),
                preset: r.preset.clone(),
            }
        };
        let mut out: Vec<Rendition> = self
            .rungs
            .iter()
            .filter(|r| r.height <= source.height)
            .map(|r| fit(r, r.height))
            .collect();
        if out.is_empty()
            && let Some(lowest) = self.rungs.iter().min_by_key(|r| r.height)
        {
            out.push(fit(lowest, source.height));
        }
        out
    }

    fn validate(&self, name: &str) -> Result<(), ProfileError> {
        let bad = |reason: String| {
            Err(ProfileError::Invalid {
                profile: name.to_string(),
                reason,
            })
        };
        if validate_name("profile", name).is_err() {
            return bad("profile names must match [a-z0-9][a-z0-9_-]{0,63}".into());
        }
        if self.segment_duration < Duration::from_millis(500) || self.segment_duration > Duration::from_secs(10) {
            return bad("segment_duration must be between 500ms and 10s".into());
        }
        if let Some(pt) = self.part_target
            && (pt < Duration::from_millis(100) || pt * 2 > self.segment_duration)
        {
            return bad("part_target must be at least 100ms and at most half the segment_duration".into());
        }
        if let Some(w) = self.dvr_window
            && w > crate::package::playlist::MAX_DVR_WINDOW
        {
            return bad("dvr_window must be at most 24h".into());
        }
        if self.passthrough != self.rungs.is_empty() {
            return bad("a profile is either passthrough = true or has rungs, not both or neither".into());
        }
        if !(16..=512).contains(&self.audio_bitrate_kbps) {
            return bad("audio_bitrate_kbps must be in 16..=512".into());
        }
        // Each rung is a rendition, and so is the audio: the router refuses a
        // report of more than MAX_RENDITIONS.
        if self.rungs.len() + 1 > api_types::MAX_RENDITIONS {
            return bad(format!(
                "at most {} rungs (the router accepts {} renditions, audio included)",
                api_types::MAX_RENDITIONS - 1,
                api_types::MAX_RENDITIONS
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.rungs {
            if validate_name("rendition", &r.name).is_err() {
                return bad(format!("rung name {:?} must match [a-z0-9][a-z0-9_-]{{0,63}}", r.name));
            }
            if !seen.insert(&r.name) {
                return bad(format!("rung {} appears twice", r.name));
            }
            if !(64..=4320).contains(&r.height) {
                return bad(format!("rung {}: height must be in 64..=4320", r.name));
            }
            if !(1..=120).contains(&r.fps) {
                return bad(format!("rung {}: fps must be in 1..=120", r.name));
            }
            if !(50..=100_000).contains(&r.video_bitrate_kbps) {
                return bad(format!("rung {}: video_bitrate_kbps must be in 50..=100000", r.name));
            }
            if !PRESETS.contains(&r.preset.as_str()) {
                return bad(format!("rung {}: preset must be one of {}", r.name, PRESETS.join(", ")));
            }
        }
        Ok(())
    }
}

/// Rounds down to an even number (H.264 4:2:0 needs even dimensions).
fn even(v: u32) -> u32 {
    (v & !1).max(2)
}

/// Every profile an origin knows, by name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    pub profiles: BTreeMap<String, Profile>,
}

/// The ladders used when no `--profiles` file is given.
pub const BUILTIN: &str = r#"
[profiles.default]
segment_duration = "2s"
part_target = "334ms"
audio_bitrate_kbps = 128
rungs = [
  { name = "720p", height = 720, video_bitrate_kbps = 2800, fps = 30, preset = "veryfast" },
  { name = "480p", height = 480, video_bitrate_kbps = 1200, fps = 30, preset = "veryfast" },
  { name = "360p", height = 360, video_bitrate_kbps = 700, fps = 30, preset = "veryfast" },
]

[profiles.low]
segment_duration = "2s"
part_target = "334ms"
audio_bitrate_kbps = 96
rungs = [
  { name = "360p", height = 360, video_bitrate_kbps = 700, fps = 30, preset = "veryfast" },
]

[profiles.passthrough]
segment_duration = "2s"
part_target = "334ms"
passthrough = true

# The source repackaged as plain HLS (no parts), for players and CDNs that
# cannot take low-latency HLS.
[profiles.plain]
segment_duration = "2s"
passthrough = true
"#;

impl Profiles {
    pub fn parse(text: &str) -> Result<Profiles, ProfileError> {
        let p: Profiles = toml::from_str(text)?;
        for (name, profile) in &p.profiles {
            profile.validate(name)?;
        }
        Ok(p)
    }

    pub fn builtin() -> Profiles {
        Profiles::parse(BUILTIN).expect("built-in profiles are valid")
    }

    /// Reads `path`, or the built-in profiles when `None`.
    pub fn load(path: Option<&Path>) -> Result<Profiles, ProfileError> {
        match path {
            None => Ok(Profiles::builtin()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ProfileError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Profiles::parse(&text)
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    /// Gives every profile that sets no `dvr_window` of its own this one
    /// (`--dvr-window`); refused past the cap like the file's.
    pub fn with_default_dvr_window(mut self, window: Option<Duration>) -> Result<Profiles, ProfileError> {
        let Some(w) = window.filter(|w| !w.is_zero()) else {
            return Ok(self);
        };
        for (name, p) in &mut self.profiles {
            p.dvr_window.get_or_insert(w);
            p.validate(name)?;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HD: Source = Source {
        width: 1920,
        height: 1080,
        fps: 60,
    };

    #[test]
    fn builtin_profiles_parse() {
        let p = Profiles::builtin();
        assert!(p.get("default").is_some() && p.get("passthrough").is_some() && p.get("low").is_some());
        assert!(p.get("passthrough").unwrap().ladder_for(HD).is_empty());
    }

    #[test]
    fn a_profile_the_router_would_refuse_is_refused() {
        let ladder = |rungs: usize| {
            let mut t = String::from("[profiles.big]\n");
            for i in 0..rungs {
                t.push_str(&format!(
                    "[[profiles.big.rungs]]\nname = \"r{i}\"\nheight = {}\nvideo_bitrate_kbps = 500\nfps = 30\n",
                    100 + i
                ));
            }
            Profiles::parse(&t)
        };
        // Rungs plus the audio rendition: exactly the router's limit passes.
        assert!(ladder(api_types::MAX_RENDITIONS - 1).is_ok());
        let err = ladder(api_types::MAX_RENDITIONS).unwrap_err().to_string();
        assert!(err.contains("at most 15 rungs"), "{err}");
    }

    #[test]
    fn a_dvr_window_is_a_duration_or_seconds() {
        let window = |v: &str| {
            let p = Profiles::parse(&format!("[profiles.x]\npassthrough = true\n{v}")).unwrap();
            p.get("x").unwrap().dvr_window
        };
        assert_eq!(window("dvr_window = \"2h\"\n"), Some(Duration::from_secs(7200)));
        assert_eq!(window("dvr_window = 90\n"), Some(Duration::from_secs(90)));
        assert_eq!(window("dvr_window = 0\n"), None);
        assert_eq!(window(""), None);
        assert_eq!(Profiles::builtin().get("default").unwrap().dvr_window, None);
        let flagged = Profiles::builtin()
            .with_default_dvr_window(Some(Duration::from_secs(600)))
            .unwrap();
        assert!(
            flagged
                .profiles
                .values()
                .all(|p| p.dvr_window == Some(Duration::from_secs(600)))
        );
        assert!(
            Profiles::builtin()
                .with_default_dvr_window(Some(Duration::from_secs(25 * 3600)))
                .is_err()
        );
    }

    #[test]
    fn ladder_keeps_aspect_and_caps_fps() {
        let ladder = Profiles::builtin().get("default").unwrap().ladder_for(HD);
        let dims: Vec<_> = ladder
            .iter()
            .map(|r| (r.name.as_str(), r.width, r.height, r.fps))
            .collect();
        assert_eq!(
            dims,
            [("720p", 1280, 720, 30), ("480p", 852, 480, 30), ("360p", 640, 360, 30)]
        );
        let slow = Source {
            width: 1280,
            height: 720,
            fps: 25,
        };
        assert!(
            Profiles::builtin()
                .get("default")
                .unwrap()
                .ladder_for(slow)
                .iter()
                .all(|r| r.fps == 25)
        );
    }

    #[test]
    fn never_upscales() {
        let default = Profiles::builtin().get("default").unwrap().clone();
        let sd = Source {
            width: 854,
            height: 480,
            fps: 30,
        };
        let names: Vec<_> = default.ladder_for(sd).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["480p", "360p"]);
        // Smaller than every rung: one rendition at the source's own size.
        let tiny = Source {
            width: 320,
            height: 240,
            fps: 30,
        };
        let ladder = default.ladder_for(tiny);
        assert_eq!(ladder.len(), 1);
        assert_eq!((ladder[0].width, ladder[0].height), (320, 240));
        // Odd sizes come out even.
        let odd = Source {
            width: 641,
            height: 361,
            fps: 30,
        };
        let r = &default.ladder_for(odd)[0];
        assert_eq!((r.width % 2, r.height % 2), (0, 0));
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let cases = [
            ("[profiles.x]\nrungs = []\n", "either passthrough"),
            (
                "[profiles.x]\npassthrough = true\nsegment_duration = \"20s\"\n",
                "segment_duration",
            ),
            ("[profiles.X]\npassthrough = true\n", "profile names"),
            (
                "[profiles.x]\nrungs = [{ name = \"a\", height = 720, video_bitrate_kbps = 1, fps = 30 }]\n",
                "bitrate",
            ),
            (
                "[profiles.x]\nrungs = [{ name = \"a\", height = 720, video_bitrate_kbps = 900, fps = 30, preset = \"warp\" }]\n",
                "preset",
            ),
            (
                "[profiles.x]\nrungs = [{ name = \"a\", height = 720, video_bitrate_kbps = 900, fps = 30 }, { name = \"a\", height = 360, video_bitrate_kbps = 500, fps = 30 }]\n",
                "twice",
            ),
            ("[profiles.x]\npassthrough = true\nbogus = 1\n", "unknown field"),
            ("not toml", "invalid"),
            ("[profiles.x]\npassthrough = true\ndvr_window = \"25h\"\n", "dvr_window"),
            ("[profiles.x]\npassthrough = true\ndvr_window = \"soon\"\n", "invalid"),
        ];
        for (text, want) in cases {
            let err = Profiles::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let missing = Profiles::load(Some(Path::new("/nonexistent/profiles.toml"))).unwrap_err();
        assert!(missing.to_string().contains("cannot read"));
    }
}
