#!/usr/bin/env bash
# The same viewer load against our edge, nginx proxy_cache and Varnish, each
# in front of the same origin, on loopback. For each cache it raises the
# viewer count (STEPS) until a run has a stall or an error, and reports the
# largest clean count with its hit ratio and origin requests per segment
# (counted by the origin itself, so all three are measured alike).
#
#   [CACHES="edge nginx varnish"] [COMPARE_OUT=dir] loadtest/compare.sh [DURATION_SECONDS] [STEPS...]
#   e.g. loadtest/compare.sh 20 100 200 400 800
#
# Besides the table on stdout it writes, into COMPARE_OUT (default
# loadtest-compare/), every run's report.json and report.html
# ({cache}-{viewers}/) and compare.html: the caches side by side at each
# step, linking each run's report (docs/loadtest.md).
#
# BIN=dir uses binaries already built there (e.g. target/debug) instead of a
# release build; SETUP=0 skips scripts/setup.sh (the test sets both).
#
# The origin uses the small test ladders (origin/tests/profiles.toml) so that
# transcoding leaves the cores to the caches and the viewers.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${1:-20}
shift || true
STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=(100 200 400 800)
OUT=${COMPARE_OUT:-$ROOT/loadtest-compare}
RAMP=$(( DURATION < 5 ? DURATION : 5 ))

[ "${SETUP:-1}" = 0 ] || bash scripts/setup.sh
if [ -n "${BIN:-}" ]; then
  BIN=$(cd "$BIN" && pwd)
else
  cargo build --release --quiet --workspace --bins
  BIN="$ROOT/target/release"
fi
. "$ROOT/loadtest/bench/lib.sh"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

RPORT=$(free_port); APORT=$(free_port); RTMP=$(free_port); OHTTP=$(free_port); DPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no > "$WORK/redis.log" 2>&1 & PIDS+=($!)
wait_for redis-cli -p "$RPORT" ping
export ROUTER_ADMIN_TOKEN=compare-admin-token-0000 ROUTER_AGENT_TOKEN=compare-agent-token-0000
"$BIN/router-api" --listen "127.0.0.1:$APORT" --redis "redis://127.0.0.1:$RPORT" --log warn > "$WORK/router.log" 2>&1 & PIDS+=($!)
wait_for curl -fsS "http://127.0.0.1:$APORT/readyz"
mkdir -p "$WORK/out"
"$BIN/origin" --origin-id origin-a --rtmp-listen "127.0.0.1:$RTMP" --http-listen "127.0.0.1:$OHTTP" --output-dir "$WORK/out" \
  --router "http://127.0.0.1:$APORT" --profiles "$ROOT/origin/tests/profiles.toml" --log warn > "$WORK/origin.log" 2>&1 & PIDS+=($!)
wait_for curl -fsS "http://127.0.0.1:$OHTTP/healthz"
"$BIN/discovery" --origin-id origin-a --output-dir "$WORK/out" --advertise "127.0.0.1:$OHTTP" \
  --router "http://127.0.0.1:$APORT" --listen "127.0.0.1:$DPORT" --log warn > "$WORK/discovery.log" 2>&1 & PIDS+=($!)
KEY=$(curl -fsS -H "Authorization: Bearer $ROUTER_ADMIN_TOKEN" -H 'content-type: application/json' -d '{"name":"compare"}' \
  "http://127.0.0.1:$APORT/admin/streams" | jq -r .key)
TOTAL=$(( (DURATION + 10) * ${#STEPS[@]} * 3 + 60 ))
ffmpeg -hide_banner -loglevel error -re -f lavfi -i "testsrc2=size=640x360:rate=15" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t "$TOTAL" -c:v libx264 -preset ultrafast -g 15 -pix_fmt yuv420p -c:a aac -f flv "rtmp://127.0.0.1:$RTMP/live/$KEY" \
  > "$WORK/ffmpeg.log" 2>&1 & PIDS+=($!)

EPORT=$(free_port); NPORT=$(free_port); VPORT=$(free_port)
"$BIN/edge" --listen "127.0.0.1:$EPORT" --router "http://127.0.0.1:$APORT" --threads 2 --log warn > "$WORK/edge.log" 2>&1 & PIDS+=($!)
# Both honour the origin's Cache-Control, as the edge does with its own TTLs.
start_nginx_cache "$NPORT" "$OHTTP"
start_varnish "$VPORT" "$OHTTP" "if (beresp.status != 200) { set beresp.ttl = 0s; set beresp.uncacheable = true; }"
for port in $EPORT $NPORT $VPORT; do wait_for curl -fsS "http://127.0.0.1:$port/compare/index.m3u8"; done
# Viewers start three segments behind the live edge: wait until the window is full.
full_window() {
  local uri; uri=$(curl -fsS "http://127.0.0.1:$OHTTP/compare/index.m3u8" | grep -m1 'index.m3u8$') || return 1
  [ "$(curl -fsS "http://127.0.0.1:$OHTTP/compare/$uri" | grep -c '\.m4s$')" -ge 3 ]
}
wait_for full_window

echo "| $(date -u +%F) | cache | largest clean viewers | hit ratio | origin req/segment | latency p50 | notes |"
declare -A PORT_OF=([edge]=$EPORT [nginx]=$NPORT [varnish]=$VPORT)
RUNS=()
for name in ${CACHES:-edge nginx varnish}; do
  port=${PORT_OF[$name]}
  best=0; best_line="no clean run"
  for n in "${STEPS[@]}"; do
    dir="$OUT/$name-$n"
    rm -rf "$dir"
    "$BIN/loadtest" --url "http://127.0.0.1:$port/compare/index.m3u8" --viewers "$n" --ramp "${RAMP}s" --duration "${DURATION}s" \
      --pick highest --metrics-url "http://127.0.0.1:$OHTTP/metrics" --label "$name" --report-dir "$dir" --quiet \
      > "$WORK/loadtest-$name-$n.txt" 2>&1 || true
    [ -f "$dir/report.json" ] || { echo "  $name $n viewers: no report: $(head -3 "$WORK/loadtest-$name-$n.txt")" >&2; break; }
    RUNS+=("$dir")
    # Tab-separated with "-" for missing values (read would merge empty fields).
    IFS=$'\t' read -r errors stalls hit per lat < <(jq -r '[.errors, .stalls,
      (if .hit_ratio then (.hit_ratio * 10000 | floor / 100 | tostring) + " %" else null end),
      (if .origin_requests_per_segment then (.origin_requests_per_segment * 1000 | round / 1000) else null end),
      (if .latency then (.latency.p50_s * 100 | round / 100) else null end)] | map(. // "-") | @tsv' "$dir/report.json")
    echo "  $name $n viewers: errors $errors, stalls $stalls, hit ratio $hit, origin req/segment $per, latency p50 ${lat}s" >&2
    if [ "$errors" = 0 ] && [ "$stalls" = 0 ]; then best=$n; best_line="$hit | $per | $lat"; else break; fi
  done
  echo "| $(date -u +%F) | $name | $best | $best_line | steps ${STEPS[*]}, ${DURATION}s each |"
done
[ ${#RUNS[@]} -gt 0 ] && "$BIN/loadtest-compare" --out "$OUT/compare.html" "${RUNS[@]}" >&2
echo "comparison page: $OUT/compare.html" >&2
