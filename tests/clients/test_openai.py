"""keygate `openai` dialect, exercised through the official `openai` Python SDK.

Run against a live keygate admin listener:

    KEYGATE_ADMIN_URL=http://127.0.0.1:8081 KEYGATE_ADMIN_KEY=<platform admin key> \
        python -m pytest -q test_openai.py

Without those variables every server test is skipped (the one SDK-only test still runs).
Pinned SDK: openai==3.54.0 (see requirements.txt). Everything about the dialect goes
through the SDK (`client.admin.organization.projects.service_accounts...`); only the
fixtures that create organizations/projects and archive projects use keygate's native
API over plain HTTP (httpx2, which the SDK itself depends on).

NB: the SDK sends admin endpoints `Authorization: Bearer <admin_api_key>`. A client built
with only `api_key=` raises TypeError before sending anything, so we pass
`admin_api_key=`.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
import uuid

import pytest

import openai

try:  # openai>=3 depends on httpx2; older stacks ship httpx with the same API
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

ADMIN_URL = os.environ.get("KEYGATE_ADMIN_URL", "").rstrip("/")
ADMIN_KEY = os.environ.get("KEYGATE_ADMIN_KEY", "")
PREFIX = "/compat/openai/v1"

SA_OBJECT = "organization.project.service_account"
KEY_OBJECT = "organization.project.service_account.api_key"
DELETED_OBJECT = "organization.project.service_account.deleted"
SA_FIELDS = {"object", "id", "name", "role", "created_at"}
KEY_FIELDS = {"object", "id", "name", "created_at", "value"}
KEY_OPTIONAL = {"expires_at"}
ERROR_FIELDS = {"message", "type", "param", "code"}


def _need_server() -> None:
    if not ADMIN_URL or not ADMIN_KEY:
        pytest.skip("set KEYGATE_ADMIN_URL and KEYGATE_ADMIN_KEY to run against keygate")


def make_client(key: str, *, strict: bool = True, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(
        admin_api_key=key,
        base_url=ADMIN_URL + PREFIX,
        max_retries=max_retries,
        timeout=30,
        # validate every response against the SDK's pydantic models (Literal
        # `object`/`role` values, required fields, int timestamps)
        _strict_response_validation=strict,
    )


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def assert_unix_seconds(v: object) -> None:
    assert isinstance(v, int) and not isinstance(v, bool), v
    now = time.time()
    assert now - 600 < v < now + 600, f"{v} is not unix seconds close to now ({now})"


def assert_raw_sa(d: dict) -> None:
    """Raw JSON of a ProjectServiceAccount: exact keys and JSON types (the SDK's pydantic
    models would silently coerce e.g. "1711471533" to an int)."""
    assert set(d) == SA_FIELDS, d
    assert d["object"] == SA_OBJECT
    assert isinstance(d["id"], str) and d["id"]
    assert isinstance(d["name"], str)
    assert d["role"] in ("owner", "member")
    assert_unix_seconds(d["created_at"])


def assert_raw_key(d: dict) -> None:
    """Raw JSON of a service-account API key as returned on create."""
    assert KEY_FIELDS <= set(d) <= KEY_FIELDS | KEY_OPTIONAL, d
    assert d["object"] == KEY_OBJECT
    assert isinstance(d["id"], str) and d["id"]
    assert isinstance(d["name"], str)
    assert isinstance(d["value"], str) and d["value"]
    assert_unix_seconds(d["created_at"])
    if d.get("expires_at") is not None:
        assert isinstance(d["expires_at"], int) and not isinstance(d["expires_at"], bool)


def assert_error(exc: openai.APIStatusError, status: int) -> dict:
    """OpenAI error shape: {"error": {"message","type","param","code"}}; returns the inner dict."""
    assert exc.status_code == status
    assert exc.response.headers.get("content-type", "").split(";")[0].strip() == "application/json"
    outer = exc.response.json()
    assert set(outer) == {"error"}, outer
    inner = outer["error"]
    assert ERROR_FIELDS <= set(inner), inner
    assert isinstance(inner["message"], str) and inner["message"]
    assert isinstance(inner["type"], str) and inner["type"]
    assert inner["param"] is None or isinstance(inner["param"], str)
    assert inner["code"] is None or isinstance(inner["code"], str)
    # what the SDK exposes on the exception
    assert exc.body == inner
    assert exc.type == inner["type"]
    assert exc.param == inner["param"]
    assert exc.code == inner["code"]
    assert inner["message"] in str(exc)
    return inner


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def native():
    _need_server()
    with httpx.Client(
        base_url=ADMIN_URL, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as c:
        yield c


@pytest.fixture(scope="session")
def client():
    _need_server()
    c = make_client(ADMIN_KEY)
    yield c
    c.close()


@pytest.fixture
def sas(client):
    return client.admin.organization.projects.service_accounts


def _create_org(native) -> str:
    name = uniq("oa-test-org")
    r = native.post("/v1/organizations", json={"name": name, "abbreviation": name[-12:].upper()})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _create_project(native, org_id: str) -> str:
    r = native.post(f"/v1/organizations/{org_id}/projects", json={"name": uniq("oa-test-project")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture
def org(native) -> str:
    return _create_org(native)


@pytest.fixture
def project(native, org) -> str:
    return _create_project(native, org)


@pytest.fixture
def other_project(native, org) -> str:
    return _create_project(native, org)


def archive(native, project_id: str) -> None:
    r = native.patch(f"/v1/projects/{project_id}", json={"archived": True})
    assert r.status_code == 200, r.text


# --------------------------------------------------------------------------- SDK-only


def test_sdk_sends_admin_key_only_when_admin_api_key_is_set(monkeypatch):
    """Documents an SDK fact the dialect depends on (no server needed): admin endpoints
    authenticate with `admin_api_key` only; `api_key` alone fails client-side."""
    monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
    monkeypatch.delenv("OPENAI_CUSTOM_HEADERS", raising=False)
    c = openai.OpenAI(api_key="kg_not_used", base_url="http://127.0.0.1:9/compat/openai/v1", max_retries=0)
    with pytest.raises(TypeError, match="admin_api_key"):
        c.admin.organization.projects.service_accounts.list("p")


# --------------------------------------------------------------------------- list


def test_list_empty_project(sas, project):
    raw = sas.with_raw_response.list(project)
    assert raw.http_response.status_code == 200
    body = raw.http_response.json()
    assert body == {"object": "list", "data": [], "has_more": False, "first_id": None, "last_id": None}
    page = raw.parse()
    assert page.data == [] and page.has_more is False and page.last_id is None
    assert list(sas.list(project)) == []


def test_list_default_limit_cursor_fields_and_auto_pagination(sas, project):
    created = [sas.create(project, name=uniq(f"sa{i:02d}")).id for i in range(25)]
    assert len(set(created)) == 25

    # default limit is 20
    first = sas.list(project)
    assert len(first.data) == 20
    assert first.has_more is True
    assert first.first_id == first.data[0].id
    assert first.last_id == first.data[-1].id
    raw = sas.with_raw_response.list(project).http_response.json()
    assert raw["object"] == "list"
    assert set(raw) == {"object", "data", "has_more", "first_id", "last_id"}
    assert isinstance(raw["has_more"], bool)
    for item in raw["data"]:
        assert_raw_sa(item)

    # the next page is requested with ?after=<last_id> (SDK's ConversationCursorPage)
    assert first.has_next_page()
    second = first.get_next_page()
    assert len(second.data) == 5
    assert second.has_more is False
    assert second.first_id == second.data[0].id and second.last_id == second.data[-1].id
    assert not second.has_next_page()
    assert {s.id for s in first.data} | {s.id for s in second.data} == set(created)

    # one big page: the canonical order
    everything = sas.list(project, limit=100)
    assert everything.has_more is False
    order = [s.id for s in everything.data]
    assert sorted(order) == sorted(created)

    # auto-pagination with a small limit: same items, same order, no duplicates
    assert [s.id for s in sas.list(project, limit=7)] == order
    pages = list(sas.list(project, limit=7).iter_pages())
    assert [len(p.data) for p in pages] == [7, 7, 7, 4]
    assert [p.has_more for p in pages] == [True, True, True, False]

    # exact has_more: 25 items in pages of 5 -> exactly 5 pages, the last has_more=false
    pages = list(sas.list(project, limit=5).iter_pages())
    assert [len(p.data) for p in pages] == [5] * 5
    assert pages[-1].has_more is False

    # explicit cursor
    page = sas.list(project, limit=3, after=order[9])
    assert [s.id for s in page.data] == order[10:13]

    # auto-pagination without limit (pages of 20)
    assert [s.id for s in sas.list(project)] == order

    # items are full ProjectServiceAccount objects
    for s in everything.data:
        assert s.object == SA_OBJECT
        assert s.role == "member"
        assert isinstance(s.name, str) and s.name.startswith("sa")
        assert_unix_seconds(s.created_at)


def test_list_limit_bounds(sas, project):
    sas.create(project, name=uniq("one"))
    assert len(sas.list(project, limit=1).data) == 1
    assert len(sas.list(project, limit=100).data) == 1
    for bad in (0, 101, -1):
        with pytest.raises(openai.BadRequestError) as ei:
            sas.list(project, limit=bad)
        err = assert_error(ei.value, 400)
        assert err["param"] == "limit"
        assert err["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as ei:
        sas.list(project, extra_query={"limit": "abc"})
    assert assert_error(ei.value, 400)["param"] == "limit"


def test_list_only_this_projects_active_accounts(native, sas, org, project, other_project):
    mine = sas.create(project, name=uniq("mine")).id
    theirs = sas.create(other_project, name=uniq("theirs")).id
    gone = sas.create(project, name=uniq("gone")).id
    sas.delete(gone, project_id=project)
    # an org-scoped account (no project) made through the native API is not listed
    r = native.post(
        "/v1/service-accounts",
        json={"organization_id": org, "name": uniq("orgwide"), "scopes": [], "create_api_key": False},
    )
    assert r.status_code == 201, r.text
    ids = [s.id for s in sas.list(project)]
    assert ids == [mine]
    assert theirs not in ids and gone not in ids and r.json()["id"] not in ids


def test_native_owner_account_visible_with_role_owner(native, sas, org, project):
    r = native.post(
        "/v1/service-accounts",
        json={"organization_id": org, "project_id": project, "name": uniq("native-owner"),
              "role": "owner", "scopes": []},
    )
    assert r.status_code == 201, r.text
    sa_id = r.json()["id"]
    listed = {s.id: s for s in sas.list(project)}
    assert listed[sa_id].role == "owner"
    got = sas.retrieve(sa_id, project_id=project)
    assert got.role == "owner" and got.object == SA_OBJECT


# --------------------------------------------------------------------------- create


def test_create_returns_unredacted_key_once(sas, project):
    name = uniq("svc")
    raw = sas.with_raw_response.create(project, name=name)
    assert raw.http_response.status_code == 200  # seed 002: 200, not 201
    body = raw.http_response.json()
    assert set(body) == SA_FIELDS | {"api_key"}
    assert_raw_sa({k: v for k, v in body.items() if k != "api_key"})
    assert body["role"] == "member"
    assert_raw_key(body["api_key"])

    sa = raw.parse()
    assert sa.object == SA_OBJECT
    assert sa.name == name
    assert sa.role == "member"
    assert isinstance(sa.id, str) and sa.id
    assert_unix_seconds(sa.created_at)
    key = sa.api_key
    assert key is not None
    assert key.object == KEY_OBJECT
    assert isinstance(key.value, str) and len(key.value) >= 20
    assert isinstance(key.id, str) and key.id and key.id != sa.id
    assert isinstance(key.name, str)
    assert_unix_seconds(key.created_at)
    assert key.expires_at is None

    # the value is never shown again
    for again in (
        sas.with_raw_response.retrieve(sa.id, project_id=project).http_response.text,
        sas.with_raw_response.list(project).http_response.text,
    ):
        assert key.value not in again
        assert "value" not in again and "api_key" not in again


def test_create_key_is_a_real_keygate_key(sas, project):
    sa = sas.create(project, name=uniq("member"))
    member = make_client(sa.api_key.value)
    # authenticates (not 401) but a member may not manage service accounts -> 403
    with pytest.raises(openai.PermissionDeniedError) as ei:
        member.admin.organization.projects.service_accounts.list(project)
    assert_error(ei.value, 403)


def test_create_service_account_only_and_expiring_key(sas, project):
    bare = sas.create(project, name=uniq("bare"), create_service_account_only=True)
    assert bare.api_key is None
    assert bare.role == "member"
    assert sas.retrieve(bare.id, project_id=project).id == bare.id

    exp = sas.create(project, name=uniq("exp"), expires_in_seconds=3600)
    assert exp.api_key is not None
    assert abs(exp.api_key.expires_at - (time.time() + 3600)) < 120

    with pytest.raises(openai.BadRequestError) as ei:
        sas.create(project, name=uniq("both"), create_service_account_only=True, expires_in_seconds=60)
    assert assert_error(ei.value, 400)["param"] == "expires_in_seconds"


def test_create_validation(sas, project):
    for bad in ("", "   "):
        with pytest.raises(openai.BadRequestError) as ei:
            sas.create(project, name=bad)
        assert assert_error(ei.value, 400)["param"] == "name"
    with pytest.raises(openai.BadRequestError) as ei:
        sas.create(project, name="x", extra_body={"name": None})
    assert assert_error(ei.value, 400)["param"] == "name"


def test_duplicate_name_in_organization_conflicts(sas, project, other_project):
    name = uniq("dup")
    sas.create(project, name=name)
    for pid in (project, other_project):  # keygate: names are unique within an organization
        with pytest.raises(openai.ConflictError) as ei:
            sas.create(pid, name=name)
        assert_error(ei.value, 409)
        # the SDK retries 409 by default (max_retries=2); keygate tells it not to
        assert ei.value.response.headers.get("x-should-retry") == "false"


# --------------------------------------------------------------------------- retrieve


def test_retrieve(sas, project, other_project):
    made = sas.create(project, name=uniq("ret"))
    raw = sas.with_raw_response.retrieve(made.id, project_id=project)
    assert raw.http_response.status_code == 200
    assert_raw_sa(raw.http_response.json())
    got = raw.parse()
    assert (got.id, got.name, got.role, got.created_at, got.object) == (
        made.id, made.name, "member", made.created_at, SA_OBJECT)
    # same organization, wrong project -> 404
    with pytest.raises(openai.NotFoundError) as ei:
        sas.retrieve(made.id, project_id=other_project)
    assert_error(ei.value, 404)


# --------------------------------------------------------------------------- delete


def test_delete(sas, project):
    sa = sas.create(project, name=uniq("del"))
    raw = sas.with_raw_response.delete(sa.id, project_id=project)
    assert raw.http_response.status_code == 200
    assert raw.http_response.json() == {"object": DELETED_OBJECT, "id": sa.id, "deleted": True}
    d = raw.parse()
    assert d.object == DELETED_OBJECT and d.id == sa.id and d.deleted is True

    with pytest.raises(openai.NotFoundError):
        sas.retrieve(sa.id, project_id=project)
    with pytest.raises(openai.NotFoundError):
        sas.delete(sa.id, project_id=project)
    with pytest.raises(openai.NotFoundError):
        sas.api_keys.create(sa.id, project_id=project)
    assert sa.id not in [s.id for s in sas.list(project)]

    # every key of a deleted account stops working (admin writes reach the cache within 1 s)
    dead = make_client(sa.api_key.value).admin.organization.projects.service_accounts
    deadline = time.time() + 3
    while True:
        try:
            dead.list(project)
        except openai.AuthenticationError as e:
            assert_error(e, 401)
            break
        except openai.PermissionDeniedError:
            pass
        assert time.time() < deadline, "key of a deleted account still authenticates"
        time.sleep(0.2)


# --------------------------------------------------------------------------- api_keys


def test_api_keys_create(sas, project):
    sa = sas.create(project, name=uniq("keys"))
    raw = sas.api_keys.with_raw_response.create(sa.id, project_id=project, name="ci-deploy")
    assert raw.http_response.status_code == 200
    assert_raw_key(raw.http_response.json())
    k = raw.parse()
    assert k.object == KEY_OBJECT
    assert k.name == "ci-deploy"
    assert isinstance(k.id, str) and k.id and k.id != sa.api_key.id
    assert isinstance(k.value, str) and k.value and k.value != sa.api_key.value
    assert_unix_seconds(k.created_at)
    assert k.expires_at is None

    unnamed = sas.api_keys.create(sa.id, project_id=project)
    assert isinstance(unnamed.name, str)
    expiring = sas.api_keys.create(sa.id, project_id=project, expires_in_seconds=600)
    assert abs(expiring.expires_at - (time.time() + 600)) < 120
    for bad in (0, -5):
        with pytest.raises(openai.BadRequestError) as ei:
            sas.api_keys.create(sa.id, project_id=project, expires_in_seconds=bad)
        assert assert_error(ei.value, 400)["param"] == "expires_in_seconds"

    # the new key is a real keygate credential of that (member) account
    with pytest.raises(openai.PermissionDeniedError):
        make_client(k.value).admin.organization.projects.service_accounts.list(project)
    # and the key value never appears in reads
    assert k.value not in sas.with_raw_response.retrieve(sa.id, project_id=project).http_response.text


def test_owner_key_manages_only_its_project(native, org, project, other_project):
    r = native.post(
        "/v1/service-accounts",
        json={"organization_id": org, "project_id": project, "name": uniq("owner"),
              "role": "owner", "scopes": []},
    )
    assert r.status_code == 201, r.text
    owner = make_client(r.json()["api_key"]["value"]).admin.organization.projects.service_accounts
    made = owner.create(project, name=uniq("by-owner"))
    assert made.id in [s.id for s in owner.list(project)]
    with pytest.raises(openai.PermissionDeniedError) as ei:
        owner.list(other_project)
    assert_error(ei.value, 403)


# --------------------------------------------------------------------------- errors


def test_archived_project_is_400_for_every_operation(native, sas, project):
    sa = sas.create(project, name=uniq("arch"))
    archive(native, project)
    calls = {
        "list": lambda: sas.list(project),
        "create": lambda: sas.create(project, name=uniq("late")),
        "retrieve": lambda: sas.retrieve(sa.id, project_id=project),
        "delete": lambda: sas.delete(sa.id, project_id=project),
        "api_keys.create": lambda: sas.api_keys.create(sa.id, project_id=project),
    }
    for what, call in calls.items():
        with pytest.raises(openai.BadRequestError) as ei:
            call()
        err = assert_error(ei.value, 400)
        assert err["type"] == "invalid_request_error", what
        assert err["code"] == "project_archived", what
        assert "archived" in err["message"].lower(), what


def test_not_found(sas, project):
    ghost = str(uuid.uuid4())
    opaque = "svc_acct_abc"  # the SDK treats ids as opaque: a non-UUID is 404, never 400/422
    for call in (
        lambda: sas.retrieve(ghost, project_id=project),
        lambda: sas.retrieve(opaque, project_id=project),
        lambda: sas.delete(ghost, project_id=project),
        lambda: sas.delete(opaque, project_id=project),
        lambda: sas.api_keys.create(ghost, project_id=project),
        lambda: sas.list(ghost),
        lambda: sas.list("proj_abc"),
        lambda: sas.create(ghost, name=uniq("nowhere")),
        lambda: sas.retrieve(ghost, project_id=ghost),
    ):
        with pytest.raises(openai.NotFoundError) as ei:
            call()
        err = assert_error(ei.value, 404)
        assert err["type"] == "invalid_request_error"


def test_other_organizations_project_is_404(native, sas, org, project):
    stranger_project = _create_project(native, _create_org(native))
    sa = sas.create(stranger_project, name=uniq("stranger"))
    # an owner of `project` must not learn anything about another organization
    r = native.post("/v1/service-accounts", json={
        "organization_id": org, "project_id": project, "name": uniq("owner"), "role": "owner", "scopes": []})
    assert r.status_code == 201, r.text
    owner = make_client(r.json()["api_key"]["value"]).admin.organization.projects.service_accounts
    for call in (lambda: owner.list(stranger_project),
                 lambda: owner.retrieve(sa.id, project_id=stranger_project)):
        with pytest.raises(openai.NotFoundError) as ei:
            call()
        assert_error(ei.value, 404)


@pytest.mark.parametrize("bad_key", ["kg_" + "A" * 32 + "_AAAAAA", "not-a-keygate-key"])
def test_bad_key_is_401(project, bad_key):
    bad = make_client(bad_key).admin.organization.projects.service_accounts
    with pytest.raises(openai.AuthenticationError) as ei:
        bad.list(project)
    err = assert_error(ei.value, 401)
    assert err["code"] == "invalid_api_key"
    assert bad_key not in json.dumps(err)  # never echo a presented secret


# --------------------------------------------------------------------------- async client


def test_async_client_auto_pagination(sas, project):
    made = {sas.create(project, name=uniq(f"as{i}")).id for i in range(5)}

    async def run() -> list[str]:
        ac = openai.AsyncOpenAI(admin_api_key=ADMIN_KEY, base_url=ADMIN_URL + PREFIX, max_retries=0,
                                timeout=30, _strict_response_validation=True)
        try:
            return [s.id async for s in ac.admin.organization.projects.service_accounts.list(project, limit=2)]
        finally:
            await ac.close()

    ids = asyncio.run(run())
    assert len(ids) == 5 and set(ids) == made
