#!/usr/bin/env bash
# What the production features cost, each beside its own baseline in the
# same run: metrics and the access log on the API-key route; TLS (handshake
# rate and keep-alive throughput) beside plain HTTP; h2c and gRPC unary
# through keygate beside the same calls made directly.
#
#   bash benches/protocols.sh              # ~8 minutes on 2 cores
#   ROUNDS=5 DURATION=5s bash benches/protocols.sh
#
# As benches/compare.sh: keygate pinned to core 0 with one worker thread;
# the load generator (wrk for HTTP/1.1, h2load for HTTP/2) and the upstream
# on core 1; rounds interleaved, medians with min–max, and each scenario's
# ratio to its baseline paired within the round. Raw lines go to
# benches/results/protocols-raw.txt, the table to benches/results/protocols.md.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-64}
ADMIN_KEY=bench-admin-key-0123456789-abcdefghijkl
UP=19100 GRPC=19101
BASE=19200 # keygates at BASE+10*i (public) and BASE+10*i+1 (admin)

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need wrk || missing+=(wrk)
need h2load || missing+=(nghttp2-client)
need curl || missing+=(curl)
need openssl || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "protocols: building release"
cargo build --release --quiet --bin keygate --bench upstream --bench seed
bin() { find target/release/deps -maxdepth 1 -type f -executable -name "$1-*" -printf '%T@ %p\n' | sort -n | tail -n1 | cut -d' ' -f2; }
KEYGATE=target/release/keygate
UPSTREAM_BIN=$(bin upstream)
SEED_BIN=$(bin seed)

work=$(mktemp -d)
mkdir -p benches/results
raw=benches/results/protocols-raw.txt
: > "$raw"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_ready() { for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.05; done; echo "not ready: $1" >&2; return 1; }

# A server certificate (ECDSA P-256, as most deployments) from a throwaway CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=bench CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/san.ext"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/san.ext" -out "$work/tls.pem" 2>/dev/null

"$SEED_BIN" --store "sqlite://$work/k.db" --keys 1000 --out "$work/k.keys" --scopes "orders:read health:check"
KEY=$(head -n1 "$work/k.keys")

# start_keygate i metrics access_log tls → public port BASE+10i; one store each (copied).
start_keygate() {
  local i=$1 public=$((BASE + 10 * $1)) admin=$((BASE + 10 * $1 + 1)) tls=""
  [ "$4" = tls ] && tls="tls_cert = \"$work/tls.pem\"
tls_key = \"$work/tls.key\""
  for f in "$work"/k.db*; do cp "$f" "${f/k.db/k$i.db}"; done  # with its WAL
  cat > "$work/kg$i.toml" <<EOF
[server]
listen = "127.0.0.1:$public"
request_timeout = "10s"
access_log = $3
$tls
[admin]
listen = "127.0.0.1:$admin"
metrics = $2
[store]
url = "sqlite://$work/k$i.db"
[[routes]]
name = "open"
prefix = "/open"
upstream = "http://127.0.0.1:$UP"
public = true
[[routes]]
name = "orders"
prefix = "/orders"
upstream = "http://127.0.0.1:$UP"
scopes = { GET = ["orders:read"] }
[[routes]]
name = "grpc"
prefix = "/grpc.health.v1.Health"
upstream = "http://127.0.0.1:$GRPC"
upstream_protocol = "h2c"
scopes = { POST = ["health:check"] }
EOF
  TOKIO_WORKER_THREADS=1 KEYGATE_ADMIN_KEY=$ADMIN_KEY RUST_LOG=info \
    taskset -c 0 "$KEYGATE" serve --config "$work/kg$i.toml" --log-format json >"$work/kg$i.log" 2>&1 &
  pids+=($!)
  echo $! > "$work/kg$i.pid"
  wait_ready "$admin"
}

taskset -c 1 "$UPSTREAM_BIN" --listen "127.0.0.1:$UP" --fixed >/dev/null 2>&1 &
pids+=($!)
taskset -c 1 "$UPSTREAM_BIN" --listen "127.0.0.1:$GRPC" --grpc >/dev/null 2>&1 &
pids+=($!)
start_keygate 0 false false plain  # metrics off, access log off
start_keygate 1 true false plain   # metrics on
start_keygate 2 true true plain    # metrics on, access log on (the defaults)
start_keygate 3 true false tls     # as 1, over TLS
start_keygate 4 true false plain   # as 1, for the new-connection, h2c and gRPC runs,
                                   # so they leave nothing behind in 1
P0=$BASE P1=$((BASE + 10)) P2=$((BASE + 20)) P3=$((BASE + 30)) P4=$((BASE + 40))
# CPU seconds a keygate used (utime + stime, in clock ticks).
ticks() { awk '{ print $14 + $15 }' "/proc/$(cat "$work/kg$1.pid")/stat"; }

# gRPC: HealthCheckRequest{service: ""} framed (flag 0, length 0).
printf '\x00\x00\x00\x00\x00' > "$work/check.grpc"
grpc_ok() { # url [headers...]: the call answers grpc-status 0
  local url=$1; shift
  curl -s --http2-prior-knowledge -o /dev/null -v -X POST --data-binary @"$work/check.grpc" \
    -H 'content-type: application/grpc' -H 'te: trailers' "$@" "$url" 2>&1 | grep -qi '^< grpc-status: 0'
}
check() { local s; s=$(curl -s -o /dev/null -w '%{http_code}' "$@"); [ "$s" = 200 ] || { echo "protocols: $* answered $s" >&2; exit 1; }; }
for p in $P0 $P1 $P2; do check "http://127.0.0.1:$p/orders/x" -H "Authorization: Bearer $KEY"; done
check "https://127.0.0.1:$P3/orders/x" --cacert "$work/ca.pem" -H "Authorization: Bearer $KEY"
check --http2-prior-knowledge "http://127.0.0.1:$P4/open/x"
check --http2-prior-knowledge "http://127.0.0.1:$UP/x"
grpc_ok "http://127.0.0.1:$GRPC/grpc.health.v1.Health/Check" || { echo "protocols: direct gRPC failed" >&2; exit 1; }
grpc_ok "http://127.0.0.1:$P4/grpc.health.v1.Health/Check" -H "authorization: Bearer $KEY" \
  || { echo "protocols: gRPC through keygate failed" >&2; exit 1; }

L=$work/lua; mkdir -p "$L"
lua() { # file header...
  local f=$1; shift
  {
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
lua "$L/key.lua" "Authorization: Bearer $KEY"
lua "$L/key-close.lua" "Authorization: Bearer $KEY" "Connection: close"

wrk_run() { # round name url lua
  local line
  line=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" -s "$4" "$3" | grep '^RESULT')
  echo "RESULT $1 $2 ${line#RESULT }" | tee -a "$raw"
}
# h2load: 16 connections x 8 streams; the same RESULT columns (latency mean
# in place of p50; h2load reports no percentiles, so p99 columns are 0).
h2_run() { # round name url [h2load args...]
  local r=$1 name=$2 url=$3 out rps mean failed
  shift 3
  out=$(taskset -c 1 h2load -c16 -m8 -D "${DURATION%s}" "$@" "$url" 2>&1)
  rps=$(echo "$out" | sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p')
  mean=$(echo "$out" | awk '/^time for request:/ { v = $5; if (v ~ /ms$/) { sub(/ms/, "", v); v *= 1000 } else if (v ~ /us$/) { sub(/us/, "", v) } else { sub(/s$/, "", v); v *= 1000000 }; print int(v) }')
  failed=$(echo "$out" | sed -n 's/^requests: .* \([0-9]*\) failed, \([0-9]*\) errored.*/\1/p')
  echo "RESULT $r $name $rps $mean 0 0 ${failed:-0}" | tee -a "$raw"
}
GRPC_ARGS=(-d "$work/check.grpc" -H 'content-type: application/grpc' -H 'te: trailers')

echo "protocols: $ROUNDS rounds x $DURATION per scenario"
for r in $(seq 1 "$ROUNDS"); do
  wrk_run "$r" api-key-metrics-off "http://127.0.0.1:$P0/orders/x" "$L/key.lua"
  wrk_run "$r" api-key-metrics-on "http://127.0.0.1:$P1/orders/x" "$L/key.lua"
  wrk_run "$r" api-key-metrics-and-log "http://127.0.0.1:$P2/orders/x" "$L/key.lua"
  wrk_run "$r" api-key-tls "https://127.0.0.1:$P3/orders/x" "$L/key.lua"
  wrk_run "$r" new-connection-plain "http://127.0.0.1:$P4/orders/x" "$L/key-close.lua"
  # The handshake rate is keygate's only if keygate is the one saturated.
  t0=$(ticks 3)
  wrk_run "$r" new-connection-tls "https://127.0.0.1:$P3/orders/x" "$L/key-close.lua"
  echo "CPU $r new-connection-tls $(( $(ticks 3) - t0 )) ${DURATION%s}" | tee -a "$raw"
  h2_run "$r" h2c-direct "http://127.0.0.1:$UP/x"
  h2_run "$r" h2c-keygate "http://127.0.0.1:$P4/orders/x" -H "authorization: Bearer $KEY"
  h2_run "$r" grpc-direct "http://127.0.0.1:$GRPC/grpc.health.v1.Health/Check" "${GRPC_ARGS[@]}"
  h2_run "$r" grpc-keygate "http://127.0.0.1:$P4/grpc.health.v1.Health/Check" "${GRPC_ARGS[@]}" -H "authorization: Bearer $KEY"
done

{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -n1));"
  echo "rounds=$ROUNDS duration=$DURATION; keygate on core 0 (one worker), load and upstream on core 1."
  echo
  python3 benches/harness/pairs.py "$raw" \
    api-key-metrics-on:api-key-metrics-off \
    api-key-metrics-and-log:api-key-metrics-off \
    api-key-tls:api-key-metrics-on \
    new-connection-plain:api-key-metrics-on \
    new-connection-tls:new-connection-plain \
    h2c-keygate:h2c-direct \
    grpc-keygate:grpc-direct
} | tee benches/results/protocols.md
