"""OAuth 2.1 (draft-ietf-oauth-v2-1-16), section by section, for the authorization server and
the resource server: each test is named after the requirement it proves (walk.py lists them,
with the reasons for those that do not apply)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import quote, urlencode

import jwt
import pytest
from flask.testing import FlaskClient

from app import create_app
from app.core import secrets
from app.errors import ConfigurationError
from app.resource import RemoteResourceServer
from tests.conftest import ISSUER, MCP_RESOURCE, base_config
from tests.security.conftest import (
    LOOPBACK,
    SELF_WEB,
    WEB,
    Authorized,
    Clients,
    authorization_query,
    authorize,
    exchange,
    iat,
    person_tokens,
    refresh,
    whoami,
)
from tests.support.checks import assert_error, assert_invalid_client, basic
from tests.support.grants import store_code
from tests.support.people import PASSWORD, form, forms, pkce_pair, redirect_params

ERROR_CHARS = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]*")


def get_authorize(client: FlaskClient, query: dict[str, str] | str) -> Any:
    return client.get("/oauth/authorize?" + (query if isinstance(query, str) else urlencode(query)))


def machine_token(client: FlaskClient, clients: Clients, **params: str) -> Any:
    return client.post("/oauth/token", data={"grant_type": "client_credentials", **params}, auth=clients.machine)


# -- §1 introduction ------------------------------------------------------------------------------


def test_oauth21_1_4_tokens_cannot_be_forged(client: FlaskClient, clients: Clients, state: Any) -> None:
    token = machine_token(client, clients).get_json()["access_token"]
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False}) | {"scope": "mcp:tools mcp:admin"}
    raised = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for forged in (f"{header}.{raised}.{signature}", f"{header}.{payload}.{signature[:-4]}AAAA", "a" * 43):
        r = whoami(client, forged)
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_oauth21_1_4_1_scope_in_response(client: FlaskClient, clients: Clients) -> None:
    narrowed = machine_token(client, clients, scope="mcp:tools").get_json()
    assert narrowed["scope"] == "mcp:tools"
    defaulted = machine_token(client, clients).get_json()  # no scope: the client's registered scopes
    assert defaulted["scope"] == "mcp:tools mcp:resources"
    assert_error(machine_token(client, clients, scope="mcp:prompts"), 400, "invalid_scope")


def test_oauth21_1_5_https_urls(client: FlaskClient, tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError):
        create_app(base_config(tmp_path, OAUTH_ISSUER="http://auth.example.com"))
    with pytest.raises(ConfigurationError, match="https"):
        RemoteResourceServer("http://auth.example.com", "https://worker.example/mcp")
    r = client.post("/oauth/register", json={"redirect_uris": ["http://app.example.com/cb"]})
    assert_error(r, 400, "invalid_redirect_uri", "https")
    assert client.post("/oauth/register", json={"redirect_uris": [LOOPBACK]}).status_code == 201
    https = create_app(base_config(tmp_path, OAUTH_ISSUER="https://auth.example.com"))
    try:
        meta = https.test_client().get("/.well-known/oauth-authorization-server").get_json()
        urls = [v for k, v in meta.items() if k.endswith(("_endpoint", "_uri")) or k == "issuer"]
        assert urls and all(u.startswith("https://") for u in urls), urls
    finally:
        https.extensions["mcp_oauth"].close()


def test_oauth21_1_6_no_307(client: FlaskClient, clients: Clients, alice: str) -> None:
    assert authorize(client, clients.public).status == 303  # after the consent POST
    r = get_authorize(client, authorization_query(clients.public, LOOPBACK, pkce_pair()[1], scope="nope"))
    assert r.status_code == 302


def test_oauth21_1_7_1_long_values(client: FlaskClient, clients: Clients, tmp_path: Any) -> None:
    """A 4000-character state round-trips by default; the per-parameter cap (a denial-of-service
    bound, 4096 by default) can be raised to fill an 8000-octet request line."""
    long_state = "s" * 4000
    r = get_authorize(client, authorization_query(clients.public, LOOPBACK, pkce_pair()[1], state=long_state))
    assert r.status_code == 200 and long_state in r.get_data(as_text=True)
    app = create_app(base_config(tmp_path, OAUTH_MAX_PARAM_LENGTH=7000))
    try:
        state = app.extensions["mcp_oauth"]
        with app.app_context():
            from app.oauth.register import new_client, validate_metadata

            c, _, _ = new_client(
                state,
                validate_metadata(state, {"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none"}),
                registered_by="cli",
            )
        longer = "s" * 7000
        r = get_authorize(app.test_client(), authorization_query(c.client_id, LOOPBACK, pkce_pair()[1], state=longer))
        assert r.status_code == 200 and longer in r.get_data(as_text=True)
    finally:
        app.extensions["mcp_oauth"].close()


# -- §2 client registration -----------------------------------------------------------------------


def test_oauth21_2_1_one_client_type(client: FlaskClient, clients: Clients, state: Any) -> None:
    issued = store_code(state.token_store, clients.public, redirect_uri=LOOPBACK)
    assert_invalid_client(client.post("/oauth/token", data=issued.params(client_secret="anything")))
    conf = store_code(state.token_store, clients.confidential[0], redirect_uri=WEB)
    assert_invalid_client(client.post("/oauth/token", data=conf.params()))
    reg = client.post("/oauth/register", json={"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none"})
    body = reg.get_json()
    update = client.put(
        f"/oauth/register/{body['client_id']}",
        json={
            "client_id": body["client_id"],
            "redirect_uris": [LOOPBACK],
            "token_endpoint_auth_method": "client_secret_basic",
        },
        headers={"Authorization": f"Bearer {body['registration_access_token']}"},
    )
    assert_error(update, 400, "invalid_client_metadata", "public and confidential")


@pytest.mark.parametrize(
    "uri", ["/cb", "cb", "//app.example.com/cb", "https://app.example.com/cb#x", "https://app.example.com/cb#"]
)
def test_oauth21_2_3_redirect_uri_absolute_no_fragment(client: FlaskClient, uri: str) -> None:
    assert_error(client.post("/oauth/register", json={"redirect_uris": [uri]}), 400, "invalid_redirect_uri")


def test_oauth21_2_3_redirect_uri_absolute_no_fragment_query_kept(
    client: FlaskClient, make_client: Any, alice: str
) -> None:
    with_query = "https://app.example.com/cb?tenant=7"
    cid, secret = make_client(("authorization_code",), redirect_uris=(with_query,), auth_method="client_secret_post")
    got = authorize(client, cid, with_query)
    assert got.location.startswith(with_query + "&code=")


def test_oauth21_2_3_1_complete_redirect_registered(client: FlaskClient, clients: Clients) -> None:
    for sent in (WEB.rsplit("/", 1)[0], WEB + "/more", WEB + "?x=1", "https://app.example.com"):
        r = get_authorize(client, authorization_query(clients.confidential[0], sent, pkce_pair()[1]))
        assert r.status_code == 400 and "Location" not in r.headers, sent


def test_oauth21_2_3_2_redirect_uri_required_with_several(
    client: FlaskClient, clients: Clients, make_client: Any
) -> None:
    query = authorization_query(clients.confidential[0], WEB, pkce_pair()[1])
    del query["redirect_uri"]
    r = get_authorize(client, query)
    assert r.status_code == 400 and "Location" not in r.headers  # two registered: which one?
    single = authorization_query(clients.public, LOOPBACK, pkce_pair()[1])
    del single["redirect_uri"]
    assert get_authorize(client, single).status_code == 200  # one registered: optional


def test_oauth21_2_3_5_invalid_endpoint_not_redirected(client: FlaskClient, clients: Clients) -> None:
    r = get_authorize(client, authorization_query(clients.public, "https://evil.example/cb", pkce_pair()[1]))
    assert r.status_code == 400 and "Location" not in r.headers
    assert "not registered" in r.get_data(as_text=True)  # the person is told


def test_oauth21_2_4_one_authentication_method(client: FlaskClient, clients: Clients) -> None:
    machine_id, machine_secret = clients.machine
    r = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": machine_id, "client_secret": machine_secret},
        headers=basic(machine_id, machine_secret),
    )
    assert_error(r, 400, "invalid_request", "exactly one")


def test_oauth21_2_4_unauthenticated_clients_limited(client: FlaskClient, clients: Clients, alice: str) -> None:
    """Public clients: no client_credentials, and refresh tokens that rotate with replay detection."""
    assert_error(
        client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": clients.public}),
        400,
        "unauthorized_client",
    )
    reg = client.post(
        "/oauth/register", json={"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}
    )
    assert reg.status_code in (400, 401)
    first = person_tokens(client, clients.public)
    assert refresh(client, clients.public, first["refresh_token"]).status_code == 200
    assert_error(refresh(client, clients.public, first["refresh_token"]), 400, "invalid_grant")


def test_oauth21_2_4_privileges_follow_identification(client: FlaskClient, state: Any) -> None:
    """Open registration: only clients that need a person's consent; a client_credentials client
    needs an initial access token, and a self-registered client cannot add that grant later."""
    cc = {"grant_types": ["client_credentials"]}
    r = client.post("/oauth/register", json=cc)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.post("/oauth/register", json=cc, headers={"Authorization": f"Bearer {iat(state)}"}).status_code == 201
    body = client.post("/oauth/register", json={"redirect_uris": [LOOPBACK]}).get_json()
    update = client.put(
        f"/oauth/register/{body['client_id']}",
        json={
            "client_id": body["client_id"],
            "redirect_uris": [LOOPBACK],
            "grant_types": ["authorization_code", "client_credentials"],
        },
        headers={"Authorization": f"Bearer {body['registration_access_token']}"},
    )
    assert_error(update, 400, "invalid_client_metadata", "initial access token")


def test_oauth21_2_4_1_client_secret_post_supported(client: FlaskClient, clients: Clients) -> None:
    machine_id, machine_secret = clients.machine
    body = {"grant_type": "client_credentials", "client_id": machine_id, "client_secret": machine_secret}
    assert client.post("/oauth/token", data=body).status_code == 200
    in_uri = client.post(
        "/oauth/token?" + urlencode({"client_id": machine_id, "client_secret": machine_secret}),
        data={"grant_type": "client_credentials"},
    )
    assert_invalid_client(in_uri)  # the query is never read for credentials


def test_oauth21_2_4_1_basic_form_encoding(client: FlaskClient, make_client: Any) -> None:
    cid, secret = make_client(("client_credentials",))
    assert secret

    def every_byte_escaped(text: str) -> str:  # a valid form-urlencoding the server must decode
        return "".join(f"%{b:02X}" for b in text.encode())

    encoded = base64.b64encode(f"{every_byte_escaped(cid)}:{every_byte_escaped(secret)}".encode()).decode()
    r = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {encoded}"}
    )
    assert r.status_code == 200
    wrong = base64.b64encode(f"{cid}:{secret}x".encode()).decode()
    assert_invalid_client(
        client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {wrong}"}
        )
    )


def test_oauth21_2_4_1_brute_force_protection(tmp_path: Any) -> None:
    app = create_app(base_config(tmp_path, RATELIMIT_AUTH_FAILURE="5/minute"))
    try:
        c = app.test_client()
        statuses = [
            c.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("someone", f"guess{i}")).status_code
            for i in range(7)
        ]
        assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429], statuses
        r = c.post("/oauth/introspect", data={"token": "x"}, auth=("someone", "guess"))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    finally:
        app.extensions["mcp_oauth"].close()


# -- §3 endpoints ----------------------------------------------------------------------------------


def test_oauth21_3_1_resource_owner_authenticated_first(client: FlaskClient, clients: Clients, alice: str) -> None:
    """Without a signed-in person, no route to a code exists: not a forged consent POST, not
    prompt=none."""
    query = authorization_query(clients.public, LOOPBACK, pkce_pair()[1])
    page = get_authorize(client, query)
    assert page.status_code == 200 and 'value="login"' in page.get_data(as_text=True)
    csrf = form(page.get_data(as_text=True), "login").fields["csrf_token"]
    forged = client.post(
        "/oauth/authorize",
        data=query | {"action": "consent", "decision": "approve", "csrf_token": csrf, "subject": "alice"},
    )
    assert "code=" not in forged.headers.get("Location", "") and 'value="login"' in forged.get_data(as_text=True)
    silent = get_authorize(client, query | {"prompt": "none"})
    assert redirect_params(silent.headers["Location"])["error"] == "login_required"


def test_oauth21_3_1_get_supported(client: FlaskClient, clients: Clients) -> None:
    assert get_authorize(client, authorization_query(clients.public, LOOPBACK, pkce_pair()[1])).status_code == 200


def test_oauth21_3_1_unknown_parameters_ignored(client: FlaskClient, clients: Clients, alice: str) -> None:
    got = authorize(client, clients.public, nonce="n", foo="bar", request_uri_x="y")
    assert got.params["code"] and set(got.params) == {"code", "state", "iss"}


def test_oauth21_3_1_no_repeated_parameters(client: FlaskClient, clients: Clients) -> None:
    base = urlencode(authorization_query(clients.public, LOOPBACK, pkce_pair()[1]))
    r = get_authorize(client, base + "&scope=mcp:tools&scope=mcp:resources")
    assert redirect_params(r.headers["Location"])["error"] == "invalid_request"
    page = get_authorize(client, base + "&client_id=" + clients.public)
    assert page.status_code == 400 and "Location" not in page.headers  # the client itself is ambiguous
    empty = get_authorize(
        client, urlencode(authorization_query(clients.public, LOOPBACK, pkce_pair()[1], state="", scope=""))
    )
    assert empty.status_code == 200  # empty = omitted: no state, default scopes
    assert 'name="state"' not in empty.get_data(as_text=True)


def test_oauth21_3_1_no_cors(client: FlaskClient, clients: Clients) -> None:
    query = urlencode(authorization_query(clients.public, LOOPBACK, pkce_pair()[1]))
    r = client.get("/authorize?" + query, headers={"Origin": "https://evil.example"})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


def test_oauth21_3_2_token_endpoint_parameters(client: FlaskClient, clients: Clients) -> None:
    ok = machine_token(client, clients, unknown="x", audience="y", scope="")
    assert ok.status_code == 200 and ok.get_json()["scope"] == "mcp:tools mcp:resources"  # empty scope = omitted
    repeated = client.post(
        "/oauth/token",
        data="grant_type=client_credentials&scope=mcp:tools&scope=mcp:tools",
        content_type="application/x-www-form-urlencoded",
        auth=clients.machine,
    )
    assert_error(repeated, 400, "invalid_request", "repeated")
    assert client.get("/oauth/token", auth=clients.machine).status_code == 405
    assert "#" not in client.get("/.well-known/oauth-authorization-server").get_json()["token_endpoint"]


def test_oauth21_3_2_1_confidential_clients_authenticate(client: FlaskClient, clients: Clients, state: Any) -> None:
    conf_id, conf_secret = clients.confidential
    issued = store_code(state.token_store, conf_id, redirect_uri=WEB)
    assert_invalid_client(client.post("/oauth/token", data=issued.params()))
    assert client.post("/oauth/token", data=issued.params(client_secret=conf_secret)).status_code == 200


def test_oauth21_3_2_3_no_store(client: FlaskClient, clients: Clients, state: Any, alice: str) -> None:
    responses = {
        "token": machine_token(client, clients),
        "code exchange": exchange(client, authorize(client, clients.public), clients.public),
        "registration": client.post("/oauth/register", json={"redirect_uris": [LOOPBACK]}),
    }
    reg = responses["registration"].get_json()
    responses["registration read"] = client.get(
        f"/oauth/register/{reg['client_id']}", headers={"Authorization": f"Bearer {reg['registration_access_token']}"}
    )
    token = responses["token"].get_json()["access_token"]
    responses["introspection"] = client.post("/oauth/introspect", data={"token": token}, auth=clients.machine)
    responses["error"] = client.post("/oauth/token", data={"grant_type": "nope"})
    responses["authorization page"] = get_authorize(client, authorization_query(clients.public, LOOPBACK, "x" * 43))
    for name, r in responses.items():
        assert r.status_code < 500 and "no-store" in r.headers.get("Cache-Control", ""), name


def test_oauth21_3_2_3_refresh_bound_to_consent(client: FlaskClient, clients: Clients, alice: str, state: Any) -> None:
    got = authorize(client, clients.public, scope="mcp:tools")
    body = exchange(client, got, clients.public).get_json()
    stored = state.token_store.get_refresh_token(secrets.token_hash(body["refresh_token"]))
    assert stored.scope == "mcp:tools" and stored.resource == MCP_RESOURCE and stored.subject == "alice"
    assert_error(refresh(client, clients.public, body["refresh_token"], scope="mcp:resources"), 400, "invalid_scope")


def test_oauth21_3_2_4_error_response(client: FlaskClient, clients: Clients) -> None:
    cases = [
        (
            client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("x", "y")),
            401,
            "invalid_client",
        ),
        (
            client.post(
                "/oauth/token", data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"}
            ),
            401,
            "invalid_client",
        ),
        (
            client.post("/oauth/token", data="", content_type="application/x-www-form-urlencoded"),
            400,
            "invalid_request",
        ),
        (machine_token(client, clients, scope="mcp:prompts"), 400, "invalid_scope"),
        (
            client.post("/oauth/token", data={"grant_type": "urn:x"}, auth=clients.machine),
            400,
            "unsupported_grant_type",
        ),
        (
            client.post("/oauth/token", data={"grant_type": "authorization_code"}, auth=clients.machine),
            400,
            "unauthorized_client",
        ),
        (
            client.post(
                "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": clients.public}
            ),
            400,
            "invalid_grant",
        ),
    ]
    for r, status, error in cases:
        body = assert_error(r, status, error)
        assert ERROR_CHARS.fullmatch(body["error_description"])
    # Header authentication failed: 401 with the scheme the client used.
    assert cases[0][0].headers["WWW-Authenticate"].startswith("Basic")


# -- §4 grant types --------------------------------------------------------------------------------


@pytest.mark.parametrize("response_type", [None, "", "CODE", "code id_token", "device_code"])
def test_oauth21_4_1_1_response_type_checked(client: FlaskClient, clients: Clients, response_type: str | None) -> None:
    query = authorization_query(clients.public, LOOPBACK, pkce_pair()[1])
    if response_type is None:
        del query["response_type"]
    else:
        query["response_type"] = response_type
    got = redirect_params(get_authorize(client, query).headers["Location"])
    assert got["error"] in ("invalid_request", "unsupported_response_type") and got["state"] == "xyz"


def test_oauth21_4_1_1_pkce_enforced(client: FlaskClient, clients: Clients, state: Any) -> None:
    for challenge in ("", "short", "x" * 44, "=" * 43):
        got = redirect_params(
            get_authorize(client, authorization_query(clients.public, LOOPBACK, challenge)).headers["Location"]
        )
        assert got["error"] == "invalid_request", challenge
    issued = store_code(state.token_store, clients.public, redirect_uri=LOOPBACK)
    assert_error(client.post("/oauth/token", data=issued.params(code_verifier=None)), 400, "invalid_request")
    assert client.post("/oauth/token", data=issued.params()).status_code == 200


def test_oauth21_4_1_2_code_short_lived(client: FlaskClient, clients: Clients, state: Any, alice: str) -> None:
    assert 0 < int(state.config["OAUTH_CODE_TTL"]) <= 600
    got = authorize(client, clients.public)
    stored, _ = state.token_store.consume_code(secrets.token_hash(got.code), state.now())
    assert stored.expires_at - state.now() <= 600
    expired = store_code(state.token_store, clients.public, redirect_uri=LOOPBACK, expires_in=-1)
    assert_error(client.post("/oauth/token", data=expired.params()), 400, "invalid_grant", "expired")


@pytest.mark.parametrize("value", ["xyz", "a b&c=d?e#f", "é/ü+%20", "<script>alert(1)</script>", "'\"\\"])
def test_oauth21_4_1_2_state_and_iss(client: FlaskClient, clients: Clients, alice: str, value: str) -> None:
    got = authorize(client, clients.public, state=value)
    assert got.params["state"] == value and got.params["iss"] == ISSUER


def test_oauth21_4_1_2_challenge_not_disclosed(client: FlaskClient, clients: Clients, alice: str) -> None:
    from tests.support.grants import s256

    got = authorize(client, clients.public)
    assert s256(got.verifier) not in got.location
    assert got.code != s256(got.verifier) and len(got.code) >= 43


def test_oauth21_4_1_2_1_errors_after_validation_only(client: FlaskClient, clients: Clients) -> None:
    for query in ("response_type=token", f"response_type=token&client_id=nobody&redirect_uri={quote(LOOPBACK)}"):
        r = get_authorize(client, query)
        assert r.status_code == 400 and "Location" not in r.headers and r.mimetype == "text/html"
    verified = get_authorize(
        client, authorization_query(clients.public, LOOPBACK, pkce_pair()[1], response_type="token")
    )
    assert verified.status_code == 302


def test_oauth21_4_1_2_1_unsupported_method_invalid_request(client: FlaskClient, clients: Clients) -> None:
    for method in ("plain", "S512", "s256", ""):
        query = authorization_query(clients.public, LOOPBACK, pkce_pair()[1], code_challenge_method=method)
        got = redirect_params(get_authorize(client, query).headers["Location"])
        assert got["error"] == "invalid_request" and "S256" in got["error_description"], method


def test_oauth21_4_1_3_code_used_once(client: FlaskClient, clients: Clients, alice: str) -> None:
    got = authorize(client, clients.public)
    first = exchange(client, got, clients.public).get_json()
    assert_error(exchange(client, got, clients.public), 400, "invalid_grant")
    assert whoami(client, first["access_token"]).status_code == 401


def test_oauth21_4_1_3_code_bound_to_client(client: FlaskClient, clients: Clients, state: Any) -> None:
    issued = store_code(state.token_store, clients.public, redirect_uri=LOOPBACK)
    conf_id, conf_secret = clients.confidential
    assert_error(
        client.post("/oauth/token", data=issued.params(client_id=conf_id, client_secret=conf_secret)),
        400,
        "invalid_grant",
    )


def test_oauth21_4_2_client_credentials_confidential_only(client: FlaskClient, clients: Clients) -> None:
    r = client.post(
        "/oauth/register", json={"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}
    )
    assert r.status_code in (400, 401)
    assert_error(
        client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": clients.public}),
        400,
        "unauthorized_client",
    )
    assert_invalid_client(client.post("/oauth/token", data={"grant_type": "client_credentials"}))
    assert machine_token(client, clients).status_code == 200


def test_oauth21_4_3_refresh_bound_to_client(
    client: FlaskClient, clients: Clients, make_client: Any, alice: str
) -> None:
    other, _ = make_client(("authorization_code", "refresh_token"), auth_method="none", redirect_uris=(LOOPBACK,))
    body = person_tokens(client, clients.public)
    assert_error(refresh(client, other, body["refresh_token"]), 400, "invalid_grant", "another client")
    assert refresh(client, clients.public, body["refresh_token"]).status_code == 200


def test_oauth21_4_3_refresh_unguessable(client: FlaskClient, clients: Clients, alice: str) -> None:
    tokens = {person_tokens(client, clients.public)["refresh_token"] for _ in range(3)}
    assert len(tokens) == 3 and all(len(base64.urlsafe_b64decode(t + "=")) >= 32 for t in tokens)
    sample = next(iter(tokens))
    assert_error(
        refresh(client, clients.public, sample[:-1] + ("A" if sample[-1] != "A" else "B")), 400, "invalid_grant"
    )


def test_oauth21_4_3_1_refresh_scope_not_widened(client: FlaskClient, clients: Clients, alice: str) -> None:
    body = exchange(client, authorize(client, clients.public, scope="mcp:tools"), clients.public).get_json()
    assert_error(
        refresh(client, clients.public, body["refresh_token"], scope="mcp:tools mcp:resources"), 400, "invalid_scope"
    )


def test_oauth21_4_3_1_rotation_replay_revokes_grant(
    client: FlaskClient, clients: Clients, alice: str, state: Any
) -> None:
    first = person_tokens(client, clients.public)
    second = refresh(client, clients.public, first["refresh_token"]).get_json()
    third = refresh(client, clients.public, second["refresh_token"]).get_json()
    assert_error(refresh(client, clients.public, first["refresh_token"]), 400, "invalid_grant")
    assert state.token_store.get_refresh_token(secrets.token_hash(third["refresh_token"])) is None
    assert whoami(client, third["access_token"]).status_code == 401


def test_oauth21_4_3_3_new_refresh_same_scope(client: FlaskClient, clients: Clients, alice: str, state: Any) -> None:
    body = person_tokens(client, clients.public)
    narrow = refresh(client, clients.public, body["refresh_token"], scope="mcp:tools").get_json()
    assert narrow["scope"] == "mcp:tools"
    stored = state.token_store.get_refresh_token(secrets.token_hash(narrow["refresh_token"]))
    assert stored.scope == "mcp:tools mcp:resources"  # the grant keeps its full scope
    wide = refresh(client, clients.public, narrow["refresh_token"])
    assert wide.status_code == 200 and wide.get_json()["scope"] == "mcp:tools mcp:resources"


@pytest.mark.parametrize(
    "grant", ["urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer", "implicit"]
)
def test_oauth21_4_4_unsupported_grant_type(client: FlaskClient, clients: Clients, grant: str) -> None:
    assert_error(
        client.post("/oauth/token", data={"grant_type": grant}, auth=clients.machine), 400, "unsupported_grant_type"
    )


# -- §5 resource requests ---------------------------------------------------------------------------


def test_oauth21_5_resource_server_validates(client: FlaskClient, clients: Clients, state: Any) -> None:
    expired, _ = state.access_tokens.issue(
        subject="w", client_id=clients.machine[0], scope="mcp:tools", audience=MCP_RESOURCE, now=state.now() - 7200
    )
    r = whoami(client, expired)
    assert r.status_code == 401 and "expired" in r.headers["WWW-Authenticate"]
    low = machine_token(client, clients, scope="mcp:resources").get_json()["access_token"]
    assert whoami(client, low).status_code == 403
    ok = machine_token(client, clients).get_json()["access_token"]
    assert whoami(client, ok).status_code == 200
    assert client.post("/oauth/revoke", data={"token": ok}, auth=clients.machine).status_code == 200
    assert whoami(client, ok).status_code == 401


def test_oauth21_5_1_query_tokens_ignored(client: FlaskClient, clients: Clients) -> None:
    token = machine_token(client, clients).get_json()["access_token"]
    r = client.get("/mcp/whoami", query_string={"access_token": token})
    assert r.status_code == 400 and "sub" not in (r.get_json() or {})


def test_oauth21_5_1_1_bearer_header(client: FlaskClient, clients: Clients) -> None:
    token = machine_token(client, clients).get_json()["access_token"]
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        assert client.get("/mcp/whoami", headers={"Authorization": f"{scheme} {token}"}).status_code == 200, scheme
    form_body = client.post("/mcp/whoami", data={"access_token": token})
    assert form_body.status_code in (401, 405)


def _challenge_params(header: str) -> list[str]:
    return re.findall(r'(\w+)="', header)


def test_oauth21_5_3_1_www_authenticate(client: FlaskClient, clients: Clients) -> None:
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic abc"}):
        r = client.get("/mcp/whoami", headers=headers)
        challenge = r.headers["WWW-Authenticate"]
        assert r.status_code == 401 and challenge.startswith("Bearer ")
        names = _challenge_params(challenge)
        assert len(names) == len(set(names)), challenge
        assert ERROR_CHARS.fullmatch(challenge.replace('"', "").replace(",", ""))
        assert 'resource_metadata="' in challenge


def test_oauth21_5_3_2_error_codes(client: FlaskClient, clients: Clients) -> None:
    none = client.get("/mcp/whoami")
    assert none.status_code == 401 and "error=" not in none.headers["WWW-Authenticate"]
    bad = whoami(client, "x.y.z")
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    low = whoami(client, machine_token(client, clients, scope="mcp:resources").get_json()["access_token"])
    assert low.status_code == 403 and 'error="insufficient_scope"' in low.headers["WWW-Authenticate"]
    assert 'scope="' in low.headers["WWW-Authenticate"]


# -- §7 security considerations ------------------------------------------------------------------


def test_oauth21_7_1_1_2_no_tokens_in_cookies(client: FlaskClient, clients: Clients, alice: str, app: Any) -> None:
    got = authorize(client, clients.public)
    body = exchange(client, got, clients.public).get_json()
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    for secret in (got.code, body["access_token"], body["refresh_token"], got.verifier):
        assert secret not in cookie.value
    assert app.config["SESSION_COOKIE_SECURE"] is False  # loopback issuer; https issuers: see RFC 9700 2.6


def test_oauth21_7_1_3_5_short_lived_tokens(client: FlaskClient, clients: Clients, state: Any) -> None:
    body = machine_token(client, clients).get_json()
    assert 0 < body["expires_in"] <= 3600
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == body["expires_in"]


def test_oauth21_7_1_3_6_audience_restriction(client: FlaskClient, clients: Clients) -> None:
    claims = jwt.decode(machine_token(client, clients).get_json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == MCP_RESOURCE
    assert_error(machine_token(client, clients, resource="https://elsewhere.example/mcp"), 400, "invalid_target")


def test_oauth21_7_1_3_7_tokens_not_in_urls(client: FlaskClient, clients: Clients, alice: str) -> None:
    got = authorize(client, clients.public)
    assert "access_token" not in got.location and "refresh_token" not in got.location
    token = exchange(client, got, clients.public).get_json()["access_token"]
    assert client.get(f"/mcp/whoami?access_token={token}").status_code == 400


def test_oauth21_7_1_4_rs_refuses_foreign_tokens(client: FlaskClient, clients: Clients, state: Any) -> None:
    other, _ = state.access_tokens.issue(
        subject="w", client_id=clients.machine[0], scope="mcp:tools", audience="https://worker.example/mcp"
    )
    assert whoami(client, other).status_code == 401
    prompts_only = machine_token(client, clients, scope="mcp:resources").get_json()["access_token"]
    assert whoami(client, prompts_only).status_code == 403


def test_oauth21_7_3_consent_informs(client: FlaskClient, clients: Clients, alice: str, state: Any) -> None:
    page = get_authorize(client, authorization_query(clients.public, LOOPBACK, pkce_pair()[1]))
    login = form(page.get_data(as_text=True), "login")
    consent = client.post(login.action, data=login.submit(username="alice", password=PASSWORD)).get_data(as_text=True)
    assert "Desktop Client" in consent and "127.0.0.1" in consent
    for scope in ("mcp:tools", "mcp:resources"):
        assert state.scopes[scope] in consent


def _approve_remembering(client: FlaskClient, client_id: str, target: str) -> dict[str, str]:
    """Sign in as alice and approve with remember=yes, whether or not the page offers it."""
    page = get_authorize(client, authorization_query(client_id, target, pkce_pair()[1]))
    if 'value="login"' in page.get_data(as_text=True):
        login = form(page.get_data(as_text=True), "login")
        page = client.post(login.action, data=login.submit(username="alice", password=PASSWORD))
    consent = form(page.get_data(as_text=True), "consent")
    done = client.post(consent.action, data=consent.submit("approve", remember="yes"))
    assert done.status_code == 303, done.get_data(as_text=True)[:300]
    return redirect_params(done.headers["Location"])


@pytest.mark.parametrize("kind", ["public-loopback", "self-registered"])
def test_oauth21_7_3_no_silent_repeat_for_unproven_clients(
    client: FlaskClient, clients: Clients, alice: str, state: Any, kind: str
) -> None:
    """A public client cannot prove who is asking: after the person approved the desktop client
    (even with a forged remember=yes), another program on the same computer using its client ID
    on its own loopback port gets the consent page, never a code, and prompt=none is refused."""
    cid, target, other = (
        (clients.public, LOOPBACK, "http://127.0.0.1:41234/callback")
        if kind == "public-loopback"
        else (clients.dynamic, SELF_WEB, SELF_WEB)
    )
    assert "code" in _approve_remembering(client, cid, target)
    assert state.storage.get_consent("alice", cid) is None  # nothing remembered
    page = get_authorize(client, authorization_query(cid, other, pkce_pair()[1]))
    assert page.status_code == 200 and "Location" not in page.headers
    assert "remember" not in form(page.get_data(as_text=True), "consent").checkboxes
    silent = get_authorize(client, authorization_query(cid, other, pkce_pair()[1], prompt="none"))
    got = redirect_params(silent.headers["Location"])
    assert got["error"] == "consent_required" and "code" not in got and got["iss"] == ISSUER


def test_oauth21_7_3_no_silent_repeat_for_unproven_clients_confidential(
    client: FlaskClient, clients: Clients, alice: str, state: Any
) -> None:
    """A confidential client's identity is assured at the token endpoint: its remembered consent
    skips the page, and the code it yields is worthless to anyone without the client's secret."""
    cid, secret = clients.confidential
    _approve_remembering(client, cid, WEB)
    assert state.storage.get_consent("alice", cid) is not None
    verifier, challenge = pkce_pair()
    silent = get_authorize(client, authorization_query(cid, WEB, challenge, prompt="none"))
    assert silent.status_code == 302
    location = silent.headers["Location"]
    got = Authorized(silent.status_code, location, redirect_params(location), verifier)
    assert_invalid_client(exchange(client, got, cid, WEB))  # no secret: no tokens
    assert exchange(client, got, cid, WEB, secret).status_code == 200


def test_oauth21_7_4_client_cannot_pose_as_person(client: FlaskClient, clients: Clients) -> None:
    reg = client.post("/oauth/register", json={"client_id": "alice", "redirect_uris": [LOOPBACK]}).get_json()
    assert reg["client_id"] != "alice"
    claims = jwt.decode(machine_token(client, clients).get_json()["access_token"], options={"verify_signature": False})
    assert claims["sub"] == claims["client_id"]


def test_oauth21_7_5_1_1_pkce_for_every_client(client: FlaskClient, clients: Clients) -> None:
    for cid, target in ((clients.public, LOOPBACK), (clients.confidential[0], WEB)):
        query = authorization_query(cid, target, "x")
        del query["code_challenge"]
        assert redirect_params(get_authorize(client, query).headers["Location"])["error"] == "invalid_request"


def test_oauth21_7_5_2_plain_forbidden(client: FlaskClient, clients: Clients) -> None:
    verifier = pkce_pair()[0]
    query = authorization_query(clients.public, LOOPBACK, verifier[:43], code_challenge_method="plain")
    assert redirect_params(get_authorize(client, query).headers["Location"])["error"] == "invalid_request"


def test_oauth21_7_5_3_replay_revokes_only_when_valid(
    client: FlaskClient, clients: Clients, alice: str, make_client: Any
) -> None:
    """A replay by someone holding only the code (wrong verifier, wrong client, wrong redirect)
    is refused without touching the rightful client's tokens; a valid replay revokes them."""
    got = authorize(client, clients.public)
    first = exchange(client, got, clients.public).get_json()
    other, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=(LOOPBACK,))
    attempts = [
        {"code_verifier": pkce_pair()[0]},
        {"client_id": other},
        {"redirect_uri": "http://127.0.0.1:8765/elsewhere"},
        {"code_verifier": "short"},
    ]
    for overrides in attempts:
        body = {
            "grant_type": "authorization_code",
            "code": got.code,
            "code_verifier": got.verifier,
            "client_id": clients.public,
            "redirect_uri": LOOPBACK,
        } | overrides
        assert_error(client.post("/oauth/token", data=body), 400, "invalid_grant", "already used")
        assert whoami(client, first["access_token"]).status_code == 200, overrides
    assert refresh(client, clients.public, first["refresh_token"]).status_code == 200
    assert_error(exchange(client, got, clients.public), 400, "invalid_grant", "revoked")
    assert whoami(client, first["access_token"]).status_code == 401


def test_oauth21_7_5_4_no_307(client: FlaskClient, clients: Clients, alice: str) -> None:
    seen = [authorize(client, clients.public).status, authorize(client, clients.public, decision="deny").status]
    assert 307 not in seen and 308 not in seen and set(seen) == {303}


def test_oauth21_7_7_credentials_unguessable(client: FlaskClient, clients: Clients, state: Any, alice: str) -> None:
    reg = client.post(
        "/oauth/register", json={"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "client_secret_basic"}
    ).get_json()
    got = authorize(client, clients.public)
    body = exchange(client, got, clients.public).get_json()
    for name, value in {
        "client_secret": reg["client_secret"],
        "registration_access_token": reg["registration_access_token"],
        "code": got.code,
        "refresh_token": body["refresh_token"],
        "jti": jwt.decode(body["access_token"], options={"verify_signature": False})["jti"],
    }.items():
        bits = len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))) * 8
        assert bits >= (160 if name != "jti" else 128), (name, bits)  # jti is an identifier, not a credential


def test_oauth21_7_7_credentials_unguessable_passwords(tmp_path: Any) -> None:
    """Passwords, the one credential people choose, are throttled per address and per username."""
    from tests.support.people import fast_authenticator

    app = create_app(base_config(tmp_path / "t", RATELIMIT_LOGIN="3/minute"))
    try:
        s = app.extensions["mcp_oauth"]
        with app.app_context():
            fast_authenticator(s).create("bob", "bob's long password", s.now())
            from app.oauth.register import new_client, validate_metadata

            c, _, _ = new_client(
                s,
                validate_metadata(s, {"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none"}),
                registered_by="cli",
            )
        web = app.test_client()
        page = get_authorize(web, authorization_query(c.client_id, LOOPBACK, pkce_pair()[1]))
        login = form(page.get_data(as_text=True), "login")
        statuses = [
            web.post(login.action, data=login.submit(username="bob", password=f"guess {i}")).status_code
            for i in range(4)
        ]
        assert statuses == [200, 200, 200, 429], statuses
        right = web.post(login.action, data=login.submit(username="bob", password="bob's long password"))
        assert right.status_code == 429  # even the right password waits: the guesser learns nothing
    finally:
        app.extensions["mcp_oauth"].close()


def test_oauth21_7_9_consent_phishing(client: FlaskClient, clients: Clients, alice: str, app: Any, state: Any) -> None:
    # Scopes are restricted per client.
    query = authorization_query(clients.public, LOOPBACK, pkce_pair()[1], scope="mcp:prompts")
    assert redirect_params(get_authorize(client, query).headers["Location"])["error"] == "invalid_scope"
    # A self-registered client is shown as such, with where the person would be sent.
    page = get_authorize(client, authorization_query(clients.dynamic, SELF_WEB, pkce_pair()[1]))
    login = form(page.get_data(as_text=True), "login")
    consent = client.post(login.action, data=login.submit(username="alice", password=PASSWORD)).get_data(as_text=True)
    assert "Unverified application" in consent and "self.example.com" in consent
    # Operators see and revoke what people granted.
    body = person_tokens(client, clients.public)
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["oauth", "grants", "list", "--user", "alice"])
    assert listed.exit_code == 0 and clients.public in listed.output
    revoked = runner.invoke(args=["oauth", "grants", "revoke", "--user", "alice"])
    assert revoked.exit_code == 0, revoked.output
    assert_error(refresh(client, clients.public, body["refresh_token"]), 400, "invalid_grant")


def test_oauth21_7_10_challenge_methods_advertised(client: FlaskClient) -> None:
    assert client.get("/.well-known/oauth-authorization-server").get_json()["code_challenge_methods_supported"] == [
        "S256"
    ]


def test_oauth21_7_11_clickjacking(client: FlaskClient, clients: Clients) -> None:
    for r in (
        get_authorize(client, authorization_query(clients.public, LOOPBACK, pkce_pair()[1])),
        get_authorize(client, "client_id=nobody"),
    ):
        assert r.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "state_value", ['"><script>alert(1)</script>', "javascript:alert(1)", "\r\nSet-Cookie: x=1", "{{7*7}}"]
)
def test_oauth21_7_12_input_validation(client: FlaskClient, clients: Clients, state_value: str) -> None:
    """state is echoed escaped into the page and percent-encoded into redirects; it never breaks
    out into markup or headers, and redirect_uri is only ever a registered one."""
    page = get_authorize(client, authorization_query(clients.public, LOOPBACK, pkce_pair()[1], state=state_value))
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<script>alert" not in html and "x=1" not in str(page.headers)
    hidden = [f for f in forms(html) if "state" in f.fields]
    assert hidden and hidden[0].fields["state"] == state_value
    r = get_authorize(
        client, authorization_query(clients.public, LOOPBACK, pkce_pair()[1], state=state_value, scope="x y")
    )
    assert "\r" not in r.headers["Location"] and "\n" not in r.headers["Location"] and "<" not in r.headers["Location"]
    assert redirect_params(r.headers["Location"])["state"] == state_value
    bad = client.post("/oauth/register", json={"redirect_uris": ["javascript:alert(1)//"]})
    assert_error(bad, 400, "invalid_redirect_uri")


def test_oauth21_7_13_2_as_open_redirector(client: FlaskClient, clients: Clients) -> None:
    """The RFC 9700 4.11.2 precautions, as OAuth 2.1 restates them."""
    evil = get_authorize(client, authorization_query(clients.public, "https://evil.example/cb", pkce_pair()[1]))
    assert evil.status_code == 400 and "Location" not in evil.headers
    lure = get_authorize(client, authorization_query(clients.dynamic, SELF_WEB, pkce_pair()[1], scope="bogus"))
    assert lure.status_code == 400 and "Location" not in lure.headers


def test_oauth21_7_15_mix_up(client: FlaskClient, clients: Clients, alice: str) -> None:
    issuer = client.get("/.well-known/oauth-authorization-server").get_json()["issuer"]
    assert authorize(client, clients.public).params["iss"] == issuer
    claims = jwt.decode(person_tokens(client, clients.public)["access_token"], options={"verify_signature": False})
    assert claims["iss"] == issuer


def test_oauth21_8_1_public_native_clients(client: FlaskClient, alice: str) -> None:
    reg = client.post(
        "/oauth/register", json={"redirect_uris": ["com.example.app:/cb"], "token_endpoint_auth_method": "none"}
    ).get_json()
    assert reg["token_endpoint_auth_method"] == "none" and "client_secret" not in reg
    got = authorize(client, reg["client_id"], "com.example.app:/cb")
    assert exchange(client, got, reg["client_id"], "com.example.app:/cb").status_code == 200


@pytest.mark.parametrize(
    "target", ["http://127.0.0.1:51004/callback", "http://[::1]:61023/callback", "http://127.0.0.1/callback"]
)
def test_oauth21_8_4_2_loopback_any_port(client: FlaskClient, make_client: Any, target: str) -> None:
    cid, _ = make_client(
        ("authorization_code",),
        auth_method="none",
        redirect_uris=("http://127.0.0.1/callback", "http://[::1]/callback"),
    )
    assert get_authorize(client, authorization_query(cid, target, pkce_pair()[1])).status_code == 200


def test_oauth21_10_2_redirect_uri_in_token_request(client: FlaskClient, clients: Clients, state: Any) -> None:
    issued = store_code(state.token_store, clients.public, redirect_uri=LOOPBACK)
    assert_error(client.post("/oauth/token", data=issued.params(redirect_uri=None)), 400, "invalid_grant")
    issued = store_code(state.token_store, clients.public, redirect_uri=LOOPBACK)
    assert client.post("/oauth/token", data=issued.params()).status_code == 200
    omitted = store_code(state.token_store, clients.public, redirect_uri="")
    assert client.post("/oauth/token", data=omitted.params(redirect_uri=None)).status_code == 200


def _consent_form(client: FlaskClient, clients: Clients) -> Any:
    page = get_authorize(client, authorization_query(clients.public, LOOPBACK, pkce_pair()[1]))
    login = form(page.get_data(as_text=True), "login")
    consent_page = client.post(login.action, data=login.submit(username="alice", password=PASSWORD))
    return form(consent_page.get_data(as_text=True), "consent")


@pytest.mark.parametrize("csrf", [None, "", "forged", "other-session"])
def test_oauth21_7_3_consent_from_the_person(
    client: FlaskClient, clients: Clients, alice: str, state: Any, app: Any, csrf: str | None
) -> None:
    """A cross-site POST of the consent form (no token, a guessed one, or one from the attacker's
    own session) approves nothing; neither does the same form sent by GET."""
    consent = _consent_form(client, clients)
    if csrf == "other-session":
        csrf = _consent_form(app.test_client(), clients).fields["csrf_token"]
    r = client.post(consent.action, data=consent.submit("approve", remember="yes", csrf_token=csrf))
    assert r.status_code == 400 and "Location" not in r.headers and "form has expired" in r.get_data(as_text=True)
    assert state.storage.get_consent("alice", clients.public) is None
    by_get = client.get("/oauth/authorize?" + urlencode(consent.submit("approve", remember="yes")))
    assert "code=" not in by_get.headers.get("Location", "") and by_get.status_code == 200
    assert state.storage.get_consent("alice", clients.public) is None


@pytest.mark.parametrize("csrf", [None, "forged"])
def test_oauth21_7_3_consent_from_the_person_login(
    client: FlaskClient, clients: Clients, alice: str, csrf: str | None
) -> None:
    """Login CSRF (signing the victim in as someone else) fails the same way; the session
    cookie is HttpOnly and SameSite=Lax, so other sites' POSTs do not even carry it."""
    page = get_authorize(client, authorization_query(clients.public, LOOPBACK, pkce_pair()[1]))
    login = form(page.get_data(as_text=True), "login")
    r = client.post(login.action, data=login.submit(username="alice", password=PASSWORD, csrf_token=csrf))
    assert r.status_code == 400 and "form has expired" in r.get_data(as_text=True)
    with client.session_transaction("/oauth/authorize") as session:
        assert "sub" not in session
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
