"""The native API's OpenAPI document, checked by independent tools.

``openapi-spec-validator`` validates ``/openapi.json`` against the OpenAPI
3.1 schema; ``openapi-core`` then holds real traffic to it: every request
sent here must match the document, and so must every answer keygate gives,
successes and errors alike.
"""

from __future__ import annotations

import os
import uuid

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_spec_validator import validate

ADMIN = os.environ["KEYGATE_ADMIN_URL"]
KEY = os.environ["KEYGATE_ADMIN_KEY"]


@pytest.fixture(scope="module")
def document() -> dict:
    r = requests.get(f"{ADMIN}/openapi.json", timeout=10)
    assert r.status_code == 200
    return r.json()


@pytest.fixture(scope="module")
def api(document: dict) -> OpenAPI:
    served = dict(document, servers=[{"url": ADMIN}])
    return OpenAPI.from_dict(served)


def call(api: OpenAPI, method: str, path: str, body=None, key: str | None = KEY, **query):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = requests.request(method, ADMIN + path, json=body, params=query or None, headers=headers, timeout=10)
    request = RequestsOpenAPIRequest(r.request)
    if r.status_code < 400:
        # What we sent is what the document describes (errors are sent on purpose).
        api.validate_request(request)
    api.validate_response(request, RequestsOpenAPIResponse(r))
    return r


def test_the_document_is_valid_openapi_3_1(document: dict) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_real_answers_match_the_document(api: OpenAPI) -> None:
    name = f"oa-{uuid.uuid4().hex[:8]}"
    org = call(api, "POST", "/v1/organizations", {"name": name}).json()
    assert call(api, "GET", f"/v1/organizations/{org['id']}").status_code == 200
    call(api, "PATCH", f"/v1/organizations/{org['id']}", {"abbreviation": None})
    call(api, "GET", "/v1/organizations", limit=2)
    project = call(api, "POST", f"/v1/organizations/{org['id']}/projects", {"name": "p"}).json()
    call(api, "GET", f"/v1/organizations/{org['id']}/projects")
    call(api, "PATCH", f"/v1/projects/{project['id']}", {"name": "p2"})
    call(api, "GET", f"/v1/projects/{project['id']}")

    account = call(
        api,
        "POST",
        "/v1/service-accounts",
        {
            "organization_id": org["id"],
            "project_id": project["id"],
            "name": "bot",
            "role": "member",
            "scopes": ["orders:read"],
            "rate_limit": "10/s",
            "metadata": {"team": "payments"},
        },
    ).json()
    assert account["api_key"]["value"].startswith("kg_")
    aid = account["id"]
    call(api, "GET", "/v1/service-accounts", organization_id=org["id"], state="active")
    call(api, "GET", f"/v1/service-accounts/{aid}")
    call(api, "PATCH", f"/v1/service-accounts/{aid}", {"description": "x", "expires_at": None})
    call(api, "GET", f"/v1/service-accounts/{aid}/api-keys")
    key = call(api, "POST", f"/v1/service-accounts/{aid}/api-keys", {"name": "second"}).json()
    call(api, "DELETE", f"/v1/service-accounts/{aid}/api-keys/{key['id']}")
    call(api, "POST", f"/v1/service-accounts/{aid}/rotate-api-key", {"grace_period_seconds": 60})

    cred = call(api, "POST", f"/v1/service-accounts/{aid}/credentials", {"name": "ci"}).json()
    assert cred["client_secret"]
    cid = cred["id"]
    call(api, "GET", f"/v1/service-accounts/{aid}/credentials")
    call(api, "GET", f"/v1/service-accounts/{aid}/credentials/{cid}")
    call(api, "PATCH", f"/v1/service-accounts/{aid}/credentials/{cid}", {"description": None})
    call(api, "POST", f"/v1/service-accounts/{aid}/credentials/{cid}/secret", {})
    call(api, "DELETE", f"/v1/service-accounts/{aid}/credentials/{cid}")

    call(api, "GET", "/v1/signing-keys")
    call(api, "POST", "/v1/signing-keys/rotate", {"activate_after_seconds": 300})
    call(api, "GET", "/v1/audit-events", limit=5)
    closed = call(api, "DELETE", f"/v1/service-accounts/{aid}")
    revision = int(closed.headers["x-keygate-revision"])
    call(api, "GET", "/v1/replicas", revision=revision)


def test_refusals_match_the_document(api: OpenAPI) -> None:
    assert call(api, "GET", "/v1/organizations", key=None).status_code == 401
    assert call(api, "GET", f"/v1/organizations/{uuid.uuid4()}").status_code == 404
    assert call(api, "POST", "/v1/organizations", {"name": "x", "colour": "red"}).status_code == 400
    assert call(api, "GET", "/v1/service-accounts", state="sleeping").status_code == 400


def test_the_validation_is_not_blind(document: dict) -> None:
    """A document that lies about a field fails against real answers."""
    import copy

    from openapi_core.exceptions import OpenAPIError

    lying = copy.deepcopy(document)
    lying["components"]["schemas"]["OrganizationView"]["properties"]["name"] = {"type": "integer"}
    api = OpenAPI.from_dict(dict(lying, servers=[{"url": ADMIN}]))
    org = requests.post(
        f"{ADMIN}/v1/organizations",
        json={"name": f"oa-{uuid.uuid4().hex[:8]}"},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    with pytest.raises(OpenAPIError):
        api.validate_response(RequestsOpenAPIRequest(org.request), RequestsOpenAPIResponse(org))
