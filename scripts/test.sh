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
# Build every binary first: integration tests of one crate start the binaries
# of others (e.g. discovery's tests run the real router-api).
cargo build --workspace --all-targets --quiet
cargo test --workspace --no-fail-fast "$@"
