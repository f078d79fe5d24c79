//! A viewer's whole path: ffmpeg publishes to the RTMP load balancer, an
//! origin behind it transcodes and packages, its agent reports to the router,
//! and headless Chromium plays the edge's player page. ffprobe reads the same
//! stream through the edge.

use e2e::{Live, Player, origins_of};
use std::time::Duration;
use testkit::{http_get, probe};

#[test]
fn a_browser_plays_through_the_edge_what_ffmpeg_publishes_to_the_load_balancer() {
    let Live {
        stack,
        edge,
        publisher: _publisher,
        ..
    } = Live::start("golive", 90);
    assert_eq!(origins_of(&stack, "golive").len(), 1, "one publisher, one origin");

    // ffprobe, as a player, reads every rendition through the edge.
    let streams = probe::streams(&format!("http://{edge}/golive/index.m3u8"));
    assert_eq!(
        probe::h264_sizes(&streams),
        [(320, 180), (426, 240), (640, 360)],
        "{streams:?}"
    );
    assert!(streams.iter().any(|s| s.codec == "aac"), "{streams:?}");

    // The page and hls.js come from the edge itself, never from a third party.
    let (status, page) = http_get(edge, "/watch/golive").expect("player page");
    assert_eq!(status, 200);
    assert!(page.contains("/watch/assets/hls.min.js"), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://") && !page.contains("//cdn"),
        "{page}"
    );
    let (status, hls) = http_get(edge, "/watch/assets/hls.min.js").expect("hls.js");
    assert!(
        status == 200 && hls.len() > 100_000,
        "hls.js is served whole ({} bytes)",
        hls.len()
    );

    // Chromium plays: the clock advances, the ladder is seen, no fatal error.
    let mut player = Player::open(&format!("http://{edge}/watch/golive"), 60);
    let first = player.wait_for("playback", Duration::from_secs(25), |s| {
        s.current_time > 0.5 && s.state.as_deref() == Some("playing")
    });
    let later = player.wait_for("the clock to advance 5 s", Duration::from_secs(15), |s| {
        s.current_time >= first.current_time + 5.0
    });
    println!("{later:?}");
    assert_eq!(later.engine.as_deref().map(|e| e.starts_with("hls.js")), Some(true));
    assert_eq!(later.ladder.len(), 3, "three renditions seen: {:?}", later.ladder);
    for rung in ["180p", "240p", "360p"] {
        assert!(
            later.ladder.iter().any(|l| l.starts_with(rung)),
            "{rung} in {:?}",
            later.ladder
        );
    }
    let rendition = later.rendition.clone().expect("the rendition playing is shown");
    assert!(
        later.ladder.contains(&rendition),
        "{rendition} is one of {:?}",
        later.ladder
    );
    let latency = later.latency.expect("live latency is shown");
    assert!((0.5..20.0).contains(&latency), "live latency {latency} s");
    assert_eq!(later.restarts, 0, "no fatal error: {:?}", later.errors);
    assert!(later.page_errors.is_empty(), "{:?}", later.page_errors);
    assert!(
        later.live.contains(&"golive".to_string()),
        "the page lists live streams: {:?}",
        later.live
    );
    println!(
        "played {:.1} s of media in {:.1} s; rendition {rendition}; live latency {latency:.1} s",
        later.current_time - first.current_time,
        later.t - first.t
    );

    // The listing page shows the live stream too.
    let mut index = Player::open(&format!("http://{edge}/watch/"), 20);
    index.wait_for("the live list", Duration::from_secs(15), |s| s.live == ["golive"]);
}
