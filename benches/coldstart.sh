#!/usr/bin/env bash
# Cold start with many keys: exec → /readyz 200, CPU and RSS at ready, for
# one or two keygate binaries, pinned to one core (compare.sh's method) and
# on every core (as a user runs it).
#
#   bash benches/coldstart.sh                          # the release build, 3 starts per mode
#   bash benches/coldstart.sh OLD_BINARY NEW_BINARY    # two builds, alternated start by start
#   KEYS=100000 STARTS=5 bash benches/coldstart.sh
#   STORE=/path/seeded.db bash benches/coldstart.sh    # reuse a seeded SQLite file
#   STORES="old.db new.db" bash benches/coldstart.sh OLD NEW  # a seeded file per binary,
#                                                      # for builds whose schemas differ
#
# Every start is a first start after seeding: from a fresh copy of the same
# seeded file (and its WAL), `sync`ed before the clock starts. Seeding 1M
# keys takes ~4 minutes here; the seeded file is kept in $TMPDIR (or /tmp)
# so later runs skip it.
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-1000000}
STARTS=${STARTS:-3}
PUBLIC=19880 ADMIN=19881
ADMIN_KEY=bench-admin-key-0123456789-abcdefghijkl

echo "coldstart: building release"
cargo build --release --quiet --bin keygate --bench seed
bin() { find target/release/deps -maxdepth 1 -type f -executable -name "$1-*" -printf '%T@ %p\n' | sort -n | tail -n1 | cut -d' ' -f2; }
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=(target/release/keygate)

STORE=${STORE:-${TMPDIR:-/tmp}/keygate-coldstart-$KEYS.db}
if [ -z "${STORES:-}" ] && [ ! -f "$STORE" ]; then
  echo "coldstart: seeding $KEYS keys into $STORE"
  "$(bin seed)" --store "sqlite://$STORE" --keys "$KEYS" --out /dev/null --scopes "orders:read"
fi

# Each binary's seeded file: $STORE for all, or one each from $STORES.
declare -A seeded=()
read -r -a stores <<< "${STORES:-}"
if [ ${#stores[@]} -gt 0 ] && [ ${#stores[@]} -ne ${#BINS[@]} ]; then
  echo "coldstart: STORES names ${#stores[@]} files for ${#BINS[@]} binaries" >&2; exit 1
fi
for i in "${!BINS[@]}"; do seeded[${BINS[$i]}]=${stores[$i]:-$STORE}; done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed -e "s|@PUBLIC@|$PUBLIC|g" -e "s|@ADMIN@|$ADMIN|g" -e "s|@STORE@|sqlite://$work/run.db|g" \
  -e "s|@ALG@|ES256|g" -e "s|@UPSTREAM@|19899|g" benches/harness/keygate.toml > "$work/kg.toml"

start() { # binary mode -> "seconds cpu_seconds rss_mib"
  rm -f "$work"/run.db*
  local from=${seeded[$1]}
  cp "$from" "$work/run.db"
  [ -f "$from-wal" ] && cp "$from-wal" "$work/run.db-wal"
  sync
  local pin=() env=(KEYGATE_ADMIN_KEY=$ADMIN_KEY RUST_LOG=warn)
  if [ "$2" = pinned ]; then pin=(taskset -c 0); env+=(TOKIO_WORKER_THREADS=1); fi
  local t0 t1 p
  t0=$(date +%s.%N)
  env "${env[@]}" "${pin[@]}" "$1" serve --config "$work/kg.toml" --log-format text >"$work/kg.log" 2>&1 &
  p=$!
  for _ in $(seq 1 3000); do curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.02; done
  t1=$(date +%s.%N)
  curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null || { echo "coldstart: $1 never ready" >&2; cat "$work/kg.log" >&2; exit 1; }
  local rss cpu
  rss=$(awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$p/status")
  cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$p/stat")
  kill "$p"; wait "$p" 2>/dev/null || true
  awk -v a="$t0" -v b="$t1" -v c="$cpu" -v r="$rss" 'BEGIN { printf "%.2f %s %s\n", b - a, c, r }'
}

echo "coldstart: $KEYS keys, $STARTS starts per binary and mode, binaries alternated"
echo "| mode | binary | ready (s) | CPU (s) | RSS at ready (MiB) |"
echo "|---|---|---|---|---|"
for mode in both pinned; do
  declare -A ready=() cpu=() rss=()
  for _ in $(seq 1 "$STARTS"); do
    for b in "${BINS[@]}"; do
      read -r t c r < <(start "$b" "$mode")
      ready[$b]+="$t / "; cpu[$b]+="$c / "; rss[$b]+="$r / "
    done
  done
  for b in "${BINS[@]}"; do
    echo "| $mode | $b | ${ready[$b]% / } | ${cpu[$b]% / } | ${rss[$b]% / } |"
  done
  unset ready cpu rss
done
