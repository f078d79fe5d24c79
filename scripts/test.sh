#!/usr/bin/env bash
# The whole test suite (README's second command).
#
# Installs whatever is missing (scripts/setup.sh), builds the workspace once
# (debug profile, one target/ shared by every test) and runs every test:
# unit tests, integration tests that start real redis-server, our real
# binaries, ffmpeg and friends on free loopback ports, and (as root, where
# `ip netns` works) the chaos suite on network-namespace hosts.
#
# The test binaries run as parallel jobs, TEST_JOBS at a time (default 3),
# longest first. Most of them wait on real time (a live stream, a player's
# pace, a fault's timer) and leave the CPU mostly idle: measured on two cores,
# 20-40 % busy with two running at once. In two lanes they took 20 min;
# the timing figures are in docs/benchmarks.md ("The test suite").
#
# Usage: scripts/test.sh [FILTER]   FILTER is passed to every test binary
# (a test name or part of one); the chaos suite runs only without it.
# Each job's output goes to target/test-logs/ and is printed when it ends;
# a summary of the failures closes the run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# The container topology must stay valid: compose file and HAProxy config.
ROUTER_ADMIN_TOKEN=compose-admin-token-0000 ROUTER_AGENT_TOKEN=compose-agent-token-0000 \
  docker-compose -f docker-compose.yml config -q
haproxy -c -q -f deploy/haproxy.cfg
echo "docker-compose.yml and deploy/haproxy.cfg are valid"

# Build every binary first: integration tests of one crate start the binaries
# of others (e.g. discovery's tests run the real router-api).
cargo build --workspace --all-targets --quiet

JOBS=${TEST_JOBS:-3}
# A job that runs longer than this is killed and fails (a hung test must not
# hold CI for its whole budget); the longest job takes about 5 minutes.
JOB_TIMEOUT=${TEST_JOB_TIMEOUT:-900}
LOGS=target/test-logs
rm -rf "$LOGS" && mkdir -p "$LOGS"

# The jobs: one per integration test name (`--workspace --test NAME` runs
# that file of every crate that has one: origin's and e2e's dvr.rs are one
# job), "unit" (every crate's unit tests), "doc" and "chaos". Every job
# builds with the whole workspace's features (`--workspace`): `-p CRATE`
# would resolve features for that crate alone and rebuild dependencies.
# Longest first, so that the last jobs to start are short ones: the order
# below is measured (target/test-logs/times), jobs not listed are short.
LONGEST=(
  chaos audio dvr long_run dash recording ll latency failover loadtest limits
  thumbnail lifecycle hostile origin compare
)
# Jobs that run alone, after the others, their tests one at a time: the LL
# load test's goal is no stall at all for viewers a second behind live, and
# beside other jobs' transcoding stacks the encoders fell behind for a moment
# and some viewers stalled (two runs in four; none alone).
ALONE=(ll)
all=(unit doc)
for t in $(ls ./*/tests/*.rs | xargs -n1 basename | sed 's/\.rs$//' | sort -u); do
  all+=("$t")
done
if [ $# = 0 ] && [ "$(id -u)" = 0 ] && ip netns list >/dev/null 2>&1; then
  all+=(chaos)
elif [ $# = 0 ]; then
  echo "SKIPPED: the chaos suite (scripts/chaos.sh) needs root and 'ip netns'"
fi
queue=()
for j in "${LONGEST[@]}"; do
  [[ " ${all[*]} " == *" $j "* ]] && [[ " ${ALONE[*]} " != *" $j "* ]] && queue+=("$j")
done
for j in "${all[@]}"; do
  [[ " ${LONGEST[*]} ${ALONE[*]} " == *" $j "* ]] || queue+=("$j")
done

# One job, its output to its log; its exit status is the job's.
run_job() {
  local job=$1
  shift
  case $job in
    unit) timeout "$JOB_TIMEOUT" cargo test --workspace --no-fail-fast --lib --bins "$@" ;;
    doc) timeout "$JOB_TIMEOUT" cargo test --workspace --no-fail-fast --doc "$@" ;;
    chaos) timeout "$JOB_TIMEOUT" bash scripts/chaos.sh --short --out target/chaos-report ;;
    *)
      [[ " ${ALONE[*]} " == *" $job "* ]] && export RUST_TEST_THREADS=1
      timeout "$JOB_TIMEOUT" cargo test --workspace --no-fail-fast --test "$job" "$@"
      ;;
  esac
}

declare -A pid_job=() started=()
failed=()
t0=$SECONDS
# Prints a finished job's log and records its outcome.
finish() {
  local pid=$1 rc=$2 job=${pid_job[$1]}
  local took=$((SECONDS - ${started[$job]}))
  local verdict=ok
  [ "$rc" = 0 ] || { verdict="FAILED (exit $rc)"; failed+=("$job"); }
  echo "==== $job: $verdict, ${took} s (at $((SECONDS - t0)) s)"
  cat "$LOGS/$job.log"
  echo "$job $took $rc" >> "$LOGS/times"
  unset "pid_job[$pid]"
}

for job in "${queue[@]}"; do
  while [ "${#pid_job[@]}" -ge "$JOBS" ]; do
    rc=0
    wait -n -p done_pid "${!pid_job[@]}" || rc=$?
    finish "$done_pid" "$rc"
  done
  started[$job]=$SECONDS
  run_job "$job" "$@" > "$LOGS/$job.log" 2>&1 &
  pid_job[$!]=$job
done
while [ "${#pid_job[@]}" -gt 0 ]; do
  rc=0
  wait -n -p done_pid "${!pid_job[@]}" || rc=$?
  finish "$done_pid" "$rc"
done
for job in "${ALONE[@]}"; do
  [[ " ${all[*]} " == *" $job "* ]] || continue
  queue+=("$job")
  started[$job]=$SECONDS
  run_job "$job" "$@" > "$LOGS/$job.log" 2>&1 &
  pid_job[$!]=$job
  rc=0
  wait -n -p done_pid "$!" || rc=$?
  finish "$done_pid" "$rc"
done

echo "==== ${#queue[@]} jobs, $JOBS at a time, in $((SECONDS - t0)) s; times in $LOGS/times"
if [ "${#failed[@]}" != 0 ]; then
  echo "FAILED jobs: ${failed[*]}" >&2
  for job in "${failed[@]}"; do
    # The failing tests' names, from libtest's one line per test.
    sed -n 's/^test \(.*\) \.\.\. FAILED$/  '"$job"': \1/p' "$LOGS/$job.log" >&2
  done
  exit 1
fi
echo "every test passed"
