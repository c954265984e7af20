#!/usr/bin/env bash
# Runs the dialect tests: the official clients of the APIs keygate speaks,
# against a real keygate. Creates the Python environment (.venv-clients, from
# the pinned requirements.txt) when missing, builds keygate, runs pytest.
#
#   bash tests/clients/run.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.venv-clients
if [ ! -x "$venv/bin/pytest" ] || ! cmp -s tests/clients/requirements.txt "$venv/.requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
  cp tests/clients/requirements.txt "$venv/.requirements"
fi
cargo build --quiet --locked --bin keygate
export KEYGATE_BIN="${KEYGATE_BIN:-${CARGO_TARGET_DIR:-target}/debug/keygate}"
exec "$venv/bin/python" -m pytest tests/clients "$@"
