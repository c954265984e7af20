#!/usr/bin/env bash
# Decisions against keygate's own proxied request, in the same rounds: HTTP
# decisions (/authz in Traefik's ForwardAuth shape) with wrk, and gRPC
# ext_authz Checks with h2load (a prebuilt CheckRequest body), each as a
# ratio to the proxied API-key request of the same round. A decision does
# strictly less work than a proxied request (no upstream): the targets are
# >= 1.3x for HTTP and >= 1.0x for gRPC.
#
#   bash benches/decision.sh [rounds] [duration]
#
# keygate pinned to core 0 with one worker; wrk/h2load and the fixed
# upstream on core 1; 64 connections (h2load: 64 connections, one stream
# each). Installs wrk and nghttp2-client (h2load) from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5} DURATION=${2:-5}
ADMIN_KEY=bench-admin-key-0123456789-abcdefghijkl
UP=19100 PUBLIC=18400 ADMIN=18401 DECISION=18402

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --quiet --bin keygate
cargo build --release --quiet --bench upstream --bench seed --bench checkbody
bin() { find target/release/deps -maxdepth 1 -type f -executable -name "$1-*" -printf '%T@ %p\n' | sort -n | tail -n1 | cut -d' ' -f2; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

taskset -c 1 "$(bin upstream)" --listen "127.0.0.1:$UP" --fixed >/dev/null 2>&1 &
pids+=($!)
"$(bin seed)" --store "sqlite://$work/k.db" --keys 1000 --out "$work/keys" --scopes "orders:read" >/dev/null
KEY=$(head -n1 "$work/keys")
"$(bin checkbody)" --key "$KEY" --out "$work/check.bin"
{
  sed -e "s|@PUBLIC@|$PUBLIC|g" -e "s|@ADMIN@|$ADMIN|g" -e "s|@STORE@|sqlite://$work/k.db|g" \
    -e "s|@ALG@|ES256|g" -e "s|@UPSTREAM@|$UP|g" benches/harness/keygate.toml
  printf '\n[decision]\nlisten = "127.0.0.1:%s"\n' "$DECISION"
} > "$work/kg.toml"
TOKIO_WORKER_THREADS=1 KEYGATE_ADMIN_KEY=$ADMIN_KEY RUST_LOG=warn \
  taskset -c 0 target/release/keygate serve --config "$work/kg.toml" --log-format text > "$work/kg.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.05; done

# Each path must answer as intended before it is measured.
s=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PUBLIC/orders/x")
[ "$s" = 200 ] || { echo "decision.sh: proxied request answered $s" >&2; cat "$work/kg.log" >&2; exit 1; }
s=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" \
  -H "X-Forwarded-Method: GET" -H "X-Forwarded-Uri: /orders/x" "http://127.0.0.1:$DECISION/authz")
[ "$s" = 200 ] || { echo "decision.sh: HTTP decision answered $s" >&2; exit 1; }
curl -s --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
  --data-binary "@$work/check.bin" -o "$work/check.out" \
  "http://127.0.0.1:$DECISION/envoy.service.auth.v3.Authorization/Check"
grep -aq x-keygate-account "$work/check.out" || { echo "decision.sh: the gRPC Check did not allow" >&2; exit 1; }

cat > "$work/key.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $KEY"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99)))
end
LUA
cat > "$work/authz.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $KEY"
wrk.headers["X-Forwarded-Method"] = "GET"
wrk.headers["X-Forwarded-Uri"] = "/orders/x"
wrk.headers["X-Forwarded-For"] = "203.0.113.7"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99)))
end
LUA
wrk_run() { taskset -c 1 wrk -t1 -c64 -d"${DURATION}s" -s "$1" "$2" | grep '^RESULT' | cut -d' ' -f2-; }
h2_run() {
  taskset -c 1 h2load -c64 -m1 -t1 -D "$DURATION" --warm-up-time=1 -d "$work/check.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$DECISION/envoy.service.auth.v3.Authorization/Check" > "$work/h2.out"
  local rps p50
  rps=$(awk '/^finished in/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^req\/s/) print $i }' "$work/h2.out")
  grep -q ' 0 failed' "$work/h2.out" || { echo "decision.sh: h2load saw failures" >&2; cat "$work/h2.out" >&2; exit 1; }
  p50=$(awk '/^time for request:/ { print $6 }' "$work/h2.out")
  echo "$rps $p50"
}
echo "round | proxied API key: req/s p50 p99 (us) | HTTP decision: req/s p50 p99 | gRPC Check: req/s mean | HTTP/proxied gRPC/proxied"
for r in $(seq 1 "$ROUNDS"); do
  p=$(wrk_run "$work/key.lua" "http://127.0.0.1:$PUBLIC/orders/x")
  d=$(wrk_run "$work/authz.lua" "http://127.0.0.1:$DECISION/authz")
  g=$(h2_run)
  echo "$r | $p | $d | $g" | awk -F' \\| ' '{ split($2, p, " "); split($3, d, " "); split($4, g, " ");
    printf "%s | %.3f %.3f\n", $0, d[1] / p[1], g[1] / p[1] }'
done
