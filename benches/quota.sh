#!/usr/bin/env bash
# What a quota costs a proxied request, and what the Redis backend's check
# costs in round trips.
#
# 1. Local backend: the same route (`limited`, with a rate limit) with a key
#    whose account and key both carry a quota, against a key with none, in
#    the same rounds (wrk, 64 connections); the paired ratio must be >= 0.95.
# 2. Redis backend: the same quota'd key, every Redis command keygate sends
#    recorded with MONITOR over N requests: one EVALSHA per request (the rate
#    limit and both quotas in one script), nothing else.
#
#   bash benches/quota.sh [rounds] [duration]
#
# keygate pinned to core 0 with one worker; wrk and the fixed upstream on
# core 1. Needs wrk and redis-server (installed from Debian if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5} DURATION=${2:-5}
ADMIN_KEY=bench-admin-key-0123456789-abcdefghijkl
UP=19200 PUBLIC=18500 ADMIN=18501 REDIS=18502

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v redis-server >/dev/null || missing+=(redis-server redis-tools)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --quiet --bin keygate
cargo build --release --quiet --bench upstream
bin() { find target/release/deps -maxdepth 1 -type f -executable -name "$1-*" -printf '%T@ %p\n' | sort -n | tail -n1 | cut -d' ' -f2; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

taskset -c 1 "$(bin upstream)" --listen "127.0.0.1:$UP" --fixed >/dev/null 2>&1 &
pids+=($!)

# start <backend>: keygate on a fresh store; prints nothing, waits for ready.
start() {
  sed -e "s|@PUBLIC@|$PUBLIC|g" -e "s|@ADMIN@|$ADMIN|g" -e "s|@STORE@|sqlite://$work/$1.db|g" \
    -e "s|@ALG@|ES256|g" -e "s|@UPSTREAM@|$UP|g" benches/harness/keygate.toml > "$work/$1.toml"
  if [ "$1" = redis ]; then
    printf '\n[rate_limit]\nbackend = "redis"\nredis_url = "redis://127.0.0.1:%s"\n' "$REDIS" >> "$work/$1.toml"
  fi
  TOKIO_WORKER_THREADS=1 KEYGATE_ADMIN_KEY=$ADMIN_KEY RUST_LOG=warn \
    taskset -c 0 target/release/keygate serve --config "$work/$1.toml" --log-format text > "$work/$1.log" 2>&1 &
  KG=$!
  pids+=($KG)
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.05; done
}
admin() { curl -sf -X "$1" -H "Authorization: Bearer $ADMIN_KEY" -H 'content-type: application/json' \
  ${3:+--data "$3"} "http://127.0.0.1:$ADMIN$2"; }
# account <quota json or null>: an account's first key.
account() {
  local org=$1 quota=$2
  admin POST /v1/service-accounts "{\"organization_id\":\"$org\",\"name\":\"a$RANDOM$RANDOM\",\"scopes\":[\"orders:read\"],\"quota\":$quota,\"create_api_key\":false}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
key() {
  admin POST "/v1/service-accounts/$1/api-keys" "{\"quota\":$2}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])'
}
BIG='{"limit":1000000000000,"period":"month"}'

start local
ORG=$(admin POST /v1/organizations '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
PLAIN=$(key "$(account "$ORG" null)" null)
METERED=$(key "$(account "$ORG" "$BIG")" "$BIG")
for k in "$PLAIN" "$METERED"; do
  s=$(curl -s -o "$work/out" -D "$work/hdr" -w '%{http_code}' -H "Authorization: Bearer $k" "http://127.0.0.1:$PUBLIC/limited/x")
  [ "$s" = 200 ] || { echo "quota.sh: answered $s" >&2; cat "$work/local.log" >&2; exit 1; }
done
grep -qi '"quota";q=1000000000000' "$work/hdr" || { echo "quota.sh: no quota entry on the metered key" >&2; exit 1; }

lua() {
  cat > "$work/$1.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $2"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99)))
end
LUA
}
lua plain "$PLAIN"
lua metered "$METERED"
wrk_run() { taskset -c 1 wrk -t1 -c64 -d"${DURATION}s" -s "$work/$1.lua" "http://127.0.0.1:$PUBLIC/limited/x" | grep '^RESULT' | cut -d' ' -f2-; }
echo "round | no quota: req/s p50 p99 (us) | key + account quota: req/s p50 p99 | quota/none"
for r in $(seq 1 "$ROUNDS"); do
  # Which runs first alternates, so neither gains from going second.
  if [ $((r % 2)) -eq 1 ]; then a=$(wrk_run plain); b=$(wrk_run metered)
  else b=$(wrk_run metered); a=$(wrk_run plain); fi
  echo "$r | $a | $b" | awk -F' \\| ' '{ split($2, a, " "); split($3, b, " "); printf "%s | %.3f\n", $0, b[1] / a[1] }'
done
kill "$KG"; wait "$KG" 2>/dev/null || true

# Redis: one round trip per request.
redis-server --port "$REDIS" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$REDIS" ping >/dev/null 2>&1 && break; sleep 0.05; done
start redis
ORG=$(admin POST /v1/organizations '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
METERED=$(key "$(account "$ORG" "$BIG")" "$BIG")
curl -s -o /dev/null -H "Authorization: Bearer $METERED" "http://127.0.0.1:$PUBLIC/limited/warm"
N=1000
redis-cli -p "$REDIS" monitor > "$work/monitor" &
MON=$!
sleep 0.5
for i in $(seq 1 $N); do
  curl -s -o /dev/null -H "Authorization: Bearer $METERED" "http://127.0.0.1:$PUBLIC/limited/$i"
done
sleep 0.5
kill "$MON"; wait "$MON" 2>/dev/null || true
# Lines from a client address are round trips; "[0 lua]" ones run inside the script.
trips=$(grep -v ' lua\]' "$work/monitor" | grep -c '"EVALSHA"\|"evalsha"' || true)
others=$(grep -v ' lua\]' "$work/monitor" | grep -vic '"EVALSHA"\|"evalsha"\|^OK' || true)
inside=$(grep -c ' lua\]' "$work/monitor" || true)
echo "redis: $N requests -> $trips EVALSHA round trips, $others other commands from keygate, $inside commands inside the script"
