"""Token introspection (RFC 7662)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient

from app.state import OAuthState
from tests.conftest import ISSUER, MCP_RESOURCE
from tests.support.checks import assert_error, assert_invalid_client, assert_no_store_json, basic

INTROSPECT = "/oauth/introspect"
MakeClient = Callable[..., tuple[str, str | None]]


@pytest.fixture
def owner(make_client: MakeClient) -> tuple[str, str]:
    cid, secret = make_client(scope="mcp:tools mcp:resources")
    assert secret
    return cid, secret


def token_of(client: FlaskClient, creds: tuple[str, str], **params: str) -> str:
    r = client.post("/oauth/token", data={"grant_type": "client_credentials", **params}, headers=basic(*creds))
    assert r.status_code == 200, r.json
    return str(r.json["access_token"])


def introspect(client: FlaskClient, creds: tuple[str, str | None], token: str, **extra: str) -> dict[str, Any]:
    r = client.post(INTROSPECT, data={"token": token, **extra}, headers=basic(*creds))
    assert r.status_code == 200, r.json
    return assert_no_store_json(r)


def test_active_token(client: FlaskClient, owner: tuple[str, str]) -> None:
    token = token_of(client, owner, scope="mcp:tools")
    claims = jwt.decode(token, options={"verify_signature": False})
    body = introspect(client, owner, token)
    assert body == {
        "active": True,
        "scope": "mcp:tools",
        "client_id": owner[0],
        "sub": owner[0],
        "aud": MCP_RESOURCE,
        "iss": ISSUER,
        "exp": claims["exp"],  # so resource servers can cache the answer
        "iat": claims["iat"],
        "jti": claims["jti"],
        "token_type": "Bearer",
    }
    assert isinstance(body["exp"], int)


def test_client_secret_post_works(client: FlaskClient, owner: tuple[str, str]) -> None:
    token = token_of(client, owner)
    r = client.post(INTROSPECT, data={"token": token, "client_id": owner[0], "client_secret": owner[1]})
    assert r.status_code == 200 and r.json["active"] is True


@pytest.mark.parametrize("hint", ["access_token", "refresh_token", "something_else"])
def test_token_type_hint_does_not_change_the_answer(client: FlaskClient, owner: tuple[str, str], hint: str) -> None:
    token = token_of(client, owner)
    assert introspect(client, owner, token, token_type_hint=hint)["active"] is True


@pytest.mark.parametrize(
    "token",
    ["unknown", "a.b.c", "x" * 4000, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "\u00e9\u00e9\u00e9"],
)
def test_unknown_tokens_are_inactive(client: FlaskClient, owner: tuple[str, str], token: str) -> None:
    assert introspect(client, owner, token) == {"active": False}


def test_expired_token_is_inactive(client: FlaskClient, state: OAuthState, owner: tuple[str, str]) -> None:
    token, _ = state.access_tokens.issue(
        subject=owner[0], client_id=owner[0], scope="mcp:tools", audience=MCP_RESOURCE, now=int(time.time()) - 7200
    )
    assert introspect(client, owner, token) == {"active": False}


def test_revoked_token_is_inactive(client: FlaskClient, owner: tuple[str, str]) -> None:
    token = token_of(client, owner)
    assert introspect(client, owner, token)["active"] is True
    assert client.post("/oauth/revoke", data={"token": token}, headers=basic(*owner)).status_code == 200
    assert introspect(client, owner, token) == {"active": False}


def test_another_clients_token_is_inactive(
    client: FlaskClient, owner: tuple[str, str], make_client: MakeClient
) -> None:
    other = make_client()
    token = token_of(client, owner)
    assert introspect(client, other, token) == {"active": False}


def test_the_introspect_privilege_sees_every_token(
    client: FlaskClient, owner: tuple[str, str], make_client: MakeClient
) -> None:
    resource_server = make_client(privileges=frozenset({"introspect"}))
    token = token_of(client, owner)
    body = introspect(client, resource_server, token)
    assert body["active"] is True and body["client_id"] == owner[0]
    # ...but still not a revoked one.
    client.post("/oauth/revoke", data={"token": token}, headers=basic(*owner))
    assert introspect(client, resource_server, token) == {"active": False}


def test_a_token_signed_elsewhere_is_inactive(client: FlaskClient, owner: tuple[str, str]) -> None:
    from app.keys import KeyRing
    from app.tokens import AccessTokens
    from plugins.storage.memory import MemoryStorage

    keys = KeyRing(MemoryStorage(), alg="ES256", secret=None, overlap_seconds=60)
    keys.ensure()
    forged, _ = AccessTokens(keys, ISSUER, 3600, is_revoked=lambda _: False).issue(
        subject=owner[0], client_id=owner[0], scope="mcp:tools", audience=MCP_RESOURCE
    )
    assert introspect(client, owner, forged) == {"active": False}


def test_caller_must_authenticate(client: FlaskClient, owner: tuple[str, str]) -> None:
    token = token_of(client, owner)
    assert_invalid_client(client.post(INTROSPECT, data={"token": token}))
    assert_invalid_client(client.post(INTROSPECT, data={"token": token}, headers=basic(owner[0], "wrong")))
    assert_invalid_client(client.post(INTROSPECT, data={"token": token, "client_id": owner[0]}))


def test_public_clients_cannot_introspect(client: FlaskClient, make_client: MakeClient) -> None:
    cid, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=("http://127.0.0.1/cb",))
    assert_invalid_client(client.post(INTROSPECT, data={"token": "x", "client_id": cid}))


def test_token_is_required(client: FlaskClient, owner: tuple[str, str]) -> None:
    r = client.post(INTROSPECT, data={"token_type_hint": "access_token"}, headers=basic(*owner))
    assert_error(r, 400, "invalid_request", mentions="token")
    r = client.post(INTROSPECT, data={"token": ""}, headers=basic(*owner))
    assert_error(r, 400, "invalid_request", mentions="token")


def test_repeated_token_parameter(client: FlaskClient, owner: tuple[str, str]) -> None:
    r = client.post(
        INTROSPECT, data="token=a&token=b", content_type="application/x-www-form-urlencoded", headers=basic(*owner)
    )
    assert_error(r, 400, "invalid_request", mentions="repeated")


def test_get_is_not_allowed(client: FlaskClient) -> None:
    assert client.get(INTROSPECT + "?token=x").status_code == 405
