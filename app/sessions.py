"""Flask's signed-cookie sessions with the signer built once per app, not once per request.

Flask opens the session on every request, and building the itsdangerous serializer was a
measurable part of a token request that never uses a session (see docs/benchmarks.md).
"""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class CachedSignerSessionInterface(SecureCookieSessionInterface):
    """Same cookies, same signing; the serializer is cached per app and secret."""

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        key = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        cached = app.extensions.get("mcp_oauth_session_signer")
        if cached is not None and cached[0] == key:
            serializer: URLSafeTimedSerializer | None = cached[1]
            return serializer
        serializer = super().get_signing_serializer(app)
        app.extensions["mcp_oauth_session_signer"] = (key, serializer)
        return serializer
