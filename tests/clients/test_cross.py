"""One core, many dialects: an account made through any dialect is the same
account everywhere. For each dialect: the key or credential it hands out
authenticates at the proxy, the account is visible in ``/v1`` (and in the
other dialects), and disabling it in ``/v1`` cuts it off in the dialect and
at the proxy.
"""

from __future__ import annotations

import os
import time
import uuid

import httpx
import pytest

ADMIN_URL = os.environ["KEYGATE_ADMIN_URL"]
ADMIN_KEY = os.environ["KEYGATE_ADMIN_KEY"]
PUBLIC_URL = os.environ["KEYGATE_PUBLIC_URL"]


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def http(auth: str | None = None, scheme: str = "Bearer") -> httpx.Client:
    headers = {"Authorization": f"{scheme} {auth}"} if auth else {}
    return httpx.Client(headers=headers, timeout=10)


admin = http(ADMIN_KEY)


@pytest.fixture(scope="module")
def scope() -> dict:
    org = admin.post(
        f"{ADMIN_URL}/v1/organizations", json={"name": uniq("cross"), "abbreviation": "CX"}
    ).json()["id"]
    project = admin.post(
        f"{ADMIN_URL}/v1/organizations/{org}/projects", json={"name": uniq("p")}
    ).json()["id"]
    return {"org": org, "project": project}


def at_proxy(bearer: str) -> httpx.Response:
    return http(bearer).get(f"{PUBLIC_URL}/echo/hello")


def eventually(check, what: str, within: float = 3.0):
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def native(account_id: str) -> dict:
    r = admin.get(f"{ADMIN_URL}/v1/service-accounts/{account_id}")
    assert r.status_code == 200, r.text
    return r.json()


def disable(account_id: str) -> None:
    r = admin.patch(f"{ADMIN_URL}/v1/service-accounts/{account_id}", json={"enabled": False})
    assert r.status_code == 200, r.text


def serves(bearer: str, account_id: str) -> None:
    r = at_proxy(bearer)
    assert r.status_code == 200, r.text
    assert r.json()["headers"]["x-keygate-account"] == account_id


def test_waldur_account_is_a_keygate_account(scope):
    base = f"{ADMIN_URL}/compat/waldur/api/marketplace-project-service-accounts/"
    r = http(ADMIN_KEY, "Token").post(base, json={"project": scope["project"], "username": uniq("w")})
    assert r.status_code == 201, r.text
    made = r.json()
    account_id = str(uuid.UUID(made["uuid"]))
    serves(made["token"], account_id)
    assert native(account_id)["project_id"] == scope["project"]
    # The same account through OpenAI's shape.
    listed = admin.get(
        f"{ADMIN_URL}/compat/openai/v1/organization/projects/{scope['project']}/service_accounts",
        params={"limit": 100},
    ).json()
    assert account_id in [a["id"] for a in listed["data"]]

    disable(account_id)
    got = http(ADMIN_KEY, "Token").get(f"{base}{made['uuid']}/").json()
    assert got["state"] == "Erred"
    assert at_proxy(made["token"]).status_code == 401


def test_openai_account_is_a_keygate_account(scope):
    r = admin.post(
        f"{ADMIN_URL}/compat/openai/v1/organization/projects/{scope['project']}/service_accounts",
        json={"name": uniq("o")},
    )
    assert r.status_code == 200, r.text
    made = r.json()
    serves(made["api_key"]["value"], made["id"])
    assert native(made["id"])["name"] == made["name"]
    # …and through Waldur's.
    waldur = http(ADMIN_KEY, "Token").get(
        f"{ADMIN_URL}/compat/waldur/api/marketplace-project-service-accounts/{made['id']}/"
    )
    assert waldur.status_code == 200 and waldur.json()["username"] == made["name"]

    disable(made["id"])
    assert at_proxy(made["api_key"]["value"]).status_code == 401


def token_at(url: str, data: dict, **kw) -> httpx.Response:
    return httpx.post(url, timeout=10, **kw, **data)


def test_orgs_credential_is_a_keygate_credential(scope):
    base = f"{ADMIN_URL}/compat/orgs/organizations/{scope['org']}/service-accounts"
    sa = admin.post(base, json={"name": uniq("g")}).json()
    cred = admin.post(f"{base}/{sa['id']}/credentials", json={"name": "ci"}).json()
    auth = (cred["client_id"], cred["client_secret"])
    r = httpx.post(f"{PUBLIC_URL}/oauth2/token", data={"grant_type": "client_credentials"}, auth=auth)
    assert r.status_code == 200, r.text
    jwt = r.json()["access_token"]
    serves(jwt, sa["id"])
    creds = admin.get(f"{ADMIN_URL}/v1/service-accounts/{sa['id']}/credentials").json()
    assert [c["client_id"] for c in creds["data"]] == [cred["client_id"]]

    disable(sa["id"])
    assert at_proxy(jwt).status_code == 401
    r = httpx.post(f"{PUBLIC_URL}/oauth2/token", data={"grant_type": "client_credentials"}, auth=auth)
    assert r.status_code == 401


def test_runai_account_is_a_keygate_account(scope):
    # A platform-admin-made owner of this org drives Run:ai's API.
    owner = admin.post(
        f"{ADMIN_URL}/v1/service-accounts",
        json={"organization_id": scope["org"], "name": uniq("ops"), "role": "owner", "scopes": []},
    ).json()
    runai = http(owner["api_key"]["value"])
    r = runai.post(f"{ADMIN_URL}/compat/runai/api/v1/service-accounts", json={"name": uniq("r")})
    assert r.status_code == 201, r.text
    made = r.json()
    grant = {"grantType": "app_token", "AppId": made["clientId"], "AppSecret": made["clientSecret"]}
    r = httpx.post(f"{ADMIN_URL}/compat/runai/api/v1/token", json=grant)
    assert r.status_code == 200, r.text
    jwt = r.json()["accessToken"]
    serves(jwt, made["id"])
    assert native(made["id"])["organization_id"] == scope["org"]

    disable(made["id"])
    got = runai.get(f"{ADMIN_URL}/compat/runai/api/v1/service-accounts/{made['id']}").json()
    assert got["enabled"] is False
    assert at_proxy(jwt).status_code == 401
    assert httpx.post(f"{ADMIN_URL}/compat/runai/api/v1/token", json=grant).status_code == 401


def test_dialect_errors_keep_their_own_shape():
    unauthenticated = {
        "/compat/waldur/api/marketplace-project-service-accounts/": lambda b: set(b) == {"detail"},
        "/compat/openai/v1/organization/projects/x/service_accounts": lambda b: set(b["error"])
        == {"message", "type", "param", "code"},
        "/compat/orgs/organizations/x/service-accounts": lambda b: set(b["error"])
        == {"type", "code", "message", "param"},
        "/compat/runai/api/v1/service-accounts": lambda b: b["code"] == 401 and "message" in b,
    }
    for path, shaped in unauthenticated.items():
        r = httpx.get(f"{ADMIN_URL}{path}")
        assert r.status_code == 401 and shaped(r.json()), (path, r.text)
    unknown = {
        "/compat/waldur/api/nope/": lambda b: b == {"detail": "Not found."},
        "/compat/openai/v1/nope": lambda b: b["error"]["code"] == "not_found",
        "/compat/orgs/nope": lambda b: b["error"]["code"] == "not_found",
        "/compat/runai/api/v1/nope": lambda b: b["code"] == 404,
    }
    for path, shaped in unknown.items():
        r = admin.get(f"{ADMIN_URL}{path}")
        assert r.status_code == 404 and shaped(r.json()), (path, r.text)
