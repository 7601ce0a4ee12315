"""JSON responses for the OAuth endpoints: no ``null`` values, ``Cache-Control: no-store``."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# Compact JSON with sorted keys, as ``jsonify`` gives outside debug mode, but encoded by orjson
# (about 20x faster than the json module on a token response) and without jsonify's per-call
# lookups of the app and its JSON provider: every token, introspection and registration response
# goes through here. The bodies hold only JSON types (strings, numbers, booleans, lists); text
# is sent as UTF-8 rather than as \u escapes, which RFC 8259 §8.1 makes the default.
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def drop_none(body: dict[str, Any]) -> dict[str, Any]:
    """Leave out absent optional fields: strict clients (the MCP TypeScript SDK) reject null."""
    return {k: v for k, v in body.items() if v is not None}


def no_store_json(body: dict[str, Any], status: int = 200) -> Response:
    response = Response(orjson.dumps(drop_none(body), option=_OPTIONS), status, mimetype="application/json")
    response.headers.update(NO_STORE)
    return response
