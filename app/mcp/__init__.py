"""The ``mcp`` blueprint: the MCP endpoint (``POST``/``DELETE /mcp``) and ``GET /mcp/whoami``.

Both sit behind the Host/Origin check and the bearer guard. The endpoint's tools come from the
``mcp_oauth.tools`` plugins named in ``MCP_TOOLS``; they are loaded when the blueprint is
registered on the app (inside ``create_app``), so a bad tool name fails start-up.
"""

from __future__ import annotations

from flask import Flask
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from app.errors import ConfigurationError
from app.guard import current_token, require_scope
from app.mcp.server import EXTENSION, MCPServer, init_mcp, mcp_blueprint
from app.mcp.tools import load_tools
from app.mcp.transport_security import HostPolicy
from app.state import OAuthState

bp = mcp_blueprint("mcp", __name__)


@bp.get("/whoami")
@require_scope("mcp:tools")
def whoami() -> ResponseReturnValue:
    """Who the token speaks for: a small protected route for workers and smoke tests."""
    claims = current_token()
    return {"sub": claims.sub, "client_id": claims.client_id, "scope": " ".join(sorted(claims.scopes))}


def server_from_config(app: Flask) -> MCPServer:
    """The MCP server this authorization server runs for its own resource ``<issuer>/mcp``."""
    state: OAuthState = app.extensions["mcp_oauth"]
    config = app.config
    try:
        policy = HostPolicy(
            state.issuer,
            str(config.get("MCP_ALLOWED_HOSTS") or "").split(),
            str(config.get("MCP_ALLOWED_ORIGINS") or "").split(),
        )
    except ValueError as e:
        raise ConfigurationError(str(e)) from e
    tools = load_tools(str(config.get("MCP_TOOLS") or "").split(), dict(config))
    unknown = sorted({str(getattr(t, "required_scope", "")) for t in tools} - set(state.scopes))
    if unknown:
        raise ConfigurationError(f"MCP_TOOLS need scopes missing from OAUTH_SCOPES: {unknown}")
    return MCPServer(
        tools=tools,
        secret_key=str(config["SECRET_KEY"]),
        revocations=state.token_store,
        policy=policy,
        challenge_scope=None if tools else " ".join(state.default_scopes),
    )


@bp.record_once
def _install(setup: BlueprintSetupState) -> None:
    if EXTENSION not in setup.app.extensions:
        init_mcp(setup.app, server_from_config(setup.app))
