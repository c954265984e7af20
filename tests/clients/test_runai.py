"""Compatibility tests: keygate's `runai` dialect driven by the official NVIDIA
Run:ai Python client `runapy` (pinned in requirements.txt, 1.224.0 = control
plane 2.24, the seed's API version).

Environment:
    KEYGATE_ADMIN_URL   e.g. http://127.0.0.1:8081   (admin listener, required)
    KEYGATE_ADMIN_KEY   platform admin API key        (required)
    KEYGATE_ORG_ID      optional: reuse an existing organization
    KEYGATE_RUNAI_URL   optional: override <admin>/compat/runai

Bootstrap (native API, admin key as `Authorization: Bearer`):
    POST /v1/organizations {"name"}                          -> 201 {"id"}
    POST /v1/service-accounts {organization_id, name,
         scopes:["keygate:admin"], create_api_key:false}     -> 201 {"id"}
    POST /v1/service-accounts/{id}/credentials {"name"}      -> 201 {client_id, client_secret}
Then runapy is built exactly as its README says:
    RunaiClient(ApiClient(Configuration(client_id, client_secret, runai_base_url)))
(runapy >= 1.218 has no `RunaiClient(client_id=...)` form; that was runapy 0.x,
which has no service-accounts API.)  Constructing ApiClient immediately POSTs
<base>/api/v1/token with {"grantType":"app_token","AppId","AppSecret"} and
decodes the JWT payload with base64.b64decode (standard alphabet!) to read exp.

Run:  KEYGATE_ADMIN_URL=... KEYGATE_ADMIN_KEY=... pytest -v test_runai.py
"""
from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import time
import urllib.error
import urllib.request
import uuid

import pytest

ADMIN_URL = os.environ.get("KEYGATE_ADMIN_URL", "").rstrip("/")
ADMIN_KEY = os.environ.get("KEYGATE_ADMIN_KEY", "")
RUNAI_BASE = (os.environ.get("KEYGATE_RUNAI_URL") or (ADMIN_URL + "/compat/runai")).rstrip("/")
NAME_PATTERN = r"^[a-z][-_a-z0-9]*[a-z0-9]$"

pytestmark = pytest.mark.skipif(
    not (ADMIN_URL and ADMIN_KEY), reason="set KEYGATE_ADMIN_URL and KEYGATE_ADMIN_KEY"
)

SA_REQUIRED = ["name", "createdBy", "createdAt", "updatedAt", "enabled", "lastLogin", "id", "clientId"]


# --------------------------------------------------------------------------- helpers
def http(method, url, body=None, headers=None, raw_body=None):
    """Plain HTTP (no retries). Returns (status, parsed_json_or_text_or_None, headers)."""
    hdrs = {"Accept": "application/json"}
    data = None
    if raw_body is not None:
        data = raw_body if isinstance(raw_body, bytes) else raw_body.encode()
        hdrs["Content-Type"] = "application/json"
    elif body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, text, rh = r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        status, text, rh = e.code, e.read().decode(), e.headers
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text
    return status, parsed, rh


def admin(method, path, body=None):
    return http(method, ADMIN_URL + path, body, {"Authorization": f"Bearer {ADMIN_KEY}"})


def unique(prefix="rt"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def token_request(payload):
    return http("POST", RUNAI_BASE + "/api/v1/token", payload)


def cc_grant(cid, secret):
    return {"grantType": "client_credentials", "clientID": cid, "clientSecret": secret}


def app_grant(cid, secret):
    # byte-for-byte what runapy 1.224.0 sends (api_client.py::_make_token_request)
    return {"grantType": "app_token", "AppId": cid, "AppSecret": secret}


def runapy_decode_payload(jwt):
    """runai/token_refresher.py::_set_token_expiry, verbatim logic."""
    return json.loads(base64.b64decode(jwt.split(".")[1] + "=="))


def parse_ts(value):
    assert isinstance(value, str), value
    return _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_error_body(body, status):
    assert isinstance(body, dict), f"error body must be JSON object, got {body!r}"
    assert body.get("code") == status, body
    assert isinstance(body.get("message"), str) and body["message"], body
    if "details" in body:
        assert isinstance(body["details"], str), body


def assert_api_error(excinfo, status):
    exc = excinfo.value
    assert exc.status == status, f"expected {status}, got {exc.status}: {exc.body}"
    assert_error_body(json.loads(exc.body), status)


def make_client(client_id, client_secret):
    from runai.api_client import ApiClient
    from runai.configuration import Configuration
    from runai.runai_client import RunaiClient

    cfg = Configuration(client_id=client_id, client_secret=client_secret, runai_base_url=RUNAI_BASE)
    return RunaiClient(ApiClient(cfg))


def sa_api(client):
    return client.authentication_and_authorization.service_accounts


def assert_service_account(obj):
    from runai import models

    assert isinstance(obj, dict)
    for k in SA_REQUIRED:
        assert k in obj, f"missing {k} in {obj}"
    assert isinstance(obj["id"], str) and obj["id"] and "_" not in obj["id"]
    assert isinstance(obj["name"], str)
    assert isinstance(obj["clientId"], str)
    assert isinstance(obj["createdBy"], str)
    assert isinstance(obj["enabled"], bool)
    for k in ("createdAt", "updatedAt", "lastLogin"):
        if obj[k] is not None:
            parse_ts(obj[k])
    if "tenantId" in obj:
        assert isinstance(obj["tenantId"], str)
    assert "clientSecret" not in obj, "secret must never be listed"
    models.ServiceAccount.from_dict(obj)  # runapy's own (strict) model accepts it


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def org_id():
    if os.environ.get("KEYGATE_ORG_ID"):
        return os.environ["KEYGATE_ORG_ID"]
    name = unique("runapy-org")
    status, body, _ = admin("POST", "/v1/organizations", {"name": name})
    if status in (400, 422):  # deployment insists on an abbreviation
        status, body, _ = admin("POST", "/v1/organizations", {"name": name, "abbreviation": name[:20]})
    assert status == 201, (status, body)
    return body["id"]


@pytest.fixture(scope="session")
def caller(org_id):
    """keygate service account with keygate:admin + one client credential."""
    status, sa, _ = admin(
        "POST",
        "/v1/service-accounts",
        {"organization_id": org_id, "name": unique("runapy-caller"), "scopes": ["keygate:admin"],
         "create_api_key": False},
    )
    assert status == 201, (status, sa)
    status, cred, _ = admin("POST", f"/v1/service-accounts/{sa['id']}/credentials", {"name": "runapy"})
    assert status == 201, (status, cred)
    assert cred["client_id"] and cred["client_secret"]
    yield {"id": sa["id"], "client_id": cred["client_id"], "client_secret": cred["client_secret"]}
    admin("DELETE", f"/v1/service-accounts/{sa['id']}")


@pytest.fixture(scope="session")
def client(caller):
    c = make_client(caller["client_id"], caller["client_secret"])
    yield c
    c.close()


@pytest.fixture
def created(client):
    """A runai-dialect service account created through runapy; deleted afterwards."""
    from runai import models

    made = []

    def _make(name=None):
        name = name or unique()
        resp = sa_api(client).create_service_account(models.ServiceAccountCreationRequest(name=name))
        made.append(resp.data["id"])
        return resp

    yield _make
    for sid in made:
        try:
            sa_api(client).delete_service_account_by_id(sid)
        except Exception:
            pass


# --------------------------------------------------------------------------- runapy: auth
def test_runapy_construction_fetches_token_with_exp(client, caller):
    api_client = client.api_client
    tok = api_client._token
    assert tok.count(".") == 2
    claims = runapy_decode_payload(tok)
    assert isinstance(claims["exp"], int) and claims["exp"] > time.time() + 60, claims
    assert api_client.token_refresher._token_expiry == claims["exp"]
    assert claims.get("sub") == caller["id"]


def test_runapy_refreshes_token_transparently(client):
    refresher = client.api_client.token_refresher
    refresher._token_expiry = 0  # pretend it is about to expire -> next call re-POSTs /api/v1/token
    resp = sa_api(client).get_service_accounts()
    assert resp.status_code == 200
    assert refresher._token_expiry > time.time() + 60


# --------------------------------------------------------------------------- runapy: CRUD
def test_list_is_bare_array_including_caller(client, caller):
    resp = sa_api(client).get_service_accounts()
    assert resp.status_code == 200
    assert isinstance(resp.data, list)
    for item in resp.data:
        assert_service_account(item)
    mine = [i for i in resp.data if i["id"] == caller["id"]]
    assert len(mine) == 1, "natively created account must be visible through the dialect"
    assert mine[0]["clientId"] == caller["client_id"]
    assert mine[0]["enabled"] is True


def test_create_returns_client_id_and_secret(client, created):
    from runai import models

    name = unique()
    resp = created(name)
    assert resp.status_code == 201
    d = resp.data
    assert d["name"] == name
    for k in ("id", "clientId", "clientSecret"):
        assert isinstance(d[k], str) and d[k], d
    assert "_" not in d["id"], "runapy rewrites '_' to '-' in the whole path"
    models.ServiceAccountPostResponse.from_dict(d)

    got = sa_api(client).get_service_account_by_id(d["id"])
    assert got.status_code == 200
    assert_service_account(got.data)
    assert got.data["id"] == d["id"] and got.data["name"] == name
    assert got.data["clientId"] == d["clientId"]
    assert got.data["enabled"] is True
    assert parse_ts(got.data["createdAt"]) <= _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(minutes=1)

    listed = {i["id"]: i for i in sa_api(client).get_service_accounts().data}
    assert listed[d["id"]]["clientId"] == d["clientId"]


def test_created_account_is_in_callers_org(client, created, org_id):
    d = created().data
    status, native, _ = admin("GET", f"/v1/service-accounts/{d['id']}")
    assert status == 200, native
    assert native["organization_id"] == org_id
    assert native["name"] == d["name"]


def test_created_credentials_mint_tokens_and_drive_runapy(created):
    d = created().data
    for grant in (cc_grant, app_grant):
        status, body, _ = token_request(grant(d["clientId"], d["clientSecret"]))
        assert status == 200, body
        assert isinstance(body["accessToken"], str)
    c = make_client(d["clientId"], d["clientSecret"])  # runapy construction only needs the token
    assert runapy_decode_payload(c.api_client._token)["exp"] > time.time()
    c.close()


def test_patch_enabled_toggles_and_gates_tokens(client, created):
    from runai import models

    d = created().data
    resp = sa_api(client).update_service_account_by_id(d["id"], models.ServiceAccountPatchRequest(enabled=False))
    assert resp.status_code == 200
    assert sa_api(client).get_service_account_by_id(d["id"]).data["enabled"] is False
    status, body, _ = token_request(app_grant(d["clientId"], d["clientSecret"]))
    assert status == 401, body
    assert_error_body(body, 401)

    resp = sa_api(client).update_service_account_by_id(d["id"], models.ServiceAccountPatchRequest(enabled=True))
    assert resp.status_code == 200
    got = sa_api(client).get_service_account_by_id(d["id"]).data
    assert got["enabled"] is True
    assert parse_ts(got["updatedAt"]) >= parse_ts(got["createdAt"])
    status, body, _ = token_request(app_grant(d["clientId"], d["clientSecret"]))
    assert status == 200, body


@pytest.mark.parametrize("patch", [{"enabled": "false"}, {"enabled": None, "x": 1}, {"enabled": 1}, {}])
def test_patch_rejects_missing_or_non_boolean_enabled(client, created, patch):
    from runai.exceptions import BadRequestException

    d = created().data
    # a dict bypasses runapy's pydantic model; {} makes runapy send NO body at all
    with pytest.raises(BadRequestException) as ei:
        sa_api(client).update_service_account_by_id(d["id"], patch)
    assert_api_error(ei, 400)


def test_regenerate_secret(client, created):
    from runai import models

    d = created().data
    resp = sa_api(client).regenerate_service_account_secret(d["id"])  # POST, no body
    assert resp.status_code == 200
    models.RegenerateServiceAccountSecretResponse.from_dict(resp.data)
    new_secret = resp.data["clientSecret"]
    assert isinstance(new_secret, str) and new_secret and new_secret != d["clientSecret"]
    assert sa_api(client).get_service_account_by_id(d["id"]).data["clientId"] == d["clientId"]

    status, body, _ = token_request(app_grant(d["clientId"], d["clientSecret"]))
    assert status == 401, "old secret must stop working"
    assert_error_body(body, 401)
    status, body, _ = token_request(cc_grant(d["clientId"], new_secret))
    assert status == 200, body


def test_delete(client, created):
    from runai.exceptions import NotFoundException

    d = created().data
    resp = sa_api(client).delete_service_account_by_id(d["id"])
    assert resp.status_code == 204
    assert resp.data is None
    with pytest.raises(NotFoundException) as ei:
        sa_api(client).get_service_account_by_id(d["id"])
    assert_api_error(ei, 404)
    assert d["id"] not in {i["id"] for i in sa_api(client).get_service_accounts().data}
    status, body, _ = token_request(app_grant(d["clientId"], d["clientSecret"]))
    assert status == 401, body
    with pytest.raises(NotFoundException):
        sa_api(client).delete_service_account_by_id(d["id"])


def test_deleted_name_can_be_reused(client, created):
    d = created().data
    sa_api(client).delete_service_account_by_id(d["id"])
    again = created(d["name"])
    assert again.status_code == 201 and again.data["id"] != d["id"]


def test_duplicate_name_is_409(client, created):
    from runai import models
    from runai.exceptions import ConflictException

    d = created().data
    with pytest.raises(ConflictException) as ei:
        sa_api(client).create_service_account(models.ServiceAccountCreationRequest(name=d["name"]))
    assert_api_error(ei, 409)


BAD_NAMES = ["a", "A", "Abc", "aBc", "1abc", "-abc", "_abc", "abc-", "abc_", "ab c", "ab.c", "abc!",
             "ab\n", "", "a" * 256, 123, None]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:20] for n in BAD_NAMES])
def test_bad_name_is_400(client, name):
    from runai.exceptions import BadRequestException

    body = {"name": name} if name is not None else {"description": "no name"}
    with pytest.raises(BadRequestException) as ei:
        sa_api(client).create_service_account(body)  # dict bypasses client-side validation
    assert_api_error(ei, 400)


def test_missing_body_is_400(client):
    from runai.exceptions import BadRequestException

    with pytest.raises(BadRequestException) as ei:
        sa_api(client).create_service_account({})  # runapy sends no body for a falsy dict
    assert_api_error(ei, 400)


@pytest.mark.parametrize("name", ["ab", "a1", "a_b-9", "x--__--9"])
def test_edge_valid_names(created, name):
    """Shortest names, '_' inside, digit at the end: all match the seed's pattern."""
    assert created(name).status_code == 201


def test_max_length_name_255(created):
    name = "m" + uuid.uuid4().hex[:10] + "m" * (255 - 11)
    assert len(name) == 255
    assert created(name).status_code == 201


@pytest.mark.parametrize("op", ["get", "patch", "delete", "secret"])
def test_unknown_id_is_404(client, op):
    from runai import models
    from runai.exceptions import NotFoundException

    missing = str(uuid.uuid4())
    api = sa_api(client)
    call = {
        "get": lambda: api.get_service_account_by_id(missing),
        "patch": lambda: api.update_service_account_by_id(missing, models.ServiceAccountPatchRequest(enabled=False)),
        "delete": lambda: api.delete_service_account_by_id(missing),
        "secret": lambda: api.regenerate_service_account_secret(missing),
    }[op]
    with pytest.raises(NotFoundException) as ei:
        call()
    assert_api_error(ei, 404)


def test_malformed_id_is_404(client):
    from runai.exceptions import NotFoundException

    with pytest.raises(NotFoundException) as ei:
        sa_api(client).get_service_account_by_id("not-a-uuid")
    assert_api_error(ei, 404)


# --------------------------------------------------------------------------- raw HTTP: token endpoint
def test_token_client_credentials_grant(caller):
    status, body, headers = token_request(cc_grant(caller["client_id"], caller["client_secret"]))
    assert status == 200, body
    assert headers.get("Content-Type", "").startswith("application/json")
    tok = body["accessToken"]
    claims = runapy_decode_payload(tok)
    assert claims["exp"] > time.time()
    assert claims["sub"] == caller["id"]


def test_token_app_token_grant_exactly_as_runapy_sends_it(caller):
    status, body, _ = token_request(app_grant(caller["client_id"], caller["client_secret"]))
    assert status == 200, body
    assert runapy_decode_payload(body["accessToken"])["exp"] > time.time()


def test_token_official_schema_spellings(caller):
    """Run:ai's own OpenAPI spells app_token fields appID/appSecret and some docs use clientId;
    the real server (Go encoding/json) matches keys case-insensitively."""
    cid, sec = caller["client_id"], caller["client_secret"]
    for payload in (
        {"grantType": "app_token", "appID": cid, "appSecret": sec},
        {"grantType": "client_credentials", "clientId": cid, "clientSecret": sec},
    ):
        status, body, _ = token_request(payload)
        assert status == 200, (payload.keys(), body)


def test_token_payload_survives_runapy_decoder(caller):
    """runapy decodes the payload with the STANDARD base64 alphabet; any '-' or '_' in the
    base64url payload is silently dropped and corrupts the JSON. Keygate must never emit one."""
    for _ in range(25):
        status, body, _ = token_request(app_grant(caller["client_id"], caller["client_secret"]))
        assert status == 200, body
        payload = body["accessToken"].split(".")[1]
        assert "-" not in payload and "_" not in payload, payload
        claims = runapy_decode_payload(body["accessToken"])
        assert isinstance(claims["exp"], int) and claims["exp"] > time.time()


@pytest.mark.parametrize("grant", [cc_grant, app_grant])
def test_token_bad_secret_is_401(caller, grant):
    status, body, _ = token_request(grant(caller["client_id"], "kgs_" + "x" * 38))
    assert status == 401, body
    assert_error_body(body, 401)
    assert "accessToken" not in body


def test_token_unknown_client_is_401():
    status, body, _ = token_request(app_grant("kgc_doesnotexist", "kgs_nope"))
    assert status == 401, body
    assert_error_body(body, 401)


@pytest.mark.parametrize(
    "payload",
    [
        {"grantType": "password", "username": "u", "password": "p"},
        {"grantType": "client_credentials"},
        {"grantType": "app_token", "AppId": "kgc_x"},
        {"clientID": "kgc_x", "clientSecret": "y"},
        "not json",
    ],
    ids=["unsupported-grant", "cc-missing", "app-missing-secret", "no-grant", "not-json"],
)
def test_token_bad_request_is_400(payload):
    if isinstance(payload, str):
        status, body, _ = http("POST", RUNAI_BASE + "/api/v1/token", raw_body=payload)
    else:
        status, body, _ = token_request(payload)
    assert status == 400, body
    assert_error_body(body, 400)


# --------------------------------------------------------------------------- raw HTTP: authz
@pytest.mark.parametrize("auth", [None, "Bearer not-a-token", "Bearer a.b.c"])
def test_endpoints_require_authentication(auth):
    headers = {"Authorization": auth} if auth else {}
    status, body, _ = http("GET", RUNAI_BASE + "/api/v1/service-accounts", headers=headers)
    assert status == 401, body
    assert_error_body(body, 401)


def test_token_without_admin_rights_is_403(created):
    d = created().data  # created through the dialect: no scopes
    status, body, _ = token_request(cc_grant(d["clientId"], d["clientSecret"]))
    assert status == 200, body
    status, body, _ = http(
        "GET", RUNAI_BASE + "/api/v1/service-accounts", headers={"Authorization": f"Bearer {body['accessToken']}"}
    )
    assert status == 403, body
    assert_error_body(body, 403)


def test_raw_create_response_shape(caller):
    status, body, _ = token_request(cc_grant(caller["client_id"], caller["client_secret"]))
    auth = {"Authorization": f"Bearer {body['accessToken']}"}
    name = unique()
    status, body, headers = http("POST", RUNAI_BASE + "/api/v1/service-accounts", {"name": name}, auth)
    try:
        assert status == 201, body
        assert headers.get("Content-Type", "").startswith("application/json")
        assert set(body) >= {"id", "name", "clientId", "clientSecret"}
    finally:
        if status == 201:
            http("DELETE", f"{RUNAI_BASE}/api/v1/service-accounts/{body['id']}", headers=auth)
