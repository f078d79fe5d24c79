#!/usr/bin/env bash
# Brings up the whole Dionysia stack on this machine (README's first command),
# prints where to publish and where to watch, and stops everything it started
# on Ctrl-C.
#
# Topology (the same as docker-compose.yml):
#   Redis                          127.0.0.1:6379
#   router API                     127.0.0.1:8090
#   origin-a  RTMP 127.0.0.1:1936, HTTP 127.0.0.1:8082, its discovery agent 127.0.0.1:9102
#   origin-b  RTMP 127.0.0.1:1937, HTTP 127.0.0.1:8083, its discovery agent 127.0.0.1:9103
#   RTMP load balancer (HAProxy)   $LISTEN_HOST:1935 (metrics 127.0.0.1:8405)
#   edge (viewers, player page)    $LISTEN_HOST:8081 (HTTP), $LISTEN_HOST:8443 (HTTPS, HTTP/2)
# State, logs and the generated tokens live in .stack/ (tokens are kept so a
# restart keeps working keys), and so does the edge's self-signed TLS pair
# (.stack/tls/edge.crt and edge.key, made once; put your own pair there, and
# the running edge loads it on its own).
#
# Usage: scripts/stack.sh [--no-demo]
#   --no-demo   do not publish the demo test pattern (publish from OBS instead)
# Environment: LISTEN_HOST=0.0.0.0 lets other machines publish and watch
# (default 127.0.0.1); STREAM names the demo stream (default demo).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DEMO=1
for arg in "$@"; do
  case "$arg" in
    --no-demo) DEMO=0 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

STATE="$ROOT/.stack"
LOGS="$STATE/logs"
mkdir -p "$LOGS"
LISTEN_HOST=${LISTEN_HOST:-127.0.0.1}
STREAM=${STREAM:-demo}
ROUTER=127.0.0.1:8090
# What to print as the address of this machine.
SHOW_HOST=$LISTEN_HOST
if [ "$SHOW_HOST" = 0.0.0.0 ]; then SHOW_HOST=$(hostname -I 2>/dev/null | awk '{print $1}'); fi
SHOW_HOST=${SHOW_HOST:-127.0.0.1}

bash scripts/setup.sh
echo "building (release)..."
cargo build --release --quiet --workspace --bins
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
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do
    pkill -TERM -P "${PIDS[$i]}" 2>/dev/null || true # children of the demo publisher's loop
    kill "${PIDS[$i]}" 2>/dev/null || true
  done
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
    if [ "$SECONDS" -ge "$end" ]; then echo "$name did not become ready; see $LOGS" >&2; exit 1; fi
    sleep 0.2
  done
}

redis-server --port 6379 --bind 127.0.0.1 --dir "$STATE" --save 60 1 > "$LOGS/redis.log" 2>&1 &
PIDS+=($!)
wait_for redis 10 redis-cli -p 6379 ping

"$BIN/router-api" --listen "$ROUTER" --redis redis://127.0.0.1:6379 \
  --public-edge-url "http://$SHOW_HOST:8081" --public-rtmp-url "rtmp://$SHOW_HOST:1935/live" \
  > "$LOGS/router-api.log" 2>&1 &
PIDS+=($!)
wait_for router-api 10 curl -fsS "http://$ROUTER/readyz"

# start_origin ID RTMP_PORT HTTP_PORT AGENT_PORT: an origin and, beside its
# output folder, its discovery agent.
start_origin() {
  local id=$1 rtmp=$2 http=$3 agent=$4
  mkdir -p "$STATE/$id/hls"
  "$BIN/origin" --origin-id "$id" --rtmp-listen "127.0.0.1:$rtmp" --http-listen "127.0.0.1:$http" \
    --output-dir "$STATE/$id/hls" --router "http://$ROUTER" --rtmp-max-per-address 0 > "$LOGS/$id.log" 2>&1 &
  PIDS+=($!)
  wait_for "$id" 15 curl -fsS "http://127.0.0.1:$http/healthz"
  "$BIN/discovery" --origin-id "$id" --output-dir "$STATE/$id/hls" --advertise "127.0.0.1:$http" \
    --router "http://$ROUTER" --listen "127.0.0.1:$agent" > "$LOGS/discovery-$id.log" 2>&1 &
  PIDS+=($!)
  wait_for "discovery-$id" 10 curl -fsS "http://127.0.0.1:$agent/healthz"
}
start_origin origin-a 1936 8082 9102
start_origin origin-b 1937 8083 9103

# The RTMP load balancer, with the same configuration file as docker-compose.yml.
RTMP_LB_LISTEN="$LISTEN_HOST:1935" RTMP_LB_METRICS=127.0.0.1:8405 \
  ORIGIN_A=127.0.0.1:1936 ORIGIN_B=127.0.0.1:1937 \
  haproxy -db -f deploy/haproxy.cfg > "$LOGS/rtmp-lb.log" 2>&1 &
PIDS+=($!)
wait_for rtmp-lb 10 curl -fsS http://127.0.0.1:8405/healthz

# A self-signed pair for the edge's HTTPS listener, made once: for local use
# only (a browser asks to accept it once; curl takes --cacert). The edge
# reloads these files when they change, so a real pair can replace them.
TLS="$STATE/tls"
if [ ! -s "$TLS/edge.crt" ] || [ ! -s "$TLS/edge.key" ]; then
  mkdir -p "$TLS"
  SAN="DNS:localhost,IP:127.0.0.1"
  if [[ "$SHOW_HOST" =~ ^[0-9.]+$ ]] && [ "$SHOW_HOST" != 127.0.0.1 ]; then SAN="$SAN,IP:$SHOW_HOST"; fi
  (umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
    -subj "/CN=Dionysia local edge" -addext "subjectAltName=$SAN" \
    -keyout "$TLS/edge.key" -out "$TLS/edge.crt" 2>"$LOGS/openssl.log")
fi

# The edge viewers watch through: plain HTTP and HTTPS (HTTP/2 or HTTP/1.1).
"$BIN/edge" --listen "$LISTEN_HOST:8081" --tls-listen "$LISTEN_HOST:8443" \
  --tls-cert "$TLS/edge.crt" --tls-key "$TLS/edge.key" --router "http://$ROUTER" > "$LOGS/edge.log" 2>&1 &
PIDS+=($!)
wait_for edge 15 curl -fsS http://127.0.0.1:8081/healthz
wait_for edge-https 15 curl -fsS --cacert "$TLS/edge.crt" https://127.0.0.1:8443/healthz

# The demo stream: created once; its key is rotated on each start so it can be printed.
auth=(-H "Authorization: Bearer $ROUTER_ADMIN_TOKEN" -H "content-type: application/json")
if curl -fsS "${auth[@]}" "http://$ROUTER/admin/streams/$STREAM" >/dev/null 2>&1; then
  KEY=$(curl -fsS "${auth[@]}" -X POST "http://$ROUTER/admin/streams/$STREAM/key" | jq -r .key)
else
  KEY=$(curl -fsS "${auth[@]}" -d "{\"name\":\"$STREAM\"}" "http://$ROUTER/admin/streams" | jq -r .key)
fi

if [ "$DEMO" = 1 ]; then
  # A test pattern with a clock and a tone, published to the load balancer for
  # as long as the stack runs; like OBS, it reconnects when its connection
  # drops (e.g. its origin was stopped), a second later.
  (
    while true; do
      ffmpeg -hide_banner -loglevel error -re -f lavfi -i "testsrc2=size=1280x720:rate=30" \
        -f lavfi -i "sine=frequency=440:sample_rate=48000" \
        -c:v libx264 -preset veryfast -tune zerolatency -g 60 -pix_fmt yuv420p -b:v 3000k \
        -c:a aac -b:a 128k -f flv "rtmp://127.0.0.1:1935/live/$KEY" || true
      echo "demo publisher: connection ended; reconnecting" >&2
      sleep 1
    done
  ) > "$LOGS/demo-publisher.log" 2>&1 &
  PIDS+=($!)
fi

cat <<TXT

Dionysia is up (logs in $LOGS):
  Redis               127.0.0.1:6379
  router API          http://$ROUTER   (OpenAPI: http://$ROUTER/openapi.json)
  origin-a            rtmp 127.0.0.1:1936, http://127.0.0.1:8082, agent http://127.0.0.1:9102/metrics
  origin-b            rtmp 127.0.0.1:1937, http://127.0.0.1:8083, agent http://127.0.0.1:9103/metrics
  RTMP load balancer  rtmp://$SHOW_HOST:1935 (HAProxy; metrics http://127.0.0.1:8405/metrics)
  edge                http://$SHOW_HOST:8081, https://$SHOW_HOST:8443 (HTTP/2)   (metrics: /metrics)
                      self-signed certificate: $TLS/edge.crt
  tokens              $STATE/tokens.env

Stream "$STREAM"
  publish from OBS (Settings > Stream, Service: Custom):
    Server      rtmp://$SHOW_HOST:1935/live
    Stream Key  $KEY
  or: ffmpeg -re -i INPUT -c:v libx264 -c:a aac -f flv rtmp://$SHOW_HOST:1935/live/$KEY
  watch in a browser:   http://$SHOW_HOST:8081/watch/$STREAM
                    or  https://$SHOW_HOST:8443/watch/$STREAM   (accept the self-signed certificate once)
  any HLS player:       http://$SHOW_HOST:8081/$STREAM/index.m3u8
                    or  https://$SHOW_HOST:8443/$STREAM/index.m3u8
  every live stream:    http://$SHOW_HOST:8081/watch/
  $( [ "$DEMO" = 1 ] && echo "the demo publisher is sending a test pattern now" || echo "no demo publisher (--no-demo): publish from OBS" )

Manage streams in the dashboard: http://$ROUTER/dashboard (sign in with ROUTER_ADMIN_TOKEN from the tokens file)
or with the router API, e.g.:
  curl -H "Authorization: Bearer \$ROUTER_ADMIN_TOKEN" http://$ROUTER/admin/streams

Ctrl-C stops everything.
TXT
# Run until Ctrl-C. A process that exits is reported and the rest keep
# running: stopping one origin is how to watch the failover.
for _ in "${PIDS[@]}"; do
  wait -n "${PIDS[@]}" 2>/dev/null || true
  echo "a process exited; see $LOGS (the rest keep running; Ctrl-C stops them)" >&2
done
