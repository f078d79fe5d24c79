//! `loadtest`: runs simulated HLS viewers against an edge, writes
//! `report.json` and `report.html`, prints the summary, and exits with
//! status 3 when a `--fail-on` condition held (see the library's modules).

use clap::Parser;
use loadtest::{gate, report, run, settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = settings::Settings::parse();
    s.check()?;
    let report = run::run(&s, std::env::args().collect()).await?;
    report::write(&s.report_dir, &report)?;
    println!("{}", report::summary(&report));
    println!(
        "reports: {}/report.json, {}/report.html",
        s.report_dir.display(),
        s.report_dir.display()
    );
    if let Some(f) = report.fail_on.as_ref().filter(|f| f.failed) {
        eprintln!("--fail-on {}: held: {}", f.conditions, f.held.join(", "));
        std::process::exit(gate::EXIT_FAILED);
    }
    Ok(())
}
