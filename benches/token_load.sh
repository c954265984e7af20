#!/usr/bin/env bash
# Load run of POST /oauth2/token (client_credentials, client_secret_basic)
# against a release build, with wrk. keygate is pinned to core 0, wrk to
# core 1, so the endpoint gets exactly one core. Prints wrk's report per
# signing algorithm; fails if any response was not 2xx. Then the floors of
# answering at all, the same way: keygate's own 404 (answered before any
# route) and nginx returning a fixed body the size of a token response.
#
#   bash benches/token_load.sh            # 10 s per algorithm
#   DURATION=30s bash benches/token_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
PUBLIC=127.0.0.1:18080
ADMIN_ADDR=127.0.0.1:18081
ADMIN_KEY=bench-admin-key-0123456789-abcdefghijkl

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
cargo build --release --quiet --bin keygate

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# bench_basic, bench_token_lua
. benches/harness/credential.sh

for alg in ES256 EdDSA; do
  KEYGATE_ADMIN_KEY=$ADMIN_KEY \
  KEYGATE_STORE__URL="sqlite://$work/$alg.db" \
  KEYGATE_TOKENS__ALGORITHM=$alg \
  KEYGATE_SERVER__LISTEN=$PUBLIC \
  KEYGATE_ADMIN__LISTEN=$ADMIN_ADDR \
  RUST_LOG=warn \
    taskset -c 0 target/release/keygate serve --log-format text 2>"$work/$alg.log" &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://$ADMIN_ADDR/readyz" >/dev/null && break; sleep 0.1; done

  basic=$(bench_basic "$ADMIN_ADDR" bench)
  bench_token_lua "$work/token.lua" "$basic"
  echo "=== POST /oauth2/token, $alg, keygate on 1 core, wrk -t1 -c$CONNECTIONS -d$DURATION on the other"
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/token.lua" "http://$PUBLIC/oauth2/token" | tee "$work/$alg.out"
  if grep -q "Non-2xx" "$work/$alg.out"; then echo "token_load: non-2xx responses for $alg" >&2; exit 1; fi
  if [ "$alg" = ES256 ]; then
    echo "=== floor: keygate's 404 (no route, no signing), same pinning"
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "http://$PUBLIC/no-such-route"
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done

body=$(head -c 560 /dev/zero | tr '\0' x)
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server {
        listen $PUBLIC;
        location / { default_type application/json; return 200 '$body'; }
    }
}
CONF
taskset -c 0 nginx -c "$work/nginx.conf" -p "$work" &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://$PUBLIC/" >/dev/null && break; sleep 0.1; done
echo "=== floor: nginx (1 worker) answering a fixed 560-byte body, same pinning"
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "http://$PUBLIC/"
