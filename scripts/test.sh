#!/usr/bin/env bash
# The whole test suite (README's second command).
#
# Installs whatever is missing (scripts/setup.sh), builds the workspace once
# (debug profile, one target/ shared by every test) and runs every test:
# unit tests plus integration tests that start real redis-server, our real
# binaries, ffmpeg and friends on free loopback ports.
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
cargo test --workspace --no-fail-fast "$@"

# The chaos suite on network-namespace hosts (scripts/chaos.sh, docs/reliability.md), when this machine allows it:
# it fails the suite when any of its goals does not hold.
if [ "$(id -u)" = 0 ] && ip netns list >/dev/null 2>&1; then
  bash scripts/chaos.sh --short --out target/chaos-report
else
  echo "SKIPPED: the chaos suite (scripts/chaos.sh) needs root and 'ip netns'"
fi
