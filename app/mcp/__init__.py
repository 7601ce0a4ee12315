"""The ``mcp`` blueprint: MCP routes behind the bearer-token guard."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.guard import current_token, protect, require_scope

bp = protect(Blueprint("mcp", __name__))


@bp.get("/whoami")
@require_scope("mcp:tools")
def whoami() -> ResponseReturnValue:
    """Who the token speaks for: a small protected route for workers and smoke tests."""
    claims = current_token()
    return {"sub": claims.sub, "client_id": claims.client_id, "scope": " ".join(sorted(claims.scopes))}
