"""Worker mode: validate this authorization server's tokens in another app, on another machine.

``RemoteResourceServer(issuer, resource)`` knows only the issuer URL and its own resource URL.
It fetches the AS metadata (RFC 8414, ``<issuer>/.well-known/oauth-authorization-server``;
the ``issuer`` inside must match byte for byte) and the JWKS, caches the keys, and verifies
RFC 9068 access tokens locally: the algorithm comes from the JWK, never from the token header
(RFC 8725 §3.1); ``typ`` must be ``at+jwt``; ``iss`` the issuer; ``aud`` this resource; ``exp``
in the future. An unknown ``kid`` (a key rotated in since the last fetch) triggers one
re-fetch, at most every ``refetch_interval`` seconds, so forged kids cannot hammer the AS.

With ``introspection=(client_id, client_secret)`` (a client created with ``flask oauth client
create --introspect``) it asks the AS instead (RFC 7662), so a revoked token stops working
within ``introspection_cache_seconds`` (and never outlives its ``exp`` in the cache).

``init_resource_server(app, rs)`` installs it for ``protect()`` / ``require_scope()`` and
serves the resource's RFC 9728 metadata. The AS being unreachable is a 503, never a 401:
clients throw tokens away on a 401.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from app.errors import ConfigurationError, InvalidTokenError, TemporarilyUnavailableError
from app.guard import EXTENSION
from app.models import TokenClaims
from app.oauth.resource_metadata import WELL_KNOWN, metadata_url, protected_resource_metadata
from app.state import canonical_resource
from app.tokens import VerifiedCache, decode_jwt

log = logging.getLogger("mcp_oauth")

# Asymmetric algorithms only: a worker holds no shared secret, and an "HS256" JWK would let
# anyone who can read the JWKS mint tokens.
ALLOWED_ALGS = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"})
MAX_DOCUMENT_BYTES = 256 * 1024
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return
    raise ConfigurationError(f"{what} must be an https URL (http only on loopback): {url!r}")


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    alg: str
    key: Any


class RemoteResourceServer:
    """A ``ResourceServer`` (see ``app.guard``) for a resource served outside the AS."""

    def __init__(
        self,
        issuer: str,
        resource: str,
        *,
        introspection: tuple[str, str] | None = None,
        introspection_cache_seconds: float = 30,
        scopes: Iterable[str] | None = None,
        resource_name: str | None = None,
        jwks_max_age: float = 300,
        refetch_interval: float = 10,
        timeout: float = 5,
        cache_size: int = 10000,
        http: httpx.Client | None = None,
    ) -> None:
        _check_url(issuer, "issuer")
        if issuer.endswith("/"):
            raise ConfigurationError("issuer must not end with a slash (it is compared byte for byte)")
        try:
            self.resource = canonical_resource(resource)
        except ValueError as e:
            raise ConfigurationError(f"resource {resource!r}: {e}") from e
        self.issuer = issuer
        self.resource_metadata_url = metadata_url(self.resource)
        self.introspection = introspection
        self.introspection_cache_seconds = introspection_cache_seconds
        self.resource_name = resource_name
        self._scopes = sorted(set(scopes)) if scopes is not None else None
        self.jwks_max_age = jwks_max_age
        self.refetch_interval = refetch_interval
        self._http = http or httpx.Client(timeout=timeout, follow_redirects=False)
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_failed_at = -1e9
        self._keys: dict[str, _Key] = {}
        self._keys_fetched_at = 0.0  # monotonic time of the last successful JWKS fetch
        self._last_attempt = -1e9  # monotonic time of the last fetch attempt (rate limit)
        self._last_forced = -1e9  # ... and of the last one forced by an unknown kid
        self._verified: VerifiedCache[TokenClaims] = VerifiedCache(cache_size)
        self._introspected: OrderedDict[str, tuple[TokenClaims, float]] = OrderedDict()
        self._cache_size = cache_size

    # -- discovery ---------------------------------------------------------------------------

    def _get_json(self, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(kwargs.pop("method", "GET"), url, **kwargs)
        except httpx.HTTPError as e:
            log.warning("authorization server unreachable: %s %s", type(e).__name__, url)
            raise TemporarilyUnavailableError("the authorization server is unreachable") from None
        if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
            log.warning("authorization server answered %s for %s", response.status_code, url)
            raise TemporarilyUnavailableError("the authorization server gave an unusable answer")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            log.warning("authorization server sent no JSON object for %s", url)
            raise TemporarilyUnavailableError("the authorization server gave an unusable answer")
        return body

    def metadata(self) -> dict[str, Any]:
        """The AS metadata (fetched once). Raises TemporarilyUnavailableError (503) on failure."""
        if self._metadata is None:
            # A down AS is asked again at most once per refetch_interval, not on every request.
            if time.monotonic() - self._metadata_failed_at < self.refetch_interval:
                raise TemporarilyUnavailableError("the authorization server is unreachable")
            try:
                meta = self._fetch_metadata()
            except TemporarilyUnavailableError:
                self._metadata_failed_at = time.monotonic()
                raise
            self._metadata = meta
        return self._metadata

    def _fetch_metadata(self) -> dict[str, Any]:
        meta = self._get_json(f"{self.issuer}/.well-known/oauth-authorization-server")
        # RFC 8414 §3.3: the issuer in the document must be exactly the one asked about.
        if meta.get("issuer") != self.issuer:
            log.error("AS metadata issuer %r is not %r", meta.get("issuer"), self.issuer)
            raise TemporarilyUnavailableError("authorization server metadata names another issuer")
        for name in ("jwks_uri",) + (("introspection_endpoint",) if self.introspection else ()):
            url = meta.get(name)
            if not isinstance(url, str):
                raise TemporarilyUnavailableError(f"authorization server metadata has no {name}")
            try:
                _check_url(url, name)
            except ConfigurationError as e:
                log.error("%s", e)
                raise TemporarilyUnavailableError(f"authorization server {name} is not https") from None
        return meta

    @property
    def scopes(self) -> list[str]:
        """Scopes for this resource's metadata: the configured ones, else the AS's."""
        if self._scopes is not None:
            return self._scopes
        try:
            supported = self.metadata().get("scopes_supported", [])
        except TemporarilyUnavailableError:
            return []
        return sorted(s for s in supported if isinstance(s, str)) if isinstance(supported, list) else []

    def _fetch_keys(self) -> None:
        jwks = self._get_json(str(self.metadata()["jwks_uri"]))
        keys: dict[str, _Key] = {}
        for jwk in jwks.get("keys", []) if isinstance(jwks.get("keys"), list) else []:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or jwk.get("use", "sig") != "sig":
                continue
            try:
                parsed = jwt.PyJWK(jwk)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue  # a key type this worker cannot use is skipped, not fatal
            if parsed.algorithm_name in ALLOWED_ALGS:
                keys[jwk["kid"]] = _Key(jwk["kid"], parsed.algorithm_name, parsed.key)
        self._keys = keys
        self._keys_fetched_at = time.monotonic()

    def _key(self, kid: str) -> _Key | None:
        key = self._keys.get(kid)
        if key is not None and time.monotonic() - self._keys_fetched_at <= self.jwks_max_age:
            return key
        with self._lock:
            now = time.monotonic()
            key = self._keys.get(kid)
            due = not self._keys_fetched_at or now - self._keys_fetched_at > self.jwks_max_age
            if due:
                # First fetch, or the cached set is old: renew (a down AS is retried per interval).
                fetch = now - self._last_attempt >= self.refetch_interval
            else:
                # Unknown kid, probably a key rotated in since the last fetch: one forced re-fetch
                # per interval, so a stream of forged kids cannot hammer the AS.
                fetch = key is None and now - self._last_forced >= self.refetch_interval
                if fetch:
                    self._last_forced = now
            if fetch:
                self._last_attempt = now
                try:
                    self._fetch_keys()
                except TemporarilyUnavailableError:
                    if not self._keys:
                        raise
                    # Keep serving with the keys we have; a later request tries again.
                key = self._keys.get(kid)
            elif not self._keys:
                raise TemporarilyUnavailableError("the authorization server's keys are not available yet")
        return key

    # -- verification ------------------------------------------------------------------------

    def verify(self, token: str) -> TokenClaims:
        """Verified claims for a token minted for this resource; raises InvalidTokenError (401)
        or TemporarilyUnavailableError (503) when the AS cannot be reached."""
        if self.introspection is not None:
            return self._introspect(token)
        claims = self._verified.get(token, time.time())
        if claims is not None:
            return claims
        claims = self._decode(token)
        self._verified.put(token, claims)
        return claims

    def _decode(self, token: str) -> TokenClaims:
        def key_for(kid: str) -> tuple[Any, str] | None:
            key = self._key(kid)
            return (key.key, key.alg) if key is not None else None

        return decode_jwt(token, key_for, issuer=self.issuer, audience=self.resource)

    def _introspect(self, token: str) -> TokenClaims:
        key = hashlib.sha256(token.encode()).hexdigest()  # never keep the token itself around
        now = time.time()
        hit = self._introspected.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        assert self.introspection is not None
        body = self._get_json(
            str(self.metadata()["introspection_endpoint"]),
            method="POST",
            data={"token": token, "token_type_hint": "access_token"},
            auth=self.introspection,
            headers={"Accept": "application/json"},
        )
        if body.get("active") is not True:
            raise InvalidTokenError("token is not active")
        aud = body.get("aud")
        if not (aud == self.resource or (isinstance(aud, list) and self.resource in aud)):
            raise InvalidTokenError("token was not issued for this resource")
        if body.get("iss", self.issuer) != self.issuer:
            raise InvalidTokenError("token was issued by another server")
        if str(body.get("token_type", "Bearer")).lower() != "bearer":
            raise InvalidTokenError("not an access token")  # e.g. a refresh token
        exp = body.get("exp")
        if not isinstance(exp, int) or exp <= now:
            raise InvalidTokenError("token has expired")
        scope = body.get("scope", "")
        claims = TokenClaims(
            sub=str(body.get("sub", "")),
            client_id=str(body.get("client_id", "")),
            scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
            aud=aud,
            jti=str(body.get("jti", "")),
            exp=exp,
            iat=int(body.get("iat", 0)) if isinstance(body.get("iat"), int) else 0,
            iss=self.issuer,
            raw=body,
        )
        with self._lock:
            self._introspected[key] = (claims, min(now + self.introspection_cache_seconds, exp))
            while len(self._introspected) > self._cache_size:
                self._introspected.popitem(last=False)
        return claims

    def metadata_document(self) -> dict[str, Any]:
        """This resource's RFC 9728 metadata."""
        return protected_resource_metadata(self.resource, [self.issuer], self.scopes, resource_name=self.resource_name)


def init_resource_server(app: Flask, rs: RemoteResourceServer) -> RemoteResourceServer:
    """Install ``rs`` for ``protect()``/``require_scope()`` in ``app`` and serve its metadata.

    The metadata is served at the path form for the resource's path and, when nothing else
    is routed there, at the root form.
    """
    app.extensions[EXTENSION] = rs

    def document() -> ResponseReturnValue:
        response = jsonify(rs.metadata_document())
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    path = urlsplit(rs.resource_metadata_url).path
    app.add_url_rule(path, endpoint="protected_resource_metadata", view_func=document, methods=["GET"])
    if path != WELL_KNOWN:
        app.add_url_rule(WELL_KNOWN, endpoint="protected_resource_metadata_root", view_func=document, methods=["GET"])
    return rs
