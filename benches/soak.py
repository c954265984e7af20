"""Soak: keygate for a set time at a steady rate with key churn; fails if a
resource grows without bound after warm-up.

    python3 benches/soak.py SECONDS [--rate N] [--out benches/results]

Starts the keygate binary (KEYGATE_BIN) on free loopback ports with a fresh
SQLite store, an upstream that echoes and speaks WebSocket, then for SECONDS:
proxied requests at --rate per second with live keys and minted JWTs; churn
every 200 ms (accounts created and closed, keys issued, rotated, revoked and
issued to expire within seconds, client credentials traded for JWTs); a
WebSocket tunnel opened and closed every 100 ms. Every SAMPLE seconds it
records keygate's RSS, open file descriptors and threads (/proc) and the
cache size and open tunnels (/metrics).

After warm-up (the first half) each series is fitted with a line; a series
whose fitted growth over the second half exceeds its allowance fails the
run. Writes soak.csv and soak.svg into --out. Python standard library only.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ADMIN_KEY = "soak-admin-key-0123456789-abcdefghijklmnop"
SAMPLE = 2.0
# Growth allowed over the second half, per series: (absolute, relative to its mean).
ALLOWANCE = {
    "rss_mib": (8.0, 0.10),
    "fds": (8, 0.10),
    "threads": (4, 0.0),
    "cache_entries": (20, 0.10),
    "tunnels": (4, 0.0),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        if self.headers.get("upgrade", "").lower() == "websocket":
            accept = base64.b64encode(
                __import__("hashlib")
                .sha1((self.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
                .digest()
            ).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            self.rfile.read(2)  # the client's close frame (or EOF)
            self.close_connection = True
            return
        body = b"{}"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class Keygate:
    def __init__(self, binary: str, work: Path, upstream: int) -> None:
        self.public, self.admin = free_port(), free_port()
        cfg = work / "keygate.toml"
        cfg.write_text(
            f"""
[server]
listen = "127.0.0.1:{self.public}"
access_log = false
shutdown_grace = "1s"
[admin]
listen = "127.0.0.1:{self.admin}"
[store]
url = "sqlite://{work}/keygate.db"
poll_interval = "500ms"
[tokens]
issuer = "http://127.0.0.1:{self.public}"
ttl = "1m"
[rate_limit]
failed_auth = "1000000/s"
[[routes]]
name = "orders"
prefix = "/orders"
upstream = "http://127.0.0.1:{upstream}"
websocket = true
"""
        )
        env = dict(os.environ, KEYGATE_ADMIN_KEY=ADMIN_KEY)
        self.log = open(work / "keygate.log", "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", str(cfg), "--log-format", "json"],
            env=env,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/readyz", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                if self.proc.poll() is not None:
                    sys.exit(f"soak: keygate exited with {self.proc.returncode}")
                time.sleep(0.05)
        sys.exit("soak: keygate not ready in 60 s")

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.admin}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
        return json.loads(raw) if raw else {}

    def sample(self) -> dict:
        pid = self.proc.pid
        status = Path(f"/proc/{pid}/status").read_text()
        field = {l.split(":")[0]: l.split(":")[1].strip() for l in status.splitlines() if ":" in l}
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.admin}/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            metrics = r.read().decode()
        gauge = {}
        for line in metrics.splitlines():
            if line.startswith(("keygate_cache_entries", "keygate_websocket_tunnels")):
                name, value = line.rsplit(" ", 1)
                gauge[name.split("{")[0]] = gauge.get(name.split("{")[0], 0.0) + float(value)
        return {
            "rss_mib": int(field["VmRSS"].split()[0]) / 1024,
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": int(field["Threads"]),
            "cache_entries": gauge.get("keygate_cache_entries", 0.0),
            "tunnels": gauge.get("keygate_websocket_tunnels", 0.0),
        }


class Load:
    """The traffic and the churn; counts what went wrong."""

    def __init__(self, kg: Keygate, rate: float) -> None:
        self.kg, self.rate = kg, rate
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.keys: list[str] = []
        self.tokens: list[str] = []
        self.counts = {"proxied": 0, "refused (revoked, expired, closed)": 0, "churn": 0, "tunnels": 0, "errors": 0}
        org = kg.call("POST", "/v1/organizations", {"name": "soak"})
        self.org = org["id"]
        self.accounts: list[str] = []

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def churn_once(self, n: int) -> None:
        kg = self.kg
        a = kg.call("POST", "/v1/service-accounts", {"organization_id": self.org, "name": f"sa-{n}"})
        aid, key = a["id"], a["api_key"]["value"]
        soon = (datetime.now(timezone.utc) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
        kg.call("POST", f"/v1/service-accounts/{aid}/api-keys", {"expires_at": soon})
        extra = kg.call("POST", f"/v1/service-accounts/{aid}/api-keys", {})
        kg.call("DELETE", f"/v1/service-accounts/{aid}/api-keys/{extra['id']}")
        rotated = kg.call("POST", f"/v1/service-accounts/{aid}/rotate-api-key", {"grace_period_seconds": 1})
        cred = kg.call("POST", f"/v1/service-accounts/{aid}/credentials", {})
        form = f"grant_type=client_credentials&client_id={cred['client_id']}&client_secret={cred['client_secret']}"
        req = urllib.request.Request(
            f"http://127.0.0.1:{kg.public}/oauth2/token",
            data=form.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            token = json.loads(r.read())["access_token"]
        with self.lock:
            self.accounts.append(aid)
            self.keys = (self.keys + [key, rotated["api_key"]["value"]])[-40:]
            self.tokens = (self.tokens + [token])[-20:]
            old = self.accounts.pop(0) if len(self.accounts) > 20 else None
        if old:
            kg.call("DELETE", f"/v1/service-accounts/{old}")
        self.count("churn")

    def churn(self) -> None:
        n = 0
        while not self.stop.wait(0.2):
            n += 1
            try:
                self.churn_once(n)
            except (urllib.error.URLError, OSError, KeyError) as e:
                print(f"soak: churn failed: {e}", file=sys.stderr)
                self.count("errors")

    def traffic(self) -> None:
        conn_addr = ("127.0.0.1", self.kg.public)
        period, i = 1.0 / self.rate, 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            with self.lock:
                pool = self.keys + self.tokens
            if pool:
                cred = pool[i % len(pool)]
                i += 1
                try:
                    with socket.create_connection(conn_addr, timeout=5) as s:
                        s.sendall(
                            f"GET /orders/{i} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {cred}\r\n"
                            "Connection: close\r\n\r\n".encode()
                        )
                        status = s.recv(64).split(b" ")[1]
                    self.count("proxied" if status == b"200" else "refused (revoked, expired, closed)")
                except OSError:
                    self.count("errors")
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))

    def tunnels(self) -> None:
        while not self.stop.wait(0.1):
            with self.lock:
                key = self.keys[-1] if self.keys else None
            if key is None:
                continue
            try:
                with socket.create_connection(("127.0.0.1", self.kg.public), timeout=5) as s:
                    nonce = base64.b64encode(os.urandom(16)).decode()
                    s.sendall(
                        (
                            "GET /orders/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n"
                            f"Authorization: Bearer {key}\r\n\r\n"
                        ).encode()
                    )
                    head = s.recv(1024)
                    if head.startswith(b"HTTP/1.1 101"):
                        s.sendall(b"\x88\x80" + os.urandom(4))  # a masked close frame
                        self.count("tunnels")
            except OSError:
                self.count("errors")


def fit(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var


def svg(rows: list[dict], path: Path, title: str) -> None:
    names = list(ALLOWANCE)
    w, h, pad = 720, 150, 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h * len(names) + 30}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="{pad}" y="18" font-size="14">{title}</text>',
    ]
    t_max = max(r["t"] for r in rows) or 1.0
    for k, name in enumerate(names):
        top = 30 + k * h
        ys = [r[name] for r in rows]
        lo, hi = min(ys), max(ys)
        lo, hi = (lo - 1, hi + 1) if hi == lo else (lo, hi)
        pts = " ".join(
            f"{pad + (r['t'] / t_max) * (w - 2 * pad):.1f},{top + h - 30 - (r[name] - lo) / (hi - lo) * (h - 50):.1f}"
            for r in rows
        )
        half = pad + 0.5 * (w - 2 * pad)
        parts += [
            f'<rect x="{pad}" y="{top + 10}" width="{w - 2 * pad}" height="{h - 40}" fill="none" stroke="#ccc"/>',
            f'<line x1="{half}" y1="{top + 10}" x2="{half}" y2="{top + h - 30}" stroke="#eee"/>',
            f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>',
            f'<text x="{pad}" y="{top + 6}">{name}: {lo:.1f} to {hi:.1f}</text>',
            f'<text x="{w - pad}" y="{top + h - 14}" text-anchor="end">{t_max:.0f} s</text>',
        ]
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("seconds", type=float)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--out", default="benches/results")
    args = ap.parse_args()
    binary = os.environ.get("KEYGATE_BIN", "target/debug/keygate")
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    work = tempfile.TemporaryDirectory(prefix="keygate-soak-")
    kg = Keygate(binary, Path(work.name), upstream.server_address[1])
    rows: list[dict] = []
    try:
        load = Load(kg, args.rate)
        workers = [threading.Thread(target=f, daemon=True) for f in (load.churn, load.traffic, load.tunnels)]
        for t in workers:
            t.start()
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < args.seconds:
            rows.append({"t": round(elapsed, 1), **kg.sample()})
            time.sleep(SAMPLE)
        load.stop.set()
        for t in workers:
            t.join(10)
        if kg.proc.poll() is not None:
            print(f"soak: keygate died (exit {kg.proc.returncode})")
            return 1
    finally:
        kg.proc.terminate()
        kg.proc.wait(10)
        kg.log.close()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "soak.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["t", *ALLOWANCE])
        writer.writeheader()
        writer.writerows(rows)
    second = rows[len(rows) // 2 :]
    span = second[-1]["t"] - second[0]["t"]
    failed = []
    print(f"soak: {args.seconds:.0f} s at {args.rate:.0f}/s, {len(rows)} samples; {load.counts}")
    for name, (absolute, relative) in ALLOWANCE.items():
        ys = [r[name] for r in second]
        mean = sum(ys) / len(ys)
        growth = fit([r["t"] for r in second], ys) * span
        allowed = max(absolute, relative * mean)
        verdict = "ok" if growth <= allowed else "GROWS"
        print(f"  {name:14} first {rows[0][name]:8.1f}  mean(2nd half) {mean:8.1f}  fitted growth {growth:+8.2f}  allowed {allowed:6.1f}  {verdict}")
        if growth > allowed:
            failed.append(name)
    svg(rows, out / "soak.svg", f"keygate soak: {args.seconds:.0f} s at {args.rate:.0f} req/s with key churn")
    if load.counts["proxied"] == 0 or load.counts["churn"] == 0 or load.counts["tunnels"] == 0:
        print("soak: the load did not run")
        return 1
    print(f"soak: {'FAILED: ' + ', '.join(failed) if failed else 'no series grows'}; {out}/soak.csv, {out}/soak.svg")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
