"""RFC 9728 OAuth 2.0 Protected Resource Metadata for the built-in MCP resource.

Served at the path form ``/.well-known/oauth-protected-resource/mcp`` (RFC 9728 §3.1: the
well-known segment goes between host and path) and at the root form, which MCP clients try
next when a 401 carries no ``resource_metadata``. Never behind the guard: it is how a client
without a token learns where to get one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from flask import jsonify
from flask.typing import ResponseReturnValue

from app.oauth import bp
from app.state import oauth_state

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def metadata_url(resource: str) -> str:
    """Where the metadata of ``resource`` lives (RFC 9728 §3.1): well-known segment before the path."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{parts.path.rstrip('/')}"


def protected_resource_metadata(
    resource: str,
    authorization_servers: Iterable[str],
    scopes: Iterable[str],
    *,
    resource_name: str | None = None,
    resource_documentation: str | None = None,
) -> dict[str, Any]:
    """The RFC 9728 §2 document; optional members are left out rather than sent as null."""
    body: dict[str, Any] = {
        "resource": resource,
        "authorization_servers": list(authorization_servers),
        "scopes_supported": sorted(set(scopes)),
        # RFC 6750 §2.1 only: tokens in a form body or query string are refused (guard).
        "bearer_methods_supported": ["header"],
    }
    if resource_name:
        body["resource_name"] = resource_name
    if resource_documentation:
        body["resource_documentation"] = resource_documentation
    return body


def _document() -> ResponseReturnValue:
    state = oauth_state()
    body = protected_resource_metadata(
        state.default_resource,
        [state.issuer],
        state.scopes,
        resource_name=f"MCP server at {state.issuer}",
    )
    response = jsonify(body)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get(WELL_KNOWN + "/mcp")
def protected_resource_metadata_mcp() -> ResponseReturnValue:
    """The path form for the resource ``<issuer>/mcp``."""
    return _document()


@bp.get(WELL_KNOWN)
def protected_resource_metadata_root() -> ResponseReturnValue:
    """The root form: this host serves one protected resource, so the same document."""
    return _document()
