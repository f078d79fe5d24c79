#!/usr/bin/env bash
# Brings up what exists of the Dionysia stack on this machine (README's first
# command), prints where to publish and where to watch, and stops everything it
# started on Ctrl-C.
#
# Ports (loopback): Redis 6379, router API 8090, origin RTMP 1935 and HTTP
# 8080, discovery agent 9102, edge 8081. State, logs and the generated
# tokens live in .stack/ (tokens are kept so a restart keeps working keys).
#
# Usage: scripts/stack.sh [--no-demo]
#   --no-demo   do not publish the demo test pattern (publish from OBS instead)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DEMO=1
for arg in "$@"; do
  case "$arg" in
    --no-demo) DEMO=0 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

STATE="$ROOT/.stack"
mkdir -p "$STATE/logs"
REDIS_PORT=${REDIS_PORT:-6379}
ROUTER_ADDR=${ROUTER_ADDR:-127.0.0.1:8090}
STREAM=${STREAM:-demo}

bash scripts/setup.sh
echo "building (release)..."
cargo build --release --quiet --bin router-api --bin discovery --bin origin --bin edge
BIN="$ROOT/target/release"

if [ ! -f "$STATE/tokens.env" ]; then
  umask 077
  {
    echo "ROUTER_ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "ROUTER_AGENT_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  } > "$STATE/tokens.env"
fi
set -a; . "$STATE/tokens.env"; set +a

PIDS=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do kill "${PIDS[$i]}" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "stopped."
  exit 0
}
trap cleanup INT TERM EXIT

# wait_for NAME DEADLINE_SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local name=$1 secs=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$end" ]; then echo "$name did not become ready; see $STATE/logs" >&2; exit 1; fi
    sleep 0.2
  done
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$STATE" --save 60 1 \
  > "$STATE/logs/redis.log" 2>&1 &
PIDS+=($!)
wait_for redis 10 redis-cli -p "$REDIS_PORT" ping

"$BIN/router-api" --listen "$ROUTER_ADDR" --redis "redis://127.0.0.1:$REDIS_PORT" \
  > "$STATE/logs/router-api.log" 2>&1 &
PIDS+=($!)
wait_for router-api 10 curl -fsS "http://$ROUTER_ADDR/readyz"

# Origin A and, beside its output folder, its discovery agent.
mkdir -p "$STATE/origin-a/hls"
"$BIN/origin" --origin-id origin-a --rtmp-listen 127.0.0.1:1935 --http-listen 127.0.0.1:8080 \
  --output-dir "$STATE/origin-a/hls" --router "http://$ROUTER_ADDR" > "$STATE/logs/origin-a.log" 2>&1 &
PIDS+=($!)
wait_for origin 15 curl -fsS http://127.0.0.1:8080/healthz
"$BIN/discovery" --origin-id origin-a --output-dir "$STATE/origin-a/hls" --advertise 127.0.0.1:8080 \
  --router "http://$ROUTER_ADDR" --listen 127.0.0.1:9102 > "$STATE/logs/discovery-a.log" 2>&1 &
PIDS+=($!)
wait_for discovery 10 curl -fsS http://127.0.0.1:9102/healthz

# The edge viewers watch through.
"$BIN/edge" --listen 127.0.0.1:8081 --router "http://$ROUTER_ADDR" > "$STATE/logs/edge.log" 2>&1 &
PIDS+=($!)
wait_for edge 15 curl -fsS http://127.0.0.1:8081/healthz

# The demo stream: created once; its key is rotated on each start so it can be printed.
auth=(-H "Authorization: Bearer $ROUTER_ADMIN_TOKEN" -H "content-type: application/json")
if curl -fsS "${auth[@]}" "http://$ROUTER_ADDR/admin/streams/$STREAM" >/dev/null 2>&1; then
  KEY=$(curl -fsS "${auth[@]}" -X POST "http://$ROUTER_ADDR/admin/streams/$STREAM/key" | jq -r .key)
else
  KEY=$(curl -fsS "${auth[@]}" -d "{\"name\":\"$STREAM\"}" "http://$ROUTER_ADDR/admin/streams" | jq -r .key)
fi

if [ "$DEMO" = 1 ]; then
  # A test pattern with a clock and a tone, looped for as long as the stack runs.
  ffmpeg -hide_banner -loglevel error -re -f lavfi -i "testsrc2=size=1280x720:rate=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -c:v libx264 -preset veryfast -tune zerolatency -g 60 -pix_fmt yuv420p -b:v 3000k \
    -c:a aac -b:a 128k -f flv "rtmp://127.0.0.1:1935/live/$KEY" > "$STATE/logs/demo-publisher.log" 2>&1 &
  PIDS+=($!)
fi

cat <<TXT

Dionysia is up (logs in $STATE/logs):
  Redis        127.0.0.1:$REDIS_PORT
  router API   http://$ROUTER_ADDR   (OpenAPI: http://$ROUTER_ADDR/openapi.json)
  origin-a     rtmp://127.0.0.1:1935/live, http://127.0.0.1:8080 (output in $STATE/origin-a/hls)
  discovery    http://127.0.0.1:9102/metrics
  edge         http://127.0.0.1:8081   (metrics: /metrics)
  tokens       $STATE/tokens.env

Stream "$STREAM" (key $KEY)
  publish (OBS: server / stream key):  rtmp://127.0.0.1:1935/live  /  $KEY
  watch (any HLS player, e.g. ffplay or VLC): http://127.0.0.1:8081/$STREAM/index.m3u8
  $( [ "$DEMO" = 1 ] && echo "the demo publisher is sending a test pattern now" || echo "no demo publisher (--no-demo): publish from OBS" )

Manage streams with the router API, e.g.:
  curl -H "Authorization: Bearer \$ROUTER_ADMIN_TOKEN" http://$ROUTER_ADDR/admin/streams

Ctrl-C stops everything.
TXT
wait -n "${PIDS[@]}" || true
echo "a process exited; see $STATE/logs" >&2
