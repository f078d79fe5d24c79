//! `origin`: the binary. Parses the settings, sets up logging, binds the
//! listeners and runs [`origin::run`] until SIGTERM/SIGINT.

use clap::Parser;
use origin::settings::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = Settings::parse();
    ops::init_logging(&s.log);
    s.check()?;
    let listeners = origin::Listeners::bind(&s).await?;
    origin::run(s, listeners, ops::shutdown_signal()).await
}
