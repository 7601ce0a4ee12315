"""RFC 9068 JWT access tokens: issue and verify (signing and checks by PyJWT).

Issuing needs no storage write. Verifying checks the signature with the key named by ``kid``
(the algorithm comes from the key, never from the token header: RFC 8725 §3.1), ``typ``
``at+jwt``, ``iss``, ``aud``, ``exp``, then the revocation list. Verified claims are cached
in-process until they expire; the revocation check runs on every call.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import jwt
import orjson

from app.errors import InvalidTokenError
from app.keys import KeyRing
from app.models import TokenClaims

V = TypeVar("V")

MAX_HEADER_LENGTH = 2048  # base64url characters; ours are about 100
LEEWAY = 30  # seconds of clock skew tolerated on exp/iat/nbf
_REQUIRED = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]


def claims_from_payload(payload: dict[str, Any]) -> TokenClaims:
    scope = payload.get("scope", "")
    return TokenClaims(
        sub=str(payload["sub"]),
        client_id=str(payload["client_id"]),
        scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
        aud=payload["aud"],
        jti=str(payload["jti"]),
        exp=int(payload["exp"]),
        iat=int(payload["iat"]),
        iss=str(payload["iss"]),
        raw=payload,
    )


def check_typ(header: dict[str, Any]) -> None:
    typ = str(header.get("typ", "")).lower()
    if typ not in ("at+jwt", "application/at+jwt"):
        raise InvalidTokenError("token is not an RFC 9068 access token (typ must be at+jwt)")


def _unverified_kid(token: str) -> Any:
    """The ``kid`` of a JWT's header, read without verification, only to pick the key.

    PyJWT then parses and checks the whole token (strictly: its base64url and character checks)
    and verifies the signature over this header. Reading the header with
    ``jwt.get_unverified_header`` instead ran those whole-token checks twice per validation,
    which since PyJWT 2.15 walk every character in Python (~100 us for an access token here).
    Raises InvalidTokenError when the first segment is not a JSON object.
    """
    head, dot, _ = token.partition(".")
    if not dot or len(head) > MAX_HEADER_LENGTH:
        raise InvalidTokenError("token is malformed")
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidTokenError("token is malformed") from None
    if not isinstance(header, dict):
        raise InvalidTokenError("token is malformed")
    return header.get("kid")


def decode_jwt(
    token: str,
    key_for: Callable[[str], tuple[Any, str] | None],
    *,
    issuer: str,
    audience: str | None,
    verify_exp: bool = True,
) -> TokenClaims:
    """Verify an RFC 9068 access token; the one place both verifiers (here and in a worker) do it.

    ``key_for(kid)`` gives (public key, algorithm) or None. The algorithm comes from the key,
    never from the token header (RFC 8725 §3.1). Raises InvalidTokenError.
    """
    kid = _unverified_kid(token)
    found = key_for(kid) if isinstance(kid, str) else None
    if found is None:
        raise InvalidTokenError("token was signed by an unknown key")
    key, alg = found
    try:
        decoded = jwt.api_jwt.decode_complete(
            token,
            key,
            algorithms=[alg],
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY,
            options={"require": _REQUIRED, "verify_aud": audience is not None, "verify_exp": verify_exp},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidTokenError("token has expired") from None
    except jwt.InvalidAudienceError:
        raise InvalidTokenError("token was not issued for this resource") from None
    except jwt.PyJWTError as e:
        raise InvalidTokenError(f"token is invalid: {e}") from None
    check_typ(decoded["header"])  # the header the signature covers, as PyJWT parsed it
    payload = decoded["payload"]
    return claims_from_payload(payload)


class TokenResponse(dict[str, Any]):
    """A token endpoint response body (RFC 6749 §5.1) that also carries the access token's
    claims, so the ``token.issued`` audit line need not decode the token just minted. Grants
    may return a plain dict instead; the audit line then reads the claims from the JWT."""

    __slots__ = ("claims",)

    def __init__(self, body: dict[str, Any], claims: dict[str, Any]) -> None:
        super().__init__(body)
        self.claims = claims


def _token_expiry(claims: TokenClaims) -> float:
    return claims.exp + LEEWAY


class VerifiedCache(Generic[V]):
    """Bounded cache of verified values (tokens, MCP session ids): key -> value, dropped when
    ``expires(value)`` has passed, oldest first when full. By default the values are access
    token claims, dropped at ``exp`` plus the leeway the guard allows."""

    def __init__(self, size: int, expires: Callable[[V], float] = _token_expiry) -> None:  # type: ignore[assignment]
        self.size = size
        self.expires = expires
        self._data: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, now: float) -> V | None:
        value = self._data.get(key)
        if value is None:
            return None
        if self.expires(value) <= now:
            with self._lock:
                self._data.pop(key, None)
            return None
        return value

    def put(self, key: str, value: V) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class AccessTokens:
    """Mints and verifies this server's access tokens."""

    def __init__(
        self,
        keys: KeyRing,
        issuer: str,
        ttl: int,
        is_revoked: Callable[[str], bool],
        cache_size: int = 10000,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.ttl = ttl
        self.is_revoked = is_revoked
        self.cache: VerifiedCache[TokenClaims] = VerifiedCache(cache_size)
        self._signers: dict[str, _Signer] = {}  # by kid; keys rotate rarely

    def issue(
        self,
        *,
        subject: str,
        client_id: str,
        scope: str,
        audience: str,
        now: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Mint a token; returns (jwt, claims). Nothing is written to storage."""
        now = now or int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "client_id": client_id,
            "scope": scope,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + self.ttl,
        }
        if extra:
            claims |= extra
        key = self.keys.current()
        signer = self._signers.get(key.kid)
        if signer is None or signer.source is not key.private:  # new key, or re-read from storage
            if len(self._signers) > 16:
                self._signers.clear()
            signer = self._signers[key.kid] = _Signer(key)
        return signer.sign(orjson.dumps(claims)), claims

    def decode(self, token: str, audience: str | None, *, verify_exp: bool = True) -> TokenClaims:
        """Check signature, typ, iss, aud (when given) and exp. Raises InvalidTokenError."""

        def key_for(kid: str) -> tuple[Any, str] | None:
            key = self.keys.get(kid)
            return (key.public, key.alg) if key is not None else None

        return decode_jwt(token, key_for, issuer=self.issuer, audience=audience, verify_exp=verify_exp)

    def decode_cached(self, token: str) -> TokenClaims:
        """Signature, typ, iss and exp checked (any audience), through the verified-token cache.

        For introspection: a token seen before skips the signature check. Raises InvalidTokenError.
        """
        claims = self.cache.get(token, time.time())
        if claims is None:
            claims = self.decode(token, None)
            self.cache.put(token, claims)
        return claims

    def verify(self, token: str, audience: str) -> TokenClaims:
        """Verified, unrevoked claims for ``audience``. Raises InvalidTokenError."""
        now = time.time()
        claims = self.cache.get(token, now)
        if claims is None:
            claims = self.decode(token, audience)
            self.cache.put(token, claims)
        elif not _aud_matches(claims.aud, audience):
            raise InvalidTokenError("token was not issued for this resource")
        if self.is_revoked(claims.jti):
            raise InvalidTokenError("token has been revoked")
        return claims


class _Signer:
    """Signs access tokens with one key: JWS compact serialization (RFC 7515 §7.1) of a fixed
    protected header, the signature made by PyJWT's algorithm for the key.

    The header segment is the one PyJWT itself writes for this key (taken once from
    ``jwt.api_jws.encode``), so tokens are byte-for-byte what ``jwt.encode`` would give; only
    its per-token work on a header that never changes (JSON, base64, header checks, algorithm
    and key preparation, about 3% of a token request) is done once instead.
    """

    __slots__ = ("source", "prefix", "algorithm", "key")

    def __init__(self, key: Any) -> None:
        self.source = key.private
        headers = {"kid": key.kid, "typ": "at+jwt"}
        header_segment = jwt.api_jws.encode(b"", key.private, algorithm=key.alg, headers=headers).split(".")[0]
        self.prefix = header_segment.encode() + b"."
        self.algorithm = jwt.get_algorithm_by_name(key.alg)
        self.key = self.algorithm.prepare_key(key.private)

    def sign(self, payload: bytes) -> str:
        signing_input = self.prefix + jwt.utils.base64url_encode(payload)
        signature = self.algorithm.sign(signing_input, self.key)
        return (signing_input + b"." + jwt.utils.base64url_encode(signature)).decode()


def _aud_matches(aud: str | list[str], audience: str) -> bool:
    return aud == audience or (isinstance(aud, list) and audience in aud)
