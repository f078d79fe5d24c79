//! A throw-away `redis-server` on a free loopback port.

use crate::{Process, free_port, wait_until};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A real `redis-server` with no persistence, bound to 127.0.0.1.
///
/// It can be stopped and started again on the same port, which is how tests
/// simulate a Redis outage under a running service.
pub struct Redis {
    port: u16,
    process: Option<Process>,
}

impl Redis {
    /// Starts a server on a free port and waits until it answers PING.
    pub fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            process: None,
        };
        r.restart();
        r
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGTERM; no data is saved).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Starts (again) on the same port and waits for PING. Data from before a
    /// stop is gone, as after a real crash without persistence.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let p = Process::spawn(
            "redis-server",
            "redis-server",
            [
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            &[],
        );
        self.process = Some(p);
        let port = self.port;
        wait_until("redis-server to answer PING", Duration::from_secs(10), || ping(port));
    }

    /// Runs one command with `redis-cli` and returns its output (for tests
    /// that inspect what a service stored).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
