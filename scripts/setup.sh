#!/usr/bin/env bash
# Installs every system package Dionysia needs on a fresh Debian 12 machine.
#
# Idempotent and quiet: when everything is already there it prints nothing and
# exits 0 in well under a second. Run as root (or with sudo available).
# Used by `scripts/stack.sh` (quick start) and `scripts/test.sh` (test suite).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # build
  build-essential pkg-config cmake clang libssl-dev curl ca-certificates jq
  # GStreamer (transcoding + packaging in the origin)
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  # services and peers used by tests and benchmarks
  redis-server redis-tools ffmpeg wrk haproxy nginx-light libnginx-mod-rtmp varnish
  # socket statistics (ss), read by the edge tests
  iproute2
  # the chaos suite's delay and loss where the kernel has no sch_netem (NFQUEUE rules for testkit's netem)
  iptables
  # the edge's HTTPS: self-signed pairs (stack, tests) and an HTTP/2 load client (h2load, loadtest/bench/edge.sh)
  openssl nghttp2-client
  # validation of docker-compose.yml (no Docker engine is needed for `config`)
  docker-compose
  # browser tests (Node.js itself is added below only when absent: a machine
  # may carry a Node.js build whose npm is bundled and conflicts with Debian's)
  chromium
)
if ! command -v npm >/dev/null 2>&1; then PACKAGES+=(nodejs npm); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing ${#missing[@]} missing packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts these services on install; tests and the stack start their
  # own instances on their own ports, so the system-wide ones are not needed.
  for svc in redis-server nginx varnish haproxy; do
    if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  done
fi

# npm packages, each from its lock file: hls.js and dash.js for the edge's
# player page (embedded into the edge at build time) and playwright-core, which drives
# Debian's Chromium in the browser tests (it never downloads a browser).
# Installed again only when the lock file changes.
npm_ci() {
  local dir=$1 stamp=$1/node_modules/.installed-lock
  if [ -f "$stamp" ] && cmp -s "$dir/package-lock.json" "$stamp"; then return 0; fi
  echo "setup: npm ci in $dir" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$dir/package-lock.json" "$stamp"
}
npm_ci edge/player
npm_ci e2e/browser

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust 1.95 (rustup) first" >&2
  exit 1
fi
