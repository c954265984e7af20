"""How long console pages take beside the /v1 calls that answer the same
question, measured in one run against a real keygate (interleaved, so load
from elsewhere falls on both alike): a 20-account list page and one
account's page. Prints p50/p99/max over N samples each, and the ratios.

    KEYGATE_BIN=target/release/keygate .venv-console/bin/python tests/console/measure.py [N]
"""

from __future__ import annotations

import http.client
import sys
import time
import urllib.parse

from keygate_server import Keygate


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    kg = Keygate()
    try:
        _, org = kg.api("POST", "/v1/organizations", {"name": "measured"})
        ids = []
        for i in range(20):
            _, a = kg.api(
                "POST",
                "/v1/service-accounts",
                {"organization_id": org["id"], "name": f"sa-{i}", "scopes": ["orders:read"]},
            )
            ids.append(a["id"])
        host = urllib.parse.urlparse(kg.admin_url).netloc
        conn = http.client.HTTPConnection(host)
        conn.request(
            "POST",
            "/console/sign-in",
            body=urllib.parse.urlencode({"key": kg.admin_key}),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        r = conn.getresponse()
        r.read()
        cookie = r.getheader("set-cookie").split(";")[0]
        console = {"cookie": cookie}
        api = {"authorization": f"Bearer {kg.admin_key}"}
        cases = {
            "list: console": (f"/console/service-accounts?organization_id={org['id']}", console),
            "list: /v1": (f"/v1/service-accounts?organization_id={org['id']}", api),
            "account: console": (f"/console/service-accounts/{ids[0]}", console),
            "account: /v1 (account + keys + credentials)": (None, api),
        }
        samples: dict[str, list[float]] = {k: [] for k in cases}

        def get(path: str, headers: dict) -> None:
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            r.read()
            assert r.status == 200, (path, r.status)

        for _ in range(10):  # warm up
            for path, headers in cases.values():
                if path:
                    get(path, headers)
        for _ in range(n):
            for name, (path, headers) in cases.items():
                t = time.perf_counter()
                if path:
                    get(path, headers)
                else:
                    for p in ("", "/api-keys", "/credentials"):
                        get(f"/v1/service-accounts/{ids[0]}{p}", headers)
                samples[name].append((time.perf_counter() - t) * 1000)
        for name, s in samples.items():
            print(
                f"{name:45s} p50 {pct(s, 50):6.2f} ms  p99 {pct(s, 99):6.2f} ms  "
                f"max {max(s):6.2f} ms  (n={len(s)})"
            )
        ratio = lambda a, b: pct(samples[a], 50) / pct(samples[b], 50)
        print(f"list page / list call, p50:       {ratio('list: console', 'list: /v1'):.2f}x")
        print(
            "account page / its three calls, p50: "
            f"{ratio('account: console', 'account: /v1 (account + keys + credentials)'):.2f}x"
        )
    finally:
        kg.stop()


if __name__ == "__main__":
    main()
