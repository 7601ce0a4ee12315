"""Deployment behind a TLS proxy: OAUTH_TRUSTED_PROXIES decides whose X-Forwarded-* headers
count (so per-address rate limits see the real client), and a non-loopback issuer must be HTTPS."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, request

from app import create_app
from app.errors import ConfigurationError
from tests.conftest import base_config


def probe_app(tmp_path: Any, **config: Any) -> Flask:
    """The app with one extra route that shows what the request looks like to views."""
    app = create_app(base_config(tmp_path, **config))

    @app.get("/_probe")
    def _probe() -> dict[str, Any]:
        return {"addr": request.remote_addr, "scheme": request.scheme, "host": request.host}

    return app


FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "as.example.com"}


def test_headers_are_ignored_without_trusted_proxies(tmp_path: Any) -> None:
    app = probe_app(tmp_path)
    seen = app.test_client().get("/_probe", headers=FORWARDED).json
    assert seen == {"addr": "127.0.0.1", "scheme": "http", "host": "localhost"}
    app.extensions["mcp_oauth"].close()


def test_one_trusted_proxy(tmp_path: Any) -> None:
    app = probe_app(tmp_path, OAUTH_TRUSTED_PROXIES=1)
    http = app.test_client()
    assert http.get("/_probe", headers=FORWARDED).json == {
        "addr": "203.0.113.7",
        "scheme": "https",
        "host": "as.example.com",
    }
    # A client that sends its own X-Forwarded-For gets it prefixed by the proxy: only the
    # hop the proxy added is believed.
    spoofed = http.get("/_probe", headers={"X-Forwarded-For": "10.9.9.9, 198.51.100.1"}).json
    assert spoofed["addr"] == "198.51.100.1"
    app.extensions["mcp_oauth"].close()


def test_two_trusted_proxies(tmp_path: Any) -> None:
    app = probe_app(tmp_path, OAUTH_TRUSTED_PROXIES=2)
    seen = app.test_client().get("/_probe", headers={"X-Forwarded-For": "10.9.9.9, 203.0.113.7, 10.0.0.2"}).json
    assert seen["addr"] == "203.0.113.7"
    app.extensions["mcp_oauth"].close()


def test_per_address_rate_limits_see_the_forwarded_address(tmp_path: Any) -> None:
    app = create_app(base_config(tmp_path, OAUTH_TRUSTED_PROXIES=1, RATELIMIT_REGISTRATION="1/minute"))
    http = app.test_client()
    body = {"redirect_uris": ["http://127.0.0.1:9/cb"]}

    def register(addr: str) -> int:
        return http.post("/oauth/register", json=body, headers={"X-Forwarded-For": addr}).status_code

    assert [register("203.0.113.7"), register("203.0.113.8"), register("203.0.113.7")] == [201, 201, 429]
    app.extensions["mcp_oauth"].close()


def test_without_trusted_proxies_a_forged_header_does_not_dodge_limits(tmp_path: Any) -> None:
    app = create_app(base_config(tmp_path, RATELIMIT_REGISTRATION="1/minute"))
    http = app.test_client()
    body = {"redirect_uris": ["http://127.0.0.1:9/cb"]}
    codes = [http.post("/oauth/register", json=body, headers={"X-Forwarded-For": a}).status_code for a in "12"]
    assert codes == [201, 429]
    app.extensions["mcp_oauth"].close()


@pytest.mark.parametrize("bad", [-1, "two", True, 1.5])
def test_trusted_proxies_must_be_a_count(tmp_path: Any, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="OAUTH_TRUSTED_PROXIES"):
        create_app(base_config(tmp_path, OAUTH_TRUSTED_PROXIES=bad))


@pytest.mark.parametrize(
    "issuer", ["http://as.example.com", "http://10.0.0.5:8000", "http://127.0.0.1.example.com", "ftp://as.example.com"]
)
def test_a_non_loopback_issuer_must_be_https(tmp_path: Any, issuer: str) -> None:
    with pytest.raises(ConfigurationError, match="https"):
        create_app(base_config(tmp_path, OAUTH_ISSUER=issuer))


@pytest.mark.parametrize(
    "issuer", ["https://as.example.com", "http://127.0.0.1:8000", "http://localhost:9000", "http://[::1]:8000"]
)
def test_https_or_loopback_issuers_are_accepted(tmp_path: Any, issuer: str) -> None:
    app = create_app(base_config(tmp_path, OAUTH_ISSUER=issuer))
    assert app.test_client().get("/.well-known/oauth-authorization-server").json["issuer"] == issuer
    app.extensions["mcp_oauth"].close()
