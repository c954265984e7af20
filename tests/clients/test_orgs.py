"""keygate's `orgs` dialect (organization service accounts with several
credentials each), over plain HTTP: the API has no published client.

Every operation of the API document is exercised, with its errors: create,
list (cursor paging both ways, ``expand[]=permissions``), retrieve, update
and delete of service accounts and of their credentials.
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


def client(key: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{ADMIN_URL}/compat/orgs",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


@pytest.fixture(scope="module")
def native() -> httpx.Client:
    return httpx.Client(
        base_url=ADMIN_URL, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    )


@pytest.fixture(scope="module")
def org(native) -> str:
    r = native.post("/v1/organizations", json={"name": uniq("orgs")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture(scope="module")
def api() -> httpx.Client:
    return client(ADMIN_KEY)


def error_code(r: httpx.Response) -> str:
    body = r.json()
    assert set(body["error"]) == {"type", "code", "message", "param"}, body
    return body["error"]["code"]


def make_account(api, org, **extra) -> dict:
    r = api.post(f"/organizations/{org}/service-accounts", json={"name": uniq("sa"), **extra})
    assert r.status_code == 201, r.text
    return r.json()


def test_service_account_lifecycle(api, org, native):
    made = make_account(api, org, description="billing exporter")
    assert set(made) == {"id", "name", "created_at", "updated_at", "description"}, made
    assert "permissions" not in made
    path = f"/organizations/{org}/service-accounts/{made['id']}"

    got = api.get(path)
    assert got.status_code == 200 and got.json() == made

    r = api.patch(path, json={"name": uniq("renamed"), "description": "new"})
    assert r.status_code == 200, r.text
    assert r.json()["description"] == "new" and r.json()["updated_at"] >= made["updated_at"]

    # The same account in the native API, with no key of its own.
    n = native.get(f"/v1/service-accounts/{made['id']}")
    assert n.status_code == 200 and n.json()["organization_id"] == org

    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404
    assert api.delete(path).status_code == 404
    assert native.get(f"/v1/service-accounts/{made['id']}").json()["state"] == "closed"


def test_credentials_are_several_and_their_secrets_shown_once(api, org):
    sa = make_account(api, org)
    base = f"/organizations/{org}/service-accounts/{sa['id']}/credentials"
    one = api.post(base, json={"name": "ci", "description": "pipeline"})
    two = api.post(base, json={"name": "backup"})
    assert one.status_code == 201 and two.status_code == 201, (one.text, two.text)
    one, two = one.json(), two.json()
    for c in (one, two):
        assert c["client_id"].startswith("kgc_") and c["client_secret"].startswith("kgs_")
        assert "last_used_at" not in c and "permissions" not in c
    assert one["client_id"] != two["client_id"]
    assert one["description"] == "pipeline"

    listed = api.get(base).json()
    assert [c["id"] for c in listed["items"]] == [one["id"], two["id"]]
    assert all("client_secret" not in c for c in listed["items"])
    got = api.get(f"{base}/{one['id']}").json()
    # ServiceAccountCredential lists last_used_at: present, null until first use.
    assert "client_secret" not in got and "last_used_at" in got and got["last_used_at"] is None
    assert all(c["last_used_at"] is None for c in listed["items"])

    # A credential works at the token endpoint; its use is recorded.
    r = httpx.post(
        f"{PUBLIC_URL}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(one["client_id"], one["client_secret"]),
    )
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 20
    while api.get(f"{base}/{one['id']}").json()["last_used_at"] is None:
        assert time.monotonic() < deadline, "last_used_at never recorded"
        time.sleep(0.5)

    r = api.patch(f"{base}/{two['id']}", json={"name": "renamed", "description": "d"})
    assert r.status_code == 200 and r.json()["name"] == "renamed", r.text

    assert api.delete(f"{base}/{two['id']}").status_code == 204
    assert api.get(f"{base}/{two['id']}").status_code == 404
    r = httpx.post(
        f"{PUBLIC_URL}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(two["client_id"], two["client_secret"]),
    )
    assert r.status_code == 401


def test_lists_page_both_ways(api, org, native):
    r = native.post("/v1/organizations", json={"name": uniq("paging")})
    own = r.json()["id"]
    ids = [make_account(api, own)["id"] for _ in range(5)]
    base = f"/organizations/{own}/service-accounts"
    first = api.get(base, params={"limit": 2}).json()
    assert [a["id"] for a in first["items"]] == ids[:2]
    assert first["page_info"]["has_next_page"] is True
    assert first["page_info"]["has_prev_page"] is False
    second = api.get(base, params={"limit": 2, "after": first["page_info"]["end_cursor"]}).json()
    assert [a["id"] for a in second["items"]] == ids[2:4]
    assert second["page_info"]["has_prev_page"] is True
    back = api.get(base, params={"limit": 2, "before": second["page_info"]["start_cursor"]}).json()
    assert [a["id"] for a in back["items"]] == ids[:2]
    assert back["page_info"]["has_prev_page"] is False
    last = api.get(base, params={"limit": 2, "after": ids[3]}).json()
    assert [a["id"] for a in last["items"]] == ids[4:]
    assert last["page_info"]["has_next_page"] is False
    empty = api.get(base, params={"after": ids[4]}).json()
    assert empty["items"] == [] and "start_cursor" not in empty["page_info"]


def test_expand_permissions(api, org, native):
    sa = make_account(api, org)
    for query in ("expand[]=permissions", "expand=permissions", "expand=foo,permissions"):
        one = api.get(f"/organizations/{org}/service-accounts/{sa['id']}?{query}").json()
        perms = one["permissions"]
        assert perms["service_accounts"] == {"read": True, "update": True, "delete": True}
        assert all(isinstance(v, bool) for group in perms.values() for v in group.values())
    listed = api.get(f"/organizations/{org}/service-accounts", params={"expand[]": "permissions"})
    body = listed.json()
    assert body["permissions"]["service_accounts"]["create"] is True
    assert all("permissions" in a for a in body["items"])
    creds = api.get(
        f"/organizations/{org}/service-accounts/{sa['id']}/credentials?expand[]=permissions"
    ).json()
    assert creds["permissions"]["credentials"]["create"] is True

    # An owner holding fewer scopes than an account may read it, not change it.
    richer = native.post(
        "/v1/service-accounts",
        json={"organization_id": org, "name": uniq("rich"), "scopes": ["a:read", "a:write"]},
    ).json()
    owner = native.post(
        "/v1/service-accounts",
        json={"organization_id": org, "name": uniq("owner"), "role": "owner", "scopes": ["a:read"]},
    ).json()
    as_owner = client(owner["api_key"]["value"])
    perms = as_owner.get(
        f"/organizations/{org}/service-accounts/{richer['id']}", params={"expand[]": "permissions"}
    ).json()["permissions"]
    assert perms["service_accounts"] == {"read": True, "update": False, "delete": False}
    r = as_owner.post(
        f"/organizations/{org}/service-accounts/{richer['id']}/credentials", json={"name": "x"}
    )
    assert r.status_code == 403 and error_code(r) == "forbidden"


def test_errors(api, org, native):
    base = f"/organizations/{org}/service-accounts"
    r = api.post(base, json={"description": "no name"})
    assert r.status_code == 400 and error_code(r) == "missing_field"
    r = api.post(base, content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and error_code(r) == "invalid_json"
    name = uniq("dup")
    assert api.post(base, json={"name": name}).status_code == 201
    r = api.post(base, json={"name": name})
    assert r.status_code == 409 and error_code(r) == "duplicate_name"
    for query in ({"limit": 0}, {"limit": 101}, {"after": "nope"}, {"after": str(uuid.uuid4())}):
        r = api.get(base, params=query)
        assert r.status_code == 400, query
    sa = make_account(api, org)
    r = api.patch(f"{base}/{sa['id']}", json={"name": "   "})
    assert r.status_code == 400 and error_code(r) == "invalid_value"
    assert r.json()["error"]["param"] == "name", r.text
    r = api.get(base, params={"after": sa["id"], "before": sa["id"]})
    assert r.status_code == 400
    # Unknown ids, and ids of another organization, are 404.
    other = native.post("/v1/organizations", json={"name": uniq("other")}).json()["id"]
    for path in (
        f"/organizations/{uuid.uuid4()}/service-accounts",
        f"{base}/{uuid.uuid4()}",
        f"/organizations/{other}/service-accounts/{sa['id']}",
        f"{base}/{sa['id']}/credentials/{uuid.uuid4()}",
        "/nowhere",
    ):
        r = api.get(path)
        assert r.status_code == 404 and error_code(r) in ("not_found",), path
    # No credential, a bad one, a member's: 401, 401, 403.
    r = httpx.get(f"{ADMIN_URL}/compat/orgs{base}")
    assert r.status_code == 401 and error_code(r) == "missing_credential"
    assert client("kg_wrong").get(base).status_code == 401
    member = native.post(
        "/v1/service-accounts", json={"organization_id": org, "name": uniq("member")}
    ).json()
    r = client(member["api_key"]["value"]).get(base)
    assert r.status_code == 403
