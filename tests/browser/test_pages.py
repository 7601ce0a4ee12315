"""The login and consent pages in headless Chromium, with JavaScript off: a person signs in,
approves (or denies), and the browser lands on the client's loopback redirect.

Screenshots of each page are saved to test-artifacts/screenshots/ on every run for review.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.browser.conftest import PASSWORD, SCREENSHOTS, USERNAME, Callback, Site

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies) with JavaScript disabled: the pages need none."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": 900, "height": 820})
    p = context.new_page()
    p.problems = []  # console errors (e.g. a CSP violation) collected for the test

    def console(msg: Any) -> None:
        # HTTP error statuses are logged too (the error page is a 400); anything else, such as a
        # Content-Security-Policy violation, is a problem.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            p.problems.append(f"{msg.text} at {(msg.location or {}).get('url')}")

    p.on("console", console)
    yield p
    context.close()


def authorize_url(site: Site, callback: Callback, challenge: str, state: str, **extra: str) -> str:
    query = {
        "response_type": "code",
        "client_id": site.client_id,
        "redirect_uri": callback.url,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
        "scope": "mcp:tools",
        **extra,
    }
    return f"{site.server.url}/oauth/authorize?{urlencode(query)}"


def landed(page: Any, callback: Callback) -> dict[str, str]:
    page.wait_for_url(callback.url + "?*", timeout=15000)
    url = urlsplit(page.url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == callback.url
    params = parse_qs(url.query)
    assert all(len(v) == 1 for v in params.values())
    return {k: v[0] for k, v in params.items()}


def sign_in(page: Any) -> None:
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")  # the keyboard is enough; no script involved


def test_sign_in_approve_and_land_on_the_callback(page: Any, site: Site, callback: Callback) -> None:
    verifier, challenge = pkce()
    state = "browser-" + secrets.token_hex(4)
    page.goto(authorize_url(site, callback, challenge, state))
    assert page.get_by_role("heading", name="Sign in").is_visible()
    assert page.get_by_text("Browser Test Client").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "login.png"), full_page=True)

    # A wrong password first: the page says so, keeps the username, and can be used again.
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong username or password."
    assert page.get_by_label("Username").input_value() == USERNAME
    page.screenshot(path=str(SCREENSHOTS / "login-failed.png"), full_page=True)

    sign_in(page)
    assert page.get_by_role("heading", name="Allow Browser Test Client to access your account?").is_visible()
    assert page.get_by_text("Unverified application.").is_visible()  # registered dynamically
    assert page.get_by_text("Call tools on the MCP server on your behalf").is_visible()
    assert page.get_by_text("127.0.0.1 (an application on this computer)").is_visible()
    # A public client cannot prove its identity: no "remember" choice (OAuth 2.1 §7.3.1).
    assert page.get_by_label("Remember my decision for this application").count() == 0
    assert page.get_by_text("you will be asked every time it requests access").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "consent.png"), full_page=True)
    # The same page for people with a dark colour scheme and on a phone-sized screen.
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=str(SCREENSHOTS / "consent-dark.png"), full_page=True)
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 360, "height": 740})
    page.screenshot(path=str(SCREENSHOTS / "consent-narrow.png"), full_page=True)
    page.set_viewport_size({"width": 900, "height": 820})

    page.get_by_role("button", name="Approve").click()
    got = landed(page, callback)
    assert set(got) == {"code", "state", "iss"}
    assert got["state"] == state
    assert got["iss"] == site.server.url  # RFC 9207: the issuer, byte for byte
    assert page.get_by_text("Back at the client.").is_visible()
    assert page.problems == []

    # The code the browser carried works at the token endpoint with the verifier.
    token = httpx.post(
        site.server.url + "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": got["code"],
            "code_verifier": verifier,
            "client_id": site.client_id,
            "redirect_uri": callback.url,
        },
    )
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "mcp:tools"

    # Still signed in, so no login; but a public client's request is shown to the person again.
    reached = len(callback.paths)
    page.goto(authorize_url(site, callback, pkce()[1], "again"))
    assert page.get_by_role("heading", name="Allow Browser Test Client to access your account?").is_visible()
    assert len(callback.paths) == reached  # nothing reached the client without the person
    page.get_by_role("button", name="Approve").click()
    assert landed(page, callback)["state"] == "again"


def test_deny_returns_access_denied(page: Any, site: Site, callback: Callback) -> None:
    state = "deny-" + secrets.token_hex(4)
    page.goto(authorize_url(site, callback, pkce()[1], state, scope="mcp:tools mcp:resources"))
    sign_in(page)
    assert page.get_by_text("Read resources from the MCP server").is_visible()
    page.get_by_role("button", name="Deny").click()
    got = landed(page, callback)
    assert got["error"] == "access_denied"
    assert got["state"] == state
    assert got["iss"] == site.server.url
    assert "code" not in got
    assert page.problems == []


def test_unregistered_redirect_shows_an_error_page(page: Any, site: Site, callback: Callback) -> None:
    before = list(callback.paths)
    url = authorize_url(site, callback, pkce()[1], "x").replace("127.0.0.1%3A", "localhost.evil.example.com%3A", 1)
    response = page.goto(url)
    assert response.status == 400
    assert urlsplit(page.url).netloc == urlsplit(site.server.url).netloc  # no redirect happened
    assert page.get_by_role("heading", name="Redirect address not allowed").is_visible()
    assert page.get_by_role("alert").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "error.png"), full_page=True)
    assert callback.paths == before
    assert page.problems == []


def test_pages_refuse_to_be_framed(page: Any, site: Site, callback: Callback) -> None:
    from playwright.sync_api import expect

    response = page.goto(authorize_url(site, callback, pkce()[1], "frame"))
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    # A hostile page (on another origin, without a CSP of its own) that frames the login page
    # gets nothing rendered inside the frame, while a page without those headers (the callback,
    # as a control) renders in the next frame.
    page.goto(callback.url + "?hostile")
    page.set_content(f'<iframe id="f" src="{response.url}"></iframe><iframe id="ok" src="{callback.url}"></iframe>')
    expect(page.frame_locator("#ok").get_by_text("Back at the client.")).to_have_count(1)
    page.wait_for_load_state("load")
    assert page.frame_locator("#f").get_by_role("heading", name="Sign in").count() == 0
