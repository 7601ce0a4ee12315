"""Rate limits: registration per address, token endpoint per client, failed authentication per address."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import base_config
from tests.support.checks import assert_error, assert_invalid_client, basic

NATIVE = {"redirect_uris": ["http://127.0.0.1/cb"]}
CC = {"grant_type": "client_credentials"}
MakeClient = Callable[..., tuple[str, str | None]]


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    return base_config(
        tmp_path,
        RATELIMIT_REGISTRATION="3/minute",
        RATELIMIT_TOKEN="3/minute",
        RATELIMIT_AUTH_FAILURE="3/minute",
    )


def addr(ip: str) -> dict[str, Any]:
    return {"environ_base": {"REMOTE_ADDR": ip}}


def assert_rate_limited(r: Any) -> None:
    assert_error(r, 429, "rate_limited")
    retry_after = r.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 61


def test_registration_per_address(client: FlaskClient, state: Any) -> None:
    for _ in range(3):
        assert client.post("/oauth/register", json=NATIVE, **addr("192.0.2.1")).status_code == 201
    assert_rate_limited(client.post("/oauth/register", json=NATIVE, **addr("192.0.2.1")))
    # The alias shares the count; a bad body still counts as an attempt.
    assert_rate_limited(client.post("/register", json={}, **addr("192.0.2.1")))
    assert len(state.storage.list_clients()) == 3
    # Another address is not affected.
    assert client.post("/oauth/register", json=NATIVE, **addr("192.0.2.2")).status_code == 201


def test_token_endpoint_per_client(client: FlaskClient, make_client: MakeClient) -> None:
    first, second = make_client(), make_client()
    for _ in range(3):
        assert client.post("/oauth/token", data=CC, headers=basic(*first), **addr("192.0.2.1")).status_code == 200
    # Per client, not per address: a new address does not help...
    assert_rate_limited(client.post("/oauth/token", data=CC, headers=basic(*first), **addr("192.0.2.9")))
    # ...and another client from the same address is not affected.
    assert client.post("/oauth/token", data=CC, headers=basic(*second), **addr("192.0.2.1")).status_code == 200


def test_failed_client_authentication_per_address(client: FlaskClient, make_client: MakeClient) -> None:
    cid, secret = make_client()
    for _ in range(3):
        assert_invalid_client(client.post("/oauth/token", data=CC, headers=basic(cid, "guess"), **addr("192.0.2.1")))
    # Now even the right secret is refused from that address, at every client-authenticating endpoint.
    assert_rate_limited(client.post("/oauth/token", data=CC, headers=basic(cid, secret), **addr("192.0.2.1")))
    assert_rate_limited(
        client.post("/oauth/introspect", data={"token": "x"}, headers=basic(cid, secret), **addr("192.0.2.1"))
    )
    assert_rate_limited(
        client.post("/oauth/revoke", data={"token": "x"}, headers=basic(cid, secret), **addr("192.0.2.1"))
    )
    # The client itself is not locked out elsewhere.
    assert client.post("/oauth/token", data=CC, headers=basic(cid, secret), **addr("192.0.2.2")).status_code == 200


def test_successful_authentications_do_not_count_as_failures(client: FlaskClient, make_client: MakeClient) -> None:
    cid, secret = make_client()
    for _ in range(5):
        r = client.post("/oauth/introspect", data={"token": "x"}, headers=basic(cid, secret), **addr("192.0.2.1"))
        assert r.status_code == 200


def test_unknown_clients_count_as_failures(client: FlaskClient) -> None:
    for i in range(3):
        assert_invalid_client(
            client.post("/oauth/token", data=CC, headers=basic(f"nobody-{i}", "x"), **addr("192.0.2.1"))
        )
    assert_rate_limited(client.post("/oauth/token", data=CC, headers=basic("nobody-9", "x"), **addr("192.0.2.1")))


def test_disabled(tmp_path: Any) -> None:
    from app import create_app

    app = create_app(base_config(tmp_path, RATELIMIT_ENABLED=False, RATELIMIT_REGISTRATION="1/minute"))
    client = app.test_client()
    for _ in range(3):
        assert client.post("/oauth/register", json=NATIVE).status_code == 201
