#!/usr/bin/env bash
# Fuzzes the admin API from its own OpenAPI document with schemathesis, every
# check on (see run.py). Creates the Python environment (.venv-contract, from
# the pinned requirements.txt) when missing, builds keygate, runs a bounded
# pass: 100 examples per operation, seed 1 (tests/contract/schemathesis.toml).
#
#   bash tests/contract/run.sh [schemathesis args, e.g. --max-examples 1000 --seed 7]
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.venv-contract
if [ ! -x "$venv/bin/st" ] || ! cmp -s tests/contract/requirements.txt "$venv/.requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/contract/requirements.txt
  cp tests/contract/requirements.txt "$venv/.requirements"
fi
cargo build --quiet --locked --bin keygate
export KEYGATE_BIN="${KEYGATE_BIN:-${CARGO_TARGET_DIR:-target}/debug/keygate}"
exec "$venv/bin/python" tests/contract/run.py --max-examples 100 --workers 2 "$@"
