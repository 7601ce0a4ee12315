"""JSON responses for the OAuth endpoints: no ``null`` values, ``Cache-Control: no-store``."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def drop_none(body: dict[str, Any]) -> dict[str, Any]:
    """Leave out absent optional fields: strict clients (the MCP TypeScript SDK) reject null."""
    return {k: v for k, v in body.items() if v is not None}


def no_store_json(body: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(drop_none(body))
    response.status_code = status
    response.headers.update(NO_STORE)
    return response
