#!/usr/bin/env bash
# What a token from another issuer costs a proxied request, once verified:
# the same route (`fed`, accept_issuers = ["ext"]) called with a bound
# external JWT (a Kubernetes-shaped ES256 token; its issuer's keys in a
# jwks_file) and with an API key of the same account, in the same rounds
# (wrk, 64 connections, the order alternating). Target: external / key >= 0.95.
#
#   bash benches/federation.sh [rounds] [duration]
#
# keygate pinned to core 0 with one worker; wrk and the fixed upstream on
# core 1. Needs wrk (installed from Debian if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5} DURATION=${2:-5}
ADMIN_KEY=bench-admin-key-0123456789-abcdefghijkl
UP=19300 PUBLIC=18600 ADMIN=18601
ISS=https://kubernetes.default.svc.cluster.local
SUB=system:serviceaccount:payments:api

command -v wrk >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --bin keygate
cargo build --release --quiet --bench upstream --bench issuer
bin() { find target/release/deps -maxdepth 1 -type f -executable -name "$1-*" -printf '%T@ %p\n' | sort -n | tail -n1 | cut -d' ' -f2; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

TOKEN=$("$(bin issuer)" --jwks "$work/jwks.json" --iss "$ISS" --sub "$SUB")
taskset -c 1 "$(bin upstream)" --listen "127.0.0.1:$UP" --fixed >/dev/null 2>&1 &
pids+=($!)
sed -e "s|@PUBLIC@|$PUBLIC|g" -e "s|@ADMIN@|$ADMIN|g" -e "s|@STORE@|sqlite://$work/kg.db|g" \
  -e "s|@ALG@|ES256|g" -e "s|@UPSTREAM@|$UP|g" benches/harness/keygate.toml > "$work/kg.toml"
cat >> "$work/kg.toml" <<TOML

[[trusted_issuers]]
name = "ext"
issuer = "$ISS"
jwks_file = "$work/jwks.json"
audiences = ["keygate"]
algorithms = ["ES256"]

[[routes]]
name = "fed"
prefix = "/fed"
upstream = "http://127.0.0.1:$UP"
scopes = { GET = ["orders:read"] }
accept_issuers = ["ext"]
TOML
TOKIO_WORKER_THREADS=1 KEYGATE_ADMIN_KEY=$ADMIN_KEY RUST_LOG=warn \
  taskset -c 0 target/release/keygate serve --config "$work/kg.toml" --log-format text > "$work/kg.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.05; done
admin() { curl -sf -X "$1" -H "Authorization: Bearer $ADMIN_KEY" -H 'content-type: application/json' \
  ${3:+--data "$3"} "http://127.0.0.1:$ADMIN$2"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
ORG=$(admin POST /v1/organizations '{"name":"bench"}' | field '["id"]')
CREATED=$(admin POST /v1/service-accounts "{\"organization_id\":\"$ORG\",\"name\":\"workload\",\"scopes\":[\"orders:read\"]}")
ACCOUNT=$(echo "$CREATED" | field '["id"]')
KEY=$(echo "$CREATED" | field '["api_key"]["value"]')
admin POST "/v1/service-accounts/$ACCOUNT/federated-identities" "{\"issuer\":\"ext\",\"subject\":\"$SUB\"}" >/dev/null
for cred in "$KEY" "$TOKEN"; do
  s=$(curl -s -o "$work/out" -w '%{http_code}' -H "Authorization: Bearer $cred" "http://127.0.0.1:$PUBLIC/fed/x")
  [ "$s" = 200 ] || { echo "federation.sh: answered $s: $(cat "$work/out")" >&2; cat "$work/kg.log" >&2; exit 1; }
done

lua() {
  cat > "$work/$1.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $2"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99)))
end
LUA
}
lua key "$KEY"
lua external "$TOKEN"
wrk_run() { taskset -c 1 wrk -t1 -c64 -d"${DURATION}s" -s "$work/$1.lua" "http://127.0.0.1:$PUBLIC/fed/x" | grep '^RESULT' | cut -d' ' -f2-; }
echo "round | API key: req/s p50 p99 (us) | external JWT: req/s p50 p99 | external/key"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then a=$(wrk_run key); b=$(wrk_run external)
  else b=$(wrk_run external); a=$(wrk_run key); fi
  echo "$r | $a | $b" | awk -F' \\| ' '{ split($2, a, " "); split($3, b, " "); printf "%s | %.3f\n", $0, b[1] / a[1] }'
done
