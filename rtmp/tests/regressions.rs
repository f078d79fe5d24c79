//! Every input the fuzzer ever crashed on (`fuzz/regressions/{target}/`),
//! replayed through the same entry points ([`rtmp::fuzzing`]) in the normal
//! test suite, so a fixed crash stays fixed.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap();
            run(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn session_regressions() {
    assert!(replay("session", rtmp::fuzzing::session) > 0);
}

#[test]
fn amf0_regressions() {
    assert!(replay("amf0", rtmp::fuzzing::amf0) > 0);
}

#[test]
fn flv_regressions() {
    assert!(replay("flv", rtmp::fuzzing::flv) > 0);
}

#[test]
fn streamid_regressions() {
    assert!(replay("streamid", rtmp::fuzzing::streamid) > 0);
}

/// The session seed is a whole ffmpeg-like publish: under the fuzzing
/// limits it reaches connect, publish, media and unpublish, so the fuzzer
/// starts from the deep states.
#[test]
fn the_publish_seed_reaches_every_state() {
    use rtmp::{Event, ServerSession};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/session/seed-ffmpeg-publish-sequence");
    let data = std::fs::read(path).unwrap();
    let mut s = ServerSession::new(rtmp::fuzzing::small_limits());
    let mut events = vec![];
    s.feed(&rtmp::fuzzing::client_handshake(), &mut events).unwrap();
    let mut kinds = vec![];
    for piece in data[1..].chunks(141) {
        s.feed(piece, &mut events).unwrap();
        for ev in events.drain(..) {
            kinds.push(match ev {
                Event::Connect { .. } => {
                    s.accept_connect().unwrap();
                    "connect"
                }
                Event::Publish { .. } => {
                    s.accept_publish().unwrap();
                    "publish"
                }
                Event::Media { .. } => "media",
                Event::Unpublish => "unpublish",
            });
        }
    }
    assert_eq!(
        kinds,
        ["connect", "publish", "media", "media", "unpublish", "unpublish"]
    );
}
