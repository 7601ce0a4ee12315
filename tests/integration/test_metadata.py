"""RFC 8414 authorization server metadata and the JWKS."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from tests.conftest import ISSUER, base_config
from tests.support.checks import nulls

META = "/.well-known/oauth-authorization-server"


def metadata(client: FlaskClient) -> dict[str, Any]:
    r = client.get(META)
    assert r.status_code == 200 and r.mimetype == "application/json"
    body = r.get_json()
    assert isinstance(body, dict)
    return body


def test_required_and_implemented_fields(client: FlaskClient, state: Any) -> None:
    meta = metadata(client)
    assert meta["issuer"] == ISSUER
    assert meta["token_endpoint"] == ISSUER + "/oauth/token"
    assert meta["registration_endpoint"] == ISSUER + "/oauth/register"
    assert meta["revocation_endpoint"] == ISSUER + "/oauth/revoke"
    assert meta["introspection_endpoint"] == ISSUER + "/oauth/introspect"
    assert meta["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert isinstance(meta["response_types_supported"], list)  # REQUIRED by RFC 8414 §2
    assert meta["grant_types_supported"] == sorted(state.grants)
    assert "client_credentials" in meta["grant_types_supported"]
    assert meta["scopes_supported"] == sorted(state.scopes)
    assert meta["code_challenge_methods_supported"] == ["S256"]  # never "plain"
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    # Introspection is for confidential callers only.
    assert "none" not in meta["introspection_endpoint_auth_methods_supported"]


def test_no_nulls_and_cacheable(client: FlaskClient) -> None:
    r = client.get(META)
    assert not nulls(r.get_json())
    assert "max-age" in r.headers["Cache-Control"]


def test_every_advertised_endpoint_exists(client: FlaskClient) -> None:
    meta = metadata(client)
    for field in ("token_endpoint", "registration_endpoint", "revocation_endpoint", "introspection_endpoint"):
        path = meta[field].removeprefix(ISSUER)
        r = client.post(path)
        assert r.status_code not in (404, 405), (field, r.status_code)
    assert client.get(meta["jwks_uri"].removeprefix(ISSUER)).status_code == 200
    if "authorization_endpoint" in meta:
        assert client.get(meta["authorization_endpoint"].removeprefix(ISSUER)).status_code != 404


@pytest.mark.parametrize("issuer", ["http://127.0.0.1:8000", "http://localhost:9999", "https://auth.example.com/t1"])
def test_issuer_is_one_string_everywhere(tmp_path: Any, issuer: str) -> None:
    app = create_app(base_config(tmp_path, OAUTH_ISSUER=issuer, OAUTH_STORAGE_URL="memory://"))
    state = app.extensions["mcp_oauth"]
    with app.app_context():
        from app.oauth.register import new_client, validate_metadata

        _, secret, _ = new_client(
            state, validate_metadata(state, {"grant_types": ["client_credentials"]}), registered_by="cli"
        )
    client = app.test_client()
    meta = metadata(client)
    assert meta["issuer"] == issuer  # byte for byte, no trailing slash added
    cid = state.storage.list_clients()[0].client_id
    r = client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
    claims = jwt.decode(r.json["access_token"], options={"verify_signature": False})
    assert claims["iss"] == meta["issuer"]
    assert claims["aud"] == issuer + "/mcp"
    for field in ("token_endpoint", "jwks_uri", "registration_endpoint"):
        assert meta[field].startswith(issuer + "/")


def test_only_enabled_grants_are_advertised(tmp_path: Any) -> None:
    app = create_app(base_config(tmp_path, OAUTH_GRANT_TYPES="client_credentials", OAUTH_STORAGE_URL="memory://"))
    meta = metadata(app.test_client())
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert "authorization_endpoint" not in meta
    assert meta["response_types_supported"] == []
    assert "authorization_response_iss_parameter_supported" not in meta


def test_jwks_publishes_the_signing_key(client: FlaskClient, token_for: Any) -> None:
    r = client.get("/.well-known/jwks.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    keys = r.json["keys"]
    assert len(keys) == 1
    [key] = keys
    assert {"kty", "kid", "alg", "use"} <= set(key) and key["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)
    # A worker holding only this JWKS can verify a token.
    token = token_for("mcp:tools")
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=[key["alg"]], audience=ISSUER + "/mcp", issuer=ISSUER)
    assert claims["scope"] == "mcp:tools"


def test_jwks_keeps_a_rotated_key(client: FlaskClient, app: Flask) -> None:
    state = app.extensions["mcp_oauth"]
    old = state.keys.current().kid
    new = state.keys.rotate().kid
    kids = {k["kid"] for k in client.get("/.well-known/jwks.json").json["keys"]}
    assert kids == {old, new}


def test_hs256_publishes_no_keys(tmp_path: Any) -> None:
    secret = "a-shared-secret-of-at-least-32-bytes!"
    app = create_app(base_config(tmp_path, OAUTH_TOKEN_SECRET=secret, OAUTH_STORAGE_URL="memory://"))
    r = app.test_client().get("/.well-known/jwks.json")
    assert r.status_code == 200 and r.json == {"keys": []}
    assert secret.encode() not in r.data
    assert secret.encode() not in app.test_client().get(META).data
