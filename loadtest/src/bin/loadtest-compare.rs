//! `loadtest-compare`: one HTML page comparing load-test runs (caches side
//! by side at each viewer step) from their `report.json` files. Written by
//! `loadtest/compare.sh`; the page is `loadtest::compare`'s.

use clap::Parser;
use std::path::PathBuf;

/// Writes one HTML page comparing load-test runs: the caches side by side at
/// each viewer step (largest clean viewer count, hit ratio, origin requests
/// per segment, live latency, segment time to first byte), with a link to
/// each run's report.html. Runs are grouped by their --label.
#[derive(Debug, Parser)]
#[command(name = "loadtest-compare", version)]
struct Args {
    /// Where the page is written; links to the runs' reports are relative to
    /// its folder when they are inside it.
    #[arg(long, env = "LOADTEST_COMPARE_OUT", default_value = "compare.html")]
    out: PathBuf,

    /// The runs: each a report folder (holding report.json and report.html)
    /// or a report.json file.
    #[arg(required = true)]
    reports: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let runs = loadtest::compare::load(&args.reports, &args.out)?;
    std::fs::write(&args.out, loadtest::compare::page(&runs))?;
    println!("comparison: {} ({} runs)", args.out.display(), runs.len());
    Ok(())
}
