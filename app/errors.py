"""The OAuthError hierarchy and the only code that turns errors into responses.

Bodies follow RFC 6749 §5.2 (``error``, ``error_description``), always with
``Cache-Control: no-store``. Descriptions are ASCII without ``"`` or ``\\`` so that they can go
into a ``WWW-Authenticate`` header unchanged.
"""

from __future__ import annotations

import logging
import re
from typing import ClassVar

from flask import Flask, current_app, request
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("mcp_oauth")

_UNSAFE = re.compile(r'[^\x20-\x21\x23-\x5b\x5d-\x7e]')


def safe_description(text: str) -> str:
    """Reduce text to the characters RFC 6749 allows in ``error_description``."""
    return _UNSAFE.sub("?", text)[:300]


class OAuthError(Exception):
    """An RFC-shaped error: raise it anywhere; ``register_error_handlers`` renders it."""

    error: ClassVar[str] = "invalid_request"
    status_code: ClassVar[int] = 400

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description or self.error)
        self.description = safe_description(description) if description else None

    def headers(self) -> dict[str, str]:
        return {"Cache-Control": "no-store", "Pragma": "no-cache"}

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class InvalidRequestError(OAuthError):
    error, status_code = "invalid_request", 400


class RequestTooLargeError(OAuthError):
    error, status_code = "invalid_request", 413


class UnsupportedMediaTypeError(OAuthError):
    error, status_code = "invalid_request", 415


class InvalidClientError(OAuthError):
    """RFC 6749 §5.2: always 401 with ``WWW-Authenticate: Basic`` (clients re-register on it)."""

    error, status_code = "invalid_client", 401

    def headers(self) -> dict[str, str]:
        return super().headers() | {"WWW-Authenticate": 'Basic realm="oauth"'}


class InvalidGrantError(OAuthError):
    error, status_code = "invalid_grant", 400


class UnauthorizedClientError(OAuthError):
    error, status_code = "unauthorized_client", 400


class UnsupportedGrantTypeError(OAuthError):
    error, status_code = "unsupported_grant_type", 400


class InvalidScopeError(OAuthError):
    error, status_code = "invalid_scope", 400


class InvalidTargetError(OAuthError):
    """RFC 8707 §2: the requested resource is not served here."""

    error, status_code = "invalid_target", 400


class UnsupportedTokenTypeError(OAuthError):
    error, status_code = "unsupported_token_type", 400


class AccessDeniedError(OAuthError):
    error, status_code = "access_denied", 403


class UnsupportedResponseTypeError(OAuthError):
    error, status_code = "unsupported_response_type", 400


class InvalidClientMetadataError(OAuthError):
    error, status_code = "invalid_client_metadata", 400


class InvalidRedirectURIError(OAuthError):
    error, status_code = "invalid_redirect_uri", 400


class BearerError(OAuthError):
    """Base for RFC 6750 errors: adds ``WWW-Authenticate: Bearer`` with RFC 9728 metadata."""

    def __init__(
        self,
        description: str | None = None,
        *,
        resource_metadata: str | None = None,
        scope: str | None = None,
        include_error: bool = True,
    ) -> None:
        super().__init__(description)
        self.resource_metadata = resource_metadata
        self.scope = scope
        self.include_error = include_error

    def headers(self) -> dict[str, str]:
        parts = ['Bearer realm="mcp"']
        if self.include_error:
            parts.append(f'error="{self.error}"')
            if self.description:
                parts.append(f'error_description="{self.description}"')
        if self.scope:
            parts.append(f'scope="{self.scope}"')
        if self.resource_metadata:
            parts.append(f'resource_metadata="{self.resource_metadata}"')
        return super().headers() | {"WWW-Authenticate": ", ".join(parts)}


class InvalidTokenError(BearerError):
    """RFC 6750 §3.1: missing, expired, revoked, malformed or foreign token."""

    error, status_code = "invalid_token", 401


class InsufficientScopeError(BearerError):
    error, status_code = "insufficient_scope", 403


class BearerInvalidRequestError(BearerError):
    error, status_code = "invalid_request", 400


class TemporarilyUnavailableError(OAuthError):
    """A storage or other backend is down: 503, never a 500 and never a half-issued token."""

    error, status_code = "temporarily_unavailable", 503

    def headers(self) -> dict[str, str]:
        return super().headers() | {"Retry-After": "5"}


class RateLimitedError(OAuthError):
    error, status_code = "rate_limited", 429

    def __init__(self, description: str | None = None, retry_after: int = 1) -> None:
        super().__init__(description)
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return super().headers() | {"Retry-After": str(self.retry_after)}


class ConfigurationError(RuntimeError):
    """Bad configuration or plugin: raised while the app is built, never on a request."""


class StorageError(RuntimeError):
    """A storage backend failed; the core turns it into a 503."""


def _flatten(messages: object, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                name = prefix
            out.extend(_flatten(value, name))
        return out
    if isinstance(messages, list | tuple):
        return [m for item in messages for m in _flatten(item, prefix)]
    return [f"{prefix}: {messages}" if prefix else str(messages)]


def validation_error(e: ValidationError) -> OAuthError:
    """Turn marshmallow messages into one RFC 7591 error naming the fields."""
    text = "; ".join(_flatten(e.messages))
    if "redirect_uris" in e.messages:
        return InvalidRedirectURIError(text)
    return InvalidClientMetadataError(text)


def json_error(error: OAuthError) -> ResponseReturnValue:
    return error.body(), error.status_code, error.headers()


def register_error_handlers(app: Flask) -> None:
    """Install the handlers: OAuth errors, HTTP errors, storage failures and crashes as JSON."""

    @app.errorhandler(OAuthError)
    def _oauth_error(e: OAuthError) -> ResponseReturnValue:
        return json_error(e)

    @app.errorhandler(ValidationError)
    def _validation_error(e: ValidationError) -> ResponseReturnValue:
        return json_error(validation_error(e))

    @app.errorhandler(StorageError)
    def _storage_error(e: StorageError) -> ResponseReturnValue:
        log.error("storage unavailable: %s %s: %s", request.method, request.path, e)
        return json_error(TemporarilyUnavailableError("storage is unavailable, try again shortly"))

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException) -> ResponseReturnValue:
        code = e.code or 500
        if code == 413:
            limit = current_app.config.get("MAX_CONTENT_LENGTH")
            err: OAuthError = RequestTooLargeError(f"request body is larger than {limit} bytes")
            return json_error(err)
        body = {
            "error": _HTTP_CODES.get(code, "invalid_request"),
            "error_description": safe_description(e.description or e.name),
        }
        headers = {"Cache-Control": "no-store"}
        if code == 405 and e.get_response().headers.get("Allow"):
            headers["Allow"] = e.get_response().headers["Allow"]
        return body, code, headers

    @app.errorhandler(Exception)
    def _crash(e: Exception) -> ResponseReturnValue:
        # Log the type and place, never the request body (it may hold secrets).
        log.error("unhandled %s on %s %s", type(e).__name__, request.method, request.path, exc_info=e)
        body = {"error": "server_error", "error_description": "internal error"}
        return body, 500, {"Cache-Control": "no-store"}


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "invalid_request", 429: "rate_limited"}
