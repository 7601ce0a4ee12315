"""GET /healthz: 200 while every storage backend answers, 503 JSON (with Retry-After and a log
line) when one does not, so a load balancer takes the instance out of rotation."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from app import create_app
from tests.conftest import base_config


def refuse(*_args: Any) -> None:
    raise ConnectionRefusedError("[Errno 111] Connection refused")


def test_healthy(client: Any) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json == {"status": "ok", "storage": "ok"}
    assert r.headers["Cache-Control"] == "no-store"
    assert "Retry-After" not in r.headers


def test_storage_down_is_503_json(client: Any, state: Any, caplog: pytest.LogCaptureFixture) -> None:
    state.storage.ping = state.storage._guard(refuse)
    r = client.get("/healthz")
    assert r.status_code == 503
    assert r.json == {"status": "unavailable", "storage": "unavailable"}
    assert r.headers["Retry-After"] == "5"
    assert r.headers["Cache-Control"] == "no-store"
    logged = [rec for rec in caplog.records if rec.name == "mcp_oauth" and rec.levelno == logging.ERROR]
    assert any("ConnectionRefusedError" in rec.getMessage() for rec in logged)


def test_a_separate_token_store_is_checked_too(tmp_path: Any) -> None:
    app = create_app(base_config(tmp_path, OAUTH_TOKEN_STORAGE_URL="memory://"))
    state = app.extensions["mcp_oauth"]
    http = app.test_client()
    assert http.get("/healthz").json == {"status": "ok", "storage": "ok", "token_storage": "ok"}
    state.token_store.ping = state.token_store._guard(refuse)
    r = http.get("/healthz")
    assert r.status_code == 503
    assert r.json == {"status": "unavailable", "storage": "ok", "token_storage": "unavailable"}
    state.close()


def test_only_get(client: Any) -> None:
    r = client.post("/healthz")
    assert r.status_code == 405 and r.json["error"] == "method_not_allowed"
