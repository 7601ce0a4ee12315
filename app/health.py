"""``GET /healthz``: is this instance able to serve? Checks every storage backend it uses.

200 ``{"status": "ok", ...}`` when storage answers; 503 ``{"status": "unavailable", ...}`` with
``Retry-After`` when one does not (a load balancer takes the instance out of rotation). The rate
limiter is not checked: it fails open (app/limiting.py). Backend error text is logged, never
sent.
"""

from __future__ import annotations

import logging

from flask import Flask
from flask.typing import ResponseReturnValue

from app.errors import StorageError
from app.state import oauth_state

log = logging.getLogger("mcp_oauth")


def _check(store: object) -> str:
    try:
        store.ping()  # type: ignore[attr-defined]
    except StorageError as e:
        log.error("health check: storage unavailable: %s (%r)", e, e.__cause__)
        return "unavailable"
    return "ok"


def healthz() -> ResponseReturnValue:
    state = oauth_state()
    body = {"storage": _check(state.storage)}
    if state.token_store is not state.storage:
        body["token_storage"] = _check(state.token_store)
    healthy = all(v == "ok" for v in body.values())
    body = {"status": "ok" if healthy else "unavailable"} | body
    headers = {"Cache-Control": "no-store"}
    if not healthy:
        headers["Retry-After"] = "5"
    return body, 200 if healthy else 503, headers


def init_app(app: Flask) -> None:
    app.add_url_rule("/healthz", endpoint="healthz", view_func=healthz, methods=["GET"])
