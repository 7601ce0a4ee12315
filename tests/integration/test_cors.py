"""CORS for browser-based MCP clients (the MCP Inspector): preflights, exposed headers, and
no CORS at all on the pages a person's browser navigates to."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

INSPECTOR = "http://localhost:6274"
REQUEST_HEADERS = "authorization, content-type, mcp-protocol-version, mcp-session-id"


def preflight(client: FlaskClient, path: str, method: str = "POST", origin: str = INSPECTOR) -> object:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": REQUEST_HEADERS,
        },
    )


def header_set(value: str | None) -> set[str]:
    return {v.strip().lower() for v in (value or "").split(",") if v.strip()}


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/mcp", "POST"),
        ("/mcp", "DELETE"),
        ("/mcp/whoami", "GET"),
        ("/.well-known/oauth-authorization-server", "GET"),
        ("/.well-known/oauth-protected-resource", "GET"),
        ("/.well-known/oauth-protected-resource/mcp", "GET"),
        ("/.well-known/jwks.json", "GET"),
        ("/oauth/token", "POST"),
        ("/token", "POST"),
        ("/oauth/register", "POST"),
        ("/register", "POST"),
        ("/oauth/register/some-client-id", "PUT"),
        ("/oauth/register/some-client-id", "DELETE"),
        ("/oauth/revoke", "POST"),
        ("/oauth/introspect", "POST"),
    ],
)
def test_preflight_allows_browser_clients(client: FlaskClient, path: str, method: str) -> None:
    r = preflight(client, path, method)
    assert r.status_code == 200, r.data
    assert r.headers["Access-Control-Allow-Origin"] in ("*", INSPECTOR)
    assert method.lower() in header_set(r.headers["Access-Control-Allow-Methods"])
    assert header_set(r.headers["Access-Control-Allow-Headers"]) == header_set(REQUEST_HEADERS)
    # Bearer tokens, not cookies: credentials are never allowed cross-origin.
    assert "Access-Control-Allow-Credentials" not in r.headers


def test_preflight_allows_2026_routing_headers(client: FlaskClient) -> None:
    r = client.options(
        "/mcp",
        headers={
            "Origin": INSPECTOR,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "mcp-method, mcp-name, mcp-param-region, x-unknown",
        },
    )
    assert header_set(r.headers["Access-Control-Allow-Headers"]) == {"mcp-method", "mcp-name", "mcp-param-region"}


def test_responses_expose_the_mcp_headers(client: FlaskClient, token_for: Callable[..., str]) -> None:
    r = client.post("/mcp", json={}, headers={"Origin": INSPECTOR})
    assert r.status_code == 401
    assert r.headers["Access-Control-Allow-Origin"] in ("*", INSPECTOR)
    exposed = header_set(r.headers["Access-Control-Expose-Headers"])
    assert {"www-authenticate", "mcp-session-id", "mcp-protocol-version"} <= exposed
    token = token_for("mcp:tools")
    r = client.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}},
        headers={"Origin": INSPECTOR, "Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200 and r.headers["Mcp-Session-Id"]
    assert "mcp-session-id" in header_set(r.headers["Access-Control-Expose-Headers"])


def test_mcp_preflight_from_a_foreign_origin_fails(client: FlaskClient) -> None:
    r = preflight(client, "/mcp", origin="http://evil.example")
    assert r.status_code == 403


@pytest.mark.parametrize("path", ["/oauth/authorize", "/authorize", "/healthz"])
def test_no_cors_on_pages_people_navigate_to(client: FlaskClient, path: str) -> None:
    r = preflight(client, path, "POST")
    assert "Access-Control-Allow-Origin" not in r.headers
    r = client.get(path, headers={"Origin": INSPECTOR})
    assert "Access-Control-Allow-Origin" not in r.headers
    assert "Access-Control-Expose-Headers" not in r.headers
