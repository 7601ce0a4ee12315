"""An MCP worker: a separate Flask app that accepts this authorization server's tokens.

It knows only two things, from the environment:

- ``OAUTH_ISSUER``: the authorization server, e.g. ``https://auth.example.com``;
- ``WORKER_RESOURCE``: its own URL, e.g. ``https://worker1.example.com/mcp`` (the AS must list
  it in ``OAUTH_RESOURCES`` so that clients can get tokens for it with ``resource=``).

Optional: ``WORKER_INTROSPECTION_CLIENT_ID`` / ``WORKER_INTROSPECTION_CLIENT_SECRET`` (a client
made with ``flask oauth client create --introspect``: revocation then takes effect within
``WORKER_INTROSPECTION_CACHE_SECONDS``, default 30), ``WORKER_SECRET_KEY`` (signs MCP session
ids; set it when running several worker processes), ``WORKER_ALLOWED_HOSTS`` and
``WORKER_ALLOWED_ORIGINS`` (extra Host / Origin values, space-separated), ``WORKER_JWKS_REFETCH_SECONDS``
(minimum seconds between key re-fetches for unknown ``kid``s, default 10).

Serve it with ``gunicorn 'examples.worker.app:create_worker_app()' --bind 127.0.0.1:9000`` or
``flask --app examples.worker.app:create_worker_app run --port 9000``, from the repository root.
It serves ``POST /mcp`` (MCP Streamable HTTP with its own tools), ``GET /mcp/whoami`` and its
RFC 9728 metadata, with the same ``protect`` / ``require_scope`` guard as the AS.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from flask import Flask
from flask.typing import ResponseReturnValue

from app.contracts import ToolError
from app.cors import init_cors
from app.errors import ConfigurationError, register_error_handlers
from app.guard import current_token, require_scope
from app.mcp.server import MCPServer, init_mcp, mcp_blueprint
from app.mcp.sessions import MemoryRevocations
from app.mcp.transport_security import HostPolicy
from app.models import TokenClaims
from app.resource import RemoteResourceServer, init_resource_server
from plugins.tools.whoami import WhoamiTool

log = logging.getLogger("mcp_oauth")


class AddTool:
    """The worker's own tool: adds two integers (needs ``mcp:tools``)."""

    name: ClassVar[str] = "add"
    description: ClassVar[str] = "Add two integers."
    required_scope: ClassVar[str] = "mcp:tools"
    input_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    }
    output_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"sum": {"type": "integer"}},
        "required": ["sum"],
    }

    def __init__(self, config: Mapping[str, object]) -> None:
        self.config = config

    def call(self, arguments: Mapping[str, object], claims: TokenClaims) -> Mapping[str, object]:
        a, b = arguments["a"], arguments["b"]
        assert isinstance(a, int) and isinstance(b, int)  # the input schema guarantees it
        total = a + b
        if abs(total) > 2**53:
            raise ToolError("the sum is too large for JSON clients to represent exactly")
        return {"content": [{"type": "text", "text": str(total)}], "structuredContent": {"sum": total}}


def _env(environ: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = environ.get(name, default)
    if value is None or value == "":
        raise ConfigurationError(f"{name} must be set")
    return value


def create_worker_app(environ: Mapping[str, str] | None = None) -> Flask:
    """Build the worker from ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ
    issuer = _env(env, "OAUTH_ISSUER")
    introspection: tuple[str, str] | None = None
    if env.get("WORKER_INTROSPECTION_CLIENT_ID"):
        introspection = (env["WORKER_INTROSPECTION_CLIENT_ID"], _env(env, "WORKER_INTROSPECTION_CLIENT_SECRET"))
    rs = RemoteResourceServer(
        issuer,
        _env(env, "WORKER_RESOURCE"),
        introspection=introspection,
        introspection_cache_seconds=float(env.get("WORKER_INTROSPECTION_CACHE_SECONDS", "30")),
        refetch_interval=float(env.get("WORKER_JWKS_REFETCH_SECONDS", "10")),
        resource_name="MCP worker",
    )

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    register_error_handlers(app)
    init_resource_server(app, rs)

    secret_key = env.get("WORKER_SECRET_KEY")
    if not secret_key:
        # Sessions are then valid only in this process: fine for one process, not for several.
        log.warning("WORKER_SECRET_KEY is not set; MCP sessions will not survive a restart or span processes")
        secret_key = secrets.token_hex(32)
    try:
        policy = HostPolicy(
            rs.resource, env.get("WORKER_ALLOWED_HOSTS", "").split(), env.get("WORKER_ALLOWED_ORIGINS", "").split()
        )
    except ValueError as e:
        raise ConfigurationError(str(e)) from e
    init_mcp(
        app,
        MCPServer(
            tools=[WhoamiTool({}), AddTool({})],
            secret_key=secret_key,
            revocations=MemoryRevocations(),
            policy=policy,
            server_name="mcp-oauth-worker",
        ),
    )

    bp = mcp_blueprint("worker_mcp", __name__)

    @bp.get("/whoami")
    @require_scope("mcp:tools")
    def whoami() -> ResponseReturnValue:
        claims = current_token()
        return {"sub": claims.sub, "client_id": claims.client_id, "scope": " ".join(sorted(claims.scopes))}

    prefix = urlsplit(rs.resource).path or "/mcp"
    app.register_blueprint(bp, url_prefix=prefix)
    init_cors(app, [r"^/\.well-known/oauth-protected-resource(/.*)?$", f"^{re.escape(prefix)}(/.*)?$"])

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return {"status": "ok"}

    return app
