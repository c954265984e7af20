#!/usr/bin/env bash
# Runs the console's browser tests: Chromium (Debian's, /usr/bin/chromium)
# driven by Playwright against a real keygate. Creates the Python
# environment (.venv-console, from the pinned requirements.txt) when
# missing, builds keygate, runs pytest.
#
#   bash tests/console/run.sh [pytest args]
#   bash tests/console/run.sh --screenshots   # retakes docs/console/*.png
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.venv-console
if [ ! -x "$venv/bin/pytest" ] || ! cmp -s tests/console/requirements.txt "$venv/.requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/console/requirements.txt
  cp tests/console/requirements.txt "$venv/.requirements"
fi
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || { echo "console tests: no chromium at $CHROMIUM (apt-get install chromium)" >&2; exit 1; }
cargo build --quiet --locked --bin keygate
export KEYGATE_BIN="${KEYGATE_BIN:-${CARGO_TARGET_DIR:-target}/debug/keygate}"
if [ "${1:-}" = "--screenshots" ]; then
  exec "$venv/bin/python" tests/console/screenshots.py
fi
exec "$venv/bin/python" -m pytest tests/console "$@"
