#!/usr/bin/env bash
# Edge benchmark: the same wrk runs (keep-alive, 64 connections, 10 s, median
# of RUNS rounds) against our edge, nginx proxy_cache and Varnish, each in
# front of the same origin, in one run: a cached 1 MB segment and a cached
# 2 KB playlist. Each round runs the three back to back; ratios are medians
# of the rounds' ratios. Besides requests/s and p99, the server's CPU time
# per request (all its processes and threads), which the drift of a shared
# machine moves less than throughput.
#
# Then the same objects over HTTPS with HTTP/2 (h2load, CONNECTIONS
# connections, H2_STREAMS requests in flight on each, default 1 like wrk's
# keep-alive): our edge's --tls-listen beside nginx's `listen ... ssl http2`,
# both with the same self-signed pair, rounds back to back as above. p99 is
# read from h2load's per-request log. H2=0 leaves this part out.
#
# TOKEN=1: the stream's playback policy is `token`, and the edge is asked
# for every object with a playback token (`/t/{token}/...`), checked on
# every request; nginx and Varnish serve the plain paths as before. Compare
# its edge/nginx and edge/Varnish ratios with a run without it: the cost of
# token checks on cached objects (rows are marked "token").
#
#   [EDGE_ARGS="--send-buffer auto"] [H2=0] [H2_STREAMS=1] [TOKEN=1] loadtest/bench/edge.sh [CONNECTIONS] [SECONDS] [RUNS]
#   PROFILE=debug loadtest/bench/edge.sh 8 2 1   # a quick check that the script works (debug build: no figures)
#
# The origin is our release origin serving a prepared output folder (one 1 MB
# segment, one 2 KB media playlist). Everything runs on loopback with free
# ports and is stopped by PID on exit. Prints a Markdown row per object for
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CONNS=${1:-64}
SECS=${2:-10}
RUNS=${3:-5}
# Extra edge flags, to compare settings: EDGE_ARGS="--send-buffer auto".
EDGE_ARGS=${EDGE_ARGS:-}
H2=${H2:-1}
H2_STREAMS=${H2_STREAMS:-1}
TOKEN=${TOKEN:-0}
# The playback key of the router and the edge (TOKEN=1).
PKEY=bench:bench-playback-secret-0123456789abcdef
PROFILE=${PROFILE:-release}

bash scripts/setup.sh
if [ "$PROFILE" = debug ]; then
  cargo build --quiet --workspace --bins
  BIN="$ROOT/target/debug"
else
  cargo build --release --quiet --workspace --bins
  BIN="$ROOT/target/release"
fi
. "$ROOT/loadtest/bench/lib.sh"

# --- the origin and its content ----------------------------------------------
OUT="$WORK/out"; SESSION=s1
mkdir -p "$OUT/bench/$SESSION/720p"
head -c 1048576 /dev/urandom > "$OUT/bench/$SESSION/720p/1.m4s"
{
  printf '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-MAP:URI="init.mp4"\n'
  for i in $(seq 1 33); do printf '#EXT-X-PROGRAM-DATE-TIME:2026-11-21T00:00:%02d.000Z\n#EXTINF:2.000,\n%d.m4s\n' $((i % 60)) "$i"; done
} > "$OUT/bench/$SESSION/720p/index.m3u8"
echo "playlist: $(wc -c < "$OUT/bench/$SESSION/720p/index.m3u8") bytes; segment: 1048576 bytes"
SEG=/bench/$SESSION/720p/1.m4s
PL=/bench/$SESSION/720p/index.m3u8

RPORT=$(free_port); APORT=$(free_port); OHTTP=$(free_port); ORTMP=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no > "$WORK/redis.log" 2>&1 & PIDS+=($!)
wait_for redis-cli -p "$RPORT" ping
export ROUTER_ADMIN_TOKEN=bench-admin-token-000000 ROUTER_AGENT_TOKEN=bench-agent-token-000000
"$BIN/router-api" --listen "127.0.0.1:$APORT" --redis "redis://127.0.0.1:$RPORT" --report-ttl 10m --log warn \
  --playback-key "$PKEY" > "$WORK/router.log" 2>&1 & PIDS+=($!)
wait_for curl -fsS "http://127.0.0.1:$APORT/readyz"
"$BIN/origin" --origin-id bench --rtmp-listen "127.0.0.1:$ORTMP" --http-listen "127.0.0.1:$OHTTP" \
  --output-dir "$OUT" --router "http://127.0.0.1:$APORT" --retain-ended 1h --log warn > "$WORK/origin.log" 2>&1 & PIDS+=($!)
wait_for curl -fsS "http://127.0.0.1:$OHTTP$SEG"
curl -fsS -X PUT -H "Authorization: Bearer $ROUTER_AGENT_TOKEN" -H 'content-type: application/json' \
  -d "{\"host\":\"127.0.0.1:$OHTTP\",\"manifest\":\"bench/index.m3u8\",\"session\":\"$SESSION\",\"renditions\":[{\"name\":\"720p\"}]}" \
  "http://127.0.0.1:$APORT/origins/bench/streams/bench" > /dev/null
# TOKEN=1: a token stream, and a token for the edge's paths.
EPFX=""; MARK=""
if [ "$TOKEN" = 1 ]; then
  admin() { curl -fsS -H "Authorization: Bearer $ROUTER_ADMIN_TOKEN" -H 'content-type: application/json' "$@"; }
  admin -d '{"name":"bench"}' "http://127.0.0.1:$APORT/admin/streams" > /dev/null
  admin -X PATCH -d '{"playback":"token"}' "http://127.0.0.1:$APORT/admin/streams/bench" > /dev/null
  PTOKEN=$(admin -d '{"ttl_s":86400}' "http://127.0.0.1:$APORT/admin/streams/bench/playback-tokens" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
  [ -n "$PTOKEN" ] || { echo "no playback token minted" >&2; exit 1; }
  EPFX="/t/$PTOKEN"; MARK=" (token)"
fi

# --- the three caches -------------------------------------------------------------
EPORT=$(free_port); NPORT=$(free_port); VPORT=$(free_port)
# HTTPS ports (edge; nginx, a second instance) and their one self-signed pair.
ETPORT=$(free_port); N2PORT=$(free_port); NTPORT=$(free_port)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2> "$WORK/openssl.log"
# Playlists stay fresh longer than a run so all three serve them from cache.
"$BIN/edge" --listen "127.0.0.1:$EPORT" --router "http://127.0.0.1:$APORT" --cache-size 256MiB \
  --tls-listen "127.0.0.1:$ETPORT" --tls-cert "$WORK/tls.crt" --tls-key "$WORK/tls.key" \
  --playlist-ttl 1h --threads 2 --log warn --playback-key "$PKEY" $EDGE_ARGS > "$WORK/edge.log" 2>&1 & PIDS+=($!)
wait_for curl -fsS "http://127.0.0.1:$EPORT/healthz"

# Segments and playlists alike stay fresh for the whole run.
start_nginx_cache "$NPORT" "$OHTTP" "proxy_ignore_headers Cache-Control Expires; proxy_cache_valid 200 1h;"
wait_for curl -fsS "http://127.0.0.1:$NPORT$SEG"
# nginx for the HTTP/2 runs: the same cache, plus `listen ... ssl http2`, and
# no cap on requests per connection (nginx closes an HTTP/2 connection after
# keepalive_requests, 1000 by default, and h2load does not reconnect; the edge
# has no such cap). A second instance, so that the HTTP/1.1 figures above keep
# nginx's defaults.
start_nginx_cache "$N2PORT" "$OHTTP" "proxy_ignore_headers Cache-Control Expires; proxy_cache_valid 200 1h;" \
  "listen 127.0.0.1:$NTPORT ssl http2; ssl_certificate $WORK/tls.crt; ssl_certificate_key $WORK/tls.key; keepalive_requests 100000000;"
wait_for curl -fsS "http://127.0.0.1:$N2PORT$SEG"

start_varnish "$VPORT" "$OHTTP" "set beresp.ttl = 1h;"
wait_for curl -fsS "http://127.0.0.1:$VPORT$SEG"

# Warm every cache and check each answers from it.
for port in $NPORT $VPORT; do curl -fsS -o /dev/null "http://127.0.0.1:$port$SEG"; curl -fsS -o /dev/null "http://127.0.0.1:$port$PL"; done
# The edge learns the policy with the route (a second or so): warm it once
# it refuses a path without the token.
if [ "$TOKEN" = 1 ]; then
  wait_for sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' 'http://127.0.0.1:$EPORT$SEG')\" = 403 ]"
fi
curl -fsS -o /dev/null "http://127.0.0.1:$EPORT$EPFX$SEG"; curl -fsS -o /dev/null "http://127.0.0.1:$EPORT$EPFX$PL"
curl -fsS -D - -o /dev/null "http://127.0.0.1:$EPORT$EPFX$SEG" | grep -qi "x-cache-status: HIT" || { echo "edge did not cache the segment" >&2; exit 1; }

to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f\n", v}'; }
# One wrk run: prints "req/s p99-ms server-CPU-us-per-request".
run_once() {  # $1 = port, $2 = path, $3.. = the server's PIDs
  local port=$1 path=$2; shift 2
  local before out after
  before=$(cpu_of "$@")
  out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$port$path")
  after=$(cpu_of "$@")
  if echo "$out" | grep -q "Non-2xx"; then echo "non-2xx answers from port $port" >&2; exit 1; fi
  local reqs rps p99
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}' | to_ms)
  echo "$rps $p99 $(awk -v a="$before" -v b="$after" -v n="$reqs" 'BEGIN {printf "%.1f", (b - a) / n * 1e6}')"
}
# Every process of a server: those whose command line names it, and their children.
pids_of() { { for p in $(pgrep -f -- "$1"); do echo "$p"; pgrep -P "$p" || true; done; } | sort -u; }
EDGE_PIDS=$(pids_of "--listen 127.0.0.1:$EPORT"); NGINX_PIDS=$(pids_of "nginx-$NPORT/"); VARNISH_PIDS=$(pids_of "varnish-$VPORT")
# The machine's speed drifts (a shared VM): each round runs the three
# servers back to back, and the medians are taken over rounds.
for obj in "1 MB segment:$SEG" "2 KB playlist:$PL"; do
  name=${obj%%:*}; path=${obj#*:}
  : > "$WORK/rounds"
  for round in $(seq "$RUNS"); do
    e=$(run_once "$EPORT" "$EPFX$path" $EDGE_PIDS)
    n=$(run_once "$NPORT" "$path" $NGINX_PIDS)
    v=$(run_once "$VPORT" "$path" $VARNISH_PIDS)
    echo "$e $n $v" >> "$WORK/rounds"
    echo "  $name round $round: edge $e | nginx $n | varnish $v  (req/s p99-ms cpu-us/req)"
  done
  col() { awk -v c="$1" '{print $c}' "$WORK/rounds" | median; }
  e_rps=$(col 1); e_p99=$(col 2); e_cpu=$(col 3)
  n_rps=$(col 4); n_p99=$(col 5); n_cpu=$(col 6)
  v_rps=$(col 7); v_p99=$(col 8); v_cpu=$(col 9)
  # Ratios: the median over rounds of each round's ratio.
  rn=$(awk '{printf "%.3f\n", $1 / $4}' "$WORK/rounds" | median); rv=$(awk '{printf "%.3f\n", $1 / $7}' "$WORK/rounds" | median)
  wins=$(awk '$1 > $4 && $1 > $7 {w++} END {print w + 0}' "$WORK/rounds")
  echo "$name: edge $e_rps req/s (p99 ${e_p99} ms, ${e_cpu} us CPU/req), nginx $n_rps (p99 ${n_p99} ms, ${n_cpu} us), varnish $v_rps (p99 ${v_p99} ms, ${v_cpu} us); edge led both in $wins of $RUNS rounds"
  echo "| $(date -u +%F) | $name$MARK | $e_rps | $e_p99 | $e_cpu | $n_rps | $n_p99 | $n_cpu | $v_rps | $v_p99 | $v_cpu | $(printf %.2f "$rn") | $(printf %.2f "$rv") | $wins/$RUNS |"
done

[ "$H2" = 1 ] || exit 0
NGINX2_PIDS=$(pids_of "nginx-$N2PORT/")
# --- over HTTPS with HTTP/2: edge and nginx --------------------------------------
for path in "$SEG" "$PL"; do
  curl -fsS --http2 --cacert "$WORK/tls.crt" -o /dev/null "https://127.0.0.1:$ETPORT$EPFX$path"
  curl -fsS --http2 --cacert "$WORK/tls.crt" -o /dev/null "https://127.0.0.1:$NTPORT$path"
done
curl -fsS --http2 --cacert "$WORK/tls.crt" -D - -o /dev/null "https://127.0.0.1:$ETPORT$EPFX$SEG" | grep -qi "x-cache-status: HIT" \
  || { echo "edge did not answer the segment from its cache over h2" >&2; exit 1; }
# One h2load run: prints "req/s p99-ms server-CPU-us-per-request".
run_h2() {  # $1 = port, $2 = path, $3.. = the server's PIDs
  local port=$1 path=$2; shift 2
  local before out after log=$WORK/h2load.log
  before=$(cpu_of "$@")
  out=$(h2load -t2 -c"$CONNS" -m"$H2_STREAMS" -D"$SECS" --log-file="$log" "https://127.0.0.1:$port$path")
  after=$(cpu_of "$@")
  echo "$out" | grep -q "Application protocol: h2" || { echo "no h2 with port $port" >&2; echo "$out" >&2; exit 1; }
  local done bad rps p99
  done=$(echo "$out" | awk '/^requests:/ {print $6}')
  # Failed, errored and timed-out requests, and answers other than 2xx.
  bad=$(echo "$out" | awk '/^requests:/ {b += $10 + $12 + $14} /^status codes:/ {b += $5 + $7 + $9} END {print b + 0}')
  [ "$done" -gt 0 ] && [ "$bad" = 0 ] || { echo "failed or non-2xx answers from port $port: $out" >&2; exit 1; }
  rps=$(echo "$out" | awk '/^finished in/ {print $4}')
  p99=$(awk -F'\t' '{print $3}' "$log" | sort -n | awk '{a[NR]=$1} END {i = int(NR * 0.99); if (i < 1) i = 1; printf "%.2f", a[i] / 1000}')
  echo "$rps $p99 $(awk -v a="$before" -v b="$after" -v n="$done" 'BEGIN {printf "%.1f", (b - a) / n * 1e6}')"
}
for obj in "1 MB segment:$SEG" "2 KB playlist:$PL"; do
  name=${obj%%:*}; path=${obj#*:}
  : > "$WORK/rounds"
  for round in $(seq "$RUNS"); do
    e=$(run_h2 "$ETPORT" "$EPFX$path" $EDGE_PIDS)
    n=$(run_h2 "$NTPORT" "$path" $NGINX2_PIDS)
    echo "$e $n" >> "$WORK/rounds"
    echo "  $name over h2, round $round: edge $e | nginx $n  (req/s p99-ms cpu-us/req)"
  done
  col() { awk -v c="$1" '{print $c}' "$WORK/rounds" | median; }
  e_rps=$(col 1); e_p99=$(col 2); e_cpu=$(col 3)
  n_rps=$(col 4); n_p99=$(col 5); n_cpu=$(col 6)
  rn=$(awk '{printf "%.3f\n", $1 / $4}' "$WORK/rounds" | median)
  wins=$(awk '$1 > $4 {w++} END {print w + 0}' "$WORK/rounds")
  echo "$name over h2: edge $e_rps req/s (p99 ${e_p99} ms, ${e_cpu} us CPU/req), nginx $n_rps (p99 ${n_p99} ms, ${n_cpu} us); edge led in $wins of $RUNS rounds"
  echo "| $(date -u +%F) | $name, h2$MARK | $e_rps | $e_p99 | $e_cpu | $n_rps | $n_p99 | $n_cpu | $(printf %.2f "$rn") | $wins/$RUNS |"
done
