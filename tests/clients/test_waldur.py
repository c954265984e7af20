"""Conformance tests for keygate's `waldur` compatibility dialect.

Every operation of the two Waldur API documents (project and customer service
accounts) is exercised through the official client, ``waldur-api-client``
(pinned in requirements.txt), pointed at ``{KEYGATE_ADMIN_URL}/compat/waldur``.
Organizations and projects are created with keygate's native admin API.

Environment:
    KEYGATE_ADMIN_URL  admin listener base URL (default http://127.0.0.1:8081)
    KEYGATE_ADMIN_KEY  an admin API key (scope keygate:admin); without it every
                       test is skipped

Run:
    pytest -v test_waldur.py

The expected behaviour is written down in SPEC.md next to this file.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse
from uuid import UUID

import httpx
import pytest
from dateutil.parser import isoparse

from waldur_api_client import AuthenticatedClient, Client
from waldur_api_client.errors import UnexpectedStatus
from waldur_api_client.models.customer_service_account import CustomerServiceAccount
from waldur_api_client.models.customer_service_account_request import CustomerServiceAccountRequest
from waldur_api_client.models.patched_customer_service_account_request import (
    PatchedCustomerServiceAccountRequest,
)
from waldur_api_client.models.patched_project_service_account_request import (
    PatchedProjectServiceAccountRequest,
)
from waldur_api_client.models.project_service_account import ProjectServiceAccount
from waldur_api_client.models.project_service_account_request import ProjectServiceAccountRequest
from waldur_api_client.models.service_account_state import ServiceAccountState
from waldur_api_client.utils import parse_link_header

ADMIN_URL = os.environ.get("KEYGATE_ADMIN_URL", "http://127.0.0.1:8081").rstrip("/")
ADMIN_KEY = os.environ.get("KEYGATE_ADMIN_KEY", "")
BASE_URL = f"{ADMIN_URL}/compat/waldur"
TIMEOUT = httpx.Timeout(10.0)

OK = ServiceAccountState.OK
CLOSED = ServiceAccountState.CLOSED

pytestmark = pytest.mark.skipif(not ADMIN_KEY, reason="KEYGATE_ADMIN_KEY is not set")


# --------------------------------------------------------------------------- kinds


OPERATIONS = (
    "list",
    "count",
    "retrieve",
    "create",
    "update",
    "partial_update",
    "destroy",
    "rotate_api_key",
)


def _operations(kind: str) -> SimpleNamespace:
    """The client's endpoint modules for one kind, e.g. ``api.create.sync_detailed``."""
    package = f"waldur_api_client.api.marketplace_{kind}_service_accounts"
    return SimpleNamespace(
        **{
            op: importlib.import_module(f"{package}.marketplace_{kind}_service_accounts_{op}")
            for op in OPERATIONS
        }
    )


@dataclass(frozen=True)
class Kind:
    """Everything that differs between project and customer service accounts."""

    name: str  # "project" | "customer": also the name of the scope field
    path: str  # URL segment after /api/
    model: type
    request: type
    patched_request: type
    api: SimpleNamespace
    required_keys: frozenset[str]

    def body(self, scope_id: Any, **fields: Any):
        """Request body for create (POST) and update (PUT)."""
        return self.request(**{self.name: scope_id}, **fields)

    def by_scope(self, scope_id: str) -> dict[str, UUID]:
        """List/count filter selecting one scope, e.g. ``project_uuid=…``."""
        return {f"{self.name}_uuid": UUID(scope_id)}


COMMON_REQUIRED_KEYS = frozenset(
    {"url", "uuid", "created", "modified", "error_message", "state", "token", "expires_at"}
)

PROJECT = Kind(
    name="project",
    path="marketplace-project-service-accounts",
    model=ProjectServiceAccount,
    request=ProjectServiceAccountRequest,
    patched_request=PatchedProjectServiceAccountRequest,
    api=_operations("project"),
    required_keys=COMMON_REQUIRED_KEYS
    | {
        "project",
        "project_uuid",
        "project_name",
        "customer_uuid",
        "customer_name",
        "customer_abbreviation",
    },
)

CUSTOMER = Kind(
    name="customer",
    path="marketplace-customer-service-accounts",
    model=CustomerServiceAccount,
    request=CustomerServiceAccountRequest,
    patched_request=PatchedCustomerServiceAccountRequest,
    api=_operations("customer"),
    required_keys=COMMON_REQUIRED_KEYS | {"customer", "customer_uuid", "customer_name"},
)

OPTIONAL_STRING_KEYS = ("username", "description", "email", "preferred_identifier", "error_traceback")


@dataclass(frozen=True)
class Scope:
    """What a service account hangs off: a project (project kind) or an organization."""

    id: str  # project id, or organization id for customer accounts
    name: str
    org_id: str
    org_name: str
    org_abbreviation: str


# --------------------------------------------------------------------------- helpers


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def expect_status(status: int, call: Callable[..., Any], *args: Any, **kwargs: Any) -> UnexpectedStatus:
    """Run a client call that must fail with ``status``; return the client's exception."""
    with pytest.raises(UnexpectedStatus) as excinfo:
        call(*args, **kwargs)
    assert excinfo.value.status_code == status, excinfo.value.content
    return excinfo.value


def error_body(exc: UnexpectedStatus) -> dict[str, Any]:
    body = json.loads(exc.content)
    assert isinstance(body, dict), body
    return body


def assert_detail_error(exc: UnexpectedStatus) -> None:
    """DRF style ``{"detail": "..."}``."""
    body = error_body(exc)
    assert isinstance(body.get("detail"), str) and body["detail"], body


def assert_field_error(exc: UnexpectedStatus, field: str) -> None:
    """DRF style ``{"<field>": ["message", ...]}``."""
    body = error_body(exc)
    assert field in body, body
    assert isinstance(body[field], list) and body[field], body
    assert all(isinstance(message, str) for message in body[field]), body


def key_status(token: str) -> int:
    """Status of a native admin request made with ``token``: 401 once the key is revoked."""
    response = httpx.get(
        f"{ADMIN_URL}/v1/organizations",
        headers={"Authorization": f"Token {token}"},
        timeout=TIMEOUT,
    )
    return response.status_code


def eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """keygate propagates writes to its auth cache asynchronously (DESIGN: < 1 s)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def create_account(client: AuthenticatedClient, kind: Kind, scope: Scope, **fields: Any):
    response = kind.api.create.sync_detailed(client=client, body=kind.body(scope.id, **fields))
    assert response.status_code == 201
    return response.parsed


def retrieve(client: AuthenticatedClient, kind: Kind, account_uuid: UUID):
    return kind.api.retrieve.sync(account_uuid, client=client)


def uuids(accounts) -> set[UUID]:
    return {account.uuid for account in accounts}


def scope_url(kind: Kind, scope: Scope) -> str:
    """A Waldur-style hyperlink to the scope, for the `project` / `customer` URL filter."""
    return f"{BASE_URL}/api/{kind.name}s/{UUID(scope.id).hex}/"


def assert_scope_fields(kind: Kind, account, scope: Scope) -> None:
    assert account.customer_uuid == UUID(scope.org_id)
    assert account.customer_name == scope.org_name
    if kind is PROJECT:
        assert account.project == UUID(scope.id)
        assert account.project_uuid == UUID(scope.id)
        assert account.project_name == scope.name
        assert account.customer_abbreviation == scope.org_abbreviation
    else:
        assert account.customer == UUID(scope.org_id)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def native() -> httpx.Client:
    """keygate's native admin API (``Authorization: Bearer``)."""
    with httpx.Client(
        base_url=ADMIN_URL, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=TIMEOUT
    ) as http:
        yield http


@pytest.fixture(scope="session")
def client() -> AuthenticatedClient:
    """The official Waldur client, authenticated with ``Authorization: Token <admin key>``."""
    with AuthenticatedClient(base_url=BASE_URL, token=ADMIN_KEY, timeout=TIMEOUT) as waldur:
        yield waldur


@pytest.fixture
def make_organization(native: httpx.Client):
    created: list[str] = []

    def make() -> dict[str, Any]:
        name = unique("waldur-org")
        abbreviation = f"W{uuid.uuid4().hex[:6].upper()}"
        response = native.post("/v1/organizations", json={"name": name, "abbreviation": abbreviation})
        assert response.status_code == 201, response.text
        organization = {"id": response.json()["id"], "name": name, "abbreviation": abbreviation}
        created.append(organization["id"])
        return organization

    yield make
    for org_id in created:  # best effort: closed accounts may keep an organization alive
        native.delete(f"/v1/organizations/{org_id}")


@pytest.fixture
def make_project(native: httpx.Client):
    def make(organization: dict[str, Any]) -> dict[str, Any]:
        name = unique("waldur-project")
        response = native.post(f"/v1/organizations/{organization['id']}/projects", json={"name": name})
        assert response.status_code == 201, response.text
        return {"id": response.json()["id"], "name": name, "organization": organization}

    return make


@pytest.fixture
def organization(make_organization) -> dict[str, Any]:
    return make_organization()


@pytest.fixture
def project(make_project, organization) -> dict[str, Any]:
    return make_project(organization)


@pytest.fixture(params=[PROJECT, CUSTOMER], ids=lambda kind: kind.name)
def kind(request) -> Kind:
    return request.param


@pytest.fixture
def make_scope(kind: Kind, make_organization, make_project) -> Callable[[], Scope]:
    """A fresh, empty scope per call, so list counts are exact."""

    def make() -> Scope:
        organization = make_organization()
        org = dict(
            org_id=organization["id"],
            org_name=organization["name"],
            org_abbreviation=organization["abbreviation"],
        )
        if kind is CUSTOMER:
            return Scope(id=organization["id"], name=organization["name"], **org)
        project = make_project(organization)
        return Scope(id=project["id"], name=project["name"], **org)

    return make


@pytest.fixture
def scope(make_scope) -> Scope:
    return make_scope()


# --------------------------------------------------------------------------- create / retrieve


def test_create_returns_token_and_every_field(client, kind, scope):
    username = unique("svc")
    response = kind.api.create.sync_detailed(
        client=client,
        body=kind.body(
            UUID(scope.id),
            username=username,
            description="created by the conformance suite",
            email="svc@example.com",
            preferred_identifier=f"{username}-pid",
        ),
    )

    assert response.status_code == 201
    account = response.parsed
    assert isinstance(account, kind.model)
    assert isinstance(account.token, str) and account.token
    assert account.state == OK
    assert account.error_message == ""
    assert account.username == username
    assert account.description == "created by the conformance suite"
    assert account.email == "svc@example.com"
    assert account.preferred_identifier == f"{username}-pid"
    assert account.created.tzinfo is not None and account.modified.tzinfo is not None
    assert account.url.rstrip("/").rsplit("/", 1)[-1].replace("-", "") == account.uuid.hex
    assert f"/api/{kind.path}/" in account.url
    assert_scope_fields(kind, account, scope)


def test_create_without_username_generates_one(client, kind, scope):
    account = create_account(client, kind, scope)

    assert isinstance(account.username, str) and account.username
    assert account.token


def test_new_token_authenticates(client, kind, scope):
    account = create_account(client, kind, scope)

    assert key_status(account.token) != 401


def test_wire_format_is_waldur_style(client, kind, scope):
    """Raw JSON: 32-hex ids, RFC 3339 times, every required key, strings never null."""
    created = kind.api.create.sync_detailed(client=client, body=kind.body(scope.id, username=unique("svc")))
    fetched = kind.api.retrieve.sync_detailed(created.parsed.uuid, client=client)

    for response in (created, fetched):
        raw = json.loads(response.content)
        assert kind.required_keys <= raw.keys(), kind.required_keys - raw.keys()
        hex_keys = ["uuid", "customer_uuid"] + (["project", "project_uuid"] if kind is PROJECT else ["customer"])
        for key in hex_keys:
            assert re.fullmatch(r"[0-9a-f]{32}", raw[key]), (key, raw[key])
        for key in ("created", "modified"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", raw[key]), raw[key]
            assert isoparse(raw[key]).tzinfo is not None
        assert raw["url"].startswith("http") and raw["url"].endswith(f"/api/{kind.path}/{raw['uuid']}/")
        assert raw["state"] == "OK"
        assert raw["error_message"] == ""
        assert raw["expires_at"] is None or isoparse(raw["expires_at"]).tzinfo is not None
        for key in OPTIONAL_STRING_KEYS:
            assert isinstance(raw.get(key), str), (key, raw.get(key))

    assert isinstance(json.loads(created.content)["token"], str)
    assert json.loads(fetched.content)["token"] is None


def test_retrieve_hides_token_and_accepts_both_uuid_spellings(client, kind, scope):
    account = create_account(client, kind, scope, description="retrieve me")

    by_uuid = kind.api.retrieve.sync_detailed(account.uuid, client=client)  # dashed in the path
    by_hex = kind.api.retrieve.sync_detailed(account.uuid.hex, client=client)  # Waldur spelling

    for response in (by_uuid, by_hex):
        assert response.status_code == 200
        fetched = response.parsed
        assert fetched.uuid == account.uuid
        assert fetched.token is None
        assert fetched.description == "retrieve me"
        assert fetched.created == account.created
        assert_scope_fields(kind, fetched, scope)


# --------------------------------------------------------------------------- list / count


def test_list_filters(client, kind, scope):
    tag = uuid.uuid4().hex[:8]
    alpha = create_account(client, kind, scope, username=f"alpha-{tag}", email=f"Alpha.{tag}@Example.com")
    beta = create_account(client, kind, scope, username=f"beta-{tag}", email=f"beta.{tag}@example.org")
    gamma = create_account(client, kind, scope, username=f"gamma-{tag}")
    everyone = {alpha.uuid, beta.uuid, gamma.uuid}
    in_scope = kind.by_scope(scope.id)

    def listed(**filters) -> set[UUID]:
        response = kind.api.list.sync_detailed(client=client, **filters)
        assert response.status_code == 200
        assert all(isinstance(account, kind.model) for account in response.parsed)
        assert all(account.token is None for account in response.parsed)
        return uuids(response.parsed)

    assert listed(**in_scope) == everyone
    assert listed(**{kind.name: scope_url(kind, scope)}) == everyone  # hyperlink filter
    assert listed(**{kind.name: "not-a-url"}) == set()
    assert listed(username=f"beta-{tag}", **in_scope) == {beta.uuid}
    assert listed(username=f"beta-{tag}") == {beta.uuid}  # without a scope filter
    assert listed(username=f"bet-{tag}", **in_scope) == set()  # exact, not substring
    assert listed(email=f"alpha.{tag}@example", **in_scope) == {alpha.uuid}  # icontains
    assert listed(state=[OK], **in_scope) == everyone
    assert listed(state=[CLOSED], **in_scope) == set()


def test_list_pagination_headers(client, kind, scope):
    accounts = [create_account(client, kind, scope, username=unique("page")) for _ in range(3)]
    in_scope = kind.by_scope(scope.id)
    list_path = f"{urlparse(BASE_URL).path}/api/{kind.path}/"

    first = kind.api.list.sync_detailed(client=client, page_size=2, **in_scope)
    assert first.status_code == 200
    assert len(first.parsed) == 2
    assert first.headers["X-Result-Count"] == "3"
    links = parse_link_header(first.headers["Link"])
    assert set(links) == {"first", "next", "last"}
    assert urlparse(links["next"]).path == list_path
    next_query = parse_qs(urlparse(links["next"]).query)
    assert next_query["page"] == ["2"]
    assert next_query["page_size"] == ["2"]
    assert UUID(next_query[f"{kind.name}_uuid"][0]) == UUID(scope.id)
    assert "page" not in parse_qs(urlparse(links["first"]).query)
    assert parse_qs(urlparse(links["last"]).query)["page"] == ["2"]

    second = kind.api.list.sync_detailed(client=client, page=2, page_size=2, **in_scope)
    assert second.status_code == 200
    assert len(second.parsed) == 1
    assert second.headers["X-Result-Count"] == "3"
    links = parse_link_header(second.headers["Link"])
    assert set(links) == {"first", "prev", "last"}
    assert "page" not in parse_qs(urlparse(links["prev"]).query)  # page 1 is the bare URL

    assert uuids(first.parsed) | uuids(second.parsed) == uuids(accounts)


def test_list_sync_all_follows_link_header(client, kind, scope):
    accounts = [create_account(client, kind, scope, username=unique("all")) for _ in range(3)]

    collected = kind.api.list.sync_all(client=client, **kind.by_scope(scope.id))

    assert uuids(collected) == uuids(accounts)
    assert len(collected) == 3


def test_list_empty_scope(client, kind, scope):
    response = kind.api.list.sync_detailed(client=client, **kind.by_scope(scope.id))

    assert response.status_code == 200
    assert response.parsed == []
    assert response.headers["X-Result-Count"] == "0"


def test_count_via_head(client, kind, scope):
    target = create_account(client, kind, scope, username=unique("count"))
    create_account(client, kind, scope, username=unique("count"))
    in_scope = kind.by_scope(scope.id)

    response = kind.api.count.sync_detailed(client=client, **in_scope)
    assert response.status_code == 200
    assert response.parsed == 2
    assert response.content == b""

    assert kind.api.count.sync(client=client, username=target.username, **in_scope) == 1
    assert kind.api.count.sync(client=client, state=[OK], **in_scope) == 2
    assert kind.api.count.sync(client=client, state=[CLOSED], **in_scope) == 0
    assert kind.api.count.sync(client=client, **{kind.name: scope_url(kind, scope)}) == 2


# --------------------------------------------------------------------------- update


def test_update_put(client, kind, scope):
    account = create_account(
        client, kind, scope, description="before", email="before@example.com", preferred_identifier="pid-1"
    )
    new_username = unique("renamed")

    response = kind.api.update.sync_detailed(
        account.uuid,
        client=client,
        body=kind.body(scope.id, username=new_username, description="after", email="after@example.com"),
    )

    assert response.status_code == 200
    updated = response.parsed
    assert updated.uuid == account.uuid
    assert updated.username == new_username
    assert updated.description == "after"
    assert updated.email == "after@example.com"
    assert updated.preferred_identifier == "pid-1"  # PUT keeps fields it does not send (DRF)
    assert updated.token is None
    assert updated.state == OK
    assert updated.created == account.created
    assert updated.modified >= account.modified
    assert_scope_fields(kind, updated, scope)

    fetched = retrieve(client, kind, account.uuid)
    assert (fetched.username, fetched.description, fetched.email) == (new_username, "after", "after@example.com")
    assert key_status(account.token) != 401  # an update does not touch the key


def test_partial_update_patch(client, kind, scope):
    account = create_account(client, kind, scope, description="before", email="keep@example.com")

    response = kind.api.partial_update.sync_detailed(
        account.uuid, client=client, body=kind.patched_request(description="after", error_traceback="trace")
    )

    assert response.status_code == 200
    patched = response.parsed
    assert patched.description == "after"
    assert patched.error_traceback == "trace"
    assert patched.email == "keep@example.com"
    assert patched.username == account.username
    assert patched.token is None
    assert_scope_fields(kind, patched, scope)

    unchanged = kind.api.partial_update.sync(account.uuid, client=client, body=kind.patched_request())
    assert (unchanged.description, unchanged.email) == ("after", "keep@example.com")

    same_scope = kind.patched_request(**{kind.name: UUID(scope.id)})
    assert kind.api.partial_update.sync(account.uuid, client=client, body=same_scope).description == "after"


def test_update_cannot_move_account_to_another_scope(client, kind, scope, make_scope):
    account = create_account(client, kind, scope)
    other = make_scope()

    exc = expect_status(
        400, kind.api.update.sync, account.uuid, client=client, body=kind.body(other.id, description="moved")
    )
    assert_field_error(exc, kind.name)
    assert retrieve(client, kind, account.uuid).description != "moved"


def test_duplicate_username_is_400(client, kind, scope):
    username = unique("dup")
    create_account(client, kind, scope, username=username)

    exc = expect_status(400, kind.api.create.sync, client=client, body=kind.body(scope.id, username=username))
    assert_field_error(exc, "username")


# --------------------------------------------------------------------------- rotate / destroy


def test_rotate_api_key_invalidates_old_key(client, kind, scope):
    account = create_account(client, kind, scope)
    old_token = account.token
    assert key_status(old_token) != 401

    response = kind.api.rotate_api_key.sync_detailed(account.uuid, client=client)

    assert response.status_code == 200
    rotated = response.parsed
    assert isinstance(rotated, kind.model)
    assert rotated.uuid == account.uuid
    assert rotated.state == OK
    assert isinstance(rotated.token, str) and rotated.token and rotated.token != old_token
    assert rotated.modified >= account.modified
    assert eventually(lambda: key_status(old_token) == 401), "old key still accepted after rotation"
    assert key_status(rotated.token) != 401
    assert retrieve(client, kind, account.uuid).token is None


def test_destroy_closes_account(client, kind, scope):
    account = create_account(client, kind, scope)
    survivor = create_account(client, kind, scope)
    in_scope = kind.by_scope(scope.id)

    response = kind.api.destroy.sync_detailed(account.uuid, client=client)

    assert response.status_code == 204
    assert response.content == b""
    assert response.parsed is None

    closed = retrieve(client, kind, account.uuid)  # keygate keeps closed accounts (SPEC §6)
    assert closed.state == CLOSED
    assert closed.token is None
    assert eventually(lambda: key_status(account.token) == 401), "key still accepted after close"
    assert key_status(survivor.token) != 401

    def listed(**filters) -> set[UUID]:
        return uuids(kind.api.list.sync(client=client, **filters, **in_scope))

    assert listed(state=[CLOSED]) == {account.uuid}
    assert listed(state=[OK]) == {survivor.uuid}
    assert listed(state=[OK, CLOSED]) == {account.uuid, survivor.uuid}
    assert kind.api.count.sync(client=client, state=[OK], **in_scope) == 1

    again = kind.api.destroy.sync_detailed(account.uuid, client=client)  # idempotent
    assert again.status_code == 204


def test_closed_account_rejects_writes(client, kind, scope):
    account = create_account(client, kind, scope)
    kind.api.destroy.sync_detailed(account.uuid, client=client)

    assert_detail_error(expect_status(400, kind.api.rotate_api_key.sync, account.uuid, client=client))
    expect_status(
        400, kind.api.partial_update.sync, account.uuid, client=client, body=kind.patched_request(description="x")
    )
    assert retrieve(client, kind, account.uuid).state == CLOSED


# --------------------------------------------------------------------------- errors


UUID_OPERATIONS: dict[str, Callable[[Kind, Any, Any, Scope], Any]] = {
    "retrieve": lambda kind, client, key, scope: kind.api.retrieve.sync(key, client=client),
    "update": lambda kind, client, key, scope: kind.api.update.sync(
        key, client=client, body=kind.body(scope.id, description="x")
    ),
    "partial_update": lambda kind, client, key, scope: kind.api.partial_update.sync(
        key, client=client, body=kind.patched_request(description="x")
    ),
    "rotate_api_key": lambda kind, client, key, scope: kind.api.rotate_api_key.sync(key, client=client),
    "destroy": lambda kind, client, key, scope: kind.api.destroy.sync_detailed(key, client=client),
}


@pytest.mark.parametrize("operation", list(UUID_OPERATIONS))
def test_unknown_uuid_is_404(client, kind, scope, operation):
    exc = expect_status(404, UUID_OPERATIONS[operation], kind, client, uuid.uuid4(), scope)
    assert_detail_error(exc)


@pytest.mark.parametrize("bad_uuid", ["not-a-uuid", "12345"])
def test_malformed_uuid_is_404(client, kind, bad_uuid):
    expect_status(404, kind.api.retrieve.sync, bad_uuid, client=client)


@pytest.mark.parametrize("case", ["null scope", "unknown scope", "malformed scope", "invalid email"])
def test_create_rejects_bad_input(client, kind, scope, case):
    body, field = {
        "null scope": (kind.body(None), kind.name),
        "unknown scope": (kind.body(uuid.uuid4()), kind.name),
        "malformed scope": (kind.body("not-a-uuid"), kind.name),
        "invalid email": (kind.body(scope.id, email="not-an-email"), "email"),
    }[case]

    exc = expect_status(400, kind.api.create.sync, client=client, body=body)
    assert_field_error(exc, field)
    assert kind.api.list.sync(client=client, **kind.by_scope(scope.id)) == []  # nothing was created


def test_put_requires_scope(client, kind, scope):
    account = create_account(client, kind, scope)

    exc = expect_status(400, kind.api.update.sync, account.uuid, client=client, body=kind.body(None))
    assert_field_error(exc, kind.name)


def test_patch_rejects_invalid_email(client, kind, scope):
    account = create_account(client, kind, scope, email="ok@example.com")

    exc = expect_status(
        400, kind.api.partial_update.sync, account.uuid, client=client, body=kind.patched_request(email="nope")
    )
    assert_field_error(exc, "email")
    assert retrieve(client, kind, account.uuid).email == "ok@example.com"


def test_malformed_uuid_filter_is_400(client, kind):
    exc = expect_status(400, kind.api.list.sync, client=client, **{f"{kind.name}_uuid": "not-a-uuid"})
    assert_field_error(exc, f"{kind.name}_uuid")


@pytest.mark.parametrize("page", [99, 0])
def test_invalid_page_is_404(client, kind, scope, page):
    create_account(client, kind, scope)

    exc = expect_status(404, kind.api.list.sync, client=client, page=page, **kind.by_scope(scope.id))
    assert_detail_error(exc)


def test_bad_token_is_401(kind, scope):
    with AuthenticatedClient(base_url=BASE_URL, token="kg_not_a_real_key", timeout=TIMEOUT) as bad:
        assert_detail_error(expect_status(401, kind.api.list.sync, client=bad))
        expect_status(401, kind.api.count.sync, client=bad)  # HEAD: no body to check
        assert_detail_error(expect_status(401, kind.api.retrieve.sync, uuid.uuid4(), client=bad))
        assert_detail_error(expect_status(401, kind.api.create.sync, client=bad, body=kind.body(scope.id)))
        assert_detail_error(expect_status(401, kind.api.rotate_api_key.sync, uuid.uuid4(), client=bad))


def test_missing_token_is_401(kind):
    with Client(base_url=BASE_URL, timeout=TIMEOUT) as anonymous:
        exc = expect_status(401, kind.api.list.sync, client=anonymous)
    assert_detail_error(exc)


def test_closed_or_rotated_key_cannot_use_the_dialect(client, kind, scope):
    """The service account's own key is a keygate credential; once revoked it gets 401 here too."""
    account = create_account(client, kind, scope)
    kind.api.rotate_api_key.sync(account.uuid, client=client)

    with AuthenticatedClient(base_url=BASE_URL, token=account.token, timeout=TIMEOUT) as revoked:
        assert eventually(lambda: key_status(account.token) == 401)
        expect_status(401, kind.api.list.sync, client=revoked)


def test_project_and_customer_accounts_are_separate(client, organization, project):
    project_scope = Scope(
        id=project["id"],
        name=project["name"],
        org_id=organization["id"],
        org_name=organization["name"],
        org_abbreviation=organization["abbreviation"],
    )
    customer_scope = Scope(
        id=organization["id"],
        name=organization["name"],
        org_id=organization["id"],
        org_name=organization["name"],
        org_abbreviation=organization["abbreviation"],
    )
    project_account = create_account(client, PROJECT, project_scope)
    customer_account = create_account(client, CUSTOMER, customer_scope)

    expect_status(404, CUSTOMER.api.retrieve.sync, project_account.uuid, client=client)
    expect_status(404, PROJECT.api.retrieve.sync, customer_account.uuid, client=client)
    expect_status(404, CUSTOMER.api.rotate_api_key.sync, project_account.uuid, client=client)
    expect_status(404, PROJECT.api.destroy.sync_detailed, customer_account.uuid, client=client)

    assert uuids(CUSTOMER.api.list.sync(client=client, customer_uuid=UUID(organization["id"]))) == {
        customer_account.uuid
    }
    assert uuids(PROJECT.api.list.sync(client=client, project_uuid=UUID(project["id"]))) == {project_account.uuid}
    # a project account still reports its organization
    assert PROJECT.api.retrieve.sync(project_account.uuid, client=client).customer_uuid == UUID(organization["id"])
