"""The authorization request (OAuth 2.1 §4.1.1, RFC 7636, RFC 8707, RFC 9207): what is checked,
and where each failure goes: an HTML page while the redirect URI is untrusted, the client's
redirect URI (with ``state`` and ``iss``) after."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from app.cimd import MetadataDocumentError, MetadataDocuments
from app.core import secrets
from tests.conftest import ISSUER, MCP_RESOURCE, base_config
from tests.support.people import PASSWORD, fast_authenticator, form, pkce_pair, redirect_params

REDIRECT = "http://127.0.0.1:8765/callback"
HTTPS_REDIRECT = "https://app.example.com/oauth/callback"


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    return base_config(tmp_path, OAUTH_GRANT_TYPES="authorization_code refresh_token client_credentials")


@pytest.fixture
def alice(app: Any, state: Any) -> str:
    with app.app_context():
        fast_authenticator(state).create("alice", PASSWORD, state.now())
    return "alice"


@pytest.fixture
def public_client(make_client: Any) -> str:
    cid, _ = make_client(
        ("authorization_code", "refresh_token"),
        auth_method="none",
        redirect_uris=(REDIRECT, HTTPS_REDIRECT),
        scope="mcp:tools mcp:resources",
        client_name="Test Client",
    )
    return cid


def params(client_id: str, challenge: str | None = None, **overrides: str | None) -> dict[str, str]:
    base: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge or pkce_pair()[1],
        "code_challenge_method": "S256",
        "state": "st-123",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def authorize(client: Any, query: dict[str, str] | str, path: str = "/oauth/authorize") -> Any:
    qs = query if isinstance(query, str) else urlencode(query)
    return client.get(f"{path}?{qs}")


def assert_error_page(r: Any, status: int = 400, text: str | None = None) -> None:
    """A page for the person, never a redirect (RFC 6749 §4.1.2.1)."""
    assert r.status_code == status, r.get_data(as_text=True)[:500]
    assert "Location" not in r.headers
    assert r.mimetype == "text/html"
    assert r.headers["X-Frame-Options"] == "DENY"
    if text is not None:
        assert text in r.get_data(as_text=True)


def assert_error_redirect(
    r: Any, error: str, *, state: str | None = "st-123", target: str = REDIRECT
) -> dict[str, str]:
    assert r.status_code in (302, 303), r.get_data(as_text=True)[:500]
    location = r.headers["Location"]
    assert location.startswith(target + "?")
    got = redirect_params(location)
    assert got["error"] == error
    assert got["iss"] == ISSUER  # RFC 9207, byte for byte
    assert "code" not in got
    if state is None:
        assert "state" not in got
    else:
        assert got["state"] == state
    return got


def sign_in(client: Any, query: dict[str, str]) -> Any:
    """GET the request, post the login form; returns the response after login."""
    r = authorize(client, query)
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    login = form(r.get_data(as_text=True), "login")
    return client.post(login.action, data=login.submit(username="alice", password=PASSWORD))


def approve(client: Any, r: Any, remember: bool = True) -> dict[str, str]:
    consent = form(r.get_data(as_text=True), "consent")
    body = consent.submit("approve", remember="yes" if remember else None)
    out = client.post(consent.action, data=body)
    assert out.status_code == 303, out.get_data(as_text=True)[:500]
    return redirect_params(out.headers["Location"])


# -- the client and its redirect URI: failures are pages ----------------------------------------


def test_login_page_for_a_valid_request(client: Any, public_client: str) -> None:
    r = authorize(client, params(public_client))
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    assert "Sign in" in page and "Test Client" in page
    login = form(page, "login")
    assert login.fields["client_id"] == public_client
    assert login.fields["redirect_uri"] == REDIRECT
    assert login.fields["state"] == "st-123"
    assert login.fields["csrf_token"]


def test_alias_path_serves_the_same_endpoint(client: Any, public_client: str) -> None:
    r = authorize(client, params(public_client), path="/authorize")
    assert r.status_code == 200
    assert form(r.get_data(as_text=True), "login").fields["client_id"] == public_client


def test_missing_client_id_is_a_page(client: Any) -> None:
    assert_error_page(authorize(client, {"response_type": "code"}), text="client_id")


def test_unknown_client_is_a_page_not_a_redirect(client: Any) -> None:
    assert_error_page(authorize(client, params("no-such-client")), text="not registered")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example.com/callback",
        "http://127.0.0.1:8765/other",
        "http://127.0.0.1:8765/callback?x=1",
        "http://127.0.0.1:8765/callback#frag",
        "https://app.example.com/oauth/callback/",
        "https://app.example.com:444/oauth/callback",
        "http://app.example.com/oauth/callback",
        "https://APP.example.com/oauth/callback",
        "http://user@127.0.0.1:8765/callback",
        "javascript:alert(1)",
        "not a uri",
    ],
)
def test_unregistered_redirect_uri_is_a_page_not_a_redirect(client: Any, public_client: str, redirect_uri: str) -> None:
    assert_error_page(authorize(client, params(public_client, redirect_uri=redirect_uri)), text="not registered")


def test_loopback_redirect_matches_on_any_port(client: Any, public_client: str, alice: str) -> None:
    other_port = "http://127.0.0.1:51234/callback"
    r = sign_in(client, params(public_client, redirect_uri=other_port))
    consent = form(r.get_data(as_text=True), "consent")
    out = client.post(consent.action, data=consent.submit("approve"))
    assert out.headers["Location"].startswith(other_port + "?code=")


def test_missing_redirect_uri_with_several_registered_is_a_page(client: Any, public_client: str) -> None:
    assert_error_page(authorize(client, params(public_client, redirect_uri=None)), text="redirect_uri")


def test_missing_redirect_uri_with_one_registered_uses_it(
    client: Any, make_client: Any, state: Any, alice: str
) -> None:
    cid, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=(HTTPS_REDIRECT,))
    r = sign_in(client, params(cid, redirect_uri=None))
    consent = form(r.get_data(as_text=True), "consent")
    assert "redirect_uri" not in consent.fields
    out = client.post(consent.action, data=consent.submit("approve"))
    location = out.headers["Location"]
    assert location.startswith(HTTPS_REDIRECT + "?code=")
    code, _ = state.token_store.consume_code(secrets.token_hash(redirect_params(location)["code"]), state.now())
    # Recorded as omitted, so the token request must omit it too (RFC 6749 §4.1.3).
    assert code.redirect_uri == ""


def test_repeated_client_id_is_a_page(client: Any, public_client: str) -> None:
    query = urlencode(params(public_client)) + "&client_id=" + public_client
    assert_error_page(authorize(client, query), text="repeated")


def test_post_without_form_encoding_is_a_page(client: Any, public_client: str) -> None:
    r = client.post("/oauth/authorize", json=params(public_client))
    assert_error_page(r)


def test_oversized_body_is_a_page(client: Any, public_client: str) -> None:
    r = client.post("/oauth/authorize", data={"client_id": public_client, "x": "a" * 70000})
    assert_error_page(r, status=413)


# -- after the redirect URI is trusted: errors go to the client ---------------------------------


def test_missing_response_type(client: Any, public_client: str) -> None:
    assert_error_redirect(authorize(client, params(public_client, response_type=None)), "invalid_request")


@pytest.mark.parametrize("response_type", ["token", "id_token", "code token", "CODE", "code id_token"])
def test_only_response_type_code(client: Any, public_client: str, response_type: str) -> None:
    r = authorize(client, params(public_client, response_type=response_type))
    assert_error_redirect(r, "unsupported_response_type")


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge": None},  # PKCE is required
        {"code_challenge_method": None},  # absent means plain (RFC 7636 §4.3)
        {"code_challenge_method": "plain"},
        {"code_challenge_method": "s256"},
        {"code_challenge": "short"},
        {"code_challenge": "a" * 42 + "="},
        {"code_challenge": "a" * 44},
        {"code_challenge": "a" * 42 + "+"},
    ],
)
def test_pkce_s256_is_required(client: Any, public_client: str, overrides: dict[str, str | None]) -> None:
    r = authorize(client, params(public_client, **overrides))
    got = assert_error_redirect(r, "invalid_request")
    assert "code_challenge" in got["error_description"]


@pytest.mark.parametrize(
    "scope",
    ["mcp:prompts", "mcp:tools mcp:prompts", "admin", 'mcp:tools "bad"', "mcp:tools\\x"],
)
def test_scope_outside_the_clients_is_refused(client: Any, public_client: str, scope: str) -> None:
    assert_error_redirect(authorize(client, params(public_client, scope=scope)), "invalid_scope")


def test_client_without_the_code_grant_is_unauthorized(client: Any, make_client: Any) -> None:
    cid, _ = make_client(("client_credentials",), redirect_uris=(REDIRECT,))
    assert_error_redirect(authorize(client, params(cid)), "unauthorized_client")


@pytest.mark.parametrize(
    "resource", ["https://other.example.com/mcp", "http://127.0.0.1:8000/elsewhere", "not-a-uri", ISSUER + "/mcp#x"]
)
def test_foreign_resource_is_invalid_target(client: Any, public_client: str, resource: str) -> None:
    assert_error_redirect(authorize(client, params(public_client, resource=resource)), "invalid_target")


@pytest.mark.parametrize(
    "query_suffix",
    ["&state=again", "&scope=mcp:tools&scope=mcp:tools", "&code_challenge=" + "b" * 43, "&response_type=code"],
)
def test_repeated_parameter_is_invalid_request_to_the_client(
    client: Any, public_client: str, query_suffix: str
) -> None:
    query = urlencode(params(public_client, scope="mcp:tools")) + query_suffix
    r = authorize(client, query)
    got = assert_error_redirect(r, "invalid_request", state="st-123" if "state=" not in query_suffix else None)
    assert "repeated" in got["error_description"]


def test_oversized_parameter_is_invalid_request_to_the_client(client: Any, public_client: str) -> None:
    r = authorize(client, params(public_client, scope="x" * 5000))
    assert_error_redirect(r, "invalid_request")
    r = authorize(client, params(public_client, state="s" * 5000))
    assert_error_redirect(r, "invalid_request", state=None)


def test_garbage_bytes_are_refused_without_a_crash(client: Any, public_client: str) -> None:
    # Not UTF-8 in an otherwise trusted request: the client hears of it (without the bad state).
    r = client.get("/oauth/authorize?client_id=" + public_client + "&state=%FF%FE&redirect_uri=" + REDIRECT)
    got = assert_error_redirect(r, "invalid_request", state=None)
    assert "UTF-8" in got["error_description"]
    # Raw non-ASCII bytes in the query, and a client_id that is not UTF-8: nothing to trust.
    raw = {"QUERY_STRING": "client_id=\xff\xfe&redirect_uri=" + REDIRECT}
    assert_error_page(client.get("/oauth/authorize", environ_overrides=raw))
    assert_error_page(client.get("/oauth/authorize?client_id=%FF%FE&redirect_uri=" + REDIRECT))


def test_state_is_optional_and_echoed_exactly(client: Any, public_client: str) -> None:
    odd = "a b+c/d?e=f&g=%20 \u00e9\u4e2d"
    got = assert_error_redirect(
        authorize(client, params(public_client, state=odd, response_type="x")), "unsupported_response_type", state=odd
    )
    assert got["state"] == odd
    assert_error_redirect(
        authorize(client, params(public_client, state=None, response_type="x")), "unsupported_response_type", state=None
    )


def test_redirect_keeps_the_registered_query(client: Any, make_client: Any) -> None:
    with_query = "https://app.example.com/cb?tenant=7"
    cid, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=(with_query,))
    r = authorize(client, params(cid, redirect_uri=with_query, response_type="x"))
    assert r.headers["Location"].startswith(with_query + "&error=unsupported_response_type")
    assert redirect_params(r.headers["Location"])["tenant"] == "7"


# -- what the issued code is bound to -----------------------------------------------------------


def _code_record(state: Any, location: str) -> Any:
    code, first = state.token_store.consume_code(secrets.token_hash(redirect_params(location)["code"]), state.now())
    assert first
    return code


def test_code_is_bound_to_the_request(client: Any, public_client: str, state: Any, alice: str) -> None:
    verifier, challenge = pkce_pair()
    query = params(public_client, challenge, scope="mcp:resources", resource=ISSUER + "/mcp/")
    r = sign_in(client, query)
    consent = form(r.get_data(as_text=True), "consent")
    before = state.now()
    out = client.post(consent.action, data=consent.submit("approve"))
    got = redirect_params(out.headers["Location"])
    assert got["state"] == "st-123" and got["iss"] == ISSUER
    code = _code_record(state, out.headers["Location"])
    assert code.client_id == public_client
    assert code.redirect_uri == REDIRECT
    assert code.code_challenge == challenge
    assert code.scope == "mcp:resources"
    assert code.resource == MCP_RESOURCE  # canonical form (no trailing slash)
    assert code.subject == "alice"
    assert len(code.family_id) >= 16
    assert before + 60 <= code.expires_at <= state.now() + 60
    assert code.auth_time >= before - 5


def test_no_scope_gets_the_clients_registered_scopes(client: Any, public_client: str, state: Any, alice: str) -> None:
    r = sign_in(client, params(public_client))
    page = r.get_data(as_text=True)
    assert "Call tools on the MCP server on your behalf" in page
    assert "Read resources from the MCP server" in page
    consent = form(page, "consent")
    out = client.post(consent.action, data=consent.submit("approve"))
    assert _code_record(state, out.headers["Location"]).scope == "mcp:tools mcp:resources"


def test_no_scope_and_none_registered_gets_the_server_defaults(
    client: Any, make_client: Any, state: Any, alice: str
) -> None:
    cid, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=(REDIRECT,), scope="")
    r = sign_in(client, params(cid))
    consent = form(r.get_data(as_text=True), "consent")
    out = client.post(consent.action, data=consent.submit("approve"))
    assert _code_record(state, out.headers["Location"]).scope == "mcp:tools"


def test_absent_resource_is_the_default_mcp_resource(client: Any, public_client: str, state: Any, alice: str) -> None:
    r = sign_in(client, params(public_client))
    consent = form(r.get_data(as_text=True), "consent")
    out = client.post(consent.action, data=consent.submit("approve"))
    assert _code_record(state, out.headers["Location"]).resource == MCP_RESOURCE


def test_authorization_request_by_post(client: Any, public_client: str) -> None:
    """RFC 6749 §3.1: the authorization endpoint supports POST as well as GET."""
    r = client.post("/oauth/authorize", data=params(public_client))
    assert r.status_code == 200
    assert form(r.get_data(as_text=True), "login").fields["state"] == "st-123"
    r = client.post("/oauth/authorize", data=params(public_client, response_type="token"))
    assert r.status_code == 303
    assert redirect_params(r.headers["Location"])["error"] == "unsupported_response_type"


def test_full_exchange_at_the_token_endpoint(client: Any, public_client: str, alice: str) -> None:
    verifier, challenge = pkce_pair()
    r = sign_in(client, params(public_client, challenge))
    got = approve(client, r)
    token = client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": got["code"],
            "code_verifier": verifier,
            "client_id": public_client,
            "redirect_uri": REDIRECT,
        },
    )
    assert token.status_code == 200, token.json
    who = client.get("/mcp/whoami", headers={"Authorization": f"Bearer {token.json['access_token']}"})
    assert who.status_code == 200
    assert who.json["sub"] == "alice" and who.json["client_id"] == public_client


# -- response headers ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["login", "error", "redirect"])
def test_security_headers_on_every_response(client: Any, public_client: str, kind: str) -> None:
    query = {
        "login": params(public_client),
        "error": params("no-such-client"),
        "redirect": params(public_client, response_type="token"),
    }[kind]
    r = authorize(client, query)
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src" not in csp  # no scripts at all (default-src 'none')
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_page_style_is_allowed_by_hash_and_nothing_external(client: Any, public_client: str) -> None:
    import base64
    import hashlib
    import re

    r = authorize(client, params(public_client))
    page = r.get_data(as_text=True)
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in r.headers["Content-Security-Policy"]
    assert "<script" not in page and " style=" not in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def test_form_action_allows_the_clients_origin(client: Any, public_client: str) -> None:
    # Browsers apply form-action to the redirect after a form POST; the client's origin must pass.
    r = authorize(client, params(public_client))
    assert "form-action 'self' http://127.0.0.1:8765;" in r.headers["Content-Security-Policy"]


# -- Client ID Metadata Documents ---------------------------------------------------------------

CIMD_URL = "https://client.example.com/oauth/metadata.json"


class FakeFetcher:
    """Stands in for the network fetch (tested in tests/unit/test_cimd.py)."""

    def __init__(self, doc: dict[str, Any] | None = None, error: str | None = None) -> None:
        self.doc, self.error, self.calls = doc, error, 0

    def fetch(self, url: str) -> tuple[dict[str, Any], int]:
        self.calls += 1
        if self.error:
            raise MetadataDocumentError(self.error)
        assert self.doc is not None
        return dict(self.doc), 300


def _use_fetcher(state: Any, fetcher: FakeFetcher) -> None:
    from app.oauth.register import validate_metadata

    state.extras["cimd"] = MetadataDocuments(fetcher, lambda body: validate_metadata(state, body))  # type: ignore[arg-type]


def test_metadata_document_client_authorizes_and_exchanges(client: Any, state: Any, alice: str) -> None:
    fetcher = FakeFetcher(
        {
            "client_id": CIMD_URL,
            "client_name": "Doc Client",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
    )
    _use_fetcher(state, fetcher)
    verifier, challenge = pkce_pair()
    r = sign_in(client, params(CIMD_URL, challenge))
    page = r.get_data(as_text=True)
    assert "Doc Client" in page and "Unverified application" in page and "client.example.com" in page
    got = approve(client, r)
    stored = state.storage.get_client(CIMD_URL)
    assert stored is not None and stored.registered_by == "cimd" and stored.is_public
    token = client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": got["code"],
            "code_verifier": verifier,
            "client_id": CIMD_URL,
            "redirect_uri": REDIRECT,
        },
    )
    assert token.status_code == 200, token.json
    assert fetcher.calls == 1  # cached across the three requests


def test_metadata_document_client_is_asked_about_every_request(client: Any, state: Any, alice: str) -> None:
    """A metadata-document client is public: no "remember" choice, and a remember field sent
    anyway stores nothing, so the next request shows the consent page again (OAuth 2.1 §7.3.1)."""
    doc = {"client_id": CIMD_URL, "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}
    _use_fetcher(state, FakeFetcher(doc))
    r = sign_in(client, params(CIMD_URL))
    assert "remember" not in form(r.get_data(as_text=True), "consent").checkboxes
    assert "code" in approve(client, r, remember=True)  # sends remember=yes regardless
    assert state.storage.get_consent("alice", CIMD_URL) is None
    again = authorize(client, params(CIMD_URL))
    assert again.status_code == 200 and form(again.get_data(as_text=True), "consent")
    silent = authorize(client, params(CIMD_URL, prompt="none"))
    assert_error_redirect(silent, "consent_required")


def test_metadata_document_redirect_uri_must_be_listed(client: Any, state: Any) -> None:
    _use_fetcher(state, FakeFetcher({"client_id": CIMD_URL, "redirect_uris": [HTTPS_REDIRECT]}))
    assert_error_page(authorize(client, params(CIMD_URL)), text="not registered")


def test_metadata_document_failure_is_a_clear_page(client: Any, state: Any) -> None:
    _use_fetcher(state, FakeFetcher(error="client.example.com answered HTTP 404 for the metadata document"))
    r = authorize(client, params(CIMD_URL))
    assert_error_page(r, text="could not be identified")
    assert "HTTP 404" in r.get_data(as_text=True)


def test_metadata_document_on_a_private_address_is_refused(client: Any) -> None:
    # The real fetcher: 127.0.0.1 is refused before any connection (OAUTH_CIMD_ALLOW_PRIVATE off).
    r = authorize(client, params("https://127.0.0.1/client.json", redirect_uri=REDIRECT))
    assert_error_page(r, text="private or reserved address")


def test_metadata_advertises_the_authorization_endpoint(client: Any) -> None:
    meta = client.get("/.well-known/oauth-authorization-server").json
    assert meta["authorization_endpoint"] == ISSUER + "/oauth/authorize"
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["client_id_metadata_document_supported"] is True
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]


def test_metadata_documents_are_cached_per_process_without_redis(state: Any) -> None:
    # The SQL stores keep no fetched documents: only the redis token store shares them.
    assert state.extras["cimd"].shared is None
