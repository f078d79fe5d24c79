#!/usr/bin/env bash
# What a two-hour DVR window costs per playlist reload, with and without
# delta updates, beside nginx serving the same whole playlist file:
#
#  - the origin's packager and HTTP server (origin/examples/dvr_playlist.rs:
#    the real SessionWriter fed a synthesized session of SEGMENTS segments of
#    2 s, six parts each for LL-HLS; the real origin::serve answering from
#    the live state), whole playlist and `_HLS_skip=YES`;
#  - nginx (2 workers, static file, sendfile) serving the same playlist's file
#    (the writer's own index.m3u8: the same bytes as the whole answer).
#
# Per reload: bytes, server CPU microseconds (wrk, keep-alive, CONNECTIONS
# connections, SECONDS each, ROUNDS rounds, medians), and the ratios; per
# playlist change (every part for LL-HLS, every segment for plain HLS): the
# packager's CPU with the window full (both renders, the file, the part).
#
#   loadtest/bench/dvr.sh [SECONDS] [CONNECTIONS] [ROUNDS] [SEGMENTS]
#
# Defaults 10 s, 16 connections, 3 rounds, 3600 segments (2 h). Loopback
# only, free ports; every process started is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SECS=${1:-10}
CONNS=${2:-16}
ROUNDS=${3:-3}
SEGMENTS=${4:-3600}

bash scripts/setup.sh
cargo build --release --quiet --workspace --examples
BIN="$ROOT/target/release/examples/dvr_playlist"
. "$ROOT/loadtest/bench/lib.sh"

# One wrk run: prints "req/s server-CPU-us-per-request".
run_once() {  # $1 = URL, $2.. = the server's PIDs
  local url=$1; shift
  local before out after reqs rps
  before=$(cpu_of "$@")
  out=$(wrk -t1 -c"$CONNS" -d"${SECS}s" "$url")
  after=$(cpu_of "$@")
  if echo "$out" | grep -q "Non-2xx"; then echo "non-2xx answers from $url" >&2; exit 1; fi
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  echo "$rps $(awk -v a="$before" -v b="$after" -v n="$reqs" 'BEGIN {printf "%.1f", (b - a) / n * 1e6}')"
}
bytes_of() { curl -fsS -o /dev/null -w '%{size_download}' "$1"; }

echo
echo "## DVR window: $SEGMENTS segments of 2 s; wrk -c$CONNS -d${SECS}s, $ROUNDS rounds (medians)"
for mode in ll plain; do
  OPORT=$(free_port); NPORT=$(free_port)
  OUT="$WORK/out-$mode"; mkdir -p "$OUT"
  "$BIN" "$OUT" "$OPORT" "$SEGMENTS" $([ "$mode" = plain ] && echo plain) > "$WORK/origin-$mode.json" 2> "$WORK/origin-$mode.log" & OPID=$!; PIDS+=($OPID)
  end=$((SECONDS + 300))
  until grep -q '"ready":true' "$WORK/origin-$mode.json" 2>/dev/null; do
    kill -0 "$OPID" 2>/dev/null || { cat "$WORK/origin-$mode.log" >&2; exit 1; }
    [ $SECONDS -lt $end ] || { echo "the synthesized session did not get ready" >&2; exit 1; }
    sleep 0.2
  done
  wait_for curl -fsS "http://127.0.0.1:$OPORT/healthz"
  info=$(cat "$WORK/origin-$mode.json")
  path=$(echo "$info" | jq -r .path)
  mkdir -p "$WORK/nginx-$NPORT"
  cat > "$WORK/nginx-$NPORT/nginx.conf" <<CONF
daemon off;
user root;
worker_processes 2;
pid $WORK/nginx-$NPORT/nginx.pid;
error_log $WORK/nginx-$NPORT/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  types { application/vnd.apple.mpegurl m3u8; }
  server { listen 127.0.0.1:$NPORT; root $OUT; }
}
CONF
  nginx -c "$WORK/nginx-$NPORT/nginx.conf" & NPID=$!; PIDS+=($NPID)
  wait_for curl -fsS -o /dev/null "http://127.0.0.1:$NPORT$path"
  NPIDS="$NPID $(pgrep -P "$NPID" | tr '\n' ' ')"
  full="http://127.0.0.1:$OPORT$path"; delta="$full?_HLS_skip=YES"; peer="http://127.0.0.1:$NPORT$path"
  cmp <(curl -fsS "$full") "$WORK/out-$mode${path}" || { echo "the whole answer and the file differ" >&2; exit 1; }
  b_full=$(bytes_of "$full"); b_delta=$(bytes_of "$delta"); b_peer=$(bytes_of "$peer")
  : > "$WORK/rounds-$mode"
  for round in $(seq "$ROUNDS"); do
    f=$(run_once "$full" $OPID); d=$(run_once "$delta" $OPID); n=$(run_once "$peer" $NPIDS)
    echo "$f $d $n" >> "$WORK/rounds-$mode"
    echo "  $mode round $round: whole $f | delta $d | nginx $n  (req/s cpu-us/req)" >&2
  done
  col() { awk -v c="$1" '{print $c}' "$WORK/rounds-$mode" | median; }
  f_rps=$(col 1); f_cpu=$(col 2); d_rps=$(col 3); d_cpu=$(col 4); n_rps=$(col 5); n_cpu=$(col 6)
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
  echo
  echo "### $mode ($(echo "$info" | jq -r .segments_listed) segments listed)"
  echo
  echo "| per reload | bytes | server CPU µs | reloads/s | CPU vs nginx |"
  echo "|---|---:|---:|---:|---:|"
  echo "| origin, whole playlist | $b_full | $f_cpu | $f_rps | $(ratio "$f_cpu" "$n_cpu") |"
  echo "| origin, delta update (\`_HLS_skip=YES\`) | $b_delta | $d_cpu | $d_rps | $(ratio "$d_cpu" "$n_cpu") |"
  echo "| nginx, the same whole file | $b_peer | $n_cpu | $n_rps | 1.00 |"
  echo
  pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f %%", 100 * a / b}'; }
  echo "Delta/whole: bytes $(pct "$b_delta" "$b_full"), CPU $(pct "$d_cpu" "$f_cpu"). Packager, window full: $(echo "$info" | jq -r .cpu_per_change_us) µs CPU per playlist change (both renders, the file, the part); renderer alone $(echo "$info" | jq -r .render_full_us) µs whole, $(echo "$info" | jq -r .render_delta_us) µs delta; resident memory once fed $(echo "$info" | jq -r .rss_kib) KiB ($(echo "$info" | jq -r .rss_after_renders_kib) KiB after the renderer's runs)."
  kill "$OPID" "$NPID" 2>/dev/null || true
  wait "$OPID" "$NPID" 2>/dev/null || true
done
