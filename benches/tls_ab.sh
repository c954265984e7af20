#!/usr/bin/env bash
# HTTP/1.1 over TLS (keep-alive): keygate's lean path against hyper's
# HTTP/1.1 server, the same binary twice (`server.http1_engine` = "lean" /
# "hyper"), one certificate (ECDSA P-256), in paired rounds whose order
# alternates. Each keygate pinned to core 0 with one worker; wrk (HTTPS,
# 64 connections) and the fixed upstream on core 1.
#
#   bash benches/tls_ab.sh            # 7 rounds x 5 s; ROUNDS=n to change
#
# Prints each round's req/s, p50 and p99 (us) and lean/hyper, then the
# lean instance's lean-path counters (all its requests should be there).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin keygate --bench upstream --bench seed
bin() { find target/release/deps -maxdepth 1 -type f -executable -name "$1-*" -printf '%T@ %p\n' | sort -n | tail -n1 | cut -d' ' -f2; }
work=$(mktemp -d)
ADMIN_KEY=bench-admin-key-0123456789-abcdefghijkl
UP=19000
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench-ca" -keyout $work/ca.key -out $work/ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" -keyout $work/tls.key -out $work/tls.csr 2>/dev/null
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" > $work/ext
openssl x509 -req -in $work/tls.csr -CA $work/ca.pem -CAkey $work/ca.key -CAcreateserial -days 2 -extfile $work/ext -out $work/tls.pem 2>/dev/null
taskset -c 1 "$(bin upstream)" --listen "127.0.0.1:$UP" --fixed >/dev/null 2>&1 & pids+=($!)
"$(bin seed)" --store "sqlite://$work/a.db" --keys 1000 --out "$work/a.keys" --scopes "orders:read" >/dev/null
KEY=$(head -n1 $work/a.keys)
i=0
for engine in lean hyper; do
  i=$((i+1)); port=$((18600 + i * 10))
  sed -e "s|@PUBLIC@|$port|g" -e "s|@ADMIN@|$((port+1))|g" -e "s|@STORE@|sqlite://$work/a.db|g" -e "s|@ALG@|ES256|g" -e "s|@UPSTREAM@|$UP|g" benches/harness/keygate.toml \
    | sed "/^request_timeout/a tls_cert = \"$work/tls.pem\"\ntls_key = \"$work/tls.key\"" > $work/kg$i.toml
  env KEYGATE_SERVER__HTTP1_ENGINE=$engine TOKIO_WORKER_THREADS=1 KEYGATE_ADMIN_KEY=$ADMIN_KEY RUST_LOG=warn taskset -c 0 target/release/keygate serve --config $work/kg$i.toml --log-format text > $work/kg$i.log 2>&1 & pids+=($!)
  for _ in $(seq 1 200); do curl -sf http://127.0.0.1:$((port+1))/readyz >/dev/null && break; sleep 0.05; done
  curl -s -o /dev/null -w "$engine %{http_code} %{http_version}\n" --cacert $work/ca.pem --http1.1 -H "Authorization: Bearer $KEY" https://127.0.0.1:$port/orders/x
done
cat > $work/key.lua <<LUA
wrk.headers["Authorization"] = "Bearer $KEY"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %d %d\n", summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99)))
end
LUA
run() { taskset -c 1 wrk -t1 -c64 -d5s -s $work/key.lua "$1" | grep '^RESULT' | cut -d' ' -f2-; }
echo "round | lean: req/s p50 p99 | hyper: req/s p50 p99 | lean/hyper"
for r in $(seq 1 ${ROUNDS:-7}); do
  if [ $((r % 2)) = 1 ]; then a=$(run https://127.0.0.1:18610/orders/x); b=$(run https://127.0.0.1:18620/orders/x)
  else b=$(run https://127.0.0.1:18620/orders/x); a=$(run https://127.0.0.1:18610/orders/x); fi
  echo "$r | $a | $b" | awk -F' \\| ' '{ split($2, a, " "); split($3, b, " "); printf "%s | %.3f\n", $0, a[1] / b[1] }'
done
curl -s http://127.0.0.1:18611/metrics | grep -E "^keygate_lean_(requests|handoffs)_total" || true
