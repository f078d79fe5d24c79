//! Test harness shared by every crate's integration tests.
//!
//! The project's rule is that tests use the real thing: a real
//! `redis-server`, our real binaries, real publishers and players, all on
//! loopback. This crate makes that cheap and safe:
//! - [`free_port`] finds a free loopback port,
//! - [`Process`] starts a child with its output in a log file and stops it by
//!   PID (SIGTERM, then SIGKILL) when dropped, so a failing test leaks nothing,
//! - [`wait_until`] polls a condition with a deadline (never a bare sleep),
//! - [`Redis`] runs a throw-away `redis-server` that can be stopped and
//!   restarted on the same port,
//! - [`bin_path`] finds a workspace binary already built by `cargo test`,
//! - [`stack`] runs the whole stack (router, origins, agents, edge, ffmpeg),
//! - [`probe`] reads streams back with ffprobe, as a player does.

pub mod probe;
mod process;
mod redis;
pub mod stack;
mod wait;

pub use process::{Process, bin_path};
pub use redis::Redis;
pub use wait::{http_get, wait_until, wait_until_async};

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

/// A self-signed pair for `localhost` and 127.0.0.1 in `dir`, made with the
/// openssl CLI as `scripts/stack.sh` makes one: `({name}.crt, {name}.key)`.
pub fn self_signed_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A port on 127.0.0.1 that was free a moment ago.
///
/// The port is released before returning, so another process could take it;
/// on a test machine that race is rare enough, and every server we start
/// fails loudly if it cannot bind.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// `127.0.0.1:{free_port()}`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Asserts that `program --help` mentions every one of `flags`.
pub fn assert_help_documents(program: impl AsRef<std::path::Path>, flags: &[&str]) {
    let out = std::process::Command::new(program.as_ref())
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in flags {
        assert!(
            help.contains(flag),
            "--help of {} documents {flag}",
            program.as_ref().display()
        );
    }
}
