"""Prometheus metrics, served at ``GET /metrics``.

Under gunicorn every worker is its own process, so the numbers are kept in prometheus-client's
multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` (set by gunicorn.conf.py before any worker
starts) holds one file per process, and a scrape adds them up, whichever worker answers. Without
that variable (the Flask dev server, tests) the process's own registry is served.

Labels are bounded: ``endpoint`` is the matched URL rule (``/oauth/register/<client_id>``, or
``unmatched``), never the raw path, and ``error`` is an OAuth error code from our responses.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "mcp_oauth_http_requests_total", "HTTP requests by endpoint, method and status.", ["endpoint", "method", "status"]
)
LATENCY = Histogram(
    "mcp_oauth_http_request_duration_seconds",
    "Time to answer a request, by endpoint.",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
TOKENS_ISSUED = Counter("mcp_oauth_tokens_issued_total", "Token responses by grant type.", ["grant"])
ERRORS = Counter("mcp_oauth_errors_total", "Error responses by OAuth error code.", ["error"])
RATE_LIMITED = Counter("mcp_oauth_rate_limit_rejections_total", "Requests refused with 429, by endpoint.", ["endpoint"])
RATE_LIMITER_FAILURES = Counter(
    "mcp_oauth_rate_limiter_failures_total", "Rate-limiter backend errors (the request was let through)."
)

# Error codes we may emit; anything else is counted as "other" so a label cannot grow unbounded.
_KNOWN_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_target",
        "unsupported_token_type",
        "access_denied",
        "unsupported_response_type",
        "invalid_client_metadata",
        "invalid_redirect_uri",
        "invalid_token",
        "insufficient_scope",
        "temporarily_unavailable",
        "rate_limited",
        "server_error",
        "not_found",
        "method_not_allowed",
        "login_required",
        "consent_required",
        "interaction_required",
    }
)
_TOKEN_ENDPOINTS = frozenset({"oauth.issue_token", "alias_token"})


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def render() -> Response:
    """The exposition text: every process's numbers in multiprocess mode, else this process's."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        data = generate_latest(registry)
    else:
        data = generate_latest(REGISTRY)
    # content_type, not mimetype: CONTENT_TYPE_LATEST already names its charset, and Flask would add
    # a second one to a text/* mimetype.
    return Response(data, content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def _error_code(response: Response) -> str | None:
    if response.status_code >= 400 and response.is_json:
        body = response.get_json(silent=True)
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return body["error"]
        return None
    if response.status_code in (302, 303) and response.location and "error=" in response.location:
        # Authorization errors go back to the client's redirect URI (RFC 6749 §4.1.2.1).
        values = parse_qs(urlsplit(response.location).query).get("error")
        return values[0] if values else None
    return None


def init_app(app: Flask) -> None:
    """Count every request (after the error handlers have shaped the response) and add /metrics."""

    @app.before_request
    def _start_timer() -> None:
        g.metrics_start = time.perf_counter()

    # Labelled children, looked up once per label set: ``labels()`` takes a lock and rebuilds
    # the key on every call. Label sets are bounded (URL rules x methods x statuses).
    requests_by: dict[tuple[str, str, int], Any] = {}
    latency_by: dict[str, Any] = {}
    issued_by: dict[str, Any] = {}

    @app.after_request
    def _record(response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not six
        rule = req.url_rule
        endpoint = rule.rule if rule is not None else "unmatched"
        if endpoint == "/metrics":
            return response
        status = response.status_code
        key = (endpoint, req.method, status)
        counter = requests_by.get(key)
        if counter is None:
            counter = requests_by[key] = REQUESTS.labels(endpoint, req.method, str(status))
        counter.inc()
        start = g.get("metrics_start")
        if start is not None:
            histogram = latency_by.get(endpoint)
            if histogram is None:
                histogram = latency_by[endpoint] = LATENCY.labels(endpoint)
            histogram.observe(time.perf_counter() - start)
        if status >= 300:
            error = _error_code(response)
            if error is not None:
                ERRORS.labels(error if error in _KNOWN_ERRORS else "other").inc()
            if status == 429:
                RATE_LIMITED.labels(endpoint).inc()
        elif status == 200 and req.endpoint in _TOKEN_ENDPOINTS:
            # Set by the token view: parsing the form again here cost more than the whole grant.
            grant = g.get("issued_grant", "")
            if grant not in app.extensions["mcp_oauth"].grants:
                grant = "other"
            issued = issued_by.get(grant)
            if issued is None:
                issued = issued_by[grant] = TOKENS_ISSUED.labels(grant)
            issued.inc()
        return response

    app.add_url_rule("/metrics", endpoint="metrics", view_func=render, methods=["GET"])
