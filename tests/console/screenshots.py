"""Retakes the console's screenshots in docs/console/ (PNG, 1280 px wide
and a 390 px phone), from a real keygate with a little made-up data.

    bash tests/console/run.sh --screenshots
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from keygate_server import ROOT, Keygate

OUT = ROOT / "docs" / "console"


def seed(kg: Keygate) -> dict:
    _, acme = kg.api("POST", "/v1/organizations", {"name": "Acme Corp", "abbreviation": "ACME"})
    kg.api("POST", "/v1/organizations", {"name": "Globex", "abbreviation": "GLX"})
    _, shop = kg.api("POST", f"/v1/organizations/{acme['id']}/projects", {"name": "shop"})
    kg.api("POST", f"/v1/organizations/{acme['id']}/projects", {"name": "warehouse"})
    made = {}
    for name, scopes, extra in [
        ("billing-worker", ["orders:read", "invoices:write"], {}),
        ("catalog-sync", ["catalog:read"], {"project_id": shop["id"]}),
        ("ci-deployer", ["deploy:write"], {"rate_limit": "10/s"}),
        ("legacy-export", ["orders:read"], {}),
        ("platform-owner", ["orders:read", "catalog:read"], {"role": "owner"}),
    ]:
        body = {"organization_id": acme["id"], "name": name, "scopes": scopes, **extra}
        _, a = kg.api("POST", "/v1/service-accounts", body)
        made[name] = a
    kg.proxy_status(made["billing-worker"]["api_key"]["value"])
    kg.api("PATCH", f"/v1/service-accounts/{made['legacy-export']['id']}", {"enabled": False})
    kg.api("POST", f"/v1/service-accounts/{made['ci-deployer']['id']}/credentials", {"name": "github-actions"})
    kg.api("POST", f"/v1/service-accounts/{made['billing-worker']['id']}/api-keys", {"name": "backup"})
    kg.api("POST", "/v1/signing-keys/rotate", {"activate_after_seconds": 120})
    # last_used_at is written in batches: wait for the first use to land.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, a = kg.api("GET", f"/v1/service-accounts/{made['billing-worker']['id']}")
        if a.get("last_used_at"):
            break
        time.sleep(0.2)
    return {"acme": acme, **made}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    kg = Keygate()
    try:
        data = seed(kg)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium")
            )
            for width, height, suffix in [(1280, 800, ""), (390, 844, "-phone")]:
                ctx = browser.new_context(
                    base_url=kg.admin_url,
                    viewport={"width": width, "height": height},
                    device_scale_factor=1,
                )
                page = ctx.new_page()

                def shot(name: str) -> None:
                    page.screenshot(path=str(OUT / f"{name}{suffix}.png"), full_page=True)

                page.goto("/console/")
                shot("sign-in")
                page.get_by_label("Admin key").fill(kg.admin_key)
                page.get_by_role("button", name="Sign in").click()
                page.get_by_role("heading", name="Organizations", level=1).wait_for()
                shot("organizations")
                page.goto(f"/console/service-accounts?organization_id={data['acme']['id']}")
                shot("service-accounts")
                billing = data["billing-worker"]["id"]
                page.goto(f"/console/service-accounts/{billing}")
                page.get_by_role("button", name="Issue key").click()
                page.locator("#secret-value").wait_for()
                shot("account-key-shown-once")
                page.get_by_role("button", name="Revoke").first.click()
                shot("confirm-revoke")
                page.goto(f"/console/audit?account={billing}")
                shot("audit-log")
                page.goto("/console/replicas")
                shot("replicas")
                page.goto("/console/signing-keys")
                shot("signing-keys")
                ctx.close()
            browser.close()
    finally:
        kg.stop()
    print(f"screenshots written to {OUT}")


if __name__ == "__main__":
    main()
