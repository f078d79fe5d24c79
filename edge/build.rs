//! Embeds hls.js into the edge binary, so the player page needs no
//! third-party CDN and no files beside the binary at run time.
//!
//! hls.js comes from npm, pinned by `player/package-lock.json`;
//! `scripts/setup.sh` runs `npm ci` there. This script only points the
//! compiler at the installed file and fails with the command to run when it
//! is missing.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let hls = dir.join("player/node_modules/hls.js/dist/hls.min.js");
    println!("cargo::rerun-if-changed={}", hls.display());
    println!("cargo::rerun-if-changed=player/package-lock.json");
    if !hls.is_file() {
        eprintln!(
            "error: {} is missing.\n\
             The edge embeds hls.js for its player page. Install it with\n    \
             npm ci --prefix edge/player\n\
             (scripts/setup.sh does this).",
            hls.display()
        );
        std::process::exit(1);
    }
    println!("cargo::rustc-env=DIONYSIA_HLS_JS={}", hls.display());
}
