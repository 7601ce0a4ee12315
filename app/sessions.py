"""Per-request work Flask repeats that this app does once: the session signer, the sync check.

Flask opens the session on every request, and building the itsdangerous serializer was a
measurable part of a token request that never uses a session; it also asks ``inspect`` whether
every hook and view is a coroutine function, on every call (see docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class CachedSignerSessionInterface(SecureCookieSessionInterface):
    """Same cookies, same signing; the serializer is cached per app and secret.

    Only the person-facing pages (the authorization endpoint and its alias) use the session;
    every other request gets Flask's null session, so API calls never parse or set the cookie.
    """

    session_paths = ("/oauth/authorize", "/authorize")

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(self.session_paths):
            return None  # Flask substitutes a NullSession, which refuses writes and is not saved
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        key = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        cached = app.extensions.get("mcp_oauth_session_signer")
        if cached is not None and cached[0] == key:
            serializer: URLSafeTimedSerializer | None = cached[1]
            return serializer
        serializer = super().get_signing_serializer(app)
        app.extensions["mcp_oauth_session_signer"] = (key, serializer)
        return serializer


class OAuthFlask(Flask):
    """Flask, with ``ensure_sync`` remembering its answer per function.

    Hooks, views and error handlers are registered once, so the answer cannot change; the cache
    is bounded in case something passes fresh callables.
    """

    _sync_cache_limit = 4096

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        cache: dict[Callable[..., Any], Callable[..., Any]] = self.__dict__.setdefault("_sync_cache", {})
        found = cache.get(func)
        if found is None:
            found = super().ensure_sync(func)
            if len(cache) < self._sync_cache_limit:
                cache[func] = found
        return found
