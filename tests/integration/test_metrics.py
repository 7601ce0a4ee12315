"""Prometheus metrics at GET /metrics (this process's registry; the multiprocess mode under
gunicorn is covered by tests/service/test_two_instances.py)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from app.contracts import RateLimitResult
from tests.conftest import base_config


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    return base_config(tmp_path, RATELIMIT_REGISTRATION="2/minute")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_endpoint_serves_the_exposition_format(client: Any) -> None:
    client.get("/healthz")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.mimetype == "text/plain"
    text = r.get_data(as_text=True)
    for name, kind in (
        ("mcp_oauth_http_requests_total", "counter"),
        ("mcp_oauth_http_request_duration_seconds", "histogram"),
        ("mcp_oauth_tokens_issued_total", "counter"),
        ("mcp_oauth_errors_total", "counter"),
        ("mcp_oauth_rate_limit_rejections_total", "counter"),
        ("mcp_oauth_rate_limiter_failures_total", "counter"),
    ):
        assert f"# TYPE {name} {kind}\n" in text, name
    assert 'mcp_oauth_http_requests_total{endpoint="/healthz",method="GET",status="200"}' in text


def test_requests_and_latency_per_endpoint_rule(client: Any) -> None:
    labels = {"endpoint": "/oauth/register/<client_id>", "method": "GET", "status": "401"}
    before = value("mcp_oauth_http_requests_total", **labels)
    count_before = value("mcp_oauth_http_request_duration_seconds_count", endpoint="/oauth/register/<client_id>")
    for client_id in ("a", "b", "c"):  # three paths, one label: the rule, never the raw path
        assert client.get(f"/oauth/register/{client_id}").status_code == 401
    assert value("mcp_oauth_http_requests_total", **labels) - before == 3
    after = value("mcp_oauth_http_request_duration_seconds_count", endpoint="/oauth/register/<client_id>")
    assert after - count_before == 3
    before = value("mcp_oauth_http_requests_total", endpoint="unmatched", method="GET", status="404")
    client.get("/no/such/path/123")
    assert value("mcp_oauth_http_requests_total", endpoint="unmatched", method="GET", status="404") - before == 1


def test_tokens_issued_per_grant(client: Any, make_client: Any) -> None:
    cid, secret = make_client()
    before = value("mcp_oauth_tokens_issued_total", grant="client_credentials")
    for path in ("/oauth/token", "/token"):  # the root alias counts too
        r = client.post(path, data={"grant_type": "client_credentials"}, auth=(cid, secret))
        assert r.status_code == 200
    client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, "wrong"))
    assert value("mcp_oauth_tokens_issued_total", grant="client_credentials") - before == 2


def test_errors_per_error_code(client: Any, make_client: Any) -> None:
    cid, secret = make_client()
    before_client = value("mcp_oauth_errors_total", error="invalid_client")
    before_grant = value("mcp_oauth_errors_total", error="unsupported_grant_type")
    client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, "wrong"))
    client.post("/oauth/token", data={"grant_type": "password"}, auth=(cid, secret))
    assert value("mcp_oauth_errors_total", error="invalid_client") - before_client == 1
    assert value("mcp_oauth_errors_total", error="unsupported_grant_type") - before_grant == 1


def test_rate_limit_rejections(client: Any) -> None:
    before = value("mcp_oauth_rate_limit_rejections_total", endpoint="/oauth/register")
    statuses = [
        client.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1:9/cb"]}).status_code for _ in range(3)
    ]
    assert statuses == [201, 201, 429]
    assert value("mcp_oauth_rate_limit_rejections_total", endpoint="/oauth/register") - before == 1
    assert value("mcp_oauth_errors_total", error="rate_limited") >= 1


class BrokenLimiter:
    def hit(self, limit: str, *key: str) -> RateLimitResult:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    test = hit

    def clear(self, limit: str, *key: str) -> None:
        raise ConnectionError("refused")


def test_a_failing_rate_limiter_lets_requests_through_and_is_counted(
    client: Any, state: Any, caplog: pytest.LogCaptureFixture
) -> None:
    state.limiter.inner = BrokenLimiter()
    before = value("mcp_oauth_rate_limiter_failures_total")
    caplog.set_level(logging.WARNING, logger="mcp_oauth")
    statuses = [
        client.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1:9/cb"]}).status_code for _ in range(4)
    ]
    assert statuses == [201] * 4  # over the 2/minute limit, but the limiter is down: fail open
    # One failure, then the limiter is left alone for a few seconds (no timeout per request).
    assert value("mcp_oauth_rate_limiter_failures_total") - before == 1
    warnings = [r.getMessage() for r in caplog.records if "rate limiter unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "ConnectionError" in warnings[0]


def test_metrics_are_not_counted_for_the_scrape_itself(client: Any) -> None:
    client.get("/metrics")
    assert value("mcp_oauth_http_requests_total", endpoint="/metrics", method="GET", status="200") == 0
