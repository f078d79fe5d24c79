#!/usr/bin/env bash
# Glass-to-glass latency in headless Chromium, one case after another on one
# machine, from the same ffmpeg source:
#
#  a. our LL-HLS through the edge, played by the edge's player page
#     (hls.js in low-latency mode);
#  b. our plain HLS through the edge, the same page (plain mode);
#  b'. the same plain stream through the edge with hls.js's defaults on a
#     bare page (what the page's own settings change);
#  b''. the same again with the page's settings before 2026-12-01
#     (liveSyncDurationCount 3 and its playlist retry policy);
#  c. nginx-rtmp's HLS (libnginx-mod-rtmp, 2 s fragments) with hls.js's
#     defaults on a bare page;
#  d. optional (LL_VIEWERS=N): case a again while N load-tester viewers play
#     the same LL stream from the same edge (see ll_viewers below).
#
#   loadtest/bench/latency.sh [SECONDS] [WARMUP]
#
# Each case publishes for WARMUP + SECONDS (+ start-up), and measures for
# SECONDS after WARMUP seconds of playback (defaults 60 and 10).
#
# How latency is measured (e2e/browser/latency.mjs has the details): ffmpeg
# burns the wall clock at which it made each frame into the frame itself (a
# strip of 26 blocks across the top, the low 24 bits of the Unix time in ms),
# and the browser reads the strip back from every frame it presents
# (requestVideoFrameCallback + a canvas). Glass to glass = the wall clock at
# the frame's display minus the clock in the frame: the same measure for
# every case, PROGRAM-DATE-TIME or not (nginx-rtmp's playlists have none).
# Beside it: the PROGRAM-DATE-TIME latency the page shows (hls.js
# playingDate) and hls.js's own estimate (hls.latency: the playlist's end
# minus the playback position, blind to how late the playlist itself is).
# Everything runs on this machine's loopback; ffmpeg, the origin, the edge,
# nginx and Chromium share its cores.
#
# Environment: CARGO_PROFILE=debug uses target/debug (no release build;
# slower origin and edge, for checking the script); CASES picks cases
# (default "abc"; "b" runs b, b' and b''); LL_VIEWERS=N adds case d;
# LATENCY_OUT=DIR keeps each case's driver log there (a line a second);
# D_PROFILE picks case d's profile (default llpass: passthrough with
# parts; ll transcodes like case a);
# PART_TARGET sets the LL profile's part target (default 334ms, the
# built-in profiles' value; docs/benchmarks.md has the comparison).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SECS=${1:-60}
WARMUP=${2:-10}
CARGO_PROFILE=${CARGO_PROFILE:-release}
LL_VIEWERS=${LL_VIEWERS:-0}
CASES=${CASES:-abc}
PART_TARGET=${PART_TARGET:-334ms}

bash scripts/setup.sh
if [ "$CARGO_PROFILE" = release ]; then
  cargo build --release --quiet --workspace --bins
else
  cargo build --quiet --workspace --bins
fi
BIN="$ROOT/target/$CARGO_PROFILE"
. "$ROOT/loadtest/bench/lib.sh"
DRIVER="$ROOT/e2e/browser/latency.mjs"
[ -d "$ROOT/e2e/browser/node_modules/playwright-core" ] || npm ci --prefix "$ROOT/e2e/browser"

# --- the source ---------------------------------------------------------
# 854x480@30 test pattern and a tone. Each frame's pts is first set to the
# wall clock (RTCTIME, in ms), the strip is drawn from it (geq's T), then
# the pts go back to a plain 30 fps count. The 2 s GOP (no scene cuts, no
# B-frames) makes nginx-rtmp's fragments 2 s, like our segments.
STRIP="if(eq(floor(X*26/W),0),255,if(eq(floor(X*26/W),25),0,255*bitand(floor(mod(T*1000,16777216)/pow(2,24-floor(X*26/W))),1)))"
publish() {  # $1 = RTMP URL; runs for $2 seconds
  ffmpeg -hide_banner -loglevel error -re -f lavfi -i "testsrc2=size=854x480:rate=30" \
    -re -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$2" \
    -filter_complex "[0:v]settb=1/1000,setpts='RTCTIME/1000000/TB',split[a][b];[b]crop=iw:ih/15:0:0,geq=lum='$STRIP':cb=128:cr=128[s];[a][s]overlay=0:0,setpts='N/(30*TB)'[v]" \
    -map "[v]" -map 1:a -r 30 -c:v libx264 -preset veryfast -tune zerolatency -bf 0 -g 60 -keyint_min 60 \
    -sc_threshold 0 -pix_fmt yuv420p -b:v 2000k -maxrate 2000k -bufsize 1000k -c:a aac -b:a 128k -ar 48000 \
    -f flv "$1" > "$WORK/publish.log" 2>&1
}
PUBLISH_SECS=$((SECS + WARMUP + 25))

# --- our stack: Redis, router API, origin + agent, edge -------------------
# Two profiles alike but for parts: the same two rungs, 2 s segments.
cat > "$WORK/profiles.toml" <<TOML
[profiles.ll]
segment_duration = "2s"
part_target = "$PART_TARGET"
audio_bitrate_kbps = 128
rungs = [
  { name = "480p", height = 480, video_bitrate_kbps = 1200, fps = 30, preset = "veryfast" },
  { name = "360p", height = 360, video_bitrate_kbps = 700, fps = 30, preset = "veryfast" },
]

# Case d: the source repackaged with parts (no transcoding), so that on a
# two-core machine the load tester and the edge, not the encoders, get the
# cores the 1,000 viewers need.
[profiles.llpass]
segment_duration = "2s"
part_target = "$PART_TARGET"
passthrough = true

[profiles.plain]
segment_duration = "2s"
audio_bitrate_kbps = 128
rungs = [
  { name = "480p", height = 480, video_bitrate_kbps = 1200, fps = 30, preset = "veryfast" },
  { name = "360p", height = 360, video_bitrate_kbps = 700, fps = 30, preset = "veryfast" },
]
TOML
RPORT=$(free_port); APORT=$(free_port); RTMP=$(free_port); HTTP=$(free_port); AGENT=$(free_port); EDGE=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no > "$WORK/redis.log" 2>&1 & PIDS+=($!)
wait_for redis-cli -p "$RPORT" ping
export ROUTER_ADMIN_TOKEN=bench-admin-token-000000 ROUTER_AGENT_TOKEN=bench-agent-token-000000
"$BIN/router-api" --listen "127.0.0.1:$APORT" --redis "redis://127.0.0.1:$RPORT" --log warn > "$WORK/router.log" 2>&1 & PIDS+=($!)
wait_for curl -fsS "http://127.0.0.1:$APORT/readyz"
"$BIN/origin" --origin-id bench --rtmp-listen "127.0.0.1:$RTMP" --http-listen "127.0.0.1:$HTTP" \
  --output-dir "$WORK/out" --router "http://127.0.0.1:$APORT" --profiles "$WORK/profiles.toml" \
  --log warn > "$WORK/origin.log" 2>&1 & PIDS+=($!)
wait_for curl -fsS "http://127.0.0.1:$HTTP/healthz"
"$BIN/discovery" --origin-id bench --output-dir "$WORK/out" --advertise "127.0.0.1:$HTTP" \
  --router "http://127.0.0.1:$APORT" --listen "127.0.0.1:$AGENT" --heartbeat 1s --log warn > "$WORK/agent.log" 2>&1 & PIDS+=($!)
wait_for curl -fsS "http://127.0.0.1:$AGENT/healthz"
"$BIN/edge" --listen "127.0.0.1:$EDGE" --router "http://127.0.0.1:$APORT" --cache-size 256MiB --log warn \
  > "$WORK/edge.log" 2>&1 & PIDS+=($!)
wait_for curl -fsS "http://127.0.0.1:$EDGE/healthz"
create() { curl -fsS -H "Authorization: Bearer $ROUTER_ADMIN_TOKEN" -H 'content-type: application/json' \
  -d "{\"name\":\"$1\",\"profile\":\"$2\"}" "http://127.0.0.1:$APORT/admin/streams" | jq -r .key; }

# --- nginx-rtmp, its HLS served by the same nginx ---------------------------
NRTMP=$(free_port); NHTTP=$(free_port)
mkdir -p "$WORK/nginx/hls"
cat > "$WORK/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
user root;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
rtmp {
  server {
    listen 127.0.0.1:$NRTMP;
    application live {
      live on;
      hls on;
      hls_path $WORK/nginx/hls;
      hls_fragment 2s;
      hls_playlist_length 12s;
    }
  }
}
http {
  access_log off;
  server {
    listen 127.0.0.1:$NHTTP;
    location /hls/ {
      alias $WORK/nginx/hls/;
      types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
      add_header Cache-Control no-cache;
    }
  }
}
CONF
nginx -c "$WORK/nginx/nginx.conf" & PIDS+=($!)
wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$NRTMP"

# --- cases ----------------------------------------------------------------
ROWS=()
# The worst encoder lag the origin reports now (0 when it runs no pipeline).
encoder_lag() { curl -fsS "http://127.0.0.1:$HTTP/metrics" 2>/dev/null | awk '/^origin_encoder_lag_seconds/ {if ($2 > m) m = $2} END {print m + 0}'; }
# measure NAME TARGET [HLS_CONFIG]: runs the driver, prints its summary, and
# adds a table row. With OURS=1 (our origin's cases) the origin's worst
# encoder lag over the case goes in the row: a case whose origin fell behind
# real time says so.
measure() {
  local name=$1 target=$2 config=${3:-} out="$WORK/driver-$RANDOM.log" sampler=
  echo 0 > "$out.lag"
  if [ "${OURS:-1}" = 1 ]; then
    ( w=0; while :; do w=$(awk -v a="$w" -v b="$(encoder_lag)" 'BEGIN {print (b > a) ? b : a}'); echo "$w" > "$out.lag"; sleep 2; done ) &
    sampler=$!; PIDS+=($sampler)
  fi
  timeout $((SECS + WARMUP + 60)) node "$DRIVER" "$target" $((SECS + WARMUP + 15)) "$WARMUP" ${config:+"$config"} > "$out" 2> "$out.err" || true
  [ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true
  local summary lag=-
  [ "${OURS:-1}" = 1 ] && lag="$(printf %.2f "$(cat "$out.lag")") s"
  summary=$(grep '^{"summary"' "$out" | tail -1)
  if [ -n "${LATENCY_OUT:-}" ]; then mkdir -p "$LATENCY_OUT"; cp "$out" "$LATENCY_OUT/${name%%.*}.log"; fi
  if [ -z "$summary" ]; then
    echo "$name: no summary; last lines:" >&2; tail -5 "$out" "$out.err" >&2
    ROWS+=("| $(date -u +%F) | $name | failed | | | | | | | | |")
    return
  fi
  echo "$name: $summary"
  ROWS+=("$(jq -r --arg d "$(date -u +%F)" --arg n "$name" --arg lag "$lag" '.summary as $s |
    def f: if . == null then "-" else (. * 10 | round / 10 | tostring) + " s" end;
    def fps: if $s.measuredSeconds > 0 then ($s.glassToGlass.n / $s.measuredSeconds * 10 | round / 10 | tostring) else "-" end;
    "| \($d) | \($n) | \($s.glassToGlass.p50 | f) | \($s.glassToGlass.p95 | f) | \($s.pdt.p50 | f) | \($s.hlsLatency.p50 | f) | \($s.stalls // "-") | \($s.restarts) | \(fps) | \($s.unreadableFrames) | \($lag) |"' <<<"$summary")")
}
PREVIOUS_PAGE='{"liveSyncDurationCount":3,"playlistLoadPolicy":{"default":{"maxTimeToFirstByteMs":5000,"maxLoadTimeMs":10000,"timeoutRetry":{"maxNumRetry":2,"retryDelayMs":500,"maxRetryDelayMs":2000},"errorRetry":{"maxNumRetry":3,"retryDelayMs":500,"maxRetryDelayMs":2000}}}}'
playable() { curl -fsSL -o /dev/null "$1" 2>/dev/null; }
# wait_playable URL: up to 30 s for a new stream's first segments.
wait_playable() { local end=$((SECONDS + 30)); until playable "$1"; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done; }

# Case d's viewers: the load tester's LL viewer (`--ll on`: parts, blocking
# reloads, preload hints) when this build has it; a build without it plays
# segments, and the script says so.
ll_viewers() {  # $1 = multivariant URL, $2 = seconds; leaves the PID in LOAD_PID
  local ll_flag=()
  VIEWER_KIND="segment viewers (this load tester has no --ll)"
  if "$BIN/loadtest" --help 2>/dev/null | grep -q -- '--ll '; then ll_flag=(--ll on); VIEWER_KIND="LL viewers"; fi
  [ ${#ll_flag[@]} -gt 0 ] || echo "d: this load tester has no --ll; its viewers play segments" >&2
  "$BIN/loadtest" --url "$1" --viewers "$LL_VIEWERS" --ramp 10s --duration "$2s" "${ll_flag[@]}" \
    --report-dir "$WORK/loadtest-report" > "$WORK/loadtest.log" 2>&1 & LOAD_PID=$!; PIDS+=($LOAD_PID)
}

# a. LL through the edge, our page.
if [[ $CASES == *a* ]]; then
KEY=$(create ll ll)
publish "rtmp://127.0.0.1:$RTMP/live/$KEY" "$PUBLISH_SECS" & PUB=$!; PIDS+=($PUB)
wait_playable "http://127.0.0.1:$EDGE/ll/index.m3u8" || echo "not playable within 30 s: http://127.0.0.1:$EDGE/ll/index.m3u8" >&2
grep -q EXT-X-PART-INF "$WORK"/out/ll/*/480p/index.m3u8 || echo "a: warning: the ll profile's playlist has no parts" >&2
measure "a. LL-HLS, edge, our page" "http://127.0.0.1:$EDGE/watch/ll"
kill "$PUB" 2>/dev/null || true; wait "$PUB" 2>/dev/null || true
fi

# b and b'. Plain through the edge: our page, then hls.js's defaults.
if [[ $CASES == *b* ]]; then
KEY=$(create plain plain)
publish "rtmp://127.0.0.1:$RTMP/live/$KEY" $((PUBLISH_SECS * 3)) & PUB=$!; PIDS+=($PUB)
wait_playable "http://127.0.0.1:$EDGE/plain/index.m3u8" || echo "not playable within 30 s: http://127.0.0.1:$EDGE/plain/index.m3u8" >&2
measure "b. plain HLS, edge, our page" "http://127.0.0.1:$EDGE/watch/plain"
measure "b'. plain HLS, edge, hls.js defaults" "hlsjs:http://127.0.0.1:$EDGE/plain/index.m3u8"
measure "b''. plain HLS, edge, the page's settings before 2026-12-01" "hlsjs:http://127.0.0.1:$EDGE/plain/index.m3u8" "$PREVIOUS_PAGE"
kill "$PUB" 2>/dev/null || true; wait "$PUB" 2>/dev/null || true
fi

# c. nginx-rtmp, hls.js's defaults.
if [[ $CASES == *c* ]]; then
publish "rtmp://127.0.0.1:$NRTMP/live/nginx" "$PUBLISH_SECS" & PUB=$!; PIDS+=($PUB)
wait_playable "http://127.0.0.1:$NHTTP/hls/nginx.m3u8" || echo "not playable within 30 s: http://127.0.0.1:$NHTTP/hls/nginx.m3u8" >&2
OURS=0 measure "c. nginx-rtmp HLS, hls.js defaults" "hlsjs:http://127.0.0.1:$NHTTP/hls/nginx.m3u8"
kill "$PUB" 2>/dev/null || true; wait "$PUB" 2>/dev/null || true
fi

# d. (optional) LL with load-tester viewers on the same edge.
if [ "$LL_VIEWERS" -gt 0 ]; then
  KEY=$(create llload "${D_PROFILE:-llpass}")
  publish "rtmp://127.0.0.1:$RTMP/live/$KEY" "$PUBLISH_SECS" & PUB=$!; PIDS+=($PUB)
  wait_playable "http://127.0.0.1:$EDGE/llload/index.m3u8" || echo "not playable within 30 s: http://127.0.0.1:$EDGE/llload/index.m3u8" >&2
  ll_viewers "http://127.0.0.1:$EDGE/llload/index.m3u8" $((SECS + WARMUP + 15))
  measure "d. LL-HLS, edge, our page, $LL_VIEWERS load-tester $VIEWER_KIND" "http://127.0.0.1:$EDGE/watch/llload"
  wait "$LOAD_PID" 2>/dev/null || true
  echo "d: the load tester's summary:"; tail -20 "$WORK/loadtest.log" || true
  [ -z "${LATENCY_OUT:-}" ] || cp -r "$WORK/loadtest-report" "$LATENCY_OUT/d-loadtest-report" 2>/dev/null || true
  kill "$PUB" 2>/dev/null || true; wait "$PUB" 2>/dev/null || true
fi

echo
echo "| date | case | glass-to-glass p50 | p95 | PROGRAM-DATE-TIME p50 | hls.js latency p50 | stalls | restarts | frames read/s (of 30) | unreadable frames | origin encoder lag (worst) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
