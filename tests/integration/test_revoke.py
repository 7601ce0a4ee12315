"""Token revocation (RFC 7009)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from app.state import OAuthState
from tests.conftest import MCP_RESOURCE
from tests.support.checks import assert_error, assert_invalid_client, basic, bearer

REVOKE = "/oauth/revoke"
MakeClient = Callable[..., tuple[str, str | None]]


@pytest.fixture
def owner(make_client: MakeClient) -> tuple[str, str]:
    cid, secret = make_client()
    assert secret
    return cid, secret


def token_of(client: FlaskClient, creds: tuple[str, str]) -> str:
    r = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(*creds))
    assert r.status_code == 200
    return str(r.json["access_token"])


def revoke(client: FlaskClient, creds: tuple[str, str], token: str, **extra: str) -> None:
    r = client.post(REVOKE, data={"token": token, **extra}, headers=basic(*creds))
    # RFC 7009 §2.2: 200 whether or not the token was valid; no body needed.
    assert r.status_code == 200, r.data
    assert r.data == b""
    assert "no-store" in r.headers["Cache-Control"]


def whoami(client: FlaskClient, token: str) -> int:
    return client.get("/mcp/whoami", headers=bearer(token)).status_code


@pytest.mark.parametrize("token", ["unknown", "a.b.c", "x" * 4000, "\u00e9"])
def test_unknown_tokens_get_200(client: FlaskClient, owner: tuple[str, str], token: str) -> None:
    revoke(client, owner, token)


def test_revoked_token_is_refused_by_the_guard_and_introspection(
    client: FlaskClient, state: OAuthState, owner: tuple[str, str]
) -> None:
    token = token_of(client, owner)
    assert whoami(client, token) == 200  # now cached as verified
    revoke(client, owner, token, token_type_hint="access_token")
    r = client.get("/mcp/whoami", headers=bearer(token))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert "revoked" in r.json["error_description"]
    r = client.post("/oauth/introspect", data={"token": token}, headers=basic(*owner))
    assert r.json == {"active": False}
    # Other tokens of the same client are unaffected.
    assert whoami(client, token_of(client, owner)) == 200


def test_revocation_is_kept_only_until_the_token_expires(
    client: FlaskClient, state: OAuthState, owner: tuple[str, str]
) -> None:
    token = token_of(client, owner)
    revoke(client, owner, token)
    claims = state.access_tokens.decode(token, None)
    assert state.token_store.is_jti_revoked(claims.jti)
    state.token_store.prune_tokens(int(time.time()))
    assert state.token_store.is_jti_revoked(claims.jti)  # still needed while the token lives
    # Once the token has expired (plus clock-skew margin) the record can go.
    state.token_store.prune_tokens(claims.exp + 61)
    assert not state.token_store.is_jti_revoked(claims.jti)


def test_a_client_revokes_only_its_own_tokens(
    client: FlaskClient, owner: tuple[str, str], make_client: MakeClient
) -> None:
    other = make_client()
    token = token_of(client, owner)
    revoke(client, other, token)  # 200, so nothing can be learned...
    assert whoami(client, token) == 200  # ...and nothing happened


def test_revoking_twice(client: FlaskClient, owner: tuple[str, str]) -> None:
    token = token_of(client, owner)
    revoke(client, owner, token)
    revoke(client, owner, token)
    assert whoami(client, token) == 401


def test_revoking_an_expired_token(client: FlaskClient, state: OAuthState, owner: tuple[str, str]) -> None:
    token, _ = state.access_tokens.issue(
        subject=owner[0], client_id=owner[0], scope="mcp:tools", audience=MCP_RESOURCE, now=int(time.time()) - 7200
    )
    revoke(client, owner, token)


def test_client_secret_post(client: FlaskClient, owner: tuple[str, str]) -> None:
    token = token_of(client, owner)
    r = client.post(REVOKE, data={"token": token, "client_id": owner[0], "client_secret": owner[1]})
    assert r.status_code == 200
    assert whoami(client, token) == 401


def test_caller_must_authenticate(client: FlaskClient, owner: tuple[str, str]) -> None:
    token = token_of(client, owner)
    assert_invalid_client(client.post(REVOKE, data={"token": token}))
    assert_invalid_client(client.post(REVOKE, data={"token": token}, headers=basic(owner[0], "wrong")))
    assert whoami(client, token) == 200


def test_token_is_required(client: FlaskClient, owner: tuple[str, str]) -> None:
    assert_error(
        client.post(REVOKE, data={"token_type_hint": "access_token"}, headers=basic(*owner)), 400, "invalid_request"
    )


def test_wrong_content_type(client: FlaskClient, owner: tuple[str, str]) -> None:
    r = client.post(REVOKE, json={"token": "x"}, headers=basic(*owner))
    assert_error(r, 415, "invalid_request")
