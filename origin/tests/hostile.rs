//! Hostile publishers against the real origin binary (with the real router
//! API on a real Redis), each class of issue 13 thrown at it **while ffmpeg
//! publishes another stream that is being read**. Every test asserts that
//! the origin lives, the watched stream keeps growing, the origin's RSS
//! stays under the stated bound (RSS before the attack plus the
//! per-connection bound times the connection cap; the peak, VmHWM, as well
//! as the current RSS), and that connection
//! slots come back.
//!
//! Attackers connect from other loopback addresses (127.0.0.2 and up) so
//! the per-address cap meets them and not ffmpeg (127.0.0.1). Limits are
//! short (flags) so the file runs in about a minute.

use reqwest::Client;
use rtmp::amf0::{self, Value};
use rtmp::chunk;
use serde_json::{Value as Json, json};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::stack::publish;
use testkit::{Process, Redis, bin_path, free_addr, http_get, wait_until, wait_until_async};

const ADMIN: &str = "admin-token-0123456789";
const AGENT: &str = "agent-token-0123456789";
/// The origin's limits in these tests.
const MAX_CONNECTIONS: usize = 24;
const MAX_PER_ADDRESS: usize = 6;
const MAX_BUFFERED: usize = 1 << 20;
/// The per-connection bound of `origin/src/ingest/rtmp.rs` for
/// `--rtmp-max-buffered 1MiB`: twice that, 1.5 MiB of codec state and the
/// 64 KiB read buffer; rounded up to 4 MiB.
const PER_CONNECTION: u64 = 4 << 20;

/// One origin at a time: each runs a live pipeline beside the attack.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Stack {
    _redis: Redis,
    _router: Process,
    router: SocketAddr,
    origin: Process,
    rtmp: SocketAddr,
    http: SocketAddr,
    _out: tempfile::TempDir,
    _watched: Option<Process>,
    /// The origin's RSS once the watched stream plays, in bytes.
    baseline_rss: u64,
}

impl Stack {
    /// Router, origin with short limits (`setup` is `--rtmp-setup-timeout`,
    /// `write` `--rtmp-write-timeout`), and ffmpeg publishing `watched`.
    async fn start(setup: &str, write: &str) -> Stack {
        let redis = Redis::start();
        let router = free_addr();
        let router_proc = Process::spawn(
            "router-api",
            bin_path("router-api"),
            ["--listen", &router.to_string(), "--redis", &redis.url()],
            &[("ROUTER_ADMIN_TOKEN", ADMIN), ("ROUTER_AGENT_TOKEN", AGENT)],
        );
        wait_until("router-api ready", Duration::from_secs(10), || {
            matches!(http_get(router, "/readyz"), Some((200, _)))
        });
        let (rtmp, http) = (free_addr(), free_addr());
        let out = tempfile::tempdir().unwrap();
        let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/profiles.toml");
        let (max_conn, per_addr, buffered) = (
            MAX_CONNECTIONS.to_string(),
            MAX_PER_ADDRESS.to_string(),
            MAX_BUFFERED.to_string(),
        );
        let origin = Process::spawn(
            "origin",
            env!("CARGO_BIN_EXE_origin"),
            [
                "--origin-id",
                "origin-a",
                "--rtmp-listen",
                &rtmp.to_string(),
                "--http-listen",
                &http.to_string(),
                "--output-dir",
                out.path().to_str().unwrap(),
                "--router",
                &format!("http://{router}"),
                "--profiles",
                profiles.to_str().unwrap(),
                "--segment-grace",
                "2s",
                "--rtmp-max-connections",
                &max_conn,
                "--rtmp-max-per-address",
                &per_addr,
                "--rtmp-max-buffered",
                &buffered,
                "--rtmp-max-message",
                &buffered,
                "--rtmp-setup-timeout",
                setup,
                "--rtmp-write-timeout",
                write,
            ],
            // Also checks the environment fallback of a limit.
            &[("ROUTER_AGENT_TOKEN", AGENT), ("ORIGIN_RTMP_IDLE_TIMEOUT", "3s")],
        );
        wait_until("origin ready", Duration::from_secs(10), || {
            matches!(http_get(http, "/healthz"), Some((200, _)))
        });
        let mut stack = Stack {
            _redis: redis,
            _router: router_proc,
            router,
            origin,
            rtmp,
            http,
            _out: out,
            _watched: None,
            baseline_rss: 0,
        };
        let key = stack.create_stream("watched").await;
        stack._watched = Some(publish(rtmp, &key, 60));
        stack.wait_playable("watched").await;
        stack.baseline_rss = stack.rss();
        stack
    }

    async fn create_stream(&self, name: &str) -> String {
        let v: Json = Client::new()
            .post(format!("http://{}/admin/streams", self.router))
            .bearer_auth(ADMIN)
            .json(&json!({"name": name, "profile": "passthrough"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["key"].as_str().unwrap().to_string()
    }

    async fn get(&self, path: &str) -> String {
        let r = Client::new()
            .get(format!("http://{}/{path}", self.http))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    }

    async fn wait_playable(&self, stream: &str) {
        wait_until_async(&format!("{stream} to be playable"), Duration::from_secs(20), || async {
            let r = Client::new()
                .get(format!("http://{}/{stream}/index.m3u8", self.http))
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        })
        .await
    }

    /// The origin's resident memory now, in bytes.
    fn rss(&self) -> u64 {
        self.status_bytes("VmRSS:")
    }

    /// The origin's peak resident memory since it started, in bytes.
    fn peak_rss(&self) -> u64 {
        self.status_bytes("VmHWM:")
    }

    fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.origin.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kib * 1024
    }

    fn log(&self) -> String {
        self.origin.log()
    }

    /// The origin lives, `watched` gains a segment, RSS is under the bound,
    /// and no task panicked.
    async fn assert_unharmed(&mut self) {
        assert!(self.origin.is_running(), "origin died:\n{}", self.log());
        assert!(http_get(self.http, "/healthz").is_some());
        self.assert_growing("watched").await;
        let bound = self.baseline_rss + MAX_CONNECTIONS as u64 * PER_CONNECTION;
        // The peak too: memory held during the attack and freed since counts.
        let (rss, peak) = (self.rss(), self.peak_rss());
        eprintln!(
            "origin RSS {} MiB, peak {} MiB (before the attack {} MiB, bound {} MiB)",
            rss >> 20,
            peak >> 20,
            self.baseline_rss >> 20,
            bound >> 20
        );
        assert!(
            rss.max(peak) <= bound,
            "RSS {} MiB / peak {} MiB over the bound {} MiB",
            rss >> 20,
            peak >> 20,
            bound >> 20
        );
        assert!(!self.log().contains("panicked"), "{}", self.log());
    }

    /// The first media playlist of `stream` gains a segment within 5 s.
    async fn assert_growing(&self, stream: &str) {
        let master = self.get(&format!("{stream}/index.m3u8")).await;
        let m = m3u8_rs::parse_master_playlist_res(master.as_bytes()).unwrap();
        let uri = format!("{stream}/{}", m.variants[0].uri);
        let last = |text: String| {
            m3u8_rs::parse_media_playlist_res(text.as_bytes())
                .ok()
                .and_then(|p| p.segments.last().map(|s| s.uri.clone()))
        };
        let before = last(self.get(&uri).await);
        wait_until_async(&format!("{stream} to keep growing"), Duration::from_secs(5), || async {
            (last(self.get(&uri).await) != before).then_some(())
        })
        .await;
    }

    /// A new publish works: the slots the attack held came back.
    async fn assert_slots_back(&self, name: &str) {
        let key = self.create_stream(name).await;
        let _p = publish(self.rtmp, &key, 8);
        self.wait_playable(name).await;
    }
}

/// A TCP connection to `to` from loopback address 127.0.0.`from`.
fn connect_from(from: u8, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    // A small receive buffer: a client that does not read fills it fast.
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .bind(&SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, from), 0).into())
        .unwrap();
    socket.connect(&to.into()).unwrap();
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// The client handshake: C0+C1, read S0+S1+S2, C2.
fn handshake(s: &mut TcpStream) {
    let mut c0c1 = vec![3u8];
    c0c1.extend((0..1536).map(|i| i as u8));
    s.write_all(&c0c1).unwrap();
    let mut answer = vec![0u8; 1 + 2 * 1536];
    s.read_exact(&mut answer).unwrap();
    s.write_all(&answer[1..1537]).unwrap();
}

fn command(values: &[Value]) -> Vec<u8> {
    let mut p = vec![];
    for v in values {
        amf0::encode(&mut p, v);
    }
    let mut out = vec![];
    chunk::write(&mut out, 128, 3, 20, 0, 0, &p);
    out
}

fn string(s: &str) -> Value {
    Value::String(s.into())
}

/// Handshake and a valid `connect` to `live`, its answer read.
fn connected(from: u8, to: SocketAddr) -> TcpStream {
    let mut s = connect_from(from, to);
    handshake(&mut s);
    let app = Value::Object(vec![("app".into(), string("live"))]);
    s.write_all(&command(&[string("connect"), Value::Number(1.0), app]))
        .unwrap();
    // Window ack size, peer bandwidth, stream begin, _result: at least 100 bytes.
    let mut answer = [0u8; 100];
    s.read_exact(&mut answer).unwrap();
    s
}

/// Whether the origin closed `s` within `within` (reads until EOF or reset).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Closes our side and waits for the origin to close its side, so its slot
/// is free before the next connection.
fn finish(mut s: TcpStream) {
    let _ = s.shutdown(std::net::Shutdown::Write);
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "the origin kept a closed connection"
    );
}

#[tokio::test]
async fn deep_amf0_nesting_of_every_container() {
    let _serial = SERIAL.lock().await;
    let mut stack = Stack::start("10s", "5s").await;
    let containers: [&[u8]; 3] = [
        &[0x0a, 0, 0, 0, 1],             // strict array of one
        &[0x03, 0, 1, b'a'],             // object with key "a"
        &[0x08, 0, 0, 0, 1, 0, 1, b'a'], // ECMA array with key "a"
    ];
    for (i, open) in containers.iter().enumerate() {
        // Within the command length limit (the AMF0 decoder sees it), and a
        // few hundred thousand levels (refused by the message length limit).
        for levels in [60_000 / open.len(), 300_000] {
            let mut s = connect_from(2 + i as u8, stack.rtmp);
            handshake(&mut s);
            let mut body = vec![];
            amf0::encode(&mut body, &string("connect"));
            amf0::encode(&mut body, &Value::Number(1.0));
            for _ in 0..levels {
                body.extend_from_slice(open);
            }
            let mut msg = vec![];
            chunk::write(&mut msg, 128, 3, 20, 0, 0, &body[..body.len().min(0xff_ffff)]);
            let _ = s.write_all(&msg); // the origin may close before the end
            assert!(
                closed_within(&mut s, Duration::from_secs(5)),
                "container {i}, {levels} levels"
            );
        }
    }
    wait_until("depth refusals logged", Duration::from_secs(5), || {
        stack.log().matches("AMF0 nesting deeper than 16").count() >= 3
    });
    assert!(stack.log().contains("longer than the limit"), "{}", stack.log());
    stack.assert_unharmed().await;
}

#[tokio::test]
async fn short_commands_and_lone_set_data_frame() {
    let _serial = SERIAL.lock().await;
    let mut stack = Stack::start("10s", "5s").await;
    let shorts: Vec<Vec<Value>> = vec![
        vec![],
        vec![string("connect")],
        vec![string("publish")],
        vec![string("publish"), Value::Number(5.0)],
        vec![string("createStream")],
        vec![string("releaseStream")],
        vec![string("deleteStream")],
        vec![Value::Number(1.0)],
        vec![Value::Null, Value::Null],
    ];
    for round in 0..5u8 {
        for values in &shorts {
            let mut s = connected(2 + round, stack.rtmp);
            let mut input = command(values);
            // @setDataFrame alone, as a data message.
            let mut data = vec![];
            amf0::encode(&mut data, &string("@setDataFrame"));
            chunk::write(&mut input, 128, 4, 18, 1, 0, &data);
            let _ = s.write_all(&input);
            finish(s);
            // Before connect, too: a short command as the first one.
            let mut t = connect_from(2 + round, stack.rtmp);
            handshake(&mut t);
            let _ = t.write_all(&command(values));
            finish(t);
        }
    }
    // The empty publish key is refused by the router, not a panic.
    stack.assert_unharmed().await;
    assert!(stack.log().contains("command before connect"), "{}", stack.log());
}

#[tokio::test]
async fn interleaved_chunk_streams_that_never_complete() {
    let _serial = SERIAL.lock().await;
    let mut stack = Stack::start("10s", "5s").await;
    // Connections at once, each holding as much as it can.
    let mut attackers: Vec<std::thread::JoinHandle<bool>> = vec![];
    let rtmp = stack.rtmp;
    for i in 0..(3 * MAX_PER_ADDRESS - 3) {
        attackers.push(std::thread::spawn(move || {
            let mut s = connected(2 + (i / (MAX_PER_ADDRESS - 1)) as u8, rtmp);
            // Two chunk streams announce messages just under the length
            // limit, then alternate 128-byte chunks: no message completes.
            let len = (MAX_BUFFERED - 1) as u32;
            let mut b = vec![];
            for csid in [4u8, 5] {
                b.extend_from_slice(&[csid, 0, 0, 0]);
                b.extend_from_slice(&len.to_be_bytes()[1..]);
                b.extend_from_slice(&[9, 1, 0, 0, 0]);
                b.extend_from_slice(&[0u8; 128]);
            }
            if s.write_all(&b).is_err() {
                return true;
            }
            let mut chunk = vec![];
            for csid in [4u8, 5] {
                chunk.push(0xc0 | csid);
                chunk.extend_from_slice(&[0u8; 128]);
            }
            s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
            // Twice the buffer limit at most; the origin must cut it before.
            for _ in 0..(2 * MAX_BUFFERED / chunk.len()) {
                if s.write_all(&chunk).is_err() {
                    return true;
                }
            }
            closed_within(&mut s, Duration::from_secs(5))
        }));
    }
    for a in attackers {
        assert!(a.join().unwrap(), "an interleaving connection was not cut");
    }
    assert!(
        stack.log().contains("partial messages hold more than"),
        "{}",
        stack.log()
    );
    stack.assert_unharmed().await;
}

#[tokio::test]
async fn random_bytes_after_a_valid_handshake() {
    let _serial = SERIAL.lock().await;
    let mut stack = Stack::start("10s", "5s").await;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..40u8 {
        let mut s = connect_from(2 + i % 4, stack.rtmp);
        handshake(&mut s);
        let mut garbage = vec![0u8; 64 << 10];
        for b in garbage.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
        }
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(&garbage);
        finish(s);
    }
    stack.assert_unharmed().await;
}

#[tokio::test]
async fn dribbled_handshakes_are_cut_at_the_setup_deadline_and_slots_come_back() {
    let _serial = SERIAL.lock().await;
    let mut stack = Stack::start("3s", "5s").await;
    // Fill every slot but ffmpeg's, from several addresses (the per-address
    // cap allows MAX_PER_ADDRESS each).
    let started = Instant::now();
    let mut dribblers: Vec<TcpStream> = (0..MAX_CONNECTIONS - 1)
        .map(|i| connect_from(2 + (i / MAX_PER_ADDRESS) as u8, stack.rtmp))
        .collect();
    // One more from an address with slots left: over the global cap, closed.
    let mut extra = connect_from(20, stack.rtmp);
    assert!(
        closed_within(&mut extra, Duration::from_secs(2)),
        "over the cap, not closed"
    );
    // Dribble: one byte of C0+C1 each 500 ms, far inside any per-read limit.
    let mut cut = vec![None; dribblers.len()];
    while cut.iter().any(Option::is_none) && started.elapsed() < Duration::from_secs(10) {
        for (d, c) in dribblers.iter_mut().zip(cut.iter_mut()) {
            if c.is_none() && d.write_all(&[3]).is_err() {
                *c = Some(started.elapsed());
            }
            if c.is_none() {
                d.set_nonblocking(true).unwrap();
                let mut b = [0u8; 1];
                match d.read(&mut b) {
                    Ok(0) => *c = Some(started.elapsed()),
                    Err(e) if e.kind() != ErrorKind::WouldBlock => *c = Some(started.elapsed()),
                    _ => {}
                }
                d.set_nonblocking(false).unwrap();
            }
        }
        // The sampling interval of a loop bounded by its deadline.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for c in &cut {
        let c = c.expect("a dribbling connection was never cut");
        assert!(c < Duration::from_secs(7), "cut after {c:?} (setup timeout 3s)");
    }
    drop(dribblers.drain(..));
    stack.assert_unharmed().await;
    // Per address: MAX_PER_ADDRESS at once from one address, no more.
    let mut held: Vec<TcpStream> = (0..MAX_PER_ADDRESS).map(|_| connect_from(30, stack.rtmp)).collect();
    let mut over = connect_from(30, stack.rtmp);
    assert!(
        closed_within(&mut over, Duration::from_secs(2)),
        "over the per-address cap"
    );
    handshake(&mut held[0]); // the ones under the cap are served
    drop(held);
    stack.assert_slots_back("after-flood").await;
}

#[tokio::test]
async fn clients_that_never_read_hit_the_write_timeout() {
    let _serial = SERIAL.lock().await;
    let mut stack = Stack::start("60s", "1s").await;
    let rtmp = stack.rtmp;
    let readers: Vec<_> = (0..4u8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = connected(2 + i, rtmp);
                s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
                // Pings, each answered; never a byte read.
                let mut ping = vec![];
                for t in 0..256u32 {
                    let mut p = vec![0, 6];
                    p.extend_from_slice(&t.to_be_bytes());
                    chunk::write(&mut ping, 128, 2, 4, 0, 0, &p);
                }
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(30) {
                    match s.write(&ping) {
                        Ok(_) => {}
                        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(_) => return Some(started.elapsed()),
                    }
                }
                None
            })
        })
        .collect();
    for r in readers {
        let took = r.join().unwrap().expect("a client that never reads was never cut");
        // Kernel buffers fill first, then the 1 s write timeout; far inside
        // the 60 s setup deadline.
        assert!(took < Duration::from_secs(20), "cut after {took:?}");
    }
    assert!(stack.log().contains("the client does not read"), "{}", stack.log());
    stack.assert_unharmed().await;
    stack.assert_slots_back("after-readers").await;
}

/// A publish by hand (no ffmpeg): connect, Set Chunk Size 65536, then
/// createStream and publish in 64 KiB chunks; returns once the origin
/// answered `NetStream.Publish.Start`.
fn raw_publish(stack: &Stack, from: u8, key: &str) -> TcpStream {
    let mut s = connected(from, stack.rtmp);
    let mut input = vec![];
    chunk::write(&mut input, 128, 2, 1, 0, 0, &65536u32.to_be_bytes());
    let mut create = vec![];
    for v in [string("createStream"), Value::Number(2.0), Value::Null] {
        amf0::encode(&mut create, &v);
    }
    chunk::write(&mut input, 65536, 3, 20, 0, 0, &create);
    let mut publish_cmd = vec![];
    for v in [
        string("publish"),
        Value::Number(3.0),
        Value::Null,
        string(key),
        string("live"),
    ] {
        amf0::encode(&mut publish_cmd, &v);
    }
    // Padding with nulls makes the command longer than the old chunk size.
    publish_cmd.extend_from_slice(&[5u8; 300]);
    chunk::write(&mut input, 65536, 8, 20, 1, 0, &publish_cmd);
    s.write_all(&input).unwrap();
    read_until(&mut s, b"NetStream.Publish.Start");
    s
}

/// Reads from `s` until `needle` has been seen, within 10 s.
fn read_until(s: &mut TcpStream, needle: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = vec![];
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
        if seen.windows(needle.len()).any(|w| w == needle) {
            return;
        }
    }
    panic!("never saw {:?}", String::from_utf8_lossy(needle));
}

#[tokio::test]
async fn enhanced_rtmp_is_refused_by_name_chunk_sizes_change_and_keys_in_the_app_stay_out_of_the_log() {
    let _serial = SERIAL.lock().await;
    let mut stack = Stack::start("10s", "5s").await;

    // A publish whose first video message carries an enhanced-RTMP header
    // (IsExHeader, SequenceStart, FourCC hvc1), as OBS 30 sends for HEVC.
    // The client first changes its chunk size, as OBS does (ffmpeg 5.1 has
    // no option for it), then sends its commands in 64 KiB chunks.
    let key = stack.create_stream("hevc").await;
    let mut s = raw_publish(&stack, 2, &key);
    let mut video = vec![];
    chunk::write(&mut video, 128, 6, 9, 1, 0, &[0x90, b'h', b'v', b'c', b'1', 1, 2, 3, 4]);
    s.write_all(&video).unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    wait_until("the refusal names the codec", Duration::from_secs(5), || {
        stack
            .log()
            .contains("enhanced-RTMP video codec hvc1 (HEVC) is not supported")
    });

    // A stream key put in the application name never reaches the log.
    let mut s = connect_from(3, stack.rtmp);
    handshake(&mut s);
    let app = Value::Object(vec![("app".into(), string(&key))]);
    s.write_all(&command(&[string("connect"), Value::Number(1.0), app]))
        .unwrap();
    read_until(&mut s, b"NetConnection.Connect.Rejected");
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    wait_until("unknown application logged", Duration::from_secs(5), || {
        stack.log().contains("unknown application (a name of")
    });
    assert!(!stack.log().contains(&key), "the key is in the log:\n{}", stack.log());

    stack.assert_unharmed().await;
}

#[tokio::test]
async fn silent_publishers_hit_the_idle_timeout() {
    let _serial = SERIAL.lock().await;
    let mut stack = Stack::start("10s", "5s").await;
    let key = stack.create_stream("silent").await;
    let mut s = raw_publish(&stack, 2, &key);
    let published = Instant::now();
    // ORIGIN_RTMP_IDLE_TIMEOUT=3s: cut after 3 s of silence.
    assert!(
        closed_within(&mut s, Duration::from_secs(8)),
        "a silent publisher was not cut"
    );
    let after = published.elapsed();
    assert!(
        after >= Duration::from_secs(2),
        "cut after {after:?}, before the idle timeout"
    );
    wait_until("idle cut logged", Duration::from_secs(5), || {
        stack.log().contains("idle for longer than the idle timeout")
    });
    stack.assert_unharmed().await;
    // Its stream name is free again.
    let _p = publish(stack.rtmp, &key, 8);
    stack.wait_playable("silent").await;
}

#[test]
fn help_documents_the_rtmp_limits() {
    testkit::assert_help_documents(
        env!("CARGO_BIN_EXE_origin"),
        &[
            "--rtmp-max-connections",
            "--rtmp-max-per-address",
            "--rtmp-setup-timeout",
            "--rtmp-idle-timeout",
            "--rtmp-write-timeout",
            "--rtmp-max-message",
            "--rtmp-max-buffered",
        ],
    );
}

/// `ingest::rtmp::serve` in-process: cancelling the origin's shutdown token
/// stops accepting, ends the live publish with EXT-X-ENDLIST, and `serve`
/// returns once its connections are done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_ends_publishes_and_returns_on_shutdown() {
    use origin::ingest::rtmp::{RtmpLimits, serve};
    use origin::publish::OriginContext;
    use std::sync::Arc;

    let _serial = SERIAL.lock().await;
    let redis = Redis::start();
    let router = free_addr();
    let _router = Process::spawn(
        "router-api",
        bin_path("router-api"),
        ["--listen", &router.to_string(), "--redis", &redis.url()],
        &[("ROUTER_ADMIN_TOKEN", ADMIN), ("ROUTER_AGENT_TOKEN", AGENT)],
    );
    wait_until("router-api ready", Duration::from_secs(10), || {
        matches!(http_get(router, "/readyz"), Some((200, _)))
    });
    origin::transcode::init().unwrap();
    let out = tempfile::tempdir().unwrap();
    let profiles =
        origin::profiles::Profiles::load(Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/profiles.toml")))
            .unwrap();
    let client = origin::router::RouterClient::new(
        &format!("http://{router}").parse().unwrap(),
        AGENT,
        "origin-a",
        Duration::from_secs(3),
    )
    .unwrap();
    let ctx = Arc::new(OriginContext::new(
        out.path().to_path_buf(),
        profiles,
        client,
        Arc::new(origin::metrics::Metrics::new()),
        Duration::from_secs(2),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rtmp = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, ctx.clone(), RtmpLimits::default()));

    let v: Json = Client::new()
        .post(format!("http://{router}/admin/streams"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "closing", "profile": "passthrough"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ffmpeg = publish(rtmp, v["key"].as_str().unwrap(), 60);
    let media = || -> Vec<std::path::PathBuf> {
        let Ok(sessions) = std::fs::read_dir(out.path().join("closing")) else {
            return vec![];
        };
        sessions
            .flatten()
            .filter(|e| e.path().is_dir())
            .flat_map(|s| std::fs::read_dir(s.path()).into_iter().flatten().flatten())
            .map(|r| r.path().join("index.m3u8"))
            .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("#EXTINF")))
            .collect()
    };
    wait_until("a media playlist with a segment", Duration::from_secs(20), || {
        !media().is_empty()
    });

    ctx.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returned after shutdown")
        .unwrap();
    let ended = media();
    assert!(!ended.is_empty());
    for p in ended {
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("#EXT-X-ENDLIST"), "{}: {text}", p.display());
    }
    assert!(TcpStream::connect(rtmp).is_err(), "still accepting after shutdown");
}
