//! The player page over HTTPS: headless Chromium opens
//! `https://{edge}/watch/{stream}` on the edge's TLS listener (HTTP/2 by
//! ALPN, a self-signed pair made by the test) and plays what ffmpeg
//! publishes: a page served over HTTPS loads its stream over HTTPS.

use e2e::Player;
use std::time::Duration;
use testkit::{free_addr, http_get, wait_until};

#[test]
fn a_browser_plays_the_player_page_over_https() {
    let mut stack = testkit::stack::Stack::new();
    let rtmp = stack.add_origin("origin-a").rtmp;
    let key = stack.create_stream("secure");
    let dir = tempfile::tempdir().unwrap();
    let (cert, pkey) = testkit::self_signed_pair(dir.path(), "edge");
    let tls = free_addr();
    let plain = stack.add_edge(&[
        "--cache-size",
        "64MiB",
        "--tls-listen",
        &tls.to_string(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        pkey.to_str().unwrap(),
    ]);
    let _publisher = testkit::stack::publish(rtmp, &key, 90);
    wait_until("the stream playable on the edge", Duration::from_secs(30), || {
        matches!(http_get(plain, "/secure/index.m3u8"), Some((200, _)))
    });
    let before = http_get(plain, "/metrics").map(|r| r.1).unwrap_or_default();

    let mut player = Player::open(&format!("https://{tls}/watch/secure"), 60);
    let first = player.wait_for("playback over HTTPS", Duration::from_secs(30), |s| {
        s.current_time > 0.5 && s.state.as_deref() == Some("playing")
    });
    let later = player.wait_for("the clock to advance 4 s", Duration::from_secs(15), |s| {
        s.current_time >= first.current_time + 4.0
    });
    assert_eq!(later.restarts, 0, "no fatal error: {:?}", later.errors);
    assert!(later.page_errors.is_empty(), "{:?}", later.page_errors);
    assert!(later.live.contains(&"secure".to_string()), "{:?}", later.live);
    // The segments came from the edge while only the HTTPS page played.
    let after = http_get(plain, "/metrics").map(|r| r.1).unwrap_or_default();
    let segments = |m: &str| -> f64 {
        m.lines()
            .filter(|l| l.starts_with("edge_requests_total{") && l.contains("kind=\"segment\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(
        segments(&after) > segments(&before) + 2.0,
        "segments served to the HTTPS page"
    );
    // Chromium chose HTTP/2.
    let h2 = after
        .lines()
        .find_map(|l| l.strip_prefix("edge_tls_connections_total{protocol=\"h2\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(h2 >= 1.0, "the page's connections were HTTP/2:\n{after}");
}
