"""Runs the dialect tests against a real keygate.

Before any test module is imported, this starts the keygate binary
(``KEYGATE_BIN``, default ``target/debug/keygate``) on free loopback ports
with a fresh SQLite store, a known platform-admin key, and one proxied route
(``/echo``, any authenticated account) to a small echoing upstream; then it
publishes where they are in the environment the test modules read:

    KEYGATE_ADMIN_URL    the admin listener (dialects live under /compat/…)
    KEYGATE_ADMIN_KEY    the bootstrap platform admin's key
    KEYGATE_PUBLIC_URL   the public listener (proxy, /oauth2/token)
    KEYGATE_TEST_ISSUER  a trusted issuer ("py", its keys in a jwks_file)
    KEYGATE_TEST_ISSUER_KEY  that issuer's private signing key (a JWK)

If keygate does not come up, the run fails: it never skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from free_ports import free_ports  # noqa: E402  (tests/free_ports.py)

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "clients-test-admin-key-0123456789-abcdefghij"

_state: dict = {}


class _Echo(BaseHTTPRequestHandler):
    """The upstream: answers every request with what it received."""

    def _answer(self) -> None:
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args) -> None:  # quiet
        pass


def pytest_configure(config: pytest.Config) -> None:
    binary = Path(os.environ.get("KEYGATE_BIN", ROOT / "target" / "debug" / "keygate"))
    if not binary.exists():
        pytest.exit(f"keygate binary not found at {binary}: run `cargo build` first", 2)
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    work = tempfile.TemporaryDirectory(prefix="keygate-clients-")
    public, admin = free_ports()
    # A trusted issuer whose tokens the federation tests sign: its public
    # key in a file, as a cluster's keys would be.
    from joserfc.jwk import ECKey

    issuer_key = ECKey.generate_key("P-256", parameters={"kid": "py-1"})
    jwks = Path(work.name) / "issuer-jwks.json"
    jwks.write_text(json.dumps({"keys": [issuer_key.as_dict(private=False)]}))
    issuer = "https://issuer.clients.test"
    cfg = Path(work.name) / "keygate.toml"
    cfg.write_text(
        f"""
[server]
listen = "127.0.0.1:{public}"
shutdown_grace = "1s"
[admin]
listen = "127.0.0.1:{admin}"
[store]
url = "sqlite://{work.name}/keygate.db"
poll_interval = "200ms"
[tokens]
issuer = "http://127.0.0.1:{public}"
[rate_limit]
failed_auth = "6000/m burst 1000"
[events]
allow_insecure_targets = true
retry_first = "200ms"
poll_interval = "100ms"

[[trusted_issuers]]
name = "py"
issuer = "{issuer}"
jwks_file = "{jwks}"
audiences = ["keygate"]
algorithms = ["ES256"]

[[routes]]
name = "echo"
prefix = "/echo"
upstream = "http://127.0.0.1:{upstream.server_address[1]}"
accept_issuers = ["py"]
"""
    )
    env = dict(os.environ, KEYGATE_ADMIN_KEY=ADMIN_KEY, RUST_LOG="warn")
    log = open(Path(work.name) / "keygate.log", "w")
    proc = subprocess.Popen(
        [str(binary), "serve", "--config", str(cfg), "--log-format", "text"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    admin_url = f"http://127.0.0.1:{admin}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{admin_url}/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            text = (Path(work.name) / "keygate.log").read_text()
            pytest.exit(f"keygate did not become ready:\n{text}", 2)
        time.sleep(0.05)
    os.environ["KEYGATE_ADMIN_URL"] = admin_url
    os.environ["KEYGATE_ADMIN_KEY"] = ADMIN_KEY
    os.environ["KEYGATE_PUBLIC_URL"] = f"http://127.0.0.1:{public}"
    os.environ["KEYGATE_TEST_ISSUER"] = issuer
    os.environ["KEYGATE_TEST_ISSUER_KEY"] = json.dumps(issuer_key.as_dict(private=True))
    _state.update(proc=proc, upstream=upstream, work=work, log=log)


def pytest_unconfigure(config: pytest.Config) -> None:
    proc = _state.get("proc")
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    if "upstream" in _state:
        _state["upstream"].shutdown()
    if "log" in _state:
        _state["log"].close()
    if "work" in _state:
        _state["work"].cleanup()
