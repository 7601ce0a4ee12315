"""Assertions shared by the endpoint tests: RFC-shaped errors, no-store JSON, no nulls."""

from __future__ import annotations

import base64
from typing import Any

from werkzeug.test import TestResponse


def nulls(value: Any, path: str = "$") -> list[str]:
    """Paths of every ``null`` in a JSON value (strict clients reject them)."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls(v, f"{path}[{i}]")]
    return []


def assert_no_store_json(r: TestResponse) -> dict[str, Any]:
    """The response is a JSON object with ``Cache-Control: no-store`` and no nulls; returns it."""
    assert r.mimetype == "application/json", (r.status_code, r.mimetype, r.data[:200])
    assert "no-store" in r.headers.get("Cache-Control", ""), r.headers
    body = r.get_json()
    assert isinstance(body, dict), body
    assert not nulls(body), f"null values at {nulls(body)}"
    return body


def assert_error(r: TestResponse, status: int, error: str, mentions: str | None = None) -> dict[str, Any]:
    """An RFC 6749 §5.2 error body with ``error`` and a clear ASCII ``error_description``."""
    assert r.status_code == status, (r.status_code, r.data[:300])
    body = assert_no_store_json(r)
    assert body["error"] == error, body
    description = body.get("error_description", "")
    assert isinstance(description, str) and description, body
    # RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E only.
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in description), description
    if mentions is not None:
        assert mentions in description, body
    assert set(body) <= {"error", "error_description", "error_uri"}, body
    return body


def assert_invalid_client(r: TestResponse) -> dict[str, Any]:
    """401 ``invalid_client`` with ``WWW-Authenticate: Basic`` (clients re-register only on it)."""
    body = assert_error(r, 401, "invalid_client")
    assert r.headers.get("WWW-Authenticate", "").startswith("Basic"), r.headers
    return body


def basic(client_id: str, secret: str | None) -> dict[str, str]:
    """An ``Authorization: Basic`` header."""
    raw = f"{client_id}:{secret or ''}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
