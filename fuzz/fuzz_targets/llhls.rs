//! Fuzz target: the load tester's LL-HLS playlist parser
//! (`loadtest/src/llhls.rs`, compiled in from its source so the fuzz build
//! does not pull in the load tester's HTTP client). The input is a copy and
//! a delta update separated by a NUL byte: both are parsed, the delta is
//! applied to the copy, and what the LL viewer asks of a playlist is asked.
#![no_main]

#[path = "../../loadtest/src/llhls.rs"]
#[allow(dead_code)]
mod llhls;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (copy, delta) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(mut pl) = llhls::Playlist::parse(copy) else {
        return;
    };
    exercise(&pl);
    if let Ok(d) = llhls::Playlist::parse(delta) {
        exercise(&d);
        if pl.apply_delta(d).is_ok() {
            exercise(&pl);
        }
    }
});

fn exercise(pl: &llhls::Playlist) {
    // Sequence numbers are consecutive and bounded.
    for w in pl.segments.windows(2) {
        assert_eq!(w[0].msn + 1, w[1].msn);
    }
    assert!(pl.segments.len() as u64 <= llhls::MAX_SEGMENTS);
    let next = pl.next_pos();
    if let Some(first) = pl.first_msn() {
        assert!(next.msn >= first);
        let _ = pl.segment(next.msn);
    }
    let _ = pl.end_pdt();
    let _ = pl.join(pl.part_hold_back());
    if let Some(end) = pl.end_pdt() {
        let _ = pl.independent_part_at(end - 1.0);
    }
}
