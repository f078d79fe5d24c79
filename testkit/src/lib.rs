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
/// The port is released before returning, so another process could take it
/// before the server we start binds it; every server we start fails loudly
/// if it cannot bind. Two things keep that rare while several test binaries
/// run at once (`scripts/test.sh` runs them in parallel):
///
/// - Ports come from below the kernel's ephemeral range
///   (`net.ipv4.ip_local_port_range`), picked at random. Port 0 would hand
///   out an ephemeral port, and the kernel gives those to the client sides of
///   outgoing connections too: a load test's thousands of connections could
///   take the port between this call and the server's bind.
/// - A port is never handed out twice by one process (random picks would
///   repeat: 20 picks from 22,000 ports repeat about once in a hundred tests).
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let low = 10_000u16;
    let high = ephemeral_start().clamp(low + 1_000, 32_768);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..1_000 {
        let port = rand::random_range(low..high);
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free port in {low}..{high} after 1,000 tries");
}

/// The first port of the kernel's ephemeral range (32768 when unknown).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_bindable_distinct_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..500).map(|_| free_port()).collect();
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "a port handed out twice");
        let ephemeral = ephemeral_start();
        assert!(ports.iter().all(|&p| (10_000..ephemeral).contains(&p)), "{ports:?}");
        // Free means a server can bind it.
        let _l = TcpListener::bind(("127.0.0.1", ports[0])).expect("bind a free port");
    }
}
