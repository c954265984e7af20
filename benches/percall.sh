#!/usr/bin/env bash
# What one request costs each server, not how many it serves: user and
# system CPU and syscalls per request, for keygate's API-key route, HAProxy
# doing the same key check natively, and nginx proxying plainly.
#
#   bash benches/percall.sh                # ~3 minutes on 2 cores
#   ROUNDS=5 DURATION=10s bash benches/percall.sh
#
# Same setup as compare.sh: each server pinned to core 0 with one worker,
# wrk and the fixed upstream on core 1, 64 connections. CPU is read from
# /proc/<pid>/stat before and after each run (user and system ticks, all
# threads); syscalls are counted in a separate pass with `perf stat` on the
# syscall tracepoints (perf slows every server alike, so that pass gives
# counts, not rates). Builds release; installs wrk, nginx, HAProxy and perf
# from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-64}
ADMIN_KEY=bench-admin-key-0123456789-abcdefghijkl
UP=19600 KG_PUBLIC=19680 KG_ADMIN=19681 NGINX=19682 HAP_KEY=19683

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need wrk || missing+=(wrk)
need nginx || missing+=(nginx-light)
need haproxy || missing+=(haproxy)
need perf || missing+=(linux-perf)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "percall: building release"
cargo build --release --quiet --bin keygate --bench upstream --bench seed
bin() { find target/release/deps -maxdepth 1 -type f -executable -name "$1-*" -printf '%T@ %p\n' | sort -n | tail -n1 | cut -d' ' -f2; }
KEYGATE=target/release/keygate
UPSTREAM_BIN=$(bin upstream)
SEED_BIN=$(bin seed)

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_ready() { for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.05; done; echo "not ready: $1" >&2; return 1; }
wait_port() { for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; echo "not listening: $1" >&2; return 1; }

taskset -c 1 "$UPSTREAM_BIN" --listen "127.0.0.1:$UP" --fixed >/dev/null 2>&1 &
pids+=($!)
"$SEED_BIN" --store "sqlite://$work/a.db" --keys 1000 --out "$work/a.keys" --map "$work/keys.map" --scopes "orders:read"
KEY=$(head -n1 "$work/a.keys")
sed -e "s|@PUBLIC@|$KG_PUBLIC|g" -e "s|@ADMIN@|$KG_ADMIN|g" -e "s|@STORE@|sqlite://$work/a.db|g" \
  -e "s|@ALG@|ES256|g" -e "s|@UPSTREAM@|$UP|g" benches/harness/keygate.toml > "$work/kg.toml"
TOKIO_WORKER_THREADS=1 KEYGATE_ADMIN_KEY=$ADMIN_KEY RUST_LOG=warn \
  taskset -c 0 "$KEYGATE" serve --config "$work/kg.toml" --log-format text >>"$work/kg.log" 2>&1 &
KG_PID=$!; pids+=($KG_PID)
sed -e "s|@DIR@|$work|g" -e "s|@PORT@|$NGINX|g" -e "s|@UPSTREAM@|$UP|g" benches/harness/nginx.conf > "$work/nginx.conf"
# nginx's master forks its worker: the worker is what serves.
taskset -c 0 nginx -c "$work/nginx.conf" -p "$work" &
NGINX_MASTER=$!; pids+=($NGINX_MASTER)
sed -e "s|@DIR@|$work|g" -e "s|@PORT@|$HAP_KEY|g" -e "s|@UPSTREAM@|$UP|g" benches/harness/haproxy-key.cfg > "$work/haproxy-key.cfg"
taskset -c 0 haproxy -f "$work/haproxy-key.cfg" -db 2>>"$work/haproxy.log" &
HAP_PID=$!; pids+=($HAP_PID)
wait_ready $KG_ADMIN
wait_port $NGINX
wait_port $HAP_KEY
# This nginx's own worker, not another nginx's on the machine.
NGINX_PID=$(pgrep -P "$NGINX_MASTER" | head -n1)
[ -n "$NGINX_PID" ] || { echo "percall: nginx has no worker" >&2; exit 1; }

check() { local s; s=$(curl -s -o /dev/null -w '%{http_code}' "$@"); [ "$s" = 200 ] || { echo "percall: $* answered $s" >&2; exit 1; }; }
check "http://127.0.0.1:$KG_PUBLIC/orders/x" -H "Authorization: Bearer $KEY"
check "http://127.0.0.1:$HAP_KEY/x" -H "Authorization: Bearer $KEY"
check "http://127.0.0.1:$NGINX/x"

lua() { # file header...
  local f=$1; shift
  {
    for h in "$@"; do echo "wrk.headers[\"${h%%:*}\"] = \"${h#*: }\""; done
    cat <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %.1f %d\n", summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(99)))
end
LUA
  } > "$f"
}
lua "$work/key.lua" "Authorization: Bearer $KEY"
lua "$work/plain.lua"

ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
declare -A URL=([keygate]="http://127.0.0.1:$KG_PUBLIC/orders/x" [haproxy]="http://127.0.0.1:$HAP_KEY/x" [nginx]="http://127.0.0.1:$NGINX/x")
declare -A LUAF=([keygate]="$work/key.lua" [haproxy]="$work/key.lua" [nginx]="$work/plain.lua")
declare -A PID=([keygate]=$KG_PID [haproxy]=$HAP_PID [nginx]=$NGINX_PID)
SERVERS="keygate haproxy nginx"

echo "percall: $ROUNDS rounds x $DURATION per server, $CONNS connections"
echo "| round | server | requests/s | p99 (µs) | user µs/request | system µs/request |"
echo "|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  for s in $SERVERS; do
    read -r u0 s0 < <(ticks "${PID[$s]}")
    line=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" -s "${LUAF[$s]}" "${URL[$s]}" | grep '^RESULT')
    read -r u1 s1 < <(ticks "${PID[$s]}")
    read -r _ n rate p99 <<<"$line"
    awk -v r="$r" -v s="$s" -v n="$n" -v rate="$rate" -v p99="$p99" -v u="$((u1 - u0))" -v k="$((s1 - s0))" -v hz="$HZ" \
      'BEGIN { printf "| %d | %s | %d | %d | %.1f | %.1f |\n", r, s, rate, p99, u / hz * 1e6 / n, k / hz * 1e6 / n }'
  done
done

echo
echo "percall: syscalls per request (a separate pass under perf stat, $DURATION each)"
echo "| server | total | per syscall (those above 0.05 per request) |"
echo "|---|---|---|"
for s in $SERVERS; do
  perf stat -x, -e 'syscalls:sys_enter_*' -p "${PID[$s]}" -o "$work/perf-$s.csv" -- sleep "${DURATION%s}" &
  perf_pid=$!
  sleep 0.5
  line=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$((${DURATION%s} - 1))s" -s "${LUAF[$s]}" "${URL[$s]}" | grep '^RESULT')
  wait $perf_pid
  read -r _ n _ _ <<<"$line"
  # The tail of perf's window has no load; its few calls are counted too.
  awk -F, -v n="$n" -v s="$s" '$3 ~ /syscalls:sys_enter_/ && $1 ~ /^[0-9]+$/ && $1 > 0 {
      name = $3; sub(/syscalls:sys_enter_/, "", name); total += $1
      if ($1 / n >= 0.05) parts = parts sprintf("%s %.2f, ", name, $1 / n) }
    END { sub(/, $/, "", parts); printf "| %s | %.2f | %s |\n", s, total / n, parts }' "$work/perf-$s.csv"
done
