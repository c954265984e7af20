"""Fixtures of the console's browser tests: one real keygate for the run,
one Chromium (Debian's, ``CHROMIUM``) driven by Playwright, and a fresh
browser context per test that records every request the page makes — each
test ends by checking that none left the admin listener's origin."""

from __future__ import annotations

import os
import uuid

import pytest
from playwright.sync_api import sync_playwright

from keygate_server import Keygate


@pytest.fixture(scope="session")
def keygate():
    kg = Keygate()
    yield kg
    kg.stop()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
        yield b
        b.close()


@pytest.fixture
def page(browser, keygate):
    context = browser.new_context(
        base_url=keygate.admin_url, viewport={"width": 1280, "height": 900}
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=keygate.admin_url)
    seen: list[str] = []
    context.on("request", lambda r: seen.append(r.url))
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
    assert seen, "the test made no request"
    strays = [u for u in seen if not u.startswith(keygate.admin_url + "/")]
    assert not strays, f"requests left the admin origin: {strays}"


@pytest.fixture
def unique():
    """A name no other test uses."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:8]}"


def sign_in(page, key: str) -> None:
    page.goto("/console/")
    page.get_by_label("Admin key").fill(key)
    page.get_by_role("button", name="Sign in").click()
