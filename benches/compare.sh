#!/usr/bin/env bash
# keygate against the limit and against peers, in one run, on one machine.
#
#   bash benches/compare.sh              # ~11 minutes on 2 cores
#   ROUNDS=5 DURATION=10s bash benches/compare.sh
#
# Builds release, installs wrk, nginx and HAProxy from Debian if missing, and
# drives every proxy with the same load: the proxy under test pinned to core
# 0 (one worker thread), wrk and the fixed upstream pinned to core 1. Rounds
# are interleaved (every scenario once per round) and medians reported with
# min–max. Then the scale runs: cold start and RSS with 10K / 100K / 1M keys
# in SQLite, and API-key throughput with 1M keys cached against 1K. The
# report opens with the headline ratios (keygate against its peers, JWT
# against API key, the token endpoint against bare ES256 signing and against
# its ceilings here, bare signing plus keygate's own 404 floor and plus
# nginx's, each ceiling also against bare signing; cold start).
# Raw lines go to benches/results/raw.txt, tables to benches/results/latest.md.
set -euo pipefail
# The whole script is one block, read before any of it runs: bash reads a
# script as it goes, so an edit (or a checkout) during a 20-minute run would
# otherwise run whatever now stands at the old offset.
{
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-64}
SCALE_KEYS=${SCALE_KEYS:-"10000 100000 1000000"}
ADMIN_KEY=bench-admin-key-0123456789-abcdefghijkl
UP=19000
KG_PUBLIC=18080 KG_ADMIN=18081
KG2_PUBLIC=18180 KG2_ADMIN=18181
NGINX=18280 NGINX_FLOOR=18290 HAP_KEY=18380 HAP_JWT=18480
SCALE_PUBLIC=18580 SCALE_ADMIN=18581

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need wrk || missing+=(wrk)
need nginx || missing+=(nginx-light)
need haproxy || missing+=(haproxy)
need curl || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "compare: building release"
cargo build --release --quiet --bin keygate --bench upstream --bench seed --bench signrate
bin() { find target/release/deps -maxdepth 1 -type f -executable -name "$1-*" -printf '%T@ %p\n' | sort -n | tail -n1 | cut -d' ' -f2; }
KEYGATE=target/release/keygate
UPSTREAM_BIN=$(bin upstream)
SEED_BIN=$(bin seed)
SIGN_BIN=$(bin signrate)

work=$(mktemp -d)
mkdir -p benches/results
raw=benches/results/raw.txt
: > "$raw"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# json_field, bench_basic, bench_token
. benches/harness/credential.sh
wait_ready() { for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.05; done; echo "not ready: $1" >&2; return 1; }
rss_mib() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
fill() { sed -e "s|@PUBLIC@|$2|g" -e "s|@ADMIN@|$3|g" -e "s|@STORE@|$4|g" -e "s|@ALG@|$5|g" -e "s|@UPSTREAM@|$UP|g" "$1"; }

# One keygate, pinned to core 0 with one worker thread. Prints its pid.
start_keygate() { # public admin store alg
  fill benches/harness/keygate.toml "$1" "$2" "$3" "$4" > "$work/kg-$1.toml"
  TOKIO_WORKER_THREADS=1 KEYGATE_ADMIN_KEY=$ADMIN_KEY RUST_LOG=warn \
    taskset -c 0 "$KEYGATE" serve --config "$work/kg-$1.toml" --log-format text >>"$work/kg-$1.log" 2>&1 &
  echo $!
}

lua() { # file method body header...
  local f=$1 method=$2 body=$3; shift 3
  {
    echo "wrk.method = \"$method\""
    [ -n "$body" ] && echo "wrk.body = \"$body\""
    for h in "$@"; do echo "wrk.headers[\"${h%%:*}\"] = \"${h#*: }\""; done
    cat <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.1f %d %d %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.status + e.connect + e.read + e.write + e.timeout))
end
LUA
  } > "$f"
}

run() { # round name url luafile
  local line
  line=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" -s "$4" "$3" | grep '^RESULT')
  echo "RESULT $1 $2 ${line#RESULT }" | tee -a "$raw"
}

echo "compare: upstream, stores, proxies"
taskset -c 1 "$UPSTREAM_BIN" --listen "127.0.0.1:$UP" --fixed >/dev/null 2>&1 &
pids+=($!)

# keygate A (ES256), 1,000 seeded keys; its map feeds HAProxy.
"$SEED_BIN" --store "sqlite://$work/a.db" --keys 1000 --out "$work/a.keys" --map "$work/keys.map" --scopes "orders:read"
KEY=$(head -n1 "$work/a.keys")
pids+=($(start_keygate $KG_PUBLIC $KG_ADMIN "sqlite://$work/a.db" ES256))
wait_ready $KG_ADMIN
BASIC_A=$(bench_basic "127.0.0.1:$KG_ADMIN" "bench-$KG_ADMIN")
JWT=$(bench_token "127.0.0.1:$KG_PUBLIC" "$BASIC_A" orders-api)
[ -n "$JWT" ] || { echo "compare: could not mint a token" >&2; exit 1; }

# keygate B (EdDSA), for the token endpoint only.
pids+=($(start_keygate $KG2_PUBLIC $KG2_ADMIN "sqlite://$work/b.db" EdDSA))
wait_ready $KG2_ADMIN
BASIC_B=$(bench_basic "127.0.0.1:$KG2_ADMIN" "bench-$KG2_ADMIN")

# nginx and HAProxy, each on core 0 with one worker.
sed -e "s|@DIR@|$work|g" -e "s|@PORT@|$NGINX|g" -e "s|@FLOOR@|$NGINX_FLOOR|g" -e "s|@UPSTREAM@|$UP|g" benches/harness/nginx.conf > "$work/nginx.conf"
taskset -c 0 nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)
curl -s "http://127.0.0.1:$KG_PUBLIC/.well-known/jwks.json" | python3 benches/harness/jwk2pem.py > "$work/jwt.pem"
for cfg in key:$HAP_KEY jwt:$HAP_JWT; do
  sed -e "s|@DIR@|$work|g" -e "s|@PORT@|${cfg#*:}|g" -e "s|@UPSTREAM@|$UP|g" "benches/harness/haproxy-${cfg%%:*}.cfg" > "$work/haproxy-${cfg%%:*}.cfg"
  taskset -c 0 haproxy -f "$work/haproxy-${cfg%%:*}.cfg" -db 2>>"$work/haproxy.log" &
  pids+=($!)
done
sleep 1

# Every scenario must answer 200 before it is measured.
check() { local s; s=$(curl -s -o /dev/null -w '%{http_code}' "$@"); [ "$s" = 200 ] || { echo "compare: $* answered $s" >&2; exit 1; }; }
check "http://127.0.0.1:$UP/x"
check "http://127.0.0.1:$KG_PUBLIC/open/x"
check "http://127.0.0.1:$KG_PUBLIC/orders/x" -H "Authorization: Bearer $KEY"
check "http://127.0.0.1:$KG_PUBLIC/orders/x" -H "Authorization: Bearer $JWT"
check "http://127.0.0.1:$KG_PUBLIC/minted/x" -H "Authorization: Bearer $KEY"
check "http://127.0.0.1:$KG_PUBLIC/limited/x" -H "Authorization: Bearer $KEY"
check "http://127.0.0.1:$NGINX/x"
check "http://127.0.0.1:$HAP_KEY/x" -H "Authorization: Bearer $KEY"
check "http://127.0.0.1:$HAP_JWT/x" -H "Authorization: Bearer $JWT"

L=$work/lua; mkdir -p "$L"
lua "$L/plain.lua" GET ""
lua "$L/key.lua" GET "" "Authorization: Bearer $KEY"
lua "$L/jwt.lua" GET "" "Authorization: Bearer $JWT"
lua "$L/token-a.lua" POST "grant_type=client_credentials" "Content-Type: application/x-www-form-urlencoded" "Authorization: Basic $BASIC_A"
lua "$L/token-b.lua" POST "grant_type=client_credentials" "Content-Type: application/x-www-form-urlencoded" "Authorization: Basic $BASIC_B"
# keygate's floor: its own 404 for a path no route takes, the least any
# answer costs it. The 404s are the point, so only I/O failures count.
sed 's/e.status + e.connect/e.connect/' "$L/plain.lua" > "$L/floor.lua"
floor_status=$(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$KG_PUBLIC/no-such-route")
[ "$floor_status" = 404 ] || { echo "compare: keygate's floor answered $floor_status, not 404" >&2; exit 1; }
# nginx's floor, the same way: its own 404 with no upstream, for the
# token endpoint's ceiling with the least any HTTP server here spends on
# an answer.
floor_status=$(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$NGINX_FLOOR/no-such-route")
[ "$floor_status" = 404 ] || { echo "compare: nginx's floor answered $floor_status, not 404" >&2; exit 1; }

echo "compare: $ROUNDS rounds x $DURATION per scenario, $CONNS connections"
for r in $(seq 1 "$ROUNDS"); do
  run "$r" upstream-direct "http://127.0.0.1:$UP/x" "$L/plain.lua"
  run "$r" keygate-public "http://127.0.0.1:$KG_PUBLIC/open/x" "$L/plain.lua"
  run "$r" keygate-api-key "http://127.0.0.1:$KG_PUBLIC/orders/x" "$L/key.lua"
  run "$r" keygate-jwt "http://127.0.0.1:$KG_PUBLIC/orders/x" "$L/jwt.lua"
  run "$r" keygate-forward-jwt "http://127.0.0.1:$KG_PUBLIC/minted/x" "$L/key.lua"
  run "$r" keygate-rate-limited "http://127.0.0.1:$KG_PUBLIC/limited/x" "$L/key.lua"
  run "$r" keygate-token-es256 "http://127.0.0.1:$KG_PUBLIC/oauth2/token" "$L/token-a.lua"
  run "$r" keygate-token-eddsa "http://127.0.0.1:$KG2_PUBLIC/oauth2/token" "$L/token-b.lua"
  run "$r" keygate-floor-404 "http://127.0.0.1:$KG_PUBLIC/no-such-route" "$L/floor.lua"
  run "$r" nginx-proxy "http://127.0.0.1:$NGINX/x" "$L/plain.lua"
  run "$r" nginx-floor-404 "http://127.0.0.1:$NGINX_FLOOR/no-such-route" "$L/floor.lua"
  run "$r" haproxy-api-key "http://127.0.0.1:$HAP_KEY/x" "$L/key.lua"
  run "$r" haproxy-jwt "http://127.0.0.1:$HAP_JWT/x" "$L/jwt.lua"
  # Bare ES256 signing on keygate's core, for the token endpoint's share.
  taskset -c 0 "$SIGN_BIN" --seconds "${DURATION%s}" | awk -v r="$r" '$1 == "SIGN" || $1 == "SIGN_REPARSE" { print $1, r, $2 }' | tee -a "$raw"
done

echo "compare: scale runs"
for n in $SCALE_KEYS; do
  t0=$(date +%s.%N)
  "$SEED_BIN" --store "sqlite://$work/s$n.db" --keys "$n" --out "$work/s$n.keys" --scopes "orders:read"
  t1=$(date +%s.%N)
  p=$(start_keygate $SCALE_PUBLIC $SCALE_ADMIN "sqlite://$work/s$n.db" ES256)
  pids+=("$p")
  wait_ready $SCALE_ADMIN
  t2=$(date +%s.%N)
  rss=$(rss_mib "$p")
  echo "SCALE $n $(awk "BEGIN { print $t1 - $t0 }") $(awk "BEGIN { print $t2 - $t1 }") $rss" | tee -a "$raw"
  if [ "$n" = "${SCALE_KEYS##* }" ]; then
    lua "$L/scale.lua" GET "" "Authorization: Bearer $(head -n1 "$work/s$n.keys")"
    line=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" -s "$L/scale.lua" "http://127.0.0.1:$SCALE_PUBLIC/orders/x" | grep '^RESULT')
    set -- $line
    echo "SCALEPUT $n $2 $4" | tee -a "$raw"
    line=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" -s "$L/key.lua" "http://127.0.0.1:$KG_PUBLIC/orders/x" | grep '^RESULT')
    set -- $line
    echo "SCALEPUT 1000 $2 $4" | tee -a "$raw"
  fi
  kill "$p"; wait "$p" 2>/dev/null || true
done

{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -n1)), $(free -g | awk '/Mem:/ {print $2}') GiB;"
  echo "rounds=$ROUNDS duration=$DURATION connections=$CONNS; proxies on core 0, wrk and upstream on core 1."
  echo
  python3 benches/harness/report.py "$raw"
} | tee benches/results/latest.md
exit
}
