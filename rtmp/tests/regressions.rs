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
