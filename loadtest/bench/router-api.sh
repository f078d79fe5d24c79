#!/usr/bin/env bash
# Benchmark: route look-ups per second against the router API, beside
# redis-benchmark GET on the same Redis, in the same run.
#
#   loadtest/bench/router-api.sh [CONNECTIONS] [SECONDS] [RUNS]
#
# Starts its own redis-server and a release router-api on free loopback
# ports, reports one live stream, then runs wrk (keep-alive) on
# GET /streams/{name} and redis-benchmark -t get with the same number of
# connections, RUNS times each, and prints the medians and their ratio as a
# Markdown table row for docs/benchmarks.md. Everything it starts is stopped
# by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CONNS=${1:-64}
SECS=${2:-10}
RUNS=${3:-3}

bash scripts/setup.sh
cargo build --release --quiet --workspace --bins
BIN=target/release/router-api
. "$ROOT/loadtest/bench/lib.sh"

RPORT=$(free_port); APORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no > "$WORK/redis.log" 2>&1 & PIDS+=($!)
wait_for redis-cli -p "$RPORT" ping
export ROUTER_ADMIN_TOKEN=bench-admin-token-000000 ROUTER_AGENT_TOKEN=bench-agent-token-000000
"$BIN" --listen "127.0.0.1:$APORT" --redis "redis://127.0.0.1:$RPORT" --report-ttl 10m --log warn > "$WORK/router.log" 2>&1 & PIDS+=($!)
wait_for curl -fsS "http://127.0.0.1:$APORT/readyz"

curl -fsS -X PUT -H "Authorization: Bearer $ROUTER_AGENT_TOKEN" -H 'content-type: application/json' \
  -d '{"host":"127.0.0.1:8080","manifest":"bench/index.m3u8","session":"s1","renditions":[{"name":"720p","bandwidth":3000000,"resolution":"1280x720"},{"name":"480p","bandwidth":1500000,"resolution":"854x480"}]}' \
  "http://127.0.0.1:$APORT/origins/origin-a/streams/bench" >/dev/null
curl -fsS "http://127.0.0.1:$APORT/streams/bench" > "$WORK/route.json"

THREADS=2

wrk_rps=(); wrk_p99=()
for _ in $(seq "$RUNS"); do
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$APORT/streams/bench")
  wrk_rps+=("$(echo "$out" | awk '/Requests\/sec/ {print $2}')")
  wrk_p99+=("$(echo "$out" | awk '$1=="99%" {print $2}')")
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  [ -z "$non2xx" ] || { echo "wrk saw non-2xx answers: $non2xx" >&2; exit 1; }
done
redis_rps=()
for _ in $(seq "$RUNS"); do
  # Sized to run about as long as one wrk run at ~60k req/s.
  n=$((SECS * 60000))
  out=$(redis-benchmark -p "$RPORT" -c "$CONNS" -n "$n" -t get -q 2>/dev/null | tr '\r' '\n' | grep -E '^GET:' | tail -1)
  redis_rps+=("$(echo "$out" | awk '{print $2}')")
done

API=$(printf '%s\n' "${wrk_rps[@]}" | median)
P99=$(printf '%s\n' "${wrk_p99[@]}" | sort -V | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
RED=$(printf '%s\n' "${redis_rps[@]}" | median)
RATIO=$(awk -v a="$API" -v r="$RED" 'BEGIN {printf "%.2f", a / r}')
echo "route body: $(wc -c < "$WORK/route.json") bytes"
echo "router-api GET /streams/{name}: ${wrk_rps[*]} req/s (median $API, p99 $P99)"
echo "redis-benchmark GET:            ${redis_rps[*]} req/s (median $RED)"
echo
echo "| $(date -u +%F) | $CONNS conns, ${SECS}s x $RUNS | $API | $P99 | $RED | $RATIO |"
