//! Embeds hls.js and dash.js into the edge binary, so the player page needs
//! no third-party CDN and no files beside the binary at run time.
//!
//! hls.js and dash.js (its `dash.mediaplayer` build: playback without DRM,
//! offline or reporting modules) come from npm, pinned by
//! `player/package-lock.json`;
//! `scripts/setup.sh` runs `npm ci` there. This script only points the
//! compiler at the installed file and fails with the command to run when it
//! is missing.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo::rerun-if-changed=player/package-lock.json");
    for (env, file) in [
        ("DIONYSIA_HLS_JS", "player/node_modules/hls.js/dist/hls.min.js"),
        (
            "DIONYSIA_DASH_JS",
            "player/node_modules/dashjs/dist/modern/umd/dash.mediaplayer.min.js",
        ),
    ] {
        let path = dir.join(file);
        println!("cargo::rerun-if-changed={}", path.display());
        if !path.is_file() {
            eprintln!(
                "error: {} is missing.\n\
                 The edge embeds hls.js and dash.js for its player page. Install them with\n    \
                 npm ci --prefix edge/player\n\
                 (scripts/setup.sh does this).",
                path.display()
            );
            std::process::exit(1);
        }
        println!("cargo::rustc-env={env}={}", path.display());
    }
}
