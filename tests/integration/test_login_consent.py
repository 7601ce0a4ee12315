"""The person's side of the authorization endpoint: login (session cookie, throttling), consent
(what is shown, Approve/Deny, remembered decisions for confidential clients only, OAuth 2.1
§7.3.1), CSRF on every form."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from app.core import secrets
from app.models import User
from tests.conftest import ISSUER, base_config
from tests.support.people import PASSWORD, fast_authenticator, form, forms, pkce_pair, redirect_params

REDIRECT = "http://127.0.0.1:8765/callback"


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    return base_config(tmp_path, OAUTH_GRANT_TYPES="authorization_code refresh_token client_credentials")


@pytest.fixture
def people(app: Any, state: Any) -> Any:
    with app.app_context():
        auth = fast_authenticator(state)
        auth.create("alice", PASSWORD, state.now())
        auth.create("bob", "bob's password", state.now())
    return auth


@pytest.fixture
def cli_client(make_client: Any) -> str:
    cid, _ = make_client(
        ("authorization_code", "refresh_token"),
        auth_method="none",
        redirect_uris=(REDIRECT,),
        scope="mcp:tools mcp:resources mcp:prompts",
        client_name="Operator's Client",
    )
    return cid


@pytest.fixture
def web_client(make_client: Any) -> str:
    """A confidential client (it authenticates at the token endpoint): remembered consent applies."""
    cid, _ = make_client(
        ("authorization_code", "refresh_token"),
        auth_method="client_secret_basic",
        redirect_uris=(REDIRECT,),
        scope="mcp:tools mcp:resources mcp:prompts",
        client_name="Operator's Web Client",
    )
    return cid


@pytest.fixture
def dynamic_client(client: Any) -> str:
    r = client.post(
        "/oauth/register",
        json={
            "client_name": "Self-Registered <b>App</b>",
            "redirect_uris": ["https://app.example.com/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        },
    )
    assert r.status_code == 201, r.json
    return str(r.json["client_id"])


def query(client_id: str, redirect_uri: str = REDIRECT, **extra: str) -> str:
    return urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "code_challenge": pkce_pair()[1],
            "code_challenge_method": "S256",
            "state": "s1",
            **extra,
        }
    )


def start(client: Any, q: str) -> Any:
    r = client.get("/oauth/authorize?" + q)
    assert r.status_code in (200, 302), r.get_data(as_text=True)[:300]
    return r


def login(client: Any, page: Any, username: str = "alice", password: str = PASSWORD, **env: Any) -> Any:
    f = form(page.get_data(as_text=True), "login")
    return client.post(f.action, data=f.submit(username=username, password=password), **env)


def consent(client: Any, page: Any, decision: str, remember: bool = True, **overrides: str | None) -> Any:
    f = form(page.get_data(as_text=True), "consent")
    if not remember:
        overrides["remember"] = None
    return client.post(f.action, data=f.submit(decision, **overrides))


def is_login_page(r: Any) -> bool:
    return r.status_code in (200, 429) and any(
        f.fields.get("action") == "login" for f in forms(r.get_data(as_text=True))
    )


def is_consent_page(r: Any) -> bool:
    return r.status_code == 200 and any(f.fields.get("action") == "consent" for f in forms(r.get_data(as_text=True)))


# -- login ---------------------------------------------------------------------------------------


def test_login_page_is_accessible_html(client: Any, cli_client: str) -> None:
    page = start(client, query(cli_client)).get_data(as_text=True)
    assert '<html lang="en">' in page
    assert '<label for="username">' in page and 'id="username"' in page
    assert '<label for="password">' in page and 'autocomplete="current-password"' in page
    assert '<meta name="viewport"' in page


def test_wrong_password_shows_the_form_again(client: Any, cli_client: str, people: Any) -> None:
    r = login(client, start(client, query(cli_client)), password="wrong password")
    assert is_login_page(r)
    assert "Wrong username or password." in r.get_data(as_text=True)
    assert 'value="alice"' in r.get_data(as_text=True)  # the username is kept
    with client.session_transaction("/oauth/authorize") as s:
        assert "sub" not in s


def test_unknown_user_gets_the_same_answer(client: Any, cli_client: str, people: Any) -> None:
    r = login(client, start(client, query(cli_client)), username="mallory")
    assert is_login_page(r)
    assert "Wrong username or password." in r.get_data(as_text=True)


def test_empty_credentials(client: Any, cli_client: str, people: Any) -> None:
    r = login(client, start(client, query(cli_client)), password="")
    assert is_login_page(r)
    assert "Enter your username and password." in r.get_data(as_text=True)


def test_disabled_user_cannot_sign_in(client: Any, cli_client: str, people: Any, state: Any) -> None:
    user = state.storage.get_user("alice")
    state.storage.save_user(User(user.username, user.password_hash, user.created_at, disabled=True))
    r = login(client, start(client, query(cli_client)))
    assert is_login_page(r)
    assert "Wrong username or password." in r.get_data(as_text=True)


def test_login_then_consent_page(client: Any, cli_client: str, people: Any) -> None:
    r = login(client, start(client, query(cli_client, scope="mcp:tools mcp:prompts")))
    assert is_consent_page(r)
    page = r.get_data(as_text=True)
    assert "Operator&#39;s Client" in page
    assert "Unverified application" not in page  # registered by the operator
    assert "Signed in as <strong>alice</strong>" in page
    assert "Call tools on the MCP server on your behalf" in page
    assert "Use prompts from the MCP server" in page
    assert "Read resources" not in page  # not requested
    assert "127.0.0.1 (an application on this computer)" in page
    assert ISSUER + "/mcp" in page
    f = form(page, "consent")
    assert ("decision", "approve") in f.buttons and ("decision", "deny") in f.buttons


def test_session_cookie_flags_over_http(client: Any, cli_client: str) -> None:
    r = start(client, query(cli_client))
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # the issuer is http://127.0.0.1 (loopback development)


def test_session_cookie_is_secure_with_an_https_issuer(tmp_path: Any) -> None:
    from app import create_app
    from app.oauth.register import new_client, validate_metadata

    app = create_app(base_config(tmp_path, OAUTH_ISSUER="https://auth.example.com"))
    try:
        state = app.extensions["mcp_oauth"]
        with app.app_context():
            body = {"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "none"}
            c, _, _ = new_client(state, validate_metadata(state, body), registered_by="cli")
        r = app.test_client().get("/oauth/authorize?" + query(c.client_id, "https://app.example.com/cb"))
        assert r.status_code == 200
        cookie = r.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    finally:
        app.extensions["mcp_oauth"].close()


def test_signed_in_person_goes_straight_to_consent(client: Any, cli_client: str, people: Any) -> None:
    login(client, start(client, query(cli_client)))
    assert is_consent_page(start(client, query(cli_client)))


def test_password_change_ends_the_session(client: Any, cli_client: str, people: Any) -> None:
    login(client, start(client, query(cli_client)))
    people.set_password("alice", "a brand new password")
    assert is_login_page(start(client, query(cli_client)))


def test_deleted_user_session_ends(client: Any, cli_client: str, people: Any, state: Any) -> None:
    login(client, start(client, query(cli_client)))
    state.storage.delete_user("alice")
    assert is_login_page(start(client, query(cli_client)))


def test_login_session_expires(client: Any, cli_client: str, people: Any, state: Any, monkeypatch: Any) -> None:
    login(client, start(client, query(cli_client)))
    later = state.now() + int(state.config["OAUTH_LOGIN_SESSION_TTL"]) + 1
    monkeypatch.setattr(state, "now", lambda: later)
    assert is_login_page(start(client, query(cli_client)))


def test_prompt_login_asks_again(client: Any, cli_client: str, people: Any) -> None:
    login(client, start(client, query(cli_client)))
    r = start(client, query(cli_client, prompt="login"))
    assert is_login_page(r)
    r = login(client, r)
    assert is_consent_page(r)  # the fresh login satisfies prompt=login
    out = consent(client, r, "approve")
    assert "code" in redirect_params(out.headers["Location"])


def test_switch_account(client: Any, cli_client: str, people: Any) -> None:
    r = login(client, start(client, query(cli_client)))
    switch = form(r.get_data(as_text=True), "switch")
    r = client.post(switch.action, data=switch.submit())
    assert is_login_page(r)
    r = login(client, r, username="bob", password="bob's password")
    assert "Signed in as <strong>bob</strong>" in r.get_data(as_text=True)


def test_consent_form_shown_to_someone_else_is_not_accepted(client: Any, cli_client: str, people: Any) -> None:
    alice_page = login(client, start(client, query(cli_client)))
    # Another tab signs in as bob; then alice's consent page is submitted.
    other = start(client, query(cli_client, prompt="login"))
    login(client, other, username="bob", password="bob's password")
    f = form(alice_page.get_data(as_text=True), "consent")
    with client.session_transaction("/oauth/authorize") as s:
        token = s["csrf"]
    r = client.post(f.action, data=f.submit("approve", csrf_token=token))
    assert is_consent_page(r)  # asked again, for bob
    assert "Signed in as <strong>bob</strong>" in r.get_data(as_text=True)


# -- throttling ----------------------------------------------------------------------------------


@pytest.fixture
def throttled(tmp_path: Any) -> Any:
    from app import create_app

    app = create_app(base_config(tmp_path, OAUTH_GRANT_TYPES="authorization_code", RATELIMIT_LOGIN="3/minute"))
    yield app
    app.extensions["mcp_oauth"].close()


def _throttle_setup(app: Any) -> str:
    from app.oauth.register import new_client, validate_metadata

    state = app.extensions["mcp_oauth"]
    with app.app_context():
        fast_authenticator(state).create("alice", PASSWORD, state.now())
        body = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}
        c, _, _ = new_client(state, validate_metadata(state, body), registered_by="cli")
    return str(c.client_id)


def _attempt(app: Any, cid: str, addr: str, username: str, password: str) -> Any:
    c = app.test_client()
    page = c.get("/oauth/authorize?" + query(cid), environ_base={"REMOTE_ADDR": addr})
    return login(c, page, username=username, password=password, environ_base={"REMOTE_ADDR": addr})


def test_failed_logins_are_throttled_per_username(throttled: Any) -> None:
    cid = _throttle_setup(throttled)
    for i in range(3):
        assert "Wrong username" in _attempt(throttled, cid, f"10.0.0.{i}", "alice", "nope").get_data(as_text=True)
    # From yet another address, even the right password is refused while the name is throttled.
    r = _attempt(throttled, cid, "10.0.0.99", "alice", PASSWORD)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert "Too many failed sign-in attempts" in r.get_data(as_text=True)
    assert is_login_page(r)


def test_failed_logins_are_throttled_per_address(throttled: Any) -> None:
    cid = _throttle_setup(throttled)
    for name in ("u1", "u2", "u3"):
        _attempt(throttled, cid, "10.1.1.1", name, "nope")
    assert _attempt(throttled, cid, "10.1.1.1", "alice", PASSWORD).status_code == 429
    assert is_consent_page(_attempt(throttled, cid, "10.1.1.2", "alice", PASSWORD))  # other address


def test_success_clears_the_usernames_failures(throttled: Any) -> None:
    cid = _throttle_setup(throttled)
    _attempt(throttled, cid, "10.2.0.1", "alice", "nope")
    _attempt(throttled, cid, "10.2.0.2", "alice", "nope")
    assert is_consent_page(_attempt(throttled, cid, "10.2.0.3", "alice", PASSWORD))
    _attempt(throttled, cid, "10.2.0.4", "alice", "nope")
    _attempt(throttled, cid, "10.2.0.5", "alice", "nope")
    # Four failures in the minute, but the success in between reset the count to two.
    assert is_consent_page(_attempt(throttled, cid, "10.2.0.6", "alice", PASSWORD))


# -- consent -------------------------------------------------------------------------------------


def test_dynamic_client_is_marked_unverified_and_escaped(client: Any, dynamic_client: str, people: Any) -> None:
    r = login(client, start(client, query(dynamic_client, "https://app.example.com/cb")))
    page = r.get_data(as_text=True)
    assert "Unverified application" in page
    assert "its name has not been checked" in page
    assert "Self-Registered &lt;b&gt;App&lt;/b&gt;" in page and "<b>App</b>" not in page
    assert "app.example.com" in page


def test_approve_redirects_with_code_state_and_iss(client: Any, cli_client: str, people: Any, state: Any) -> None:
    r = login(client, start(client, query(cli_client)))
    out = consent(client, r, "approve")
    assert out.status_code == 303  # never 307: the form must not be re-posted to the client
    got = redirect_params(out.headers["Location"])
    assert set(got) == {"code", "state", "iss"}
    assert got["state"] == "s1" and got["iss"] == ISSUER
    code, first = state.token_store.consume_code(secrets.token_hash(got["code"]), state.now())
    assert first and code.subject == "alice" and code.client_id == cli_client


def test_deny_sends_access_denied(client: Any, cli_client: str, people: Any, state: Any) -> None:
    r = login(client, start(client, query(cli_client)))
    out = consent(client, r, "deny")
    got = redirect_params(out.headers["Location"])
    assert got["error"] == "access_denied"
    assert got["state"] == "s1" and got["iss"] == ISSUER
    assert "code" not in got
    assert state.storage.get_consent("alice", cli_client) is None  # nothing remembered
    assert is_consent_page(start(client, query(cli_client)))


def test_consent_without_a_decision_is_refused(client: Any, cli_client: str, people: Any) -> None:
    r = login(client, start(client, query(cli_client)))
    f = form(r.get_data(as_text=True), "consent")
    out = client.post(f.action, data=f.submit())
    assert out.status_code == 400 and "Location" not in out.headers


def test_unknown_action_is_refused(client: Any, cli_client: str, people: Any) -> None:
    r = login(client, start(client, query(cli_client)))
    f = form(r.get_data(as_text=True), "consent")
    out = client.post(f.action, data=f.submit("approve", action="grant-everything"))
    assert out.status_code == 400 and "Location" not in out.headers


def test_remembered_consent_skips_the_page_for_a_subset(client: Any, web_client: str, people: Any, state: Any) -> None:
    r = login(client, start(client, query(web_client, scope="mcp:tools mcp:resources")))
    assert form(r.get_data(as_text=True), "consent").fields["remember"] == "yes"  # offered, ticked
    consent(client, r, "approve", remember=True)
    stored = state.storage.get_consent("alice", web_client)
    assert stored is not None and stored.scopes == {"mcp:tools", "mcp:resources"}
    for scope in ("mcp:tools mcp:resources", "mcp:resources"):
        out = start(client, query(web_client, scope=scope))
        assert out.status_code == 302
        assert set(redirect_params(out.headers["Location"])) == {"code", "state", "iss"}
    # A scope not yet approved asks again; approving it remembers the union.
    r = start(client, query(web_client, scope="mcp:prompts"))
    assert is_consent_page(r)
    consent(client, r, "approve")
    assert state.storage.get_consent("alice", web_client).scopes == {"mcp:tools", "mcp:resources", "mcp:prompts"}


def test_consent_is_per_person(client: Any, web_client: str, people: Any, state: Any) -> None:
    consent(client, login(client, start(client, query(web_client))), "approve")
    assert state.storage.get_consent("alice", web_client) is not None
    r = start(client, query(web_client, prompt="login"))
    assert is_consent_page(login(client, r, username="bob", password="bob's password"))


def test_consent_not_remembered_without_the_checkbox(client: Any, web_client: str, people: Any, state: Any) -> None:
    consent(client, login(client, start(client, query(web_client))), "approve", remember=False)
    assert state.storage.get_consent("alice", web_client) is None
    assert is_consent_page(start(client, query(web_client)))


def test_prompt_consent_asks_even_when_remembered(client: Any, web_client: str, people: Any) -> None:
    consent(client, login(client, start(client, query(web_client))), "approve")
    assert start(client, query(web_client)).status_code == 302  # remembered
    assert is_consent_page(start(client, query(web_client, prompt="consent")))


def test_prompt_none(client: Any, web_client: str, people: Any) -> None:
    out = start(client, query(web_client, prompt="none"))
    got = redirect_params(out.headers["Location"])
    assert got["error"] == "login_required" and got["iss"] == ISSUER
    login(client, start(client, query(web_client)))
    got = redirect_params(start(client, query(web_client, prompt="none")).headers["Location"])
    assert got["error"] == "consent_required"
    consent(client, start(client, query(web_client)), "approve")
    got = redirect_params(start(client, query(web_client, prompt="none")).headers["Location"])
    assert set(got) == {"code", "state", "iss"}


def test_revoked_consent_asks_again(client: Any, web_client: str, people: Any, state: Any) -> None:
    consent(client, login(client, start(client, query(web_client))), "approve")
    assert start(client, query(web_client)).status_code == 302
    state.storage.delete_consents(subject="alice", client_id=web_client)
    assert is_consent_page(start(client, query(web_client)))


# -- public clients: the person approves every request (OAuth 2.1 §7.3.1) ------------------------


def test_public_client_consent_page_offers_no_remember_checkbox(
    client: Any, cli_client: str, web_client: str, people: Any
) -> None:
    page = login(client, start(client, query(cli_client))).get_data(as_text=True)
    f = form(page, "consent")
    assert "remember" not in f.checkboxes and "remember" not in f.fields
    assert "Remember my decision" not in page
    assert "you will be asked every time it requests access" in page
    confidential = start(client, query(web_client)).get_data(as_text=True)
    assert form(confidential, "consent").checkboxes == {"remember": "yes"}
    assert "asked every time" not in confidential


@pytest.mark.parametrize("kind", ["operator", "self-registered"])
def test_public_client_always_sees_the_consent_page(
    client: Any, cli_client: str, dynamic_client: str, people: Any, state: Any, kind: str
) -> None:
    cid, target = (cli_client, REDIRECT) if kind == "operator" else (dynamic_client, "https://app.example.com/cb")
    r = login(client, start(client, query(cid, target)))
    assert set(redirect_params(consent(client, r, "approve").headers["Location"])) == {"code", "state", "iss"}
    for _ in range(2):  # again and again: the page each time, never a code without it
        r = start(client, query(cid, target))
        assert is_consent_page(r), r.headers.get("Location")
        assert redirect_params(consent(client, r, "approve").headers["Location"])["state"] == "s1"


def test_forged_remember_from_a_public_client_stores_nothing(
    client: Any, cli_client: str, people: Any, state: Any
) -> None:
    r = login(client, start(client, query(cli_client)))
    f = form(r.get_data(as_text=True), "consent")
    out = client.post(f.action, data=f.submit("approve", remember="yes"))
    assert "code" in redirect_params(out.headers["Location"])  # the approval itself stands
    assert state.storage.get_consent("alice", cli_client) is None
    assert is_consent_page(start(client, query(cli_client)))


def test_stored_consent_for_a_public_client_is_not_honoured(
    client: Any, cli_client: str, people: Any, state: Any
) -> None:
    """A consent stored for a public client (e.g. before this rule, or by an operator) approves
    nothing: the page is shown, and prompt=none answers consent_required."""
    from app.models import Consent

    scopes = frozenset({"mcp:tools", "mcp:resources", "mcp:prompts"})
    state.storage.save_consent(Consent("alice", cli_client, scopes, state.now()))
    login(client, start(client, query(cli_client)))
    assert is_consent_page(start(client, query(cli_client, scope="mcp:tools")))
    got = redirect_params(start(client, query(cli_client, prompt="none")).headers["Location"])
    assert got["error"] == "consent_required" and got["state"] == "s1" and got["iss"] == ISSUER
    assert "code" not in got


def test_prompt_none_for_a_public_client_is_consent_required_after_approval(
    client: Any, cli_client: str, people: Any
) -> None:
    consent(client, login(client, start(client, query(cli_client))), "approve")
    got = redirect_params(start(client, query(cli_client, prompt="none")).headers["Location"])
    assert got["error"] == "consent_required" and "code" not in got


# -- CSRF ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged-token", "x" * 4000])
def test_consent_without_the_right_csrf_token_is_refused(
    client: Any, cli_client: str, people: Any, state: Any, token: str | None
) -> None:
    r = login(client, start(client, query(cli_client)))
    f = form(r.get_data(as_text=True), "consent")
    out = client.post(f.action, data=f.submit("approve", csrf_token=token))
    assert out.status_code == 400
    assert "Location" not in out.headers
    assert "This form has expired" in out.get_data(as_text=True)
    assert state.storage.get_consent("alice", cli_client) is None


def test_oversized_form_field_is_refused_without_a_code(client: Any, cli_client: str, people: Any, state: Any) -> None:
    r = login(client, start(client, query(cli_client)))
    f = form(r.get_data(as_text=True), "consent")
    out = client.post(f.action, data=f.submit("approve", csrf_token="x" * 5000))
    # The strict parser refuses it; the redirect URI is trusted, so the client hears invalid_request.
    got = redirect_params(out.headers["Location"])
    assert got["error"] == "invalid_request" and "code" not in got
    assert state.storage.get_consent("alice", cli_client) is None


def test_login_without_the_right_csrf_token_is_refused(client: Any, cli_client: str, people: Any) -> None:
    f = form(start(client, query(cli_client)).get_data(as_text=True), "login")
    out = client.post(f.action, data=f.submit(username="alice", password=PASSWORD, csrf_token="nope"))
    assert out.status_code == 400
    with client.session_transaction("/oauth/authorize") as s:
        assert "sub" not in s


def test_csrf_token_from_another_session_is_refused(app: Any, cli_client: str, people: Any) -> None:
    victim, attacker = app.test_client(), app.test_client()
    consent(victim, login(victim, start(victim, query(cli_client))), "approve", remember=False)
    attacker_page = login(attacker, start(attacker, query(cli_client)))
    f = form(attacker_page.get_data(as_text=True), "consent")
    # The attacker's own form (valid for the attacker's session) posted from the victim's browser.
    out = victim.post(f.action, data=f.submit("approve"))
    assert out.status_code == 400 and "Location" not in out.headers


def test_switch_without_csrf_is_refused(client: Any, cli_client: str, people: Any) -> None:
    r = login(client, start(client, query(cli_client)))
    f = form(r.get_data(as_text=True), "switch")
    out = client.post(f.action, data=f.submit(csrf_token=None))
    assert out.status_code == 400
    with client.session_transaction("/oauth/authorize") as s:
        assert s.get("sub") == "alice"


def test_hidden_fields_are_validated_again(client: Any, cli_client: str, people: Any) -> None:
    """A tampered consent form is a new request: a foreign redirect URI is still refused."""
    r = login(client, start(client, query(cli_client)))
    f = form(r.get_data(as_text=True), "consent")
    out = client.post(f.action, data=f.submit("approve", redirect_uri="https://evil.example.com/cb"))
    assert out.status_code == 400 and "Location" not in out.headers
    out = client.post(f.action, data=f.submit("approve", code_challenge_method="plain"))
    assert redirect_params(out.headers["Location"])["error"] == "invalid_request"
