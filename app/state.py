"""``OAuthState``: everything built from config once, at start-up, and used by requests.

Lives in ``app.extensions["mcp_oauth"]``; request code reads it through ``oauth_state()``.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import current_app

from app import contracts
from app.contracts import Grant, RateLimiter, Storage, TokenStore
from app.core import scopes as scope_util
from app.errors import ConfigurationError, InvalidScopeError, RateLimitedError, StorageError
from app.keys import KeyRing
from app.limiting import FailOpenLimiter
from app.models import Client
from app.tokens import AccessTokens

log = logging.getLogger("mcp_oauth")
F = TypeVar("F", bound=Callable[..., Any])


def scheme_of(url: str) -> str:
    """The plugin name a storage URL selects: ``postgresql+psycopg://`` -> ``postgresql``."""
    scheme = url.partition("://")[0] if "://" in url else url.partition(":")[0]
    return scheme.split("+", 1)[0].lower()


def canonical_resource(url: str) -> str:
    """RFC 8707 / MCP canonical form: lower-case scheme and host, no fragment or trailing slash."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc or parts.fragment:
        raise ValueError("resource must be an absolute URI without a fragment")
    netloc = parts.netloc.lower()
    path = parts.path.rstrip("/")
    out = f"{parts.scheme.lower()}://{netloc}{path}"
    return out + (f"?{parts.query}" if parts.query else "")


class GuardedStore:
    """Wraps a storage plugin so any exception it raises becomes one ``StorageError``."""

    def __init__(self, target: Any, names: list[str]) -> None:
        self.target = target
        for name in names:
            method = getattr(target, name, None)
            if callable(method):
                setattr(self, name, self._guard(method))

    @staticmethod
    def _guard(method: F) -> F:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except StorageError:
                raise
            except Exception as e:
                raise StorageError(f"{type(e).__name__} in {method.__name__}") from e

        return call  # type: ignore[return-value]


def _protocol_methods(proto: type) -> list[str]:
    return sorted(
        n for klass in proto.__mro__ if klass not in (object,) for n in vars(klass) if not n.startswith("_")
    )


def open_storage(url: str, kind: type[Any], options: Mapping[str, object] | None = None) -> Any:
    """Load the storage plugin named by the URL's scheme, open it, and guard it."""
    cls = contracts.load(contracts.STORAGE, scheme_of(url), TokenStore)
    if kind is Storage and not issubclass(cls, Storage):
        raise ConfigurationError(
            f"storage plugin {scheme_of(url)!r} holds only short-lived data; use it as "
            "OAUTH_TOKEN_STORAGE_URL and put durable data in sqlite or postgresql"
        )
    try:
        store = cls.from_url(url, options or {})
    except Exception as e:
        raise ConfigurationError(f"cannot open storage {scheme_of(url)!r}: {e}") from e
    return GuardedStore(store, _protocol_methods(kind) + ["schema_version"])


@dataclass
class TokenRequest:
    """A token-endpoint request after parsing and client authentication."""

    params: dict[str, str]
    client: Client
    remote_addr: str

    def requested_scopes(self) -> list[str]:
        """The ``scope`` parameter, parsed (empty when absent); raises invalid_scope if malformed."""
        try:
            return scope_util.parse(self.params.get("scope"))
        except ValueError as e:
            raise InvalidScopeError(str(e)) from None


def narrow_scope(requested: list[str], allowed: list[str], refusal: str) -> str:
    """The granted scope string: ``requested`` if within ``allowed`` (all of it when empty).

    Raises invalid_scope with ``refusal`` when the request asks for more (RFC 6749 §3.3).
    """
    granted = scope_util.narrow(requested, allowed)
    if granted is None:
        raise InvalidScopeError(refusal)
    return scope_util.join(granted)


@dataclass
class OAuthState:
    """Config-derived state shared by every request of one app."""

    issuer: str
    default_resource: str
    resources: frozenset[str]
    scopes: dict[str, str]
    default_scopes: list[str]
    storage: Any  # GuardedStore over a Storage
    token_store: Any  # GuardedStore over a TokenStore (the same object unless split)
    keys: KeyRing
    access_tokens: AccessTokens
    grants: dict[str, Grant]
    limiter: RateLimiter | None
    config: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], instance_path: str) -> OAuthState:
        issuer = str(config["OAUTH_ISSUER"])
        if issuer.endswith("/") or not urlsplit(issuer).scheme or not urlsplit(issuer).netloc:
            raise ConfigurationError("OAUTH_ISSUER must be an absolute URL without a trailing slash")
        parts = urlsplit(issuer)
        if parts.query or parts.fragment:
            raise ConfigurationError("OAUTH_ISSUER must not have a query or fragment (RFC 8414 §2)")
        if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigurationError("OAUTH_ISSUER must use https unless its host is loopback")

        default_resource = canonical_resource(issuer + "/mcp")
        resources = {default_resource}
        for extra in str(config.get("OAUTH_RESOURCES") or "").split():
            try:
                resources.add(canonical_resource(extra))
            except ValueError as e:
                raise ConfigurationError(f"OAUTH_RESOURCES: {extra!r}: {e}") from e

        scope_map = config["OAUTH_SCOPES"]
        if not isinstance(scope_map, dict) or not scope_map:
            raise ConfigurationError("OAUTH_SCOPES must be a non-empty mapping of scope to description")
        try:
            default_scopes = scope_util.parse(str(config["OAUTH_DEFAULT_SCOPES"]))
        except ValueError as e:
            raise ConfigurationError(f"OAUTH_DEFAULT_SCOPES: {e}") from e
        unknown = [s for s in default_scopes if s not in scope_map]
        if unknown:
            raise ConfigurationError(f"OAUTH_DEFAULT_SCOPES names unknown scopes: {unknown}")

        url = config.get("OAUTH_STORAGE_URL") or "sqlite:///" + os.path.join(instance_path, "oauth.sqlite3")
        storage = open_storage(str(url), Storage)
        token_url = config.get("OAUTH_TOKEN_STORAGE_URL")
        token_store = open_storage(str(token_url), TokenStore) if token_url else storage
        try:
            storage.migrate()
        except StorageError as e:
            raise ConfigurationError(f"cannot prepare storage {scheme_of(str(url))!r}: {e.__cause__!r}") from e

        access_ttl = int(config["OAUTH_ACCESS_TOKEN_TTL"])
        keys = KeyRing(
            storage,
            alg=str(config["OAUTH_SIGNING_ALG"]),
            secret=config.get("OAUTH_TOKEN_SECRET") or None,
            overlap_seconds=access_ttl + 120,
            refresh_seconds=int(config["OAUTH_KEY_REFRESH_SECONDS"]),
        )
        keys.ensure()
        access_tokens = AccessTokens(
            keys,
            issuer,
            access_ttl,
            is_revoked=token_store.is_jti_revoked,
            cache_size=int(config["OAUTH_TOKEN_CACHE_SIZE"]),
        )

        limiter: RateLimiter | None = None
        if config.get("RATELIMIT_ENABLED"):
            rl_url = str(config["RATELIMIT_STORAGE_URL"])
            rl_cls = contracts.load(contracts.RATE_LIMITERS, scheme_of(rl_url), RateLimiter)
            try:
                # Fail open when the limiter's backend is down (app/limiting.py says why).
                limiter = FailOpenLimiter(rl_cls.from_url(rl_url))
            except Exception as e:
                raise ConfigurationError(f"cannot open rate limiter {rl_url!r}: {e}") from e
            _check_limits(config)

        state = cls(
            issuer=issuer,
            default_resource=default_resource,
            resources=frozenset(resources),
            scopes=dict(scope_map),
            default_scopes=default_scopes,
            storage=storage,
            token_store=token_store,
            keys=keys,
            access_tokens=access_tokens,
            grants={},
            limiter=limiter,
            config=dict(config),
        )
        for name in str(config["OAUTH_GRANT_TYPES"]).split():
            grant_cls = contracts.load(contracts.GRANTS, name, Grant)
            grant_type = getattr(grant_cls, "grant_type", None)
            if not isinstance(grant_type, str):
                raise ConfigurationError(
                    f"grant plugin {name!r} has no grant_type string; "
                    f"installed: {contracts.installed(contracts.GRANTS)}"
                )
            state.grants[grant_type] = grant_cls(state)
        return state

    # -- helpers used by views and grants -----------------------------------------------------

    def rate_limit(self, limit_key: str, *key: str) -> None:
        """Count one hit against config limit ``limit_key``; raise 429 when over."""
        if self.limiter is None:
            return
        result = self.limiter.hit(str(self.config[limit_key]), limit_key, *key)
        if not result.allowed:
            raise RateLimitedError("too many requests, slow down", retry_after=result.retry_after)

    def rate_limit_quiet(self, limit_key: str, *key: str) -> None:
        """Count one hit without raising (failures are counted, the next request is refused)."""
        if self.limiter is not None:
            self.limiter.hit(str(self.config[limit_key]), limit_key, *key)

    def check_rate_limit(self, limit_key: str, *key: str) -> None:
        """Raise 429 if ``key`` is already over the limit, without counting a hit."""
        if self.limiter is None:
            return
        result = self.limiter.test(str(self.config[limit_key]), limit_key, *key)
        if not result.allowed:
            raise RateLimitedError("too many requests, slow down", retry_after=result.retry_after)

    def resolve_resource(self, requested: list[str]) -> str:
        """RFC 8707: the one resource a token is for; the default MCP resource when none given."""
        from app.errors import InvalidTargetError

        if not requested:
            return self.default_resource
        if len(requested) > 1:
            raise InvalidTargetError("ask for one resource per token")
        try:
            res = canonical_resource(requested[0])
        except ValueError:
            raise InvalidTargetError("resource must be an absolute URI without a fragment") from None
        if res not in self.resources:
            raise InvalidTargetError("this server does not issue tokens for that resource")
        return res

    def client_scopes(self, client: Client) -> list[str]:
        """The scopes a client may ask for: its registered ones, or the server defaults."""
        registered = scope_util.parse(client.scope) if client.scope else []
        return registered or list(self.default_scopes)

    def now(self) -> int:
        return int(time.time())

    def close(self) -> None:
        self.storage.close()
        if self.token_store is not self.storage:
            self.token_store.close()


def _check_limits(config: Mapping[str, Any]) -> None:
    """Every ``RATELIMIT_*`` limit must parse now: a typo would otherwise fail on each request
    and, the limiter failing open, silently switch that limit off."""
    from limits import parse

    from app.config import Defaults

    for key, default in sorted(vars(Defaults).items()):
        if not (key.startswith("RATELIMIT_") and isinstance(default, str) and "/" in default and ":" not in default):
            continue  # not a limit (RATELIMIT_STORAGE_URL, RATELIMIT_ENABLED)
        try:
            parse(str(config.get(key, default)))
        except ValueError:
            raise ConfigurationError(f"{key}: {config.get(key)!r} is not a limit such as 10/minute") from None


def oauth_state() -> OAuthState:
    """The current app's state (inside a request or app context)."""
    state: OAuthState = current_app.extensions["mcp_oauth"]
    return state
