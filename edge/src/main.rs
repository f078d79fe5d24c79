//! `edge`: a Pingora caching proxy in front of the origins. Not written yet
//! (issue 5): it only documents its settings.

use clap::Parser;

/// Dionysia edge (not implemented yet: it exits with an error).
#[derive(Debug, Parser)]
#[command(name = "edge", version)]
struct Settings {
    /// Address viewers connect to.
    #[arg(long, env = "EDGE_LISTEN", default_value = "127.0.0.1:8081")]
    listen: String,
    /// Router API base URL.
    #[arg(long, env = "EDGE_ROUTER", default_value = "http://127.0.0.1:8090")]
    router: String,
    /// Cache size in bytes (suffixes such as 512MiB accepted).
    #[arg(long, env = "EDGE_CACHE_SIZE", default_value = "512MiB")]
    cache_size: String,
}

fn main() {
    let _ = Settings::parse();
    eprintln!("edge: not implemented yet (see issue 5)");
    std::process::exit(2);
}
