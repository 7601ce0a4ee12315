"""The resource-server guard: ``protect(blueprint)`` and ``@require_scope`` (RFC 6750, RFC 9728)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from flask.typing import ResponseReturnValue

from app.guard import current_token, protect, require_scope
from app.state import OAuthState
from tests.conftest import ISSUER, MCP_RESOURCE
from tests.support.checks import assert_no_store_json, bearer

WHOAMI = "/mcp/whoami"
RESOURCE_METADATA = f'resource_metadata="{ISSUER}/.well-known/oauth-protected-resource/mcp"'
TokenFor = Callable[..., str]


def challenge(r: object) -> str:
    return str(r.headers.get("WWW-Authenticate", ""))  # type: ignore[attr-defined]


def test_no_token(client: FlaskClient) -> None:
    r = client.get(WHOAMI)
    assert r.status_code == 401
    header = challenge(r)
    assert header.startswith("Bearer ")
    assert RESOURCE_METADATA in header  # RFC 9728 §5.1: how the client finds the AS
    assert "error=" not in header  # RFC 6750 §3.1: no credentials, no error code
    assert assert_no_store_json(r)["error"] == "invalid_token"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Bearer ",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "Bearer eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.",
    ],
)
def test_invalid_token(client: FlaskClient, authorization: str) -> None:
    r = client.get(WHOAMI, headers={"Authorization": authorization})
    assert r.status_code == 401
    assert 'error="invalid_token"' in challenge(r)
    assert RESOURCE_METADATA in challenge(r)
    assert assert_no_store_json(r)["error"] == "invalid_token"


def test_valid_token_and_claims_in_the_view(client: FlaskClient, token_for: TokenFor) -> None:
    token = token_for("mcp:tools mcp:resources")
    r = client.get(WHOAMI, headers=bearer(token))
    assert r.status_code == 200
    assert r.json["scope"] == "mcp:resources mcp:tools"
    assert r.json["sub"] == r.json["client_id"]


def test_the_scheme_is_case_insensitive(client: FlaskClient, token_for: TokenFor) -> None:
    assert client.get(WHOAMI, headers={"Authorization": f"bearer {token_for()}"}).status_code == 200


def test_insufficient_scope(client: FlaskClient, token_for: TokenFor) -> None:
    r = client.get(WHOAMI, headers=bearer(token_for("mcp:resources")))
    assert r.status_code == 403
    header = challenge(r)
    assert 'error="insufficient_scope"' in header
    assert 'scope="' in header and "mcp:tools" in header.split('scope="', 1)[1].split('"', 1)[0]
    assert RESOURCE_METADATA in header
    assert assert_no_store_json(r)["error"] == "insufficient_scope"


def test_expired_token(client: FlaskClient, state: OAuthState) -> None:
    token, _ = state.access_tokens.issue(
        subject="w", client_id="w", scope="mcp:tools", audience=MCP_RESOURCE, now=int(time.time()) - 7200
    )
    r = client.get(WHOAMI, headers=bearer(token))
    assert r.status_code == 401 and 'error="invalid_token"' in challenge(r)
    assert "expired" in r.json["error_description"]


def test_token_for_another_audience(client: FlaskClient, state: OAuthState) -> None:
    token, _ = state.access_tokens.issue(
        subject="w", client_id="w", scope="mcp:tools", audience="https://other.example/mcp"
    )
    r = client.get(WHOAMI, headers=bearer(token))
    assert r.status_code == 401 and 'error="invalid_token"' in challenge(r)


def test_token_in_the_query_string_is_refused(client: FlaskClient, token_for: TokenFor) -> None:
    token = token_for()
    r = client.get(f"{WHOAMI}?access_token={token}")
    assert r.status_code == 400
    assert assert_no_store_json(r)["error"] == "invalid_request"
    assert token not in r.get_data(as_text=True)
    # Even next to a valid header: a token in a URL has leaked and must not be encouraged.
    assert client.get(f"{WHOAMI}?access_token={token}", headers=bearer(token)).status_code == 400


def test_token_in_a_form_body_is_not_read(app: Flask, client: FlaskClient, token_for: TokenFor) -> None:
    bp = Blueprint("form_probe", __name__)

    @bp.post("/form-probe")
    @require_scope("mcp:tools")
    def probe() -> ResponseReturnValue:
        return {"ok": True}

    app.register_blueprint(bp)
    r = client.post("/form-probe", data={"access_token": token_for()})
    assert r.status_code == 401


def test_options_passes_for_cors_preflight(client: FlaskClient) -> None:
    r = client.options(WHOAMI)
    assert r.status_code != 401 and r.status_code < 400


def test_require_scope_on_an_unprotected_blueprint(app: Flask, client: FlaskClient, token_for: TokenFor) -> None:
    bp = Blueprint("open_bp", __name__)

    @bp.get("/public")
    def public() -> ResponseReturnValue:
        return {"public": True}

    @bp.get("/resources")
    @require_scope("mcp:resources")
    def resources() -> ResponseReturnValue:
        return {"sub": current_token().sub, "scopes": sorted(current_token().scopes)}

    app.register_blueprint(bp, url_prefix="/open")
    assert client.get("/open/public").status_code == 200
    r = client.get("/open/resources")
    assert r.status_code == 401 and "error=" not in challenge(r)
    assert client.get("/open/resources", headers=bearer(token_for("mcp:tools"))).status_code == 403
    r = client.get("/open/resources", headers=bearer(token_for("mcp:resources")))
    assert r.status_code == 200 and r.json["scopes"] == ["mcp:resources"]


def test_protect_with_scopes(app: Flask, client: FlaskClient, token_for: TokenFor) -> None:
    bp = protect(Blueprint("prompts_bp", __name__), scopes=["mcp:prompts"])

    @bp.get("/list")
    def listing() -> ResponseReturnValue:
        return {"client_id": current_token().client_id}

    app.register_blueprint(bp, url_prefix="/prompts")
    assert client.get("/prompts/list").status_code == 401
    assert client.get("/prompts/list", headers=bearer(token_for("mcp:tools"))).status_code == 403
    assert client.get("/prompts/list", headers=bearer(token_for("mcp:prompts"))).status_code == 200


def test_revoked_token_is_refused(client: FlaskClient, state: OAuthState, token_for: TokenFor) -> None:
    token = token_for()
    assert client.get(WHOAMI, headers=bearer(token)).status_code == 200
    claims = state.access_tokens.decode(token, None)
    state.token_store.revoke_jti(claims.jti, claims.exp)
    r = client.get(WHOAMI, headers=bearer(token))
    assert r.status_code == 401 and "revoked" in r.json["error_description"]
