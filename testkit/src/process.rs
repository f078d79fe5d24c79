//! Child processes that are always stopped by PID, even when a test panics.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running child process whose stdout and stderr go to a log file.
///
/// Dropping it stops the process: SIGTERM, up to five seconds to exit, then
/// SIGKILL. Use [`Process::log`] to read what it printed, e.g. in an assertion
/// message.
pub struct Process {
    name: String,
    child: Option<Child>,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Process {
    /// Starts `program` with `args` and extra `env` variables.
    pub fn spawn<I, S>(name: &str, program: impl AsRef<Path>, args: I, env: &[(&str, &str)]) -> Process
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let dir = tempfile::tempdir().expect("tempdir for process log");
        let log_path = dir.path().join(format!("{name}.log"));
        let log = File::create(&log_path).expect("create log");
        let mut cmd = Command::new(program.as_ref());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.as_ref().display()));
        Process {
            name: name.to_string(),
            child: Some(child),
            log_path,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// CPU time (user + system) the process has used so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th fields of the whole line.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let ticks: u64 = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|f| f.parse::<u64>().ok())
            .sum();
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        ticks as f64 / per_second
    }

    /// Everything the process has printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends a signal (e.g. `libc::SIGSTOP`) to the process.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on a PID we spawned and have not reaped yet.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// Stops the process (SIGTERM, then SIGKILL after `grace`) and returns its
    /// exit status code, if it exited normally.
    pub fn stop_with(&mut self, grace: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        // SAFETY: as above; the child has not been reaped.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("{} did not stop within {grace:?} of SIGTERM; killing it", self.name);
        let _ = child.kill();
        child.wait().ok().and_then(|s| s.code())
    }

    /// Stops the process with a five-second grace period.
    pub fn stop(&mut self) -> Option<i32> {
        self.stop_with(Duration::from_secs(5))
    }

    /// Kills the process at once (SIGKILL): a crash, as far as peers can tell.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Path of a binary of this workspace in the same target directory as the
/// running test (`target/debug/{name}`). `cargo test --workspace` builds
/// every package's binaries before running tests, so it is there.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/test-binary -> target/debug
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}
