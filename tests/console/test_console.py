"""The console in a real browser, driven as a person would: by the
accessible names of its controls. Each test's context checks, at the end,
that no request left the admin listener's origin (conftest.py)."""

from __future__ import annotations

import base64
import re
import urllib.error
import urllib.request

from playwright.sync_api import expect

from conftest import sign_in


def form_of(page, button: str):
    """The form that holds the button named `button`."""
    return page.locator("form").filter(has=page.get_by_role("button", name=button, exact=True))


def shown_secret(page) -> str:
    return page.locator("#secret-value").inner_text().strip()


def test_operator_creates_an_account_and_its_key_works_until_revoked(page, keygate, unique):
    sign_in(page, keygate.admin_key)
    expect(page.get_by_role("heading", name="Organizations", level=1)).to_be_visible()

    org = unique("acme")
    create_org = form_of(page, "Create organization")
    create_org.get_by_label("Name").fill(org)
    create_org.get_by_role("button", name="Create organization").click()
    expect(page.get_by_role("heading", name=org, level=1)).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Organization created.")

    page.get_by_role("link", name="Service accounts", exact=True).click()
    create = form_of(page, "Create account")
    create.get_by_label("Organization").select_option(label=org)
    name = unique("billing")
    create.get_by_label("Name").fill(name)
    create.get_by_label("Scopes").fill("orders:read orders:write")
    create.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()

    # The key is shown once, with a copy button that copies it.
    first = shown_secret(page)
    assert first.startswith("kg_")
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#secret-value-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == first
    assert keygate.proxy_status(first) == 200
    account_url = page.url

    # Reloading the account's page does not show it again.
    page.goto(account_url)
    expect(page.locator("#secret-value")).to_have_count(0)
    assert first not in page.content()

    # Issue another key: both work.
    page.get_by_role("button", name="Issue key").click()
    second = shown_secret(page)
    assert second != first
    assert keygate.proxy_status(second) == 200

    # Rotate with no grace: asked first, then both old keys stop, the new one works.
    page.get_by_role("button", name="Rotate", exact=True).click()
    expect(page.get_by_role("heading", name="Rotate this account's keys?")).to_be_visible()
    page.get_by_role("button", name="Rotate", exact=True).click()
    rotated = shown_secret(page)
    assert keygate.proxy_status(first) == 401
    assert keygate.proxy_status(second) == 401
    assert keygate.proxy_status(rotated) == 200

    # Revoke the one live key: asked first; cancelling changes nothing.
    page.goto(account_url)
    keys = page.locator("table").filter(has_text="Last used").first
    expect(keys.get_by_role("button", name="Revoke")).to_have_count(1)
    keys.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("heading", name="Revoke this API key?")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    assert keygate.proxy_status(rotated) == 200
    page.get_by_role("button", name="Revoke").click()
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_have_text("API key revoked.")
    assert keygate.proxy_status(rotated) == 401, "the proxy refuses the revoked key"

    # Disable, after asking.
    page.get_by_role("button", name="Disable").click()
    page.get_by_role("button", name="Disable").click()
    expect(page.locator(".facts .state")).to_have_text("disabled")

    # The audit log, filtered to this account, shows what was done.
    page.get_by_role("link", name="Audit log of this account").click()
    expect(page.get_by_role("heading", name="Audit log", level=1)).to_be_visible()
    log = page.locator("table")
    for action in [
        "service_account.create",
        "api_key.create",
        "service_account.rotate_api_key",
        "api_key.revoke",
        "service_account.update",
    ]:
        expect(log.get_by_text(action, exact=True).first).to_be_visible()

    # Replicas and signing keys are there for a platform admin.
    page.get_by_role("link", name="Replicas").click()
    expect(page.get_by_role("cell", name=re.compile(r"\(this one\)"))).to_be_visible()
    page.get_by_role("link", name="Signing keys").click()
    expect(page.get_by_role("cell", name="signing", exact=True)).to_be_visible()

    # Sign out: the pages are closed again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto("/console/organizations")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_owner_sees_and_manages_only_its_organization(page, keygate, unique):
    mine, theirs = unique("mine"), unique("theirs")
    _, a = keygate.api("POST", "/v1/organizations", {"name": mine})
    _, b = keygate.api("POST", "/v1/organizations", {"name": theirs})
    _, owner = keygate.api(
        "POST",
        "/v1/service-accounts",
        {"organization_id": a["id"], "name": "boss", "role": "owner", "scopes": ["orders:read"]},
    )
    hidden = unique("hidden")
    _, other = keygate.api(
        "POST", "/v1/service-accounts", {"organization_id": b["id"], "name": hidden}
    )
    sign_in(page, owner["api_key"]["value"])
    expect(page.get_by_role("link", name=mine)).to_be_visible()
    expect(page.get_by_role("link", name=theirs)).to_have_count(0)
    nav = page.get_by_role("navigation", name="Console")
    expect(nav.get_by_role("link", name="Replicas")).to_have_count(0)
    expect(nav.get_by_role("link", name="Signing keys")).to_have_count(0)

    page.get_by_role("link", name="Service accounts", exact=True).click()
    expect(page.get_by_role("link", name="boss")).to_be_visible()
    expect(page.get_by_text(hidden)).to_have_count(0)

    # Another organization's account, by its URL: not found, nothing of it shown.
    page.goto(f"/console/service-accounts/{other['id']}")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    assert hidden not in page.content()

    # The owner creates an account in its own organization...
    create = form_of(page.goto("/console/service-accounts") and page, "Create account")
    create.get_by_label("Name").fill("worker")
    create.get_by_label("Scopes").fill("orders:read")
    create.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="worker", level=1)).to_be_visible()
    # ...but cannot hand out a scope it does not hold: the page again, the field named.
    page.goto("/console/service-accounts")
    create = form_of(page, "Create account")
    create.get_by_label("Name").fill("greedy")
    create.get_by_label("Scopes").fill("orders:write")
    create.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("alert")).to_be_visible()
    _, listed = keygate.api("GET", f"/v1/service-accounts?organization_id={a['id']}")
    assert "greedy" not in [x["name"] for x in listed["data"]]


def test_a_wrong_or_revoked_key_gets_the_sign_in_page_again(page, keygate, unique):
    sign_in(page, "kg_nottherightkey_000000")
    expect(page.get_by_role("alert")).to_have_text(re.compile("That key is not valid"))
    expect(page.get_by_label("Admin key")).to_be_visible()

    _, org = keygate.api("POST", "/v1/organizations", {"name": unique("org")})
    _, owner = keygate.api(
        "POST",
        "/v1/service-accounts",
        {"organization_id": org["id"], "name": "gone", "role": "owner"},
    )
    key = owner["api_key"]["value"]
    _, keys = keygate.api("GET", f"/v1/service-accounts/{owner['id']}/api-keys")
    keygate.api("DELETE", f"/v1/service-accounts/{owner['id']}/api-keys/{keys['data'][0]['id']}")
    sign_in(page, key)
    expect(page.get_by_role("alert")).to_have_text(re.compile("That key is not valid"))


def test_a_session_ends_when_its_key_is_revoked(page, keygate, unique):
    _, org = keygate.api("POST", "/v1/organizations", {"name": unique("org")})
    _, owner = keygate.api(
        "POST",
        "/v1/service-accounts",
        {"organization_id": org["id"], "name": "soon-gone", "role": "owner"},
    )
    sign_in(page, owner["api_key"]["value"])
    expect(page.get_by_role("heading", name="Organizations", level=1)).to_be_visible()
    _, keys = keygate.api("GET", f"/v1/service-accounts/{owner['id']}/api-keys")
    keygate.api("DELETE", f"/v1/service-accounts/{owner['id']}/api-keys/{keys['data'][0]['id']}")
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text("Your session has ended. Sign in again.")


def test_writes_without_the_csrf_token_are_refused(page, keygate, unique):
    _, org = keygate.api("POST", "/v1/organizations", {"name": unique("org")})
    _, acct = keygate.api(
        "POST", "/v1/service-accounts", {"organization_id": org["id"], "name": "target"}
    )
    sign_in(page, keygate.admin_key)
    expect(page.get_by_role("heading", name="Organizations", level=1)).to_be_visible()
    url = f"/console/service-accounts/{acct['id']}/state"
    # The browser's own cookie goes along (same context), the token does not.
    for form in [
        {"enabled": "false", "confirm": "yes"},
        {"enabled": "false", "confirm": "yes", "csrf": "guessed"},
    ]:
        r = page.request.post(url, form=form, max_redirects=0)
        assert r.status == 403, r.status
        assert "Nothing was changed" in r.text()
    _, now = keygate.api("GET", f"/v1/service-accounts/{acct['id']}")
    assert now["enabled"] is True


def test_a_bad_value_names_the_field_and_writes_nothing(page, keygate, unique):
    _, org = keygate.api("POST", "/v1/organizations", {"name": unique("org")})
    sign_in(page, keygate.admin_key)
    page.goto(f"/console/service-accounts?organization_id={org['id']}")
    create = form_of(page, "Create account")
    create.get_by_label("Name").fill("too-fast")
    create.get_by_label("Rate limit").fill("very fast")
    create.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("alert")).to_have_text(re.compile("^Rate limit:"))
    field = form_of(page, "Create account").get_by_label("Rate limit")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_value("very fast")
    _, listed = keygate.api("GET", f"/v1/service-accounts?organization_id={org['id']}")
    assert listed["data"] == []


def test_sign_in_by_keyboard_alone(page, keygate):
    page.goto("/console/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Admin key")).to_be_focused()
    page.keyboard.type(keygate.admin_key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Organizations", level=1)).to_be_visible()
    # Focus is visible: an outline is drawn on the focused control.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


def test_edit_an_account_and_make_a_client_credential(page, keygate, unique):
    _, org = keygate.api("POST", "/v1/organizations", {"name": unique("org")})
    _, acct = keygate.api(
        "POST",
        "/v1/service-accounts",
        {"organization_id": org["id"], "name": "editable", "scopes": ["orders:read"]},
    )
    sign_in(page, keygate.admin_key)
    page.goto(f"/console/service-accounts/{acct['id']}")
    edit = page.get_by_role("form", name="Edit")
    edit.get_by_label("Description").fill("nightly billing run")
    edit.get_by_label("Scopes").fill("orders:read, invoices:write")
    edit.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Changes saved.")
    _, now = keygate.api("GET", f"/v1/service-accounts/{acct['id']}")
    assert now["description"] == "nightly billing run"
    assert sorted(now["scopes"]) == ["invoices:write", "orders:read"]

    create = page.get_by_role("form", name="Create a client credential")
    create.get_by_label("Credential name").fill("github-actions")
    create.get_by_role("button", name="Create credential").click()
    secret = shown_secret(page)
    assert secret.startswith("kgs_")
    row = page.get_by_role("row").filter(has_text="github-actions")
    client_id = row.locator("code").inner_text()
    # The secret works at the token endpoint; once regenerated, it does not.
    def token(secret: str) -> int:
        req = urllib.request.Request(
            f"{keygate.public_url}/oauth2/token",
            data=b"grant_type=client_credentials",
            method="POST",
        )
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        req.add_header("authorization", f"Basic {basic}")
        req.add_header("content-type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    assert token(secret) == 200
    row.get_by_role("button", name="Regenerate secret").click()
    page.get_by_role("button", name="Regenerate secret").click()
    fresh = shown_secret(page)
    assert fresh != secret
    assert token(secret) == 401
    assert token(fresh) == 200
