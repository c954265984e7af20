"""A workload with no keygate secret: it holds a token from an issuer
keygate trusts (here "py", whose keys keygate reads from a file, as it
would a cluster's) and trades it with a plain HTTP client — RFC 8693 token
exchange and RFC 7523 jwt-bearer, form-encoded as any client sends them —
or sends it as is on a route that accepts the issuer.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

ADMIN_URL = os.environ["KEYGATE_ADMIN_URL"]
ADMIN_KEY = os.environ["KEYGATE_ADMIN_KEY"]
PUBLIC_URL = os.environ["KEYGATE_PUBLIC_URL"]
ISSUER = os.environ["KEYGATE_TEST_ISSUER"]
KEY = ECKey.import_key(json.loads(os.environ["KEYGATE_TEST_ISSUER_KEY"]))
TOKEN_URL = f"{PUBLIC_URL}/oauth2/token"

admin = httpx.Client(headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)


def workload_token(sub: str, **claims) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "sub": sub, "aud": "keygate", "iat": now, "exp": now + 300}
    payload.update(claims)
    return jwt.encode({"alg": "ES256", "kid": "py-1"}, payload, KEY)


def bound_account(sub: str) -> tuple[str, str]:
    """An account with ``sub`` of the "py" issuer bound to it: (account, binding)."""
    org = admin.post(f"{ADMIN_URL}/v1/organizations", json={"name": f"fed-{uuid.uuid4().hex[:8]}"})
    assert org.status_code == 201, org.text
    account = admin.post(
        f"{ADMIN_URL}/v1/service-accounts",
        json={
            "organization_id": org.json()["id"],
            "name": f"workload-{uuid.uuid4().hex[:8]}",
            "scopes": ["echo:read"],
            "create_api_key": False,
        },
    )
    assert account.status_code == 201, account.text
    account_id = account.json()["id"]
    binding = admin.post(
        f"{ADMIN_URL}/v1/service-accounts/{account_id}/federated-identities",
        json={"issuer": "py", "subject": sub, "claims": {"team": "payments"}},
    )
    assert binding.status_code == 201, binding.text
    return account_id, binding.json()["id"]


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_plain_http_client_exchanges_a_workload_token_for_a_keygate_jwt():
    sub = f"system:serviceaccount:payments:{uuid.uuid4().hex[:8]}"
    account_id, binding_id = bound_account(sub)
    t = workload_token(sub, team="payments")
    for form in (
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": t,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        },
        {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": t},
    ):
        r = httpx.post(TOKEN_URL, data=form)
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        body = r.json()
        assert body["token_type"] == "Bearer" and body["scope"] == "echo:read"
        claims = claims_of(body["access_token"])
        assert claims["sub"] == account_id
        assert claims["client_id"] == binding_id
        assert claims["act"] == {"iss": ISSUER, "sub": sub}
        echo = httpx.get(
            f"{PUBLIC_URL}/echo/x", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert echo.status_code == 200, echo.text
        assert echo.json()["headers"]["x-keygate-account"] == account_id

    # As is, on a route that accepts the issuer.
    echo = httpx.get(f"{PUBLIC_URL}/echo/y", headers={"Authorization": f"Bearer {t}"})
    assert echo.status_code == 200, echo.text
    assert echo.json()["headers"]["x-keygate-credential"] == binding_id


def test_a_token_that_matches_no_binding_is_invalid_grant():
    sub = f"system:serviceaccount:payments:{uuid.uuid4().hex[:8]}"
    bound_account(sub)
    wrong_team = workload_token(sub, team="billing")
    r = httpx.post(
        TOKEN_URL,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": wrong_team},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_grant"
    expired = workload_token(sub, team="payments", exp=int(time.time()) - 600)
    r = httpx.post(
        TOKEN_URL,
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": expired,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        },
    )
    assert r.status_code == 400, r.text
    assert r.json() == {"error": "invalid_request", "error_description": "the token has expired"}
