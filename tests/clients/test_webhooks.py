"""Webhooks as a receiver sees them: every delivery keygate sends is
verified with the Standard Webhooks reference library (``standardwebhooks``
on PyPI), exactly as a receiver in production would verify it. A receiver
that fails its first attempts is retried with the same ``webhook-id``.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

ADMIN_URL = os.environ["KEYGATE_ADMIN_URL"]
ADMIN_KEY = os.environ["KEYGATE_ADMIN_KEY"]

admin = httpx.Client(headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)


class Receiver:
    """A webhook receiver on loopback that records every request and fails
    the first ``fail_first`` with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.got: list[tuple[dict, bytes]] = []
        self.lock = threading.Lock()
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with outer.lock:
                    outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    n = len(outer.got)
                self.send_response(500 if n <= outer.fail_first else 204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, n: int, within: float = 15.0) -> list[tuple[dict, bytes]]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.got) >= n:
                    return list(self.got)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.got)} of {n} deliveries arrived")

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def subscribe(url: str, events: list[str]) -> tuple[str, str]:
    r = admin.post(f"{ADMIN_URL}/v1/webhooks", json={"url": url, "events": events})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["secret"]


def test_every_delivery_verifies_with_the_standard_webhooks_library(receiver: Receiver) -> None:
    hook, secret = subscribe(receiver.url, ["organization.*", "service_account.*", "api_key.*"])
    org = admin.post(f"{ADMIN_URL}/v1/organizations", json={"name": f"wh-{uuid.uuid4().hex[:8]}"})
    org_id = org.json()["id"]
    acct = admin.post(
        f"{ADMIN_URL}/v1/service-accounts",
        json={"organization_id": org_id, "name": "hooked", "scopes": []},
    ).json()
    admin.post(f"{ADMIN_URL}/v1/service-accounts/{acct['id']}/api-keys", json={})
    admin.patch(f"{ADMIN_URL}/v1/service-accounts/{acct['id']}", json={"enabled": False})
    admin.delete(f"{ADMIN_URL}/v1/service-accounts/{acct['id']}")

    got = receiver.wait_for(5)
    wh = Webhook(secret)
    events = []
    for headers, body in got:
        event = wh.verify(body, headers)  # raises unless the signature holds
        assert set(event) == {"type", "timestamp", "data"}
        events.append(event)
    # Ordered by revision, the events tell the story as it was written.
    by_revision = sorted(events, key=lambda e: e["data"]["revision"])
    assert [e["type"] for e in by_revision] == [
        "organization.created",
        "service_account.created",
        "api_key.created",
        "service_account.disabled",
        "service_account.closed",
    ]
    # The account's own events arrive in revision order (its lane); the
    # organization's event is in another lane and may overtake or trail them.
    account_lane = [e["type"] for e in events if e["type"] != "organization.created"]
    assert account_lane == [
        "service_account.created",
        "api_key.created",
        "service_account.disabled",
        "service_account.closed",
    ]
    # A wrong secret, or a body changed in transit, does not verify.
    headers, body = got[0]
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        wh.verify(body.replace(b"organization", b"0rganization"), headers)
    # The secret is never shown again.
    assert "secret" not in admin.get(f"{ADMIN_URL}/v1/webhooks/{hook}").json()
    admin.delete(f"{ADMIN_URL}/v1/webhooks/{hook}")


def test_a_receiver_that_fails_first_gets_the_same_event_again() -> None:
    r = Receiver(fail_first=2)
    try:
        hook, secret = subscribe(r.url, ["organization.created"])
        admin.post(f"{ADMIN_URL}/v1/organizations", json={"name": f"rt-{uuid.uuid4().hex[:8]}"})
        got = r.wait_for(3)
        wh = Webhook(secret)
        ids = {headers["webhook-id"] for headers, _ in got}
        assert len(ids) == 1
        for headers, body in got:
            assert wh.verify(body, headers)["type"] == "organization.created"
        deadline = time.monotonic() + 10
        while True:
            log = admin.get(f"{ADMIN_URL}/v1/webhooks/{hook}/deliveries").json()["data"]
            if log and log[0]["status"] == "delivered":
                break
            assert time.monotonic() < deadline, log
            time.sleep(0.05)
        assert log[0]["attempts"] == 3
        admin.delete(f"{ADMIN_URL}/v1/webhooks/{hook}")
    finally:
        r.close()
