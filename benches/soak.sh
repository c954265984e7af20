#!/usr/bin/env bash
# Soak: keygate for SECONDS at a steady rate with key churn, failing if RSS,
# open files, threads, cache size or open tunnels grow without bound after
# warm-up (see soak.py). By hand: at least 30 minutes,
#
#   bash benches/soak.sh 1800                 # writes benches/results/soak.{csv,svg}
#
# CI runs 60 s into a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --locked --bin keygate
export KEYGATE_BIN="${KEYGATE_BIN:-${CARGO_TARGET_DIR:-target}/debug/keygate}"
exec python3 benches/soak.py "$@"
