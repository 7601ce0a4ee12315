"""JSON responses for the OAuth endpoints: no ``null`` values, ``Cache-Control: no-store``."""

from __future__ import annotations

import json
from typing import Any

from flask import Response

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# What ``jsonify`` produces outside debug mode (compact, sorted keys, ASCII), without its per-call
# lookups of the app and its JSON provider: every token, introspection and registration response
# goes through here. The bodies hold only JSON types (strings, numbers, booleans, lists).
_encode = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode


def drop_none(body: dict[str, Any]) -> dict[str, Any]:
    """Leave out absent optional fields: strict clients (the MCP TypeScript SDK) reject null."""
    return {k: v for k, v in body.items() if v is not None}


def no_store_json(body: dict[str, Any], status: int = 200) -> Response:
    response = Response(_encode(drop_none(body)) + "\n", status, mimetype="application/json")
    response.headers.update(NO_STORE)
    return response
