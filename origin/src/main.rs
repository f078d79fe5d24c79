//! `origin`: the binary. Parses the settings, sets up logging, binds the
//! listeners and runs [`origin::run`] until SIGTERM/SIGINT.
//!
//! The runtime is built by hand so that its drop is bounded too: a blocking
//! task still draining a wedged pipeline after [`origin::SHUTDOWN_TIMEOUT`]
//! is abandoned after [`RUNTIME_DROP_TIMEOUT`] rather than waited for.

use clap::Parser;
use origin::settings::Settings;
use std::time::Duration;

/// How long the runtime's drop waits for blocking tasks still running.
const RUNTIME_DROP_TIMEOUT: Duration = Duration::from_secs(2);

fn main() -> anyhow::Result<()> {
    let s = Settings::parse();
    ops::init_logging(&s.log);
    s.check()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(async {
        let listeners = origin::Listeners::bind(&s).await?;
        origin::run(s, listeners, ops::shutdown_signal()).await
    });
    rt.shutdown_timeout(RUNTIME_DROP_TIMEOUT);
    result
}
