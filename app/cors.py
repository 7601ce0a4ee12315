"""CORS (flask-cors) for the routes browser-based MCP clients call, such as the MCP Inspector.

Covered: the metadata documents, JWKS, the OpenAPI description, token, registration (RFC
7591/7592), revocation, introspection and the MCP routes. Not covered, on purpose: the authorize, login and consent
pages (a person's browser navigates to them; no script on another origin may read them).
Credentials (cookies) are never allowed cross-origin: these routes authenticate with bearer
tokens and client credentials, so ``Access-Control-Allow-Origin: *`` exposes nothing a
cookie would. The MCP routes additionally refuse foreign ``Origin`` values themselves
(DNS-rebinding protection), preflights included.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from flask import Flask, Response, request
from flask_cors import CORS

ALLOW_HEADERS: list[str | re.Pattern[str]] = [
    "Authorization",
    "Content-Type",
    "Accept",
    "MCP-Protocol-Version",
    "Mcp-Session-Id",
    "Last-Event-ID",
    # 2026-07-28 routing headers (and per-argument Mcp-Param-* headers).
    "Mcp-Method",
    "Mcp-Name",
    re.compile(r"^mcp-param-[!#$%&'*+.^_`|~0-9a-z-]+$", re.IGNORECASE),
]
EXPOSE_HEADERS = ["WWW-Authenticate", "Mcp-Session-Id", "MCP-Protocol-Version", "Retry-After"]

AS_PATHS = [
    r"^/\.well-known/oauth-authorization-server(/.*)?$",
    r"^/\.well-known/openid-configuration$",
    r"^/\.well-known/oauth-protected-resource(/.*)?$",
    r"^/\.well-known/jwks\.json$",
    r"^/openapi\.json$",  # public description, read by browser-based API tools
    r"^/oauth/token$",
    r"^/oauth/register(/[^/]+)?$",
    r"^/oauth/revoke$",
    r"^/oauth/introspect$",
    # Root aliases for 2025-03-26 clients.
    r"^/token$",
    r"^/register$",
]
MCP_PATHS = [r"^/mcp$", r"^/mcp/.*$"]


def init_cors(app: Flask, paths: Iterable[str] | None = None, max_age: int = 600) -> CORS:
    """Enable CORS on ``paths`` (regexes matched against the request path).

    By default: this server's metadata, JWKS, token, registration, revocation, introspection
    and MCP routes. A worker passes its own list.
    """
    options = {
        "origins": "*",
        "methods": ["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        "allow_headers": ALLOW_HEADERS,
        "expose_headers": EXPOSE_HEADERS,
        "supports_credentials": False,
        "max_age": max_age,
        # Only answer requests that carry Origin (every CORS request does): the others, MCP
        # workers and SDKs outside a browser, skip the header work on every response.
        "always_send": False,
    }
    resources = {re.compile(path): options for path in (AS_PATHS + MCP_PATHS if paths is None else paths)}
    cors = CORS(app, resources=resources)
    # Every CORS request (preflights included) carries Origin; MCP workers and SDKs outside a
    # browser send none, and for them flask-cors's per-response path matching is pure cost.
    hooks = app.after_request_funcs.setdefault(None, [])
    for i, hook in enumerate(hooks):
        if getattr(hook, "__name__", "") == "cors_after_request":
            hooks[i] = _only_with_origin(hook)
    return cors


def _only_with_origin(hook: Callable[[Response], Response]) -> Callable[[Response], Response]:
    def cors_after_request(response: Response) -> Response:
        if "HTTP_ORIGIN" not in request.environ:
            return response
        return hook(response)

    return cors_after_request
