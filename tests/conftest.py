"""Shared fixtures: ``app``, ``client`` (pytest-flask), ``make_client``, ``token_for``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.oauth.register import new_client, validate_metadata
from app.state import OAuthState

ISSUER = "http://127.0.0.1:8000"
MCP_RESOURCE = ISSUER + "/mcp"


def base_config(tmp_path: Any, **overrides: Any) -> dict[str, Any]:
    """A test configuration: SQLite in tmp_path, generous rate limits."""
    config: dict[str, Any] = {
        "TESTING": True,
        "OAUTH_ISSUER": ISSUER,
        "OAUTH_STORAGE_URL": f"sqlite:///{tmp_path}/oauth.sqlite3",
        "RATELIMIT_TOKEN": "10000/minute",
        "RATELIMIT_REGISTRATION": "10000/minute",
        "RATELIMIT_AUTH_FAILURE": "10000/minute",
        "RATELIMIT_LOGIN": "10000/minute",
    }
    config.update(overrides)
    return config


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    """Override in a module to change the app's config."""
    return base_config(tmp_path)


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(app_config)
    yield app
    app.extensions["mcp_oauth"].close()


@pytest.fixture
def state(app: Flask) -> OAuthState:
    s: OAuthState = app.extensions["mcp_oauth"]
    return s


@pytest.fixture
def make_client(app: Flask) -> Callable[..., tuple[str, str | None]]:
    """Create a client directly (as the CLI does); returns (client_id, secret)."""

    def make(
        grant_types: tuple[str, ...] = ("client_credentials",),
        *,
        scope: str = "mcp:tools mcp:resources",
        auth_method: str = "client_secret_basic",
        redirect_uris: tuple[str, ...] = (),
        privileges: frozenset[str] = frozenset(),
        **metadata: Any,
    ) -> tuple[str, str | None]:
        with app.app_context():
            state: OAuthState = app.extensions["mcp_oauth"]
            body = {
                "grant_types": list(grant_types),
                "scope": scope,
                "token_endpoint_auth_method": auth_method,
                "redirect_uris": list(redirect_uris),
                **metadata,
            }
            client, secret, _ = new_client(
                state, validate_metadata(state, body), registered_by="cli", privileges=privileges
            )
        return client.client_id, secret

    return make


@pytest.fixture
def token_for(client: Any, make_client: Callable[..., tuple[str, str | None]]) -> Callable[..., str]:
    """An access token from the client_credentials grant with ``scopes``."""

    def get(scopes: str = "mcp:tools", **params: str) -> str:
        cid, secret = make_client(scope="mcp:tools mcp:resources mcp:prompts")
        r = client.post(
            "/oauth/token", data={"grant_type": "client_credentials", "scope": scopes, **params}, auth=(cid, secret)
        )
        assert r.status_code == 200, r.json
        return str(r.json["access_token"])

    return get
