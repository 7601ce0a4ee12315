"""RFC 9728 Protected Resource Metadata, and the 401/403 challenges that point to it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient

from app.oauth.resource_metadata import metadata_url, protected_resource_metadata
from tests.conftest import ISSUER, MCP_RESOURCE, base_config
from tests.support.checks import basic, nulls

PRM_URL = f"{ISSUER}/.well-known/oauth-protected-resource/mcp"
OTHER_RESOURCE = "http://127.0.0.1:9000/mcp"


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    return base_config(tmp_path, OAUTH_RESOURCES=OTHER_RESOURCE)


def challenge_params(header: str) -> dict[str, str]:
    assert header.startswith("Bearer "), header
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


@pytest.mark.parametrize("path", ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"])
def test_metadata_document(client: FlaskClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    assert "max-age" in r.headers["Cache-Control"]
    body = r.get_json()
    assert body["resource"] == MCP_RESOURCE
    assert body["authorization_servers"] == [ISSUER]
    assert body["bearer_methods_supported"] == ["header"]
    assert body["scopes_supported"] == ["mcp:prompts", "mcp:resources", "mcp:tools"]
    assert body["resource_name"]
    assert not nulls(body)


def test_both_forms_serve_the_same_document(client: FlaskClient) -> None:
    root = client.get("/.well-known/oauth-protected-resource").get_json()
    assert client.get("/.well-known/oauth-protected-resource/mcp").get_json() == root


def test_metadata_is_public_even_with_a_bad_token(client: FlaskClient) -> None:
    r = client.get("/.well-known/oauth-protected-resource/mcp", headers={"Authorization": "Bearer junk"})
    assert r.status_code == 200


def test_unknown_resource_path_is_404(client: FlaskClient) -> None:
    assert client.get("/.well-known/oauth-protected-resource/other").status_code == 404


def test_metadata_url_puts_the_well_known_segment_before_the_path() -> None:
    assert metadata_url("https://h.example/mcp") == "https://h.example/.well-known/oauth-protected-resource/mcp"
    assert metadata_url("https://h.example:8443/a/b/") == (
        "https://h.example:8443/.well-known/oauth-protected-resource/a/b"
    )
    assert metadata_url("https://h.example") == "https://h.example/.well-known/oauth-protected-resource"


def test_optional_members_are_left_out() -> None:
    doc = protected_resource_metadata("https://r.example/mcp", ["https://as.example"], ["b", "a", "a"])
    assert doc == {
        "resource": "https://r.example/mcp",
        "authorization_servers": ["https://as.example"],
        "scopes_supported": ["a", "b"],
        "bearer_methods_supported": ["header"],
    }


# -- challenges ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [("POST", "/mcp"), ("GET", "/mcp/whoami"), ("DELETE", "/mcp")])
def test_401_without_token_names_metadata_and_scope(client: FlaskClient, method: str, path: str) -> None:
    r = client.open(path, method=method, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert r.status_code == 401
    params = challenge_params(r.headers["WWW-Authenticate"])
    assert params["resource_metadata"] == PRM_URL
    assert params["scope"] == "mcp:tools"
    # RFC 6750 §3.1: no error code when the request carried no credentials.
    assert "error" not in params


def test_the_challenged_metadata_url_serves_the_document(client: FlaskClient) -> None:
    r = client.post("/mcp", json={})
    url = challenge_params(r.headers["WWW-Authenticate"])["resource_metadata"]
    doc = client.get(urlsplit(url).path).get_json()
    assert doc["resource"] == MCP_RESOURCE and doc["authorization_servers"] == [ISSUER]


def _assert_invalid_token(client: FlaskClient, token: str) -> dict[str, str]:
    for method, path in (("POST", "/mcp"), ("GET", "/mcp/whoami")):
        r = client.open(path, method=method, json={}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (path, r.data)
        assert r.get_json()["error"] == "invalid_token"
        params = challenge_params(r.headers["WWW-Authenticate"])
        assert params["error"] == "invalid_token"
        assert params["resource_metadata"] == PRM_URL
        assert params["scope"]
    return params


@pytest.mark.parametrize("token", ["junk", "a.b.c", "Zm9v"])
def test_garbage_token_is_401_invalid_token(client: FlaskClient, token: str) -> None:
    _assert_invalid_token(client, token)


def test_expired_token_is_401_invalid_token(client: FlaskClient, state: Any) -> None:
    with client.application.app_context():
        token, _ = state.access_tokens.issue(
            subject="s", client_id="c", scope="mcp:tools", audience=MCP_RESOURCE, now=int(time.time()) - 7200
        )
    _assert_invalid_token(client, token)


def test_revoked_token_is_401_invalid_token(
    client: FlaskClient, make_client: Callable[..., tuple[str, str | None]]
) -> None:
    cid, secret = make_client()
    token = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(cid, secret)
    ).get_json()["access_token"]
    assert client.get("/mcp/whoami", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.post("/oauth/revoke", data={"token": token}, headers=basic(cid, secret)).status_code == 200
    _assert_invalid_token(client, token)


def test_token_signed_by_an_unknown_key_is_401(client: FlaskClient, state: Any) -> None:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "s",
        "aud": MCP_RESOURCE,
        "client_id": "c",
        "scope": "mcp:tools",
        "jti": "j",
        "iat": now,
        "exp": now + 600,
    }
    key = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "not-ours", "typ": "at+jwt"})
    _assert_invalid_token(client, forged)
    # Same kid as the real key, wrong signature.
    kid = state.keys.current().kid
    forged = jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})
    _assert_invalid_token(client, forged)


def test_token_for_another_resource_is_401(client: FlaskClient, token_for: Callable[..., str]) -> None:
    token = token_for("mcp:tools", resource=OTHER_RESOURCE)
    _assert_invalid_token(client, token)
    # The same client's token for this resource works (canonical form: trailing slash dropped).
    ok = token_for("mcp:tools", resource=MCP_RESOURCE + "/")
    assert client.get("/mcp/whoami", headers={"Authorization": f"Bearer {ok}"}).status_code == 200


def test_403_insufficient_scope_names_the_needed_scope(client: FlaskClient, token_for: Callable[..., str]) -> None:
    token = token_for("mcp:resources")
    r = client.get("/mcp/whoami", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    params = challenge_params(r.headers["WWW-Authenticate"])
    assert params["error"] == "insufficient_scope"
    assert "mcp:tools" in params["scope"].split()
    assert params["resource_metadata"] == PRM_URL


def test_token_in_query_is_refused(client: FlaskClient, token_for: Callable[..., str]) -> None:
    token = token_for("mcp:tools")
    r = client.get(f"/mcp/whoami?access_token={token}")
    assert r.status_code in (400, 401)
    assert client.get("/mcp/whoami", headers={"Authorization": f"Bearer {token}"}).status_code == 200
