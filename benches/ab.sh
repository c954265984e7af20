#!/usr/bin/env bash
# Two keygate builds on the API-key route, interleaved, with nginx as the
# reference in the same rounds: how a change moves throughput, paired per
# round so the machine's drift cancels.
#
#   cargo build --release && cp target/release/keygate /tmp/keygate-before
#   (change, rebuild)
#   bash benches/ab.sh /tmp/keygate-before target/release/keygate [rounds] [duration]
#
# One build in two configurations: the same binary twice, with environment
# overrides for each side, e.g.
#   A_ENV=KEYGATE_SERVER__UPSTREAM_REUSE=pool bash benches/ab.sh target/release/keygate target/release/keygate
#
# The credential: an API key, or with CREDENTIAL=jwt a JWT each build mints
# for the route's audience (client_credentials), verified on its first use
# and cached after it, e.g.
#   CREDENTIAL=jwt bash benches/ab.sh /tmp/keygate-before target/release/keygate
#
# ROUTE=name: the route under test, by its prefix in
# benches/harness/keygate.toml (default orders, the API-key route; minted
# is forward_auth = "jwt", limited a rate-limited one).
#
# PERF_DIR=dir also records each build's first round with perf (see run()).
#
# Each build and nginx run pinned to core 0 with one worker; wrk and the
# fixed upstream on core 1; 64 connections. Prints each round's req/s, p50
# and p99 (µs), and B/A, A/nginx, B/nginx. Installs wrk and nginx-light from
# Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: benches/ab.sh <keygate A> <keygate B> [rounds] [duration]" >&2; exit 2; }
A=$(realpath "$1") B=$(realpath "$2") ROUNDS=${3:-5} DURATION=${4:-5s}
ADMIN_KEY=bench-admin-key-0123456789-abcdefghijkl
UP=19000 NGINX=18280

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --quiet --bench upstream --bench seed
bin() { find target/release/deps -maxdepth 1 -type f -executable -name "$1-*" -printf '%T@ %p\n' | sort -n | tail -n1 | cut -d' ' -f2; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

taskset -c 1 "$(bin upstream)" --listen "127.0.0.1:$UP" --fixed >/dev/null 2>&1 &
pids+=($!)
"$(bin seed)" --store "sqlite://$work/a.db" --keys 1000 --out "$work/a.keys" --scopes "orders:read" >/dev/null
KEY=$(head -n1 "$work/a.keys")
i=0
for build in "$A" "$B"; do
  i=$((i + 1)); port=$((18000 + i * 100))
  if [ $i = 1 ]; then extra=${A_ENV:-}; else extra=${B_ENV:-}; fi
  sed -e "s|@PUBLIC@|$port|g" -e "s|@ADMIN@|$((port + 1))|g" -e "s|@STORE@|sqlite://$work/a.db|g" \
    -e "s|@ALG@|ES256|g" -e "s|@UPSTREAM@|$UP|g" benches/harness/keygate.toml > "$work/kg$i.toml"
  # shellcheck disable=SC2086 # $extra is a list of NAME=value words
  env $extra TOKIO_WORKER_THREADS=1 KEYGATE_ADMIN_KEY=$ADMIN_KEY RUST_LOG=warn \
    taskset -c 0 "$build" serve --config "$work/kg$i.toml" --log-format text > "$work/kg$i.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$((port + 1))/readyz" >/dev/null && break; sleep 0.05; done
done
sed -e "s|@DIR@|$work|g" -e "s|@PORT@|$NGINX|g" -e "s|@UPSTREAM@|$UP|g" benches/harness/nginx.conf > "$work/nginx.conf"
taskset -c 0 nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)
sleep 1

auth=("$KEY" "$KEY" "$KEY")
if [ "${CREDENTIAL:-key}" = jwt ]; then
  # bench_basic, bench_token
  . benches/harness/credential.sh
  basic=$(bench_basic 127.0.0.1:18101 ab)
  # B learns of the credential made on A from the store they share.
  auth=("$(bench_token 127.0.0.1:18100 "$basic" orders-api)" "$(bench_token 127.0.0.1:18200 "$basic" orders-api)" "$KEY")
fi
ROUTE=${ROUTE:-orders}
urls=("http://127.0.0.1:18100/$ROUTE/x" "http://127.0.0.1:18200/$ROUTE/x" "http://127.0.0.1:$NGINX/x")
for i in 0 1 2; do
  cat > "$work/side$i.lua" <<LUA
wrk.headers["Authorization"] = "Bearer ${auth[$i]}"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99)))
end
LUA
  s=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${auth[$i]}" "${urls[$i]}")
  [ "$s" = 200 ] || { echo "ab: ${urls[$i]} answered $s" >&2; exit 1; }
done
# PERF_DIR=dir: each keygate's first round also recorded (perf record,
# 1999 Hz, no call graphs) into dir/A.data and dir/B.data, for
# `perf report -i dir/A.data --no-children --sort sym`.
sides=(A B nginx) kg_pids=("${pids[1]}" "${pids[2]}")
run() {
  local rec=""
  if [ -n "${PERF_DIR:-}" ] && [ "$1" -lt 2 ] && [ ! -f "$PERF_DIR/${sides[$1]}.data" ]; then
    mkdir -p "$PERF_DIR"
    perf record -q -F 1999 -p "${kg_pids[$1]}" -o "$PERF_DIR/${sides[$1]}.data" -- sleep "${DURATION%s}" >/dev/null 2>&1 &
    rec=$!
  fi
  taskset -c 1 wrk -t1 -c64 -d"$DURATION" -s "$work/side$1.lua" "${urls[$1]}" | grep '^RESULT' | cut -d' ' -f2-
  if [ -n "$rec" ]; then wait "$rec" || true; fi
}
echo "round | A: req/s p50 p99 | B: req/s p50 p99 | nginx: req/s p50 p99 | B/A A/nginx B/nginx"
for r in $(seq 1 "$ROUNDS"); do
  a=$(run 0) b=$(run 1) n=$(run 2)
  echo "$r | $a | $b | $n" | awk -F' \\| ' '{ split($2, a, " "); split($3, b, " "); split($4, n, " ");
    printf "%s | %.3f %.3f %.3f\n", $0, b[1] / a[1], a[1] / n[1], b[1] / n[1] }'
done
