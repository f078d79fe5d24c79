# Helpers shared by the benchmark scripts (sourced, not run).
#
# After sourcing: $WORK is a fresh temporary folder, PIDS an array; every PID
# added to PIDS is killed and $WORK removed when the script exits.

WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for COMMAND...: polls COMMAND until it succeeds, for at most 20 s.
wait_for() {
  local end=$((SECONDS + 20))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { echo "not ready: $*" >&2; exit 1; }
    sleep 0.05
  done
}

# The median of numbers on stdin.
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
