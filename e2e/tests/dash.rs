//! DASH through the edge: ffmpeg publishes to the load balancer, the origin
//! writes the live MPD beside the HLS playlists, the edge caches it like a
//! media playlist, and headless Chromium plays `/watch/{stream}?format=dash`
//! with the dash.js the edge embeds.

use e2e::{Live, Player};
use std::process::Command;
use std::time::Duration;
use testkit::http_get;

/// `curl -sD-` of `path` on `edge`: (status line and headers, lower-cased; body).
fn fetch(edge: std::net::SocketAddr, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "--max-time", "10"])
        .arg(format!("http://{edge}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn a_browser_plays_the_live_mpd_through_the_edge_with_dash_js() {
    let Live {
        edge,
        publisher: _publisher,
        stack: _stack,
        ..
    } = Live::start("golive", 90);

    // The edge serves the MPD with the origin's type and caches it like a
    // media playlist: a second request within the playlist TTL is a hit.
    let mut hit = None;
    testkit::wait_until("the MPD to be a cache hit", Duration::from_secs(20), || {
        let (head, body) = fetch(edge, "/golive/manifest.mpd");
        if !head.starts_with("http/1.1 200") {
            return false;
        }
        assert!(head.contains("content-type: application/dash+xml"), "{head}");
        assert!(body.contains("type=\"dynamic\""), "{body}");
        let (again, _) = fetch(edge, "/golive/manifest.mpd");
        let is_hit = again.contains("x-cache-status: hit");
        if is_hit {
            hit = Some(again);
        }
        is_hit
    });
    println!("{}", hit.unwrap_or_default());

    // dash.js comes from the edge too, loaded only by DASH pages.
    let (status, js) = http_get(edge, "/watch/assets/dash.mediaplayer.min.js").expect("dash.js");
    assert!(
        status == 200 && js.len() > 100_000,
        "dash.js is served whole ({} bytes)",
        js.len()
    );

    let mut player = Player::open(&format!("http://{edge}/watch/golive?format=dash"), 90);
    let first = player.wait_for("DASH playback", Duration::from_secs(30), |s| {
        s.current_time > 0.5 && s.state.as_deref() == Some("playing")
    });
    let later = player.wait_for("the clock to advance 20 s", Duration::from_secs(40), |s| {
        s.current_time >= first.current_time + 20.0
    });
    println!("{later:?}");
    // What the page showed, every two seconds.
    for s in player.samples().iter().step_by(4) {
        println!(
            "t={:.1} ct={:.2} rs={} state={:?} lat={:?} errs={:?}",
            s.t, s.current_time, s.ready_state, s.state, s.latency, s.errors
        );
    }
    assert_eq!(
        later.engine.as_deref().map(|e| e.starts_with("dash.js")),
        Some(true),
        "{later:?}"
    );
    assert_eq!(later.mode.as_deref(), Some("dash"));
    assert_eq!(later.ladder.len(), 3, "three video renditions seen: {:?}", later.ladder);
    for rung in ["180p", "240p", "360p"] {
        assert!(
            later.ladder.iter().any(|l| l.starts_with(rung)),
            "{rung} in {:?}",
            later.ladder
        );
    }
    assert_eq!(later.restarts, 0, "no error: {:?}", later.errors);
    // The page knows the publish session from the MPD's Period.
    let (_, mpd) = http_get(edge, "/golive/manifest.mpd").expect("MPD");
    let session = later.session.clone().expect("the session is known");
    assert!(mpd.contains(&format!("<Period id=\"{session}\"")), "{session}: {mpd}");
    assert!(later.page_errors.is_empty(), "{:?}", later.page_errors);
    let latency = later.latency.expect("live latency is shown");
    assert!((0.5..20.0).contains(&latency), "live latency {latency} s");
    // Played in real time: no long stall on the way (generous: the CPU is shared).
    let wall = later.t - first.t;
    assert!(
        wall < (later.current_time - first.current_time) * 1.5 + 3.0,
        "{:.1} s of media took {wall:.1} s",
        later.current_time - first.current_time
    );
    println!(
        "DASH: played {:.1} s of media in {wall:.1} s; rendition {:?}; live latency {latency:.1} s",
        later.current_time - first.current_time,
        later.rendition
    );
}
