"""Resource-server side: ``protect(blueprint)`` and ``@require_scope(...)``.

Works in this app (tokens checked against the local keys and revocation list) and in a worker
app on another machine (a ``ResourceServer`` that knows only the issuer URL; see
``app.resource``). Errors follow RFC 6750 §3 and the MCP spec: 401 ``invalid_token`` with
``WWW-Authenticate: Bearer resource_metadata=...`` (RFC 9728 §5.1), 403 ``insufficient_scope``.
Tokens are read only from the ``Authorization`` header, never from the query or body.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import ParamSpec, Protocol, TypeVar, runtime_checkable

from flask import Blueprint, current_app, g, request
from flask.typing import ResponseReturnValue

from app.errors import BearerInvalidRequestError, InsufficientScopeError, InvalidTokenError
from app.models import TokenClaims

P = ParamSpec("P")
R = TypeVar("R")

EXTENSION = "mcp_oauth_resource"


@runtime_checkable
class ResourceServer(Protocol):
    """What the guard needs: this resource's URL, its metadata URL and a token verifier."""

    resource: str
    resource_metadata_url: str

    def verify(self, token: str) -> TokenClaims:
        """Verified claims for a token minted for ``resource``; raises InvalidTokenError."""
        ...


class LocalResourceServer:
    """The MCP resource served by this authorization server itself."""

    def __init__(self, resource: str, resource_metadata_url: str, verify: Callable[[str], TokenClaims]) -> None:
        self.resource = resource
        self.resource_metadata_url = resource_metadata_url
        self._verify = verify

    def verify(self, token: str) -> TokenClaims:
        return self._verify(token)


def _resource_server() -> ResourceServer:
    rs: ResourceServer = current_app.extensions[EXTENSION]
    return rs


# Verified claims live in the WSGI environ: one request, one token. (``g`` belongs to the app
# context, which a test harness may keep across several requests.)
_CLAIMS = "mcp_oauth.token_claims"


def current_token() -> TokenClaims:
    """The verified claims of the request's access token (inside a guarded view)."""
    claims: TokenClaims = request.environ[_CLAIMS]
    return claims


Challenge = str | Callable[[], str] | None


def authenticate(required_scopes: Iterable[str] = (), challenge: Challenge = None) -> TokenClaims:
    """Verify the request's bearer token (once per request) and check ``required_scopes``.

    A 401 names ``required_scopes`` in its ``scope=`` parameter, or ``challenge`` (a scope string
    or a function returning one) when the route needs no particular scope, so that a client
    learns from the 401 what to ask for (MCP authorization, scope selection).
    """
    rs = _resource_server()
    needed = " ".join(required_scopes)
    if not needed and challenge is not None:
        needed = challenge() if callable(challenge) else challenge
    claims: TokenClaims | None = request.environ.get(_CLAIMS)
    if claims is None:
        if b"access_token" in request.query_string and "access_token" in request.args:
            raise BearerInvalidRequestError(
                "access tokens are accepted only in the Authorization header",
                resource_metadata=rs.resource_metadata_url,
            )
        header = request.headers.get("Authorization")
        if header is None:
            raise InvalidTokenError(
                "an access token is required",
                resource_metadata=rs.resource_metadata_url,
                scope=needed or None,
                include_error=False,
            )
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise InvalidTokenError(
                "use Authorization: Bearer <token>", resource_metadata=rs.resource_metadata_url, scope=needed or None
            )
        try:
            claims = rs.verify(token)
        except InvalidTokenError as e:
            e.resource_metadata = rs.resource_metadata_url
            e.scope = needed or None
            raise
        request.environ[_CLAIMS] = claims
        g.oauth_token = claims
    missing = [s for s in required_scopes if s not in claims.scopes]
    if missing:
        raise InsufficientScopeError(
            f"this operation needs scope {' '.join(missing)}",
            resource_metadata=rs.resource_metadata_url,
            scope=" ".join(sorted(set(required_scopes) | claims.scopes)),
        )
    return claims


def protect(blueprint: Blueprint, scopes: Iterable[str] = (), challenge: Challenge = None) -> Blueprint:
    """Require a valid bearer token (and ``scopes``) on every route of ``blueprint``.

    ``OPTIONS`` passes so that CORS preflights work. ``challenge`` is the scope a 401 advertises
    when ``scopes`` is empty (see ``authenticate``). Returns the blueprint.
    """
    needed = tuple(scopes)

    @blueprint.before_request
    def _guard() -> ResponseReturnValue | None:
        if request.method == "OPTIONS":
            return None
        authenticate(needed, challenge)
        return None

    return blueprint


def require_scope(*scopes: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: the view needs a valid token carrying every one of ``scopes`` (else 401/403)."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            authenticate(scopes)
            return view(*args, **kwargs)

        return wrapper

    return decorator
