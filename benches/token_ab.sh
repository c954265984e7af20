#!/usr/bin/env bash
# Two keygate builds on the token endpoint (ES256, client_credentials with
# client_secret_basic), one after the other in each round: how a change
# moves tokens/s, paired per round so the machine's drift cancels, and what
# a token costs each build in CPU (user and system time from
# /proc/<pid>/stat before and after each run, all threads).
#
#   cargo build --release && cp target/release/keygate /tmp/keygate-before
#   (change, rebuild)
#   bash benches/token_ab.sh /tmp/keygate-before target/release/keygate [rounds] [seconds]
#
# CONNS=1 measures a lone caller; ENGINE=hyper serves HTTP/1.1 with
# hyper's server instead of the lean path. Each build is pinned to core 0
# (one worker), wrk to core 1, the access log off. Prints each run's
# tokens/s, CPU per token and p50/p99, and B/A per round. Installs wrk from
# Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: benches/token_ab.sh <keygate A> <keygate B> [rounds] [seconds]" >&2; exit 2; }
A=$(realpath "$1") B=$(realpath "$2") ROUNDS=${3:-3} SECONDS_EACH=${4:-5}
CONNS=${CONNS:-64}
ADMIN_KEY=bench-admin-key-0123456789-abcdefghijkl
PUBLIC=127.0.0.1:18080 ADMIN_ADDR=127.0.0.1:18081
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

# bench_basic, bench_token_lua
. benches/harness/credential.sh

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
tick=$(getconf CLK_TCK)

# measure NAME BINARY: one run of SECONDS_EACH against a fresh instance;
# prints one line and sets RATE.
measure() {
  rm -f "$work/kg.db"*
  KEYGATE_ADMIN_KEY=$ADMIN_KEY KEYGATE_STORE__URL="sqlite://$work/kg.db" \
  KEYGATE_TOKENS__ALGORITHM=ES256 KEYGATE_SERVER__ACCESS_LOG=false \
  KEYGATE_SERVER__HTTP1_ENGINE=${ENGINE:-lean} \
  KEYGATE_SERVER__LISTEN=$PUBLIC KEYGATE_ADMIN__LISTEN=$ADMIN_ADDR RUST_LOG=warn \
    taskset -c 0 "$2" serve --log-format text >"$work/kg.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://$ADMIN_ADDR/readyz" >/dev/null && break; sleep 0.1; done
  local basic
  basic=$(bench_basic "$ADMIN_ADDR" bench)
  bench_token_lua "$work/token.lua" "$basic"
  # Warm-up, not counted.
  taskset -c 1 wrk -t1 -c"$CONNS" -d1s -s "$work/token.lua" "http://$PUBLIC/oauth2/token" >/dev/null
  local before after out
  before=$(awk '{ print $14, $15 }' "/proc/$pid/stat")
  out=$(taskset -c 1 wrk --latency -t1 -c"$CONNS" -d"${SECONDS_EACH}s" -s "$work/token.lua" "http://$PUBLIC/oauth2/token")
  after=$(awk '{ print $14, $15 }' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  if echo "$out" | grep -q "Non-2xx"; then echo "token_ab: $1 answered non-2xx" >&2; exit 1; fi
  local n p50 p99
  n=$(echo "$out" | awk '/requests in/ { print $1 }')
  p50=$(echo "$out" | awk '$1 == "50%" { print $2 }')
  p99=$(echo "$out" | awk '$1 == "99%" { print $2 }')
  RATE=$(awk -v n="$n" -v d="$SECONDS_EACH" 'BEGIN { printf "%.0f", n / d }')
  set -- "$1" $before $after
  awk -v name="$1" -v n="$n" -v r="$RATE" -v u=$(($4 - $2)) -v s=$(($5 - $3)) -v t="$tick" -v p50="$p50" -v p99="$p99" \
    'BEGIN { printf "%-2s %8d tokens/s  user %6.2f us  system %6.2f us per token  p50 %s  p99 %s\n", name, r, u / t * 1e6 / n, s / t * 1e6 / n, p50, p99 }'
}

echo "token_ab: $ROUNDS rounds x ${SECONDS_EACH}s, $CONNS connections, engine ${ENGINE:-lean}"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r"
  measure A "$A"; ra=$RATE
  measure B "$B"; rb=$RATE
  awk -v a="$ra" -v b="$rb" 'BEGIN { printf "B/A %.3f\n", b / a }'
done
