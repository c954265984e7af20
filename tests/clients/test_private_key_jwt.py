"""``private_key_jwt`` with a standard client library: Authlib's
``PrivateKeyJWT`` (unpatched) authenticates a credential created with a
``public_jwk`` at keygate's token endpoint, for ``client_credentials``, and
the token it gets works on a proxied route.

Authlib signs assertions that expire an hour after issue unless told
otherwise; keygate accepts at most five minutes ahead, so the client passes
an ``exp`` claim — on a fresh ``PrivateKeyJWT`` per token request, since
Authlib keeps the ``jti`` it adds in that claims dict.
"""

from __future__ import annotations

import os
import time
import uuid

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey, OKPKey, RSAKey

ADMIN_URL = os.environ["KEYGATE_ADMIN_URL"]
ADMIN_KEY = os.environ["KEYGATE_ADMIN_KEY"]
PUBLIC_URL = os.environ["KEYGATE_PUBLIC_URL"]
TOKEN_URL = f"{PUBLIC_URL}/oauth2/token"

admin = httpx.Client(headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)


def key_credential(public_jwk: dict) -> tuple[str, str]:
    """An account with a credential holding ``public_jwk``: (account id, client_id)."""
    org = admin.post(
        f"{ADMIN_URL}/v1/organizations", json={"name": f"pkjwt-{uuid.uuid4().hex[:8]}"}
    )
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
    created = admin.post(
        f"{ADMIN_URL}/v1/service-accounts/{account.json()['id']}/credentials",
        json={"name": "workload", "public_jwk": public_jwk},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert "client_secret" not in body
    assert body["auth_method"] == "private_key_jwt"
    return account.json()["id"], body["client_id"]


def auth(alg: str) -> PrivateKeyJWT:
    return PrivateKeyJWT(TOKEN_URL, alg=alg, claims={"exp": int(time.time()) + 60})


@pytest.mark.parametrize(
    "alg,make",
    [
        ("ES256", lambda: ECKey.generate_key("P-256", parameters={"kid": "ec-1"})),
        ("RS256", lambda: RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})),
        ("EdDSA", lambda: OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1"})),
    ],
)
def test_authlib_private_key_jwt_gets_a_token_that_works_at_the_proxy(alg, make):
    key = make()
    account_id, client_id = key_credential(key.as_dict(private=False))
    for _ in range(2):  # a second token: a fresh assertion, a fresh jti
        client = OAuth2Client(client_id, key, token_endpoint_auth_method=auth(alg))
        token = client.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert token["token_type"] == "Bearer"
        assert token["scope"] == "echo:read"
        r = httpx.get(
            f"{PUBLIC_URL}/echo/hello",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["headers"]["x-keygate-account"] == account_id


def test_a_replayed_assertion_and_a_stranger_key_are_invalid_client():
    key = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
    _, client_id = key_credential(key.as_dict(private=False))
    signer = auth("ES256")
    assertion = signer.sign(type("A", (), {"client_id": client_id, "client_secret": key}), TOKEN_URL)
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    assert httpx.post(TOKEN_URL, data=form).status_code == 200
    replay = httpx.post(TOKEN_URL, data=form)
    assert (replay.status_code, replay.json()["error"]) == (401, "invalid_client")
    stranger = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
    client = OAuth2Client(client_id, stranger, token_endpoint_auth_method=auth("ES256"))
    with pytest.raises(Exception) as refused:
        client.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert "invalid_client" in str(refused.value)
