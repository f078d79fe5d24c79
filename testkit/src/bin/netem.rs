//! `netem`: delay and loss on a link, for the chaos suite (`scripts/chaos.sh`)
//! on kernels without `sch_netem`.
//!
//! `tc qdisc ... netem delay 100ms loss 1%` is the usual tool, but the kernel
//! the suite runs on here is built without `CONFIG_NET_SCH_NETEM` (and has no
//! modules to load). It does have NetFilter queues, so this does the same
//! from user space: an `iptables ... -j NFQUEUE --queue-bypass` rule sends
//! the packets leaving a host's interface to a queue, and this program gives
//! each its verdict: dropped with probability `--loss`, or accepted
//! `--delay` after it was queued (in order; the delay is constant). Only the
//! verdict crosses to user space (copy range 0), not the packet.
//!
//! Bounded: at most `--max-queued` packets wait (the kernel queue's length
//! too); past it, packets are accepted at once (fail-open), as the rule's
//! `--queue-bypass` does when this program is not running. It runs until
//! SIGTERM/SIGINT or `--for`, whichever comes first.
//!
//! ```text
//! ip netns exec HOST iptables -A OUTPUT -o eth0 -j NFQUEUE --queue-num 0 --queue-bypass
//! ip netns exec HOST netem --queue 0 --delay 100ms --loss 1% --for 60s
//! ```

use anyhow::{Context, Result, bail};
use clap::Parser;
use nfq::{Queue, Verdict};
use rand::Rng;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Delay and loss for the packets of a NetFilter queue (a user-space netem).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The NetFilter queue number the iptables rule sends packets to.
    #[arg(long, default_value_t = 0)]
    queue: u16,
    /// How long each packet is held before it is accepted.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    delay: Duration,
    /// Share of packets dropped, e.g. `1%` or `0.01`.
    #[arg(long, default_value = "0%", value_parser = parse_share)]
    loss: f64,
    /// Most packets held at once (and the kernel queue's length); past it,
    /// packets pass undelayed.
    #[arg(long, default_value_t = 16_384)]
    max_queued: u32,
    /// Stop after this long (a bound for test runs).
    #[arg(long = "for", default_value = "10m", value_parser = humantime::parse_duration)]
    run_for: Duration,
}

fn parse_share(s: &str) -> Result<f64, String> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map_err(|e| e.to_string())? / 100.0,
        None => s.trim().parse::<f64>().map_err(|e| e.to_string())?,
    };
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s}: a share between 0 and 100 %"));
    }
    Ok(v)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    // SIGTERM and SIGINT are blocked here, before any thread starts (the
    // mask is inherited), and waited for by one thread that sets a flag the
    // loop polls: a stop lets the held packets through first.
    let signals = block_stop_signals();
    let flag = stop.clone();
    std::thread::spawn(move || {
        let mut got = 0;
        // SAFETY: `signals` is a valid, initialised set.
        unsafe { libc::sigwait(&signals, &mut got) };
        flag.store(true, Ordering::Relaxed);
    });
    let mut queue = Queue::open().context("opening a NetFilter queue socket (root, in the host's namespace)")?;
    queue.bind(args.queue).context("binding the queue")?;
    queue.set_copy_range(args.queue, 0)?;
    queue.set_queue_max_len(args.queue, args.max_queued)?;
    queue.set_fail_open(args.queue, true)?;
    queue.set_nonblocking(true);
    eprintln!(
        "netem: queue {} delay {:?} loss {:.2} % for {:?}",
        args.queue,
        args.delay,
        args.loss * 100.0,
        args.run_for
    );
    let end = Instant::now() + args.run_for;
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    let (mut passed, mut dropped) = (0u64, 0u64);
    let mut rng = rand::rng();
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        // Everything queued now, then the verdicts that are due.
        loop {
            match queue.recv() {
                Ok(mut msg) => {
                    if rng.random::<f64>() < args.loss {
                        msg.set_verdict(Verdict::Drop);
                        queue.verdict(msg)?;
                        dropped += 1;
                    } else if held.len() >= args.max_queued as usize {
                        msg.set_verdict(Verdict::Accept);
                        queue.verdict(msg)?;
                        passed += 1;
                    } else {
                        held.push_back((Instant::now() + args.delay, msg));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => bail!("reading the queue: {e}"),
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            let (_, mut msg) = held.pop_front().expect("front");
            msg.set_verdict(Verdict::Accept);
            queue.verdict(msg)?;
            passed += 1;
        }
        // The next packet's due time or a millisecond, whichever is sooner:
        // the resolution of the delay.
        let next = held.front().map_or(Duration::from_millis(1), |(due, _)| {
            due.saturating_duration_since(now).min(Duration::from_millis(1))
        });
        std::thread::sleep(next);
    }
    // What is still held passes at once: nothing is lost by stopping.
    for (_, mut msg) in held {
        msg.set_verdict(Verdict::Accept);
        queue.verdict(msg)?;
        passed += 1;
    }
    eprintln!("netem: {passed} packets passed, {dropped} dropped");
    Ok(())
}

/// Blocks SIGTERM and SIGINT in this thread (and the threads it starts
/// later); returns the set, for `sigwait`.
fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: a zeroed sigset initialised by sigemptyset and filled by
    // sigaddset, then passed to pthread_sigmask; nothing else is touched.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}
