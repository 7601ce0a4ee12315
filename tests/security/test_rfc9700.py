"""RFC 9700 (OAuth 2.0 Security Best Current Practice), section by section: each test is named
after the requirement it proves (see walk.py for the table, including the rules that do not
apply and why)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from flask.testing import FlaskClient

from app import create_app
from app.core import secrets
from app.errors import ConfigurationError
from tests.conftest import ISSUER, MCP_RESOURCE, base_config
from tests.security.conftest import (
    LOOPBACK,
    SELF_WEB,
    WEB,
    Clients,
    authorization_query,
    authorize,
    exchange,
    iat,
    person_tokens,
    refresh,
    whoami,
)
from tests.support.checks import assert_error, assert_invalid_client
from tests.support.grants import store_code
from tests.support.people import PASSWORD, form, pkce_pair, redirect_params


def get_authorize(client: FlaskClient, query: dict[str, str] | str) -> Any:
    return client.get("/oauth/authorize?" + (query if isinstance(query, str) else urlencode(query)))


def assert_page_not_redirect(r: Any, status: int = 400) -> None:
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:300])
    assert "Location" not in r.headers and r.mimetype == "text/html"


def error_redirect(r: Any, target: str = LOOPBACK) -> dict[str, str]:
    assert r.status_code in (302, 303), (r.status_code, r.get_data(as_text=True)[:300])
    assert r.headers["Location"].startswith(target + "?"), r.headers["Location"]
    got = redirect_params(r.headers["Location"])
    assert "error" in got and got["iss"] == ISSUER and "code" not in got
    return got


# -- §2.1 protecting redirect-based flows --------------------------------------------------------

NEAR_MISSES = [
    LOOPBACK + "/",  # trailing slash
    LOOPBACK.replace("callback", "Callback"),  # path case
    LOOPBACK + "?x=1",  # added query
    LOOPBACK + "#frag",  # fragment
    LOOPBACK + "/../callback",  # dot segments (no normalisation)
    LOOPBACK.replace("callback", "callback%2F"),  # encoded slash
    "http://localhost:8765/callback",  # another loopback host
    "http://127.0.0.1.evil.example:8765/callback",
    "http://user@127.0.0.1:8765/callback",  # userinfo
    "https://127.0.0.1:8765/callback",  # other scheme
    "https://evil.example/callback",
]


@pytest.mark.parametrize("sent", NEAR_MISSES)
def test_rfc9700_2_1_redirect_uri_exact_match(client: FlaskClient, clients: Clients, sent: str) -> None:
    r = get_authorize(client, authorization_query(clients.public, sent, pkce_pair()[1]))
    assert_page_not_redirect(r)


@pytest.mark.parametrize(
    "sent", [WEB + "/", WEB.upper(), "https://app.example.com:443/cb", "https://app.example.com/cb?"]
)
def test_rfc9700_4_1_3_exact_matching(client: FlaskClient, clients: Clients, sent: str) -> None:
    """Simple string comparison: even URIs equal after normalisation are different strings."""
    r = get_authorize(client, authorization_query(clients.confidential[0], sent, pkce_pair()[1]))
    assert_page_not_redirect(r)


@pytest.mark.parametrize("port", ["", ":1", ":49152", ":65535"])
def test_rfc9700_4_1_3_loopback_any_port(client: FlaskClient, clients: Clients, port: str) -> None:
    r = get_authorize(client, authorization_query(clients.public, f"http://127.0.0.1{port}/callback", pkce_pair()[1]))
    assert r.status_code == 200 and 'value="login"' in r.get_data(as_text=True)


@pytest.mark.parametrize("param", ["redirect_uri", "next", "return_to", "url", "continue", "redirect"])
def test_rfc9700_2_1_no_open_redirector(client: FlaskClient, clients: Clients, param: str) -> None:
    """No endpoint forwards the browser to a URI taken from a parameter: an unregistered target
    is a page, and extra redirect-like parameters never change where a redirect goes."""
    evil = "https://evil.example/x"
    query = authorization_query(clients.public, LOOPBACK, pkce_pair()[1], response_type="token")
    query[param] = evil
    r = get_authorize(client, query)
    if param == "redirect_uri":
        assert_page_not_redirect(r)
    else:
        assert error_redirect(r)["error"] == "unsupported_response_type"
    for path in ("/", "/oauth/authorize", "/.well-known/oauth-authorization-server", "/healthz"):
        r = client.get(f"{path}?{param}={evil}")
        assert "evil.example" not in r.headers.get("Location", "")


def test_rfc9700_2_1_iss_for_mix_up(client: FlaskClient, clients: Clients, alice: str) -> None:
    ok = authorize(client, clients.public)
    metadata = client.get("/.well-known/oauth-authorization-server").get_json()
    assert ok.params["iss"] == metadata["issuer"] == ISSUER
    assert metadata["authorization_response_iss_parameter_supported"] is True
    denied = authorize(client, clients.public, decision="deny")
    assert denied.params["error"] == "access_denied" and denied.params["iss"] == ISSUER


def test_rfc9700_2_1_no_credential_forwarding(client: FlaskClient, clients: Clients, alice: str) -> None:
    """After the login and consent POSTs the redirect is 303, which makes the browser drop the
    form (with the password) instead of re-posting it to the client."""
    verifier, challenge = pkce_pair()
    page = get_authorize(client, authorization_query(clients.public, LOOPBACK, challenge))
    login = form(page.get_data(as_text=True), "login")
    consent_page = client.post(login.action, data=login.submit(username="alice", password=PASSWORD))
    consent = form(consent_page.get_data(as_text=True), "consent")
    r = client.post(consent.action, data=consent.submit("approve"))
    assert r.status_code == 303
    # A confidential client's consent can be remembered; then the login POST itself ends in the
    # redirect: 303 as well.
    conf = clients.confidential[0]
    page = get_authorize(client, authorization_query(conf, LOOPBACK, challenge))
    consent = form(page.get_data(as_text=True), "consent")
    assert client.post(consent.action, data=consent.submit("approve", remember="yes")).status_code == 303
    with client.session_transaction("/oauth/authorize") as s:
        s.clear()
    page = get_authorize(client, authorization_query(conf, LOOPBACK, challenge))
    login = form(page.get_data(as_text=True), "login")
    r = client.post(login.action, data=login.submit(username="alice", password=PASSWORD))
    assert r.status_code == 303 and "code=" in r.headers["Location"]
    assert PASSWORD.replace(" ", "+") not in r.headers["Location"] and "password" not in r.headers["Location"]


# -- §2.1.1 authorization code grant -------------------------------------------------------------


@pytest.mark.parametrize(
    "drop", [("code_challenge",), ("code_challenge", "code_challenge_method"), ("code_challenge_method",)]
)
def test_rfc9700_2_1_1_pkce_required_for_public_clients(
    client: FlaskClient, clients: Clients, drop: tuple[str, ...]
) -> None:
    query = authorization_query(clients.public, LOOPBACK, pkce_pair()[1])
    for name in drop:
        del query[name]
    got = error_redirect(get_authorize(client, query))
    assert got["error"] == "invalid_request" and "code_challenge" in got["error_description"]


def test_rfc9700_2_1_1_pkce_required_for_confidential_clients(client: FlaskClient, clients: Clients) -> None:
    query = authorization_query(clients.confidential[0], WEB, "x")
    del query["code_challenge"]
    got = error_redirect(get_authorize(client, query), target=WEB)
    assert got["error"] == "invalid_request"


def test_rfc9700_2_1_1_s256_only(client: FlaskClient, clients: Clients) -> None:
    verifier, _ = pkce_pair()
    query = authorization_query(clients.public, LOOPBACK, verifier, code_challenge_method="plain")
    got = error_redirect(get_authorize(client, query))
    assert got["error"] == "invalid_request" and "S256" in got["error_description"]


def test_rfc9700_2_1_1_pkce_supported(client: FlaskClient, clients: Clients, alice: str) -> None:
    body = person_tokens(client, clients.public)
    assert body["token_type"] == "Bearer" and whoami(client, body["access_token"]).status_code == 200


def test_rfc9700_2_1_1_code_verifier_enforced(client: FlaskClient, clients: Clients, alice: str) -> None:
    got = authorize(client, clients.public)
    missing = client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": got.code,
            "client_id": clients.public,
            "redirect_uri": LOOPBACK,
        },
    )
    assert_error(missing, 400, "invalid_request", "code_verifier")
    got.verifier = pkce_pair()[0]  # another, well-formed verifier
    assert_error(exchange(client, got, clients.public), 400, "invalid_grant", "PKCE")


def test_rfc9700_2_1_1_pkce_downgrade(client: FlaskClient, clients: Clients, state: Any) -> None:
    """No code is ever issued without a challenge (the request is refused), so a token request
    with a verifier can only meet a code that has one, and must match it."""
    query = authorization_query(clients.public, LOOPBACK, "unused")
    del query["code_challenge"], query["code_challenge_method"]
    assert error_redirect(get_authorize(client, query))["error"] == "invalid_request"
    issued = store_code(state.token_store, clients.public, redirect_uri=LOOPBACK)
    assert_error(client.post("/oauth/token", data=issued.params(code_verifier=pkce_pair()[0])), 400, "invalid_grant")


def test_rfc9700_2_1_1_pkce_discoverable(client: FlaskClient) -> None:
    assert client.get("/.well-known/oauth-authorization-server").get_json()["code_challenge_methods_supported"] == [
        "S256"
    ]


def test_rfc9700_4_7_1_pkce_support_detectable(client: FlaskClient) -> None:
    metadata = client.get("/.well-known/oauth-authorization-server")
    assert metadata.status_code == 200 and "S256" in metadata.get_json()["code_challenge_methods_supported"]


def test_rfc9700_4_8_2_downgrade_rejected(client: FlaskClient, clients: Clients, state: Any) -> None:
    """A code whose request carried no challenge cannot exist; the stored challenge is always
    checked, so a verifier for another challenge (the downgrade's goal) is refused."""
    issued = store_code(state.token_store, clients.public, redirect_uri=LOOPBACK)
    stored, _ = state.token_store.consume_code(secrets.token_hash(issued.code), state.now())
    assert stored is not None and len(stored.code_challenge) == 43
    other = store_code(state.token_store, clients.public, redirect_uri=LOOPBACK)
    assert_error(client.post("/oauth/token", data=other.params(code_verifier=issued.verifier)), 400, "invalid_grant")


# -- §2.1.2 implicit grant ----------------------------------------------------------------------


@pytest.mark.parametrize("response_type", ["token", "code token", "id_token token"])
def test_rfc9700_2_1_2_no_implicit_grant(client: FlaskClient, clients: Clients, response_type: str) -> None:
    got = error_redirect(
        get_authorize(
            client, authorization_query(clients.public, LOOPBACK, pkce_pair()[1], response_type=response_type)
        )
    )
    assert got["error"] == "unsupported_response_type" and "access_token" not in got
    assert client.get("/.well-known/oauth-authorization-server").get_json()["response_types_supported"] == ["code"]


# -- §2.2 token replay prevention ---------------------------------------------------------------


def test_rfc9700_2_2_2_refresh_rotation_for_public_clients(client: FlaskClient, clients: Clients, alice: str) -> None:
    first = person_tokens(client, clients.public)
    second = refresh(client, clients.public, first["refresh_token"])
    assert second.status_code == 200
    assert second.get_json()["refresh_token"] != first["refresh_token"]
    assert_error(refresh(client, clients.public, first["refresh_token"]), 400, "invalid_grant")


# -- §2.3 access token privilege restriction ----------------------------------------------------


def test_rfc9700_2_3_audience_restricted(client: FlaskClient, clients: Clients, state: Any, alice: str) -> None:
    import jwt

    token = person_tokens(client, clients.public)["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == MCP_RESOURCE
    foreign, _ = state.access_tokens.issue(
        subject="alice", client_id=clients.public, scope="mcp:tools", audience="https://other.example/mcp"
    )
    r = whoami(client, foreign)
    assert r.status_code == 401 and "invalid_token" in r.headers["WWW-Authenticate"]


def test_rfc9700_2_3_least_privilege(client: FlaskClient, clients: Clients, alice: str) -> None:
    got = authorize(client, clients.public, scope="mcp:tools")
    body = exchange(client, got, clients.public).get_json()
    assert body["scope"] == "mcp:tools"
    narrowed = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "mcp:resources"},
        auth=clients.machine,
    )
    assert narrowed.get_json()["scope"] == "mcp:resources"
    r = whoami(client, narrowed.get_json()["access_token"])
    assert r.status_code == 403 and "insufficient_scope" in r.headers["WWW-Authenticate"]


# -- §2.4, §2.5, §2.6 -----------------------------------------------------------------------


def test_rfc9700_2_4_no_password_grant(client: FlaskClient, clients: Clients, alice: str) -> None:
    r = client.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "alice", "password": PASSWORD},
        auth=clients.machine,
    )
    assert_error(r, 400, "unsupported_grant_type")
    assert "password" not in client.get("/.well-known/oauth-authorization-server").get_json()["grant_types_supported"]


def test_rfc9700_2_5_client_authentication_enforced(client: FlaskClient, clients: Clients, state: Any) -> None:
    conf_id, conf_secret = clients.confidential
    issued = store_code(state.token_store, conf_id, redirect_uri=WEB)
    assert_invalid_client(client.post("/oauth/token", data=issued.params()))  # client_id alone
    assert_invalid_client(client.post("/oauth/token", data=issued.params(client_secret="wrong")))
    # Failed authentication happens before the grant: the code is still good for its client.
    assert client.post("/oauth/token", data=issued.params(client_secret=conf_secret)).status_code == 200
    machine_id, _ = clients.machine
    assert_invalid_client(
        client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": machine_id})
    )


def test_rfc9700_2_6_metadata_published(client: FlaskClient) -> None:
    r = client.get("/.well-known/oauth-authorization-server")
    meta = r.get_json()
    assert r.status_code == 200 and meta["issuer"] == ISSUER
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "registration_endpoint"):
        assert meta[name].startswith(ISSUER + "/"), name


def test_rfc9700_2_6_client_id_not_chosen_by_client(client: FlaskClient) -> None:
    r = client.post(
        "/oauth/register",
        json={"client_id": "alice", "redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none"},
    )
    assert r.status_code == 201 and r.get_json()["client_id"] != "alice"
    assert len(r.get_json()["client_id"]) >= 20


@pytest.mark.parametrize(
    "uri", ["http://app.example.com/cb", "http://10.0.0.1/cb", "http://[fe80::1]/cb", "http://0.0.0.0/cb"]
)
def test_rfc9700_2_6_no_http_redirect_uris(client: FlaskClient, uri: str) -> None:
    r = client.post("/oauth/register", json={"redirect_uris": [uri], "token_endpoint_auth_method": "none"})
    assert_error(r, 400, "invalid_redirect_uri")


@pytest.mark.parametrize("issuer", ["http://auth.example.com", "http://10.0.0.5:8000", "ftp://auth.example.com"])
def test_rfc9700_2_6_tls_issuer(tmp_path: Any, issuer: str) -> None:
    with pytest.raises(ConfigurationError, match="https"):
        create_app(base_config(tmp_path, OAUTH_ISSUER=issuer))
    app = create_app(base_config(tmp_path, OAUTH_ISSUER="https://auth.example.com"))
    try:
        assert app.config["SESSION_COOKIE_SECURE"] is True
    finally:
        app.extensions["mcp_oauth"].close()


def test_rfc9700_2_6_no_cors_at_authorization_endpoint(client: FlaskClient, clients: Clients) -> None:
    origin = {"Origin": "https://evil.example"}
    query = urlencode(authorization_query(clients.public, LOOPBACK, pkce_pair()[1]))
    for r in (
        client.get("/oauth/authorize?" + query, headers=origin),
        client.options("/oauth/authorize", headers=origin | {"Access-Control-Request-Method": "POST"}),
        client.post("/oauth/authorize", data=query, headers=origin, content_type="application/x-www-form-urlencoded"),
    ):
        assert not any(h.lower().startswith("access-control-") for h in r.headers.keys()), dict(r.headers)
    # ... while the token endpoint, which browser clients call, does answer CORS.
    assert client.options("/oauth/token", headers=origin | {"Access-Control-Request-Method": "POST"}).headers.get(
        "Access-Control-Allow-Origin"
    )


# -- §4.2 - §4.5 ----------------------------------------------------------------------------------


def test_rfc9700_4_2_4_no_third_party_content(client: FlaskClient, clients: Clients, alice: str) -> None:
    pages = [get_authorize(client, authorization_query(clients.public, LOOPBACK, pkce_pair()[1]))]
    login = form(pages[0].get_data(as_text=True), "login")
    pages.append(client.post(login.action, data=login.submit(username="alice", password=PASSWORD)))
    pages.append(get_authorize(client, "client_id=nope"))
    for page in pages:
        html = page.get_data(as_text=True)
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        for url in re.findall(r'(?:src|href|action)="([^"]*)"', html):
            assert not urlsplit(url).netloc, f"external reference {url}"
        assert "<script" not in html.lower()


def test_rfc9700_4_2_4_code_single_use(client: FlaskClient, clients: Clients, alice: str) -> None:
    got = authorize(client, clients.public)
    first = exchange(client, got, clients.public)
    assert first.status_code == 200
    assert whoami(client, first.get_json()["access_token"]).status_code == 200
    assert_error(exchange(client, got, clients.public), 400, "invalid_grant", "already used")
    assert whoami(client, first.get_json()["access_token"]).status_code == 401
    assert_error(refresh(client, clients.public, first.get_json()["refresh_token"]), 400, "invalid_grant")


def test_rfc9700_4_3_2_token_not_in_query(client: FlaskClient, clients: Clients, alice: str) -> None:
    token = person_tokens(client, clients.public)["access_token"]
    r = client.get(f"/mcp/whoami?access_token={token}")
    assert r.status_code == 400 and 'error="invalid_request"' in r.headers["WWW-Authenticate"]
    # The authorization response never carries a token either (no implicit grant).
    got = authorize(client, clients.public)
    assert set(got.params) == {"code", "state", "iss"}


def test_rfc9700_4_4_2_issuer_identification(client: FlaskClient, clients: Clients, alice: str) -> None:
    for r in (
        authorize(client, clients.public),
        authorize(client, clients.public, decision="deny"),
    ):
        assert r.params["iss"] == ISSUER
    bad = get_authorize(client, authorization_query(clients.public, LOOPBACK, pkce_pair()[1], scope="nope"))
    assert error_redirect(bad)["iss"] == ISSUER


def test_rfc9700_4_5_3_code_bound_to_transaction(
    client: FlaskClient, clients: Clients, state: Any, make_client: Any
) -> None:
    other, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=(LOOPBACK,))
    checks = [
        ({"client_id": other}, "another client"),
        ({"redirect_uri": "http://127.0.0.1:8765/other"}, "redirect_uri"),
        ({"code_verifier": pkce_pair()[0]}, "PKCE"),
    ]
    for overrides, words in checks:
        issued = store_code(state.token_store, clients.public, redirect_uri=LOOPBACK)
        assert_error(client.post("/oauth/token", data=issued.params(**overrides)), 400, "invalid_grant", words)


# -- §4.9, §4.10 -----------------------------------------------------------------------------------


def test_rfc9700_4_9_3_tokens_not_stored_in_plain_text(
    client: FlaskClient, clients: Clients, state: Any, alice: str, tmp_path: Any
) -> None:
    """Nothing a bearer could use is at rest in the database file: tokens, codes, secrets."""
    got = authorize(client, clients.public)
    body = exchange(client, got, clients.public).get_json()
    rotated = refresh(client, clients.public, body["refresh_token"]).get_json()
    reg = client.post("/oauth/register", json={"redirect_uris": [LOOPBACK]}).get_json()
    token = iat(state)
    cc = client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=clients.machine).get_json()
    state.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("oauth.sqlite3*"))
    assert raw, "no database file"
    for name, value in {
        "code": got.code,
        "verifier": got.verifier,
        "access token": body["access_token"],
        "refresh token": body["refresh_token"],
        "rotated refresh token": rotated["refresh_token"],
        "client secret": reg["client_secret"],
        "registration token": reg["registration_access_token"],
        "initial access token": token,
        "machine secret": clients.machine[1],
        "client_credentials token": cc["access_token"],
        "password": PASSWORD,
    }.items():
        assert value.encode() not in raw, f"{name} stored in plain text"


def test_rfc9700_4_9_3_tokens_not_stored_in_plain_text_at_workers(
    client: FlaskClient, clients: Clients, state: Any
) -> None:
    """A worker validating by introspection keeps only a hash of each token in its cache."""
    import httpx

    from app.resource import RemoteResourceServer

    rs_id, rs_secret = clients.machine
    token = client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=clients.machine).get_json()[
        "access_token"
    ]
    worker = RemoteResourceServer(
        ISSUER, MCP_RESOURCE, introspection=(rs_id, rs_secret), http=httpx.Client(transport=_wsgi(client))
    )
    assert worker.verify(token).client_id == rs_id
    assert token not in repr(worker._introspected) and list(worker._introspected)[0] != token


def _wsgi(client: FlaskClient) -> Any:
    import httpx

    return httpx.WSGITransport(app=client.application)


def test_rfc9700_4_10_2_audience_checked(client: FlaskClient, clients: Clients, state: Any) -> None:
    """Both resource servers: this app's guard and a worker for another resource."""
    import httpx

    from app.resource import RemoteResourceServer

    ours = client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=clients.machine).get_json()
    worker = RemoteResourceServer(ISSUER, "https://worker.example/mcp", http=httpx.Client(transport=_wsgi(client)))
    from app.errors import InvalidTokenError

    with pytest.raises(InvalidTokenError, match="not issued for this resource"):
        worker.verify(ours["access_token"])
    theirs, _ = state.access_tokens.issue(
        subject="w", client_id=clients.machine[0], scope="mcp:tools", audience="https://worker.example/mcp"
    )
    assert worker.verify(theirs).sub == "w"
    assert whoami(client, theirs).status_code == 401


# -- §4.11 open redirection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"client_id": "unknown"},
        {"redirect_uri": "https://evil.example/cb"},
        {"client_id": ""},
    ],
)
def test_rfc9700_4_11_2_invalid_redirect_not_followed(
    client: FlaskClient, clients: Clients, query: dict[str, str]
) -> None:
    full = authorization_query(clients.public, LOOPBACK, pkce_pair()[1], response_type="nonsense") | query
    assert_page_not_redirect(get_authorize(client, full))


@pytest.mark.parametrize(
    "broken",
    [{"response_type": "token"}, {"scope": "admin"}, {"code_challenge_method": "plain"}, {"prompt": "none"}],
    ids=["response_type", "scope", "pkce", "prompt-none"],
)
def test_rfc9700_4_11_2_authenticate_before_redirecting(
    client: FlaskClient, clients: Clients, alice: str, broken: dict[str, str]
) -> None:
    """A self-registered client's web redirect URI is not trusted: an erroneous request (sent on
    purpose to bounce people to a phishing page) gets a page until the person has signed in;
    after signing in, the person's own decision (deny) does go back to the client."""
    query = authorization_query(clients.dynamic, SELF_WEB, pkce_pair()[1]) | broken
    r = get_authorize(client, query)
    assert_page_not_redirect(r)
    assert "not verified" in r.get_data(as_text=True)
    # Operator-registered clients and loopback targets stay on the RFC 6749 path: error redirects.
    trusted = authorization_query(clients.confidential[0], WEB, pkce_pair()[1]) | broken
    assert error_redirect(get_authorize(client, trusted), target=WEB)["iss"] == ISSUER
    # Signed in, the same client gets the person's answer.
    denied = authorize(client, clients.dynamic, SELF_WEB, decision="deny")
    assert denied.params["error"] == "access_denied" and denied.location.startswith(SELF_WEB + "?")
    assert error_redirect(get_authorize(client, query), target=SELF_WEB)["iss"] == ISSUER


# -- §4.12 - §4.16 ---------------------------------------------------------------------------------


def test_rfc9700_4_12_no_307_after_post(client: FlaskClient, clients: Clients, alice: str) -> None:
    statuses = [authorize(client, clients.public).status, authorize(client, clients.public, decision="deny").status]
    query = authorization_query(clients.public, LOOPBACK, pkce_pair()[1], scope="nope")
    statuses.append(client.post("/oauth/authorize", data=query).status_code)  # an error, by POST
    assert statuses == [303, 303, 303]
    assert get_authorize(client, query).status_code == 302  # GET: 302 is as safe


def test_rfc9700_4_13_forwarded_headers_not_trusted(tmp_path: Any) -> None:
    """With no trusted proxy configured, X-Forwarded-* neither changes the issuer nor lets a
    client pick its own address to escape the per-address failure limit."""
    app = create_app(base_config(tmp_path, RATELIMIT_AUTH_FAILURE="3/minute"))
    try:
        c = app.test_client()
        meta = c.get(
            "/.well-known/oauth-authorization-server",
            headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
        ).get_json()
        assert meta["issuer"] == ISSUER and "evil" not in str(meta)
        codes = [
            c.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=("nobody", "wrong"),
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
            for i in range(5)
        ]
        assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429], codes
    finally:
        app.extensions["mcp_oauth"].close()


def test_rfc9700_4_14_2_refresh_tokens_by_policy(client: FlaskClient, make_client: Any, alice: str) -> None:
    no_refresh, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=(LOOPBACK,))
    body = person_tokens(client, no_refresh)
    assert "refresh_token" not in body and body["access_token"]


def test_rfc9700_4_14_2_refresh_bound_to_scope_and_resource(client: FlaskClient, clients: Clients, alice: str) -> None:
    got = authorize(client, clients.public, scope="mcp:tools")
    body = exchange(client, got, clients.public).get_json()
    assert_error(
        refresh(client, clients.public, body["refresh_token"], scope="mcp:tools mcp:resources"), 400, "invalid_scope"
    )
    assert_error(
        refresh(client, clients.public, body["refresh_token"], resource="https://other.example/mcp"),
        400,
        "invalid_target",
    )
    ok = refresh(client, clients.public, body["refresh_token"])
    assert ok.status_code == 200 and ok.get_json()["scope"] == "mcp:tools"


def test_rfc9700_4_14_2_replay_detected_by_rotation(client: FlaskClient, clients: Clients, alice: str) -> None:
    first = person_tokens(client, clients.public)
    second = refresh(client, clients.public, first["refresh_token"]).get_json()
    assert whoami(client, second["access_token"]).status_code == 200
    assert_error(refresh(client, clients.public, first["refresh_token"]), 400, "invalid_grant", "already used")
    # The active refresh token and the access tokens of the grant are revoked with it.
    assert_error(refresh(client, clients.public, second["refresh_token"]), 400, "invalid_grant")
    assert whoami(client, second["access_token"]).status_code == 401
    assert whoami(client, first["access_token"]).status_code == 401


def test_rfc9700_4_14_2_refresh_expiry(
    client: FlaskClient, clients: Clients, state: Any, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every refresh token lives OAUTH_REFRESH_TOKEN_TTL from its own issue (rotation starts a new
    one), so a client that stays away that long must authorize again."""
    ttl = int(state.config["OAUTH_REFRESH_TOKEN_TTL"])
    body = person_tokens(client, clients.public)
    rt = state.token_store.get_refresh_token(secrets.token_hash(body["refresh_token"]))
    assert rt is not None and rt.expires_at - rt.issued_at == ttl <= 30 * 86400
    later = state.now() + ttl
    monkeypatch.setattr(state, "now", lambda: later)
    assert_error(refresh(client, clients.public, body["refresh_token"]), 400, "invalid_grant", "expired")


def test_rfc9700_4_15_1_client_cannot_pose_as_person(
    client: FlaskClient, clients: Clients, alice: str, state: Any
) -> None:
    """Client ids are chosen by the server (random), and a token a client obtains for itself
    says so: sub equals client_id, while a person's token names the person."""
    import jwt

    machine = client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=clients.machine).get_json()
    claims = jwt.decode(machine["access_token"], options={"verify_signature": False})
    assert claims["sub"] == claims["client_id"] == clients.machine[0]
    person = jwt.decode(person_tokens(client, clients.public)["access_token"], options={"verify_signature": False})
    assert person["sub"] == "alice" != person["client_id"]
    r = client.post("/oauth/register", json={"client_id": "alice", "redirect_uris": [LOOPBACK]})
    assert r.get_json()["client_id"] != "alice"


@pytest.mark.parametrize("kind", ["login", "consent", "error"])
def test_rfc9700_4_16_clickjacking(client: FlaskClient, clients: Clients, alice: str, kind: str) -> None:
    page = get_authorize(client, authorization_query(clients.public, LOOPBACK, pkce_pair()[1]))
    if kind == "consent":
        login = form(page.get_data(as_text=True), "login")
        page = client.post(login.action, data=login.submit(username="alice", password=PASSWORD))
        assert 'value="consent"' in page.get_data(as_text=True)
    elif kind == "error":
        page = get_authorize(client, "client_id=unknown")
    assert page.headers["X-Frame-Options"] == "DENY"
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
