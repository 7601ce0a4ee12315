"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.core import secrets
from app.models import InitialAccessToken
from app.state import OAuthState
from tests.conftest import ISSUER, base_config
from tests.support.checks import assert_error, assert_invalid_client, assert_no_store_json, bearer

REG = "/oauth/register"
CALLBACK = "http://127.0.0.1:33418/callback"
NATIVE = {"redirect_uris": [CALLBACK]}


def register(client: FlaskClient, body: Any, **kwargs: Any) -> Any:
    return client.post(REG, json=body, **kwargs)


def count(state: OAuthState) -> int:
    return len(state.storage.list_clients())


@pytest.fixture
def iat(state: OAuthState) -> Callable[..., str]:
    """An initial access token stored the way `flask oauth iat create` stores one."""

    def make(expires_in: int = 3600) -> str:
        token = secrets.new_token()
        now = int(time.time())
        state.storage.save_initial_access_token(
            InitialAccessToken(secrets.token_hash(token), now, now + expires_in if expires_in else 0, "test")
        )
        return token

    return make


# -- success -------------------------------------------------------------------------------------


def test_open_registration_of_a_public_client(client: FlaskClient, state: OAuthState) -> None:
    r = register(client, {**NATIVE, "token_endpoint_auth_method": "none", "client_name": "Inspector"})
    assert r.status_code == 201
    body = assert_no_store_json(r)
    assert body["redirect_uris"] == [CALLBACK]  # echoed (RFC 7591 §3.2.1)
    assert body["token_endpoint_auth_method"] == "none"
    assert body["grant_types"] == ["authorization_code"]
    assert body["response_types"] == ["code"]
    assert body["client_name"] == "Inspector"
    assert isinstance(body["client_id_issued_at"], int) and abs(body["client_id_issued_at"] - time.time()) < 60
    assert "client_secret" not in body and "client_secret_expires_at" not in body
    assert body["registration_client_uri"] == f"{ISSUER}/oauth/register/{body['client_id']}"
    assert len(body["registration_access_token"]) >= 43
    stored = state.storage.get_client(body["client_id"])
    assert stored is not None and stored.is_public and stored.registered_by == "dynamic"
    assert stored.registration_token_hash == secrets.token_hash(body["registration_access_token"])


def test_omitted_auth_method_means_client_secret_basic_and_says_so(client: FlaskClient, state: OAuthState) -> None:
    body = assert_no_store_json(register(client, NATIVE))
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert isinstance(body["client_secret"], str) and len(body["client_secret"]) >= 43
    assert body["client_secret_expires_at"] == 0  # a number, 0 = never
    stored = state.storage.get_client(body["client_id"])
    assert stored is not None
    # Only hashes are stored.
    assert stored.secret_hash == secrets.token_hash(body["client_secret"])
    assert body["client_secret"].encode() not in repr(stored).encode()


def test_client_secret_post(client: FlaskClient) -> None:
    body = assert_no_store_json(register(client, {**NATIVE, "token_endpoint_auth_method": "client_secret_post"}))
    assert body["token_endpoint_auth_method"] == "client_secret_post" and "client_secret" in body


def test_secret_expiry_follows_config(tmp_path: Any) -> None:
    from app import create_app

    app = create_app(base_config(tmp_path, OAUTH_CLIENT_SECRET_TTL=600))
    body = app.test_client().post(REG, json=NATIVE).get_json()
    assert 590 <= body["client_secret_expires_at"] - body["client_id_issued_at"] <= 600


@pytest.mark.parametrize("scope", [None, "", "   "])
def test_absent_or_empty_scope_means_server_defaults(client: FlaskClient, state: OAuthState, scope: str | None) -> None:
    payload: dict[str, Any] = dict(NATIVE)
    if scope is not None:
        payload["scope"] = scope
    body = assert_no_store_json(register(client, payload))
    assert body["scope"] == " ".join(state.default_scopes)


def test_scope_is_normalised_and_echoed(client: FlaskClient) -> None:
    body = assert_no_store_json(register(client, {**NATIVE, "scope": " mcp:resources  mcp:tools mcp:tools"}))
    assert body["scope"] == "mcp:resources mcp:tools"


def test_unknown_metadata_is_ignored(client: FlaskClient, state: OAuthState) -> None:
    body = assert_no_store_json(
        register(
            client, {**NATIVE, "frobnicate": True, "x_vendor": {"a": [1]}, "jwks": None, "software_statement": "x"}
        )
    )
    for name in ("frobnicate", "x_vendor", "jwks", "software_statement"):
        assert name not in body
    stored = state.storage.get_client(body["client_id"])
    assert stored is not None and "frobnicate" not in stored.metadata


@pytest.mark.parametrize("field", ["scope", "client_name", "token_endpoint_auth_method", "client_uri", "contacts"])
def test_null_means_absent(client: FlaskClient, state: OAuthState, field: str) -> None:
    # Some client libraries serialise unset optional fields as null.
    body = assert_no_store_json(register(client, {**NATIVE, field: None}))
    if field == "scope":
        assert body["scope"] == " ".join(state.default_scopes)
    elif field == "token_endpoint_auth_method":
        assert body[field] == "client_secret_basic"
    else:
        assert field not in body


def test_every_registered_field_is_echoed(client: FlaskClient) -> None:
    payload = {
        "redirect_uris": [CALLBACK, "https://app.example.com/cb", "com.example.app:/cb"],
        "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "Caf\u00e9 \u2603 app",
        "client_uri": "https://app.example.com",
        "logo_uri": "https://app.example.com/logo.png",
        "tos_uri": "https://app.example.com/tos",
        "policy_uri": "https://app.example.com/privacy",
        "contacts": ["ops@example.com"],
        "scope": "mcp:tools mcp:resources",
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "software_version": "2.1",
    }
    body = assert_no_store_json(register(client, payload))
    for key, value in payload.items():
        assert body[key] == value, key


def test_root_alias(client: FlaskClient) -> None:
    r = client.post("/register", json=NATIVE)
    assert r.status_code == 201 and r.json["redirect_uris"] == [CALLBACK]


# -- invalid metadata ----------------------------------------------------------------------------


INVALID = [
    # (body, error, field named in the description)
    ({}, "invalid_redirect_uri", "redirect_uris"),  # authorization_code needs a redirect URI
    ({"redirect_uris": []}, "invalid_redirect_uri", "redirect_uris"),
    ({"redirect_uris": CALLBACK}, "invalid_redirect_uri", "redirect_uris"),  # not a list
    ({"redirect_uris": [5]}, "invalid_redirect_uri", "redirect_uris"),
    ({"redirect_uris": [None]}, "invalid_redirect_uri", "redirect_uris"),
    ({"redirect_uris": ["http://app.example.com/cb"]}, "invalid_redirect_uri", "https"),
    ({"redirect_uris": ["https://app.example.com/cb#frag"]}, "invalid_redirect_uri", "fragment"),
    ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri", "javascript"),
    ({"redirect_uris": ["data:text/html,hi"]}, "invalid_redirect_uri", "data"),
    ({"redirect_uris": ["http://127.0.0.1:99999/cb"]}, "invalid_redirect_uri", "not a valid URI"),
    ({"redirect_uris": ["/cb"]}, "invalid_redirect_uri", "absolute"),
    ({"redirect_uris": [CALLBACK, CALLBACK]}, "invalid_redirect_uri", "repeat"),
    ({"redirect_uris": [f"https://a.example/{i}" for i in range(21)]}, "invalid_redirect_uri", "redirect_uris"),
    (
        {**NATIVE, "token_endpoint_auth_method": "private_key_jwt"},
        "invalid_client_metadata",
        "token_endpoint_auth_method",
    ),
    ({**NATIVE, "token_endpoint_auth_method": 1}, "invalid_client_metadata", "token_endpoint_auth_method"),
    ({**NATIVE, "grant_types": ["password"]}, "invalid_client_metadata", "grant_types"),
    ({**NATIVE, "grant_types": ["implicit"]}, "invalid_client_metadata", "grant_types"),
    (
        {**NATIVE, "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"]},
        "invalid_client_metadata",
        "grant_types",
    ),
    ({**NATIVE, "grant_types": ["client credentials"]}, "invalid_client_metadata", "grant_types"),
    ({**NATIVE, "grant_types": [5]}, "invalid_client_metadata", "grant_types"),
    ({**NATIVE, "grant_types": []}, "invalid_client_metadata", "grant_types"),
    ({**NATIVE, "grant_types": "authorization_code"}, "invalid_client_metadata", "grant_types"),
    ({**NATIVE, "grant_types": ["authorization_code", "authorization_code"]}, "invalid_client_metadata", "grant_types"),
    ({**NATIVE, "grant_types": ["refresh_token"]}, "invalid_client_metadata", "grant_types"),
    ({**NATIVE, "response_types": ["token"]}, "invalid_client_metadata", "response_types"),
    ({**NATIVE, "response_types": ["code", "token"]}, "invalid_client_metadata", "response_types"),
    ({**NATIVE, "response_types": []}, "invalid_client_metadata", "response_types"),
    ({**NATIVE, "client_name": "x" * 201}, "invalid_client_metadata", "client_name"),
    ({**NATIVE, "client_name": "evil\u202eexe.txt"}, "invalid_client_metadata", "client_name"),
    ({**NATIVE, "client_name": "nul\x00byte"}, "invalid_client_metadata", "client_name"),
    ({**NATIVE, "client_name": "bell\x07"}, "invalid_client_metadata", "client_name"),
    ({**NATIVE, "client_name": 5}, "invalid_client_metadata", "client_name"),
    ({**NATIVE, "client_name": ["a"]}, "invalid_client_metadata", "client_name"),
    ({**NATIVE, "client_uri": "javascript:alert(1)"}, "invalid_client_metadata", "client_uri"),
    ({**NATIVE, "client_uri": "http://app.example.com"}, "invalid_client_metadata", "client_uri"),
    ({**NATIVE, "logo_uri": "data:image/png;base64,AAAA"}, "invalid_client_metadata", "logo_uri"),
    ({**NATIVE, "tos_uri": "ftp://app.example.com/tos"}, "invalid_client_metadata", "tos_uri"),
    ({**NATIVE, "policy_uri": "com.example.app:/policy"}, "invalid_client_metadata", "policy_uri"),
    ({**NATIVE, "contacts": "ops@example.com"}, "invalid_client_metadata", "contacts"),
    ({**NATIVE, "contacts": [f"c{i}@example.com" for i in range(11)]}, "invalid_client_metadata", "contacts"),
    ({**NATIVE, "contacts": [5]}, "invalid_client_metadata", "contacts"),
    ({**NATIVE, "scope": "mcp:tools admin"}, "invalid_client_metadata", "scope"),
    ({**NATIVE, "scope": 'mcp:"tools"'}, "invalid_client_metadata", "scope"),
    ({**NATIVE, "scope": ["mcp:tools"]}, "invalid_client_metadata", "scope"),
    ({**NATIVE, "scope": "mcp:tools\nmcp:resources"}, "invalid_client_metadata", "scope"),
    ({**NATIVE, "software_id": "x" * 1001}, "invalid_client_metadata", "software_id"),
    ({**NATIVE, "software_version": 2}, "invalid_client_metadata", "software_version"),
    ({**NATIVE, "software_id": "id\u202e"}, "invalid_client_metadata", "software_id"),
    ({**NATIVE, "contacts": ["ops@example.com\x00"]}, "invalid_client_metadata", "contacts"),
    ({"redirect_uris": ["https://\u00e9xample.com/cb"]}, "invalid_redirect_uri", "ASCII"),
    (
        {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"},
        "invalid_client_metadata",
        "token_endpoint_auth_method",
    ),
]


@pytest.mark.parametrize(("body", "error", "field"), INVALID)
def test_invalid_metadata_names_the_field(
    client: FlaskClient, state: OAuthState, iat: Callable[..., str], body: dict[str, Any], error: str, field: str
) -> None:
    before = count(state)
    # With an initial access token, so that policy (not validation) never decides the answer.
    r = register(client, body, headers=bearer(iat()))
    assert_error(r, 400, error, mentions=field)
    assert count(state) == before


# -- policy: client_credentials needs an initial access token -------------------------------------


WORKER = {"grant_types": ["client_credentials"], "client_name": "worker", "scope": "mcp:tools"}


def test_client_credentials_without_initial_access_token_is_refused(client: FlaskClient, state: OAuthState) -> None:
    r = register(client, WORKER)
    assert r.status_code == 401
    body = assert_no_store_json(r)
    assert body["error"] == "invalid_token"
    assert "initial access token" in body["error_description"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert count(state) == 0


def test_mixed_grants_with_client_credentials_also_need_it(client: FlaskClient, state: OAuthState) -> None:
    r = register(client, {**NATIVE, "grant_types": ["authorization_code", "client_credentials"]})
    assert r.status_code == 401 and count(state) == 0


def test_client_credentials_with_initial_access_token(
    client: FlaskClient, state: OAuthState, iat: Callable[..., str]
) -> None:
    r = register(client, WORKER, headers=bearer(iat()))
    assert r.status_code == 201
    body = assert_no_store_json(r)
    assert body["grant_types"] == ["client_credentials"]
    assert body["response_types"] == []
    assert body["redirect_uris"] == []
    stored = state.storage.get_client(body["client_id"])
    assert stored is not None and stored.registered_by == "iat"
    # The worker can now get a token.
    t = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(body["client_id"], body["client_secret"])
    )
    assert t.status_code == 200 and t.json["scope"] == "mcp:tools"


def test_an_initial_access_token_can_be_reused_until_it_expires(client: FlaskClient, iat: Callable[..., str]) -> None:
    token = iat(expires_in=0)  # 0 = never expires
    assert register(client, WORKER, headers=bearer(token)).status_code == 201
    assert register(client, WORKER, headers=bearer(token)).status_code == 201


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-real-token",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "bearer",
        "Token abc",
    ],
)
def test_invalid_initial_access_token_is_401_even_for_open_registration(
    client: FlaskClient, state: OAuthState, authorization: str
) -> None:
    for body in (WORKER, NATIVE):  # a bad credential is refused, not ignored
        r = register(client, body, headers={"Authorization": authorization})
        assert r.status_code == 401
        assert assert_no_store_json(r)["error"] == "invalid_token"
    assert count(state) == 0


def test_expired_initial_access_token(client: FlaskClient, state: OAuthState, iat: Callable[..., str]) -> None:
    r = register(client, WORKER, headers=bearer(iat(expires_in=-10)))
    assert r.status_code == 401 and "expired" in r.json["error_description"]
    assert count(state) == 0


def test_closed_registration_needs_an_initial_access_token(tmp_path: Any) -> None:
    from app import create_app

    app = create_app(base_config(tmp_path, OAUTH_REGISTRATION_OPEN=False))
    state = app.extensions["mcp_oauth"]
    client = app.test_client()
    r = client.post(REG, json=NATIVE)
    assert r.status_code == 401 and count(state) == 0
    token = secrets.new_token()
    state.storage.save_initial_access_token(InitialAccessToken(secrets.token_hash(token), 0, 0))
    assert client.post(REG, json=NATIVE, headers=bearer(token)).status_code == 201


# -- RFC 7592 management -------------------------------------------------------------------------


@pytest.fixture
def registered(client: FlaskClient) -> dict[str, Any]:
    r = register(client, {**NATIVE, "client_name": "Before", "scope": "mcp:tools"})
    assert r.status_code == 201
    body: dict[str, Any] = r.get_json()
    return body


def manage_path(reg: dict[str, Any]) -> str:
    return str(reg["registration_client_uri"]).removeprefix(ISSUER)


def test_read(client: FlaskClient, registered: dict[str, Any]) -> None:
    r = client.get(manage_path(registered), headers=bearer(registered["registration_access_token"]))
    assert r.status_code == 200
    body = assert_no_store_json(r)
    for key in ("client_id", "redirect_uris", "client_name", "scope", "grant_types", "token_endpoint_auth_method"):
        assert body[key] == registered[key]
    assert body["client_id_issued_at"] == registered["client_id_issued_at"]
    assert "client_secret" not in body  # only its hash is kept
    assert body["client_secret_expires_at"] == 0


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_management_needs_the_right_token(
    client: FlaskClient, state: OAuthState, registered: dict[str, Any], method: str
) -> None:
    other = register(client, NATIVE).get_json()
    path = manage_path(registered)
    payload = {**NATIVE, "client_id": registered["client_id"]}
    for headers in (
        {},
        bearer("wrong"),
        bearer(other["registration_access_token"]),  # another client's token
        bearer(registered["client_secret"]),  # the client secret is not the registration token
        {"Authorization": "Basic " + registered["registration_access_token"]},
    ):
        r = client.open(path, method=method, json=payload, headers=headers)
        assert r.status_code == 401, (headers, r.status_code)
        assert_no_store_json(r)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        if not headers:
            assert "error=" not in r.headers["WWW-Authenticate"]  # RFC 6750 §3.1: no credentials, no code
    assert state.storage.get_client(registered["client_id"]).metadata["client_name"] == "Before"  # type: ignore[union-attr]


def test_unknown_client_looks_like_a_wrong_token(client: FlaskClient, registered: dict[str, Any]) -> None:
    r = client.get("/oauth/register/nosuchclient", headers=bearer(registered["registration_access_token"]))
    assert r.status_code == 401 and r.json["error"] == "invalid_token"


def test_update_replaces_the_metadata(client: FlaskClient, state: OAuthState, registered: dict[str, Any]) -> None:
    new_uri = "http://localhost:6274/oauth/callback"
    r = client.put(
        manage_path(registered),
        json={"client_id": registered["client_id"], "redirect_uris": [new_uri], "client_uri": "https://a.example"},
        headers=bearer(registered["registration_access_token"]),
    )
    assert r.status_code == 200
    body = assert_no_store_json(r)
    assert body["redirect_uris"] == [new_uri]
    assert body["client_uri"] == "https://a.example"
    # RFC 7592 §2.2: omitted fields are treated as empty, so the old name is gone.
    assert "client_name" not in body
    assert body["scope"] == " ".join(state.default_scopes)
    assert body["client_id_issued_at"] == registered["client_id_issued_at"]
    stored = state.storage.get_client(registered["client_id"])
    assert stored is not None and stored.redirect_uris == [new_uri]
    # Credentials are unchanged: the registration token and secret still work.
    assert (
        client.get(manage_path(registered), headers=bearer(registered["registration_access_token"])).status_code == 200
    )
    assert stored.secret_hash == secrets.token_hash(registered["client_secret"])


def test_update_may_repeat_the_current_secret(client: FlaskClient, registered: dict[str, Any]) -> None:
    r = client.put(
        manage_path(registered),
        json={**NATIVE, "client_id": registered["client_id"], "client_secret": registered["client_secret"]},
        headers=bearer(registered["registration_access_token"]),
    )
    assert r.status_code == 200 and "client_secret" not in r.json


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        ({"client_id": None}, "invalid_client_metadata", "client_id"),
        ({"client_id": "someone-else"}, "invalid_client_metadata", "client_id"),
        ({"client_secret": "a-secret-of-my-choosing"}, "invalid_client_metadata", "client_secret"),
        ({"token_endpoint_auth_method": "none"}, "invalid_client_metadata", "token_endpoint_auth_method"),
        ({"grant_types": ["authorization_code", "client_credentials"]}, "invalid_client_metadata", "grant_types"),
        ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri", "redirect_uris"),
        ({"scope": "mcp:tools root"}, "invalid_client_metadata", "scope"),
    ],
)
def test_update_rules(
    client: FlaskClient,
    state: OAuthState,
    registered: dict[str, Any],
    change: dict[str, Any],
    error: str,
    field: str,
) -> None:
    payload = {**NATIVE, "client_id": registered["client_id"], "client_name": "After", **change}
    payload = {k: v for k, v in payload.items() if v is not None}
    r = client.put(manage_path(registered), json=payload, headers=bearer(registered["registration_access_token"]))
    assert_error(r, 400, error, mentions=field)
    stored = state.storage.get_client(registered["client_id"])
    assert stored is not None and stored.metadata["client_name"] == "Before"


def test_an_iat_registered_client_may_keep_client_credentials(client: FlaskClient, iat: Callable[..., str]) -> None:
    reg = register(client, WORKER, headers=bearer(iat())).get_json()
    r = client.put(
        manage_path(reg),
        json={"client_id": reg["client_id"], "grant_types": ["client_credentials"], "client_name": "renamed"},
        headers=bearer(reg["registration_access_token"]),
    )
    assert r.status_code == 200 and r.json["client_name"] == "renamed"


def test_delete(client: FlaskClient, state: OAuthState, registered: dict[str, Any]) -> None:
    token = registered["registration_access_token"]
    r = client.delete(manage_path(registered), headers=bearer(token))
    assert r.status_code == 204 and r.data == b""
    assert "no-store" in r.headers["Cache-Control"]
    assert state.storage.get_client(registered["client_id"]) is None
    # RFC 7592 §2.3: the registration token is gone with the client.
    assert client.get(manage_path(registered), headers=bearer(token)).status_code == 401
    assert client.delete(manage_path(registered), headers=bearer(token)).status_code == 401
    # And so is the client at the token endpoint.
    r = client.post(
        "/oauth/introspect",
        data={"token": "x"},
        auth=(registered["client_id"], registered["client_secret"]),
    )
    assert_invalid_client(r)


def test_deleting_a_client_ends_its_tokens_at_the_token_endpoint(
    client: FlaskClient, iat: Callable[..., str], app: Flask
) -> None:
    reg = register(client, WORKER, headers=bearer(iat())).get_json()
    auth = (reg["client_id"], reg["client_secret"])
    assert client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth).status_code == 200
    assert client.delete(manage_path(reg), headers=bearer(reg["registration_access_token"])).status_code == 204
    assert_invalid_client(client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth))
