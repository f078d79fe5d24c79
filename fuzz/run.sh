#!/usr/bin/env bash
# Runs every fuzz target for MINUTES in total (split evenly among them), on
# the stable toolchain: cargo-fuzz with `--sanitizer none` needs no nightly
# (only sanitizers take -Z flags); libFuzzer still gets its coverage
# instrumentation and -C debug-assertions catch overflows.
#
#   fuzz/run.sh MINUTES [TARGET...]
#
# Installs cargo-fuzz if missing. Corpora grow in fuzz/corpus/TARGET (not
# committed), seeded from fuzz/regressions/TARGET. A crash is written to
# fuzz/artifacts/TARGET/ and the run goes on with the next target; copy the
# file into fuzz/regressions/TARGET/ once fixed, where
# `cargo test -p rtmp --test regressions` replays it (the playlist target's
# and ll targets' inputs, seeds only so far, replay in their own fuzz targets
# only: discovery and the edge are binary crates; the llhls target's are
# replayed by the load tester's unit test `llhls::tests::fuzz_regressions`).
# Exit status: non-zero when any target crashed.
set -euo pipefail
cd "$(dirname "$0")"
minutes=${1:?usage: fuzz/run.sh MINUTES [TARGET...]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(session amf0 flv streamid playlist recording hls_query ll llhls playback_token)

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cargo fuzz build -s none -O

per=$(( minutes * 60 / ${#targets[@]} ))
[ "$per" -ge 1 ] || per=1
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  seeds=()
  [ -d "regressions/$t" ] && seeds=("regressions/$t")
  echo "== $t: ${per}s"
  # -rss_limit_mb: a target holding more than this is a bug (every limit
  # of the codec is far below it).
  if ! cargo fuzz run -s none -O "$t" "corpus/$t" "${seeds[@]}" -- \
      -max_total_time="$per" -rss_limit_mb=1024 -timeout=10 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 | tee "artifacts/$t.log" | grep -E 'stat::|ERROR|SUMMARY|Done'; then
    :
  fi
  if ls "artifacts/$t"/crash-* "artifacts/$t"/oom-* "artifacts/$t"/timeout-* >/dev/null 2>&1; then
    echo "!! $t: inputs in fuzz/artifacts/$t/"
    failed=1
  fi
done
exit $failed
