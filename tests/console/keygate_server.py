"""A real keygate for the console's browser tests and screenshots.

Starts the keygate binary (``KEYGATE_BIN``, default ``target/debug/keygate``)
on free loopback ports with a fresh SQLite store, a known platform-admin key
and one proxied route (``/echo``, any authenticated account) to a small
echoing upstream, and waits until it is ready.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from free_ports import free_ports  # noqa: E402  (tests/free_ports.py)

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "console-test-admin-key-0123456789-abcdefghij"


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet
        pass


class Keygate:
    """A running keygate and the calls tests make besides the browser."""

    def __init__(self) -> None:
        binary = Path(os.environ.get("KEYGATE_BIN", ROOT / "target" / "debug" / "keygate"))
        if not binary.exists():
            raise RuntimeError(f"keygate binary not found at {binary}: run `cargo build` first")
        self.upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        threading.Thread(target=self.upstream.serve_forever, daemon=True).start()
        self.work = tempfile.TemporaryDirectory(prefix="keygate-console-")
        public, admin = free_ports()
        cfg = Path(self.work.name) / "keygate.toml"
        cfg.write_text(
            f"""
[server]
listen = "127.0.0.1:{public}"
shutdown_grace = "1s"
[admin]
listen = "127.0.0.1:{admin}"
[store]
url = "sqlite://{self.work.name}/keygate.db"
poll_interval = "200ms"
[tokens]
issuer = "http://127.0.0.1:{public}"
[rate_limit]
failed_auth = "6000/m burst 1000"

[[routes]]
name = "echo"
prefix = "/echo"
upstream = "http://127.0.0.1:{self.upstream.server_address[1]}"
"""
        )
        env = dict(os.environ, KEYGATE_ADMIN_KEY=ADMIN_KEY, RUST_LOG="warn")
        self.log_path = Path(self.work.name) / "keygate.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--config", str(cfg), "--log-format", "text"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.admin_url = f"http://127.0.0.1:{admin}"
        self.public_url = f"http://127.0.0.1:{public}"
        self.admin_key = ADMIN_KEY
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.admin_url}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"keygate did not become ready:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    def api(self, method: str, path: str, body: dict | None = None, key: str | None = None):
        """A /v1 call; answers (status, parsed JSON or None)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.admin_url}{path}", data=data, method=method)
        req.add_header("authorization", f"Bearer {key or self.admin_key}")
        if data is not None:
            req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw else None

    def proxy_status(self, key: str) -> int:
        """The proxy's answer to `GET /echo` with `key`."""
        req = urllib.request.Request(f"{self.public_url}/echo/hello")
        req.add_header("authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.upstream.shutdown()
        self.log.close()
        self.work.cleanup()
