"""Client authentication at the token, revocation and introspection endpoints.

Exactly one method per request (OAuth 2.1 §2.4): HTTP Basic, or ``client_secret`` in the body,
or none (a public client sending only ``client_id``). Every failure is 401 ``invalid_client``;
failures are counted per address and a throttled address gets 429.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

from flask import Request, request

from app.core import secrets
from app.errors import InvalidClientError, InvalidRequestError
from app.models import Client
from app.state import OAuthState


def _basic_credentials(req: Request) -> tuple[str, str] | None:
    header = req.environ.get("HTTP_AUTHORIZATION")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClientError("only HTTP Basic client authentication is accepted in the header")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClientError("malformed Basic credentials") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise InvalidClientError("malformed Basic credentials")
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
    return unquote(user.replace("+", " ")), unquote(password.replace("+", " "))


def authenticate_client(
    state: OAuthState, params: dict[str, str], *, allow_public: bool = True, req: Request | None = None
) -> Client:
    """The authenticated client of this request (``req``, default the current one).

    Raises InvalidClientError (401).
    """
    if req is None:
        req = request._get_current_object()  # type: ignore[attr-defined]
    addr = req.remote_addr or "unknown"
    state.check_rate_limit("RATELIMIT_AUTH_FAILURE", addr)
    basic = _basic_credentials(req)
    body_secret = params.get("client_secret")
    body_id = params.get("client_id")
    if basic is not None and body_secret is not None:
        raise InvalidRequestError("use exactly one client authentication method")
    if basic is not None:
        client_id, secret, method = basic[0], basic[1], "client_secret_basic"
        if body_id is not None and body_id != client_id:
            raise InvalidRequestError("client_id in the body differs from the Basic credentials")
    elif body_secret is not None:
        if body_id is None:
            raise InvalidRequestError("client_secret_post needs client_id")
        client_id, secret, method = body_id, body_secret, "client_secret_post"
    elif body_id is not None:
        client_id, secret, method = body_id, None, "none"
    else:
        _fail(state, addr)
        raise InvalidClientError("client authentication is required")

    client = state.storage.get_client(client_id)
    if client is None:
        _fail(state, addr)
        raise InvalidClientError("unknown client or bad credentials")
    if method == "none":
        if not (allow_public and client.is_public):
            _fail(state, addr)
            raise InvalidClientError("this client must authenticate with its secret")
        return client
    if client.is_public:
        _fail(state, addr)
        raise InvalidClientError("this client is registered as public (token_endpoint_auth_method none)")
    # A confidential client may use either secret method: real MCP clients register without
    # a method (RFC 7591 default: basic) and then post the secret, or the other way round.
    assert secret is not None
    if not secrets.matches(secret, client.secret_hash):
        _fail(state, addr)
        raise InvalidClientError("unknown client or bad credentials")
    if client.secret_expires_at and client.secret_expires_at < state.now():
        _fail(state, addr)
        raise InvalidClientError("client secret has expired")
    return client


def _fail(state: OAuthState, addr: str) -> None:
    state.rate_limit_quiet("RATELIMIT_AUTH_FAILURE", addr)
