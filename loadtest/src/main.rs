//! `loadtest`: simulated HLS viewers. Not written yet (issue 6): it only
//! documents its settings.

use clap::Parser;

/// Dionysia load tester (not implemented yet: it exits with an error).
#[derive(Debug, Parser)]
#[command(name = "loadtest", version)]
struct Settings {
    /// Multivariant playlist URL on the edge.
    #[arg(long)]
    url: String,
    /// Number of simulated viewers.
    #[arg(long, default_value_t = 10)]
    viewers: u32,
    /// Ramp-up time in seconds.
    #[arg(long, default_value_t = 10)]
    ramp: u32,
    /// Test duration in seconds.
    #[arg(long, default_value_t = 60)]
    duration: u32,
    /// Where report.json and report.html are written.
    #[arg(long, default_value = "loadtest-report")]
    report_dir: String,
}

fn main() {
    let _ = Settings::parse();
    eprintln!("loadtest: not implemented yet (see issue 6)");
    std::process::exit(2);
}
