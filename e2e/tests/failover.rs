//! An origin dies under a live stream. The publisher reconnects through the
//! RTMP load balancer (as OBS does by itself; the test restarts ffmpeg), lands
//! on the other origin, and a viewer playing in headless Chromium through the
//! edge recovers. The test reports how long each step took.

use e2e::{Live, Player, origins_of};
use std::time::{Duration, Instant};
use testkit::{stack::publish, wait_until};

#[test]
fn a_playing_viewer_recovers_when_the_publishers_origin_dies() {
    let Live {
        mut stack,
        edge,
        lb,
        key,
        mut publisher,
    } = Live::start("golive", 120);
    let first = origins_of(&stack, "golive");
    assert_eq!(first.len(), 1, "{first:?}");
    let dying = stack.origins.iter().position(|o| o.id == first[0]).unwrap();
    let survivor = stack.origins[1 - dying].id.clone();

    let mut player = Player::open(&format!("http://{edge}/watch/golive"), 90);
    let playing = player.wait_for("playback", Duration::from_secs(25), |s| {
        s.current_time > 2.0 && s.state.as_deref() == Some("playing") && s.session.is_some()
    });
    let old_session = playing.session.clone().unwrap();

    // The publisher's origin dies; the publisher loses its connection.
    stack.origins[dying].process.kill();
    let died = Instant::now();
    wait_until("the publisher to lose its connection", Duration::from_secs(15), || {
        !publisher.is_running()
    });
    // It reconnects through the load balancer, which sends it to the survivor.
    publisher = publish(lb, &key, 120);
    wait_until(
        "the stream to come back on the other origin",
        Duration::from_secs(30),
        || origins_of(&stack, "golive").contains(&survivor),
    );
    let back = died.elapsed();

    // The viewer, without anyone touching it, plays the new session.
    let recovered = player.wait_for("the viewer to play the new session", Duration::from_secs(40), |s| {
        s.state.as_deref() == Some("playing") && s.session.as_ref().is_some_and(|x| *x != old_session)
    });
    let resumed = died.elapsed();
    let moving = player.wait_for(
        "the clock to advance 3 s on the new session",
        Duration::from_secs(15),
        |s| s.current_time >= recovered.current_time + 3.0,
    );
    assert!(moving.page_errors.is_empty(), "{:?}", moving.page_errors);
    assert!(publisher.is_running(), "the republished stream is still going");
    println!(
        "origin {} died; stream back on {survivor} after {:.1} s; viewer playing again after {:.1} s \
         ({} restart(s): {:?})",
        first[0],
        back.as_secs_f64(),
        resumed.as_secs_f64(),
        moving.restarts,
        moving.errors
    );
}
