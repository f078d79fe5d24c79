//! `origin`: RTMP/SRT ingest, GStreamer ABR transcoding, CMAF HLS packaging
//! and HTTP serving. Not written yet (issue 3): it only documents its settings.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Dionysia origin (not implemented yet: it checks --profiles, then exits
/// with an error).
#[derive(Debug, Parser)]
#[command(name = "origin", version)]
struct Settings {
    /// This origin's id, as reported to the router API.
    #[arg(long, env = "ORIGIN_ID")]
    origin_id: String,
    /// RTMP listen address.
    #[arg(long, env = "ORIGIN_RTMP_LISTEN", default_value = "0.0.0.0:1935")]
    rtmp_listen: SocketAddr,
    /// SRT listen address.
    #[arg(long, env = "ORIGIN_SRT_LISTEN")]
    srt_listen: Option<SocketAddr>,
    /// HTTP listen address for HLS output.
    #[arg(long, env = "ORIGIN_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: SocketAddr,
    /// Folder the HLS output is written to.
    #[arg(long, env = "ORIGIN_OUTPUT_DIR")]
    output_dir: PathBuf,
    /// Router API base URL (agent token from ROUTER_AGENT_TOKEN).
    #[arg(long, env = "ORIGIN_ROUTER", default_value = "http://127.0.0.1:8090")]
    router: String,
    /// TOML file of transcoding ladders.
    #[arg(long, env = "ORIGIN_PROFILES")]
    profiles: Option<PathBuf>,
}

fn main() {
    let settings = Settings::parse();
    // The one part that exists: the ladder configuration is checked, so an
    // operator can validate a profiles file today.
    match origin::profiles::Profiles::load(settings.profiles.as_deref()) {
        Ok(p) => eprintln!(
            "origin: profiles OK: {}",
            p.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        Err(e) => {
            eprintln!("origin: {e}");
            std::process::exit(1);
        }
    }
    eprintln!("origin: ingest, transcoding and serving are not implemented yet (see issue 3)");
    std::process::exit(2);
}
