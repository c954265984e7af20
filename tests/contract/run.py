"""Fuzzes keygate's admin API from its own contract, /openapi.json.

Starts the keygate binary (``KEYGATE_BIN``) on free loopback ports with a
fresh SQLite store and a known platform-admin key, makes one organization,
project, service account, API key and client credential so the operations
on ``{id}`` paths reach real rows instead of answering 404, then runs
schemathesis with every check on. Every operation the document lists is
tested, so a new one is picked up without touching this file.

    python tests/contract/run.py [extra schemathesis arguments]

The exit status is schemathesis's: 0 only when no check failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from free_ports import free_ports  # noqa: E402  (tests/free_ports.py)

HERE = Path(__file__).resolve().parent
ADMIN_KEY = "contract-test-admin-key-0123456789-abcdefghij"


def call(admin: str, method: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        admin + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def wait_ready(admin: str, proc: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"contract: keygate exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(admin + "/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    sys.exit("contract: keygate was not ready within 30 s")


def seed(admin: str) -> dict[str, str]:
    """Rows for the operations on `{id}` paths, published to the config."""
    org = call(admin, "POST", "/v1/organizations", {"name": "contract-org"})
    project = call(admin, "POST", f"/v1/organizations/{org['id']}/projects", {"name": "p"})
    account = call(
        admin,
        "POST",
        "/v1/service-accounts",
        {"organization_id": org["id"], "name": "contract-bot", "scopes": ["orders:read"]},
    )
    key = call(admin, "POST", f"/v1/service-accounts/{account['id']}/api-keys", {"name": "k"})
    credential = call(admin, "POST", f"/v1/service-accounts/{account['id']}/credentials", {})
    binding = call(
        admin,
        "POST",
        f"/v1/service-accounts/{account['id']}/federated-identities",
        {"issuer": "x509", "subject": "spiffe://example.org/contract"},
    )
    return {
        "KG_ORG": org["id"],
        "KG_PROJECT": project["id"],
        "KG_ACCOUNT": account["id"],
        "KG_KEY": key["id"],
        "KG_CREDENTIAL": credential["id"],
        "KG_BINDING": binding["id"],
    }


def main() -> int:
    binary = os.environ.get("KEYGATE_BIN", "target/debug/keygate")
    work = tempfile.TemporaryDirectory(prefix="keygate-contract-")
    public, admin_port = free_ports()
    admin = f"http://127.0.0.1:{admin_port}"
    env = dict(
        os.environ,
        KEYGATE_ADMIN_KEY=ADMIN_KEY,
        KEYGATE_SERVER__LISTEN=f"127.0.0.1:{public}",
        KEYGATE_ADMIN__LISTEN=f"127.0.0.1:{admin_port}",
        KEYGATE_STORE__URL=f"sqlite://{work.name}/keygate.db",
        # schemathesis sends thousands of bad credentials on purpose and
        # expects each to be told 401; the budget that turns an address's
        # failures into 429 has its own tests.
        KEYGATE_RATE_LIMIT__FAILED_AUTH="1000000/s",
    )
    log = open(Path(work.name) / "keygate.log", "w")
    proc = subprocess.Popen(
        [binary, "serve", "--log-format", "json"], env=env, stdout=log, stderr=log
    )
    try:
        wait_ready(admin, proc, time.monotonic() + 30)
        env.update(seed(admin))
        st = [
            sys.executable,
            str(HERE / "st.py"),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            f"{admin}/openapi.json",
            "--checks",
            "all",
            "--no-color",
            *sys.argv[1:],
        ]
        code = subprocess.run(st, env=env).returncode
        if proc.poll() is not None:
            print(f"contract: keygate died during the run (exit {proc.returncode})")
            code = code or 1
        return code
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
