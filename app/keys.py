"""Signing keys: generated on first start, kept in storage, rotated with an overlap window.

The newest unretired key signs. A retired key stays published in the JWKS until every token it
signed has expired, so workers on other machines keep validating across a rotation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from app.contracts import Storage
from app.errors import ConfigurationError
from app.models import SigningKey

ASYMMETRIC_ALGS = ("ES256", "RS256", "EdDSA")


def generate_private_key(alg: str) -> Any:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ConfigurationError(f"OAUTH_SIGNING_ALG must be one of {ASYMMETRIC_ALGS}, not {alg!r}")


def public_jwk(alg: str, public_key: Any) -> dict[str, str]:
    """The public JWK (RFC 7517) of a key, without ``kid``/``use``/``alg``."""
    algo = jwt.get_algorithm_by_name(alg)
    jwk: dict[str, str] = algo.to_jwk(public_key, as_dict=True)  # type: ignore[attr-defined]
    return {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y", "n", "e")}


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 JWK thumbprint, used as the ``kid``."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
    members = {k: jwk[k] for k in required[jwk["kty"]]}
    canon = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canon).digest()).rstrip(b"=").decode()


def new_signing_key(alg: str, now: int) -> SigningKey:
    private = generate_private_key(alg)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    kid = thumbprint(public_jwk(alg, private.public_key()))
    return SigningKey(kid=kid, alg=alg, private_pem=pem, created_at=now)


@dataclass(frozen=True, slots=True)
class LoadedKey:
    kid: str
    alg: str
    private: Any  # a cryptography private key, or bytes for HS256
    public: Any  # a cryptography public key, or bytes for HS256
    retired: bool
    jwk: dict[str, str] | None  # public JWK with kid/use/alg; None for HS256


class KeyRing:
    """The process's view of the signing keys, re-read from storage now and then."""

    def __init__(
        self,
        storage: Storage,
        alg: str,
        secret: str | None,
        overlap_seconds: int,
        refresh_seconds: int = 30,
    ) -> None:
        self.storage = storage
        self.alg = "HS256" if secret else alg
        self.secret = secret
        self.overlap_seconds = overlap_seconds
        self.refresh_seconds = refresh_seconds
        self._keys: dict[str, LoadedKey] = {}
        self._current: LoadedKey | None = None
        self._loaded_at = 0.0
        self._last_forced = 0.0
        self._lock = threading.Lock()
        if secret is None and alg == "HS256":
            raise ConfigurationError("OAUTH_SIGNING_ALG HS256 needs OAUTH_TOKEN_SECRET (at least 32 bytes)")
        if self.alg not in (*ASYMMETRIC_ALGS, "HS256"):
            raise ConfigurationError(f"OAUTH_SIGNING_ALG must be one of {ASYMMETRIC_ALGS}, not {alg!r}")
        if secret is not None and len(secret.encode()) < 32:
            raise ConfigurationError("OAUTH_TOKEN_SECRET must be at least 32 bytes (256 bits)")

    def ensure(self, now: int | None = None) -> None:
        """Create the first key when storage has none usable for the configured algorithm."""
        if self.secret is None:
            now = now or int(time.time())
            usable = [k for k in self.storage.list_signing_keys() if k.alg == self.alg and k.retired_at is None]
            if not usable:
                self.storage.save_signing_key(new_signing_key(self.alg, now))
        self.reload()

    def reload(self) -> None:
        keys: dict[str, LoadedKey] = {}
        current: LoadedKey | None = None
        now = int(time.time())
        if self.secret is not None:
            raw = self.secret.encode()
            kid = "hs-" + base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:9]).decode()
            current = LoadedKey(kid, "HS256", raw, raw, False, None)
            keys[kid] = current
        else:
            for k in self.storage.list_signing_keys():
                if k.expires_at is not None and k.expires_at < now:
                    continue
                private = serialization.load_pem_private_key(k.private_pem, password=None)
                public = private.public_key()
                jwk = public_jwk(k.alg, public) | {"kid": k.kid, "use": "sig", "alg": k.alg}
                loaded = LoadedKey(k.kid, k.alg, private, public, k.retired_at is not None, jwk)
                keys[k.kid] = loaded
                if not loaded.retired and k.alg == self.alg:
                    current = loaded  # ordered by created_at: the newest wins
        if current is None:
            raise ConfigurationError("no usable signing key; run `flask --app wsgi oauth init`")
        with self._lock:
            self._keys, self._current, self._loaded_at = keys, current, time.monotonic()

    def _maybe_reload(self) -> None:
        if time.monotonic() - self._loaded_at > self.refresh_seconds:
            self.reload()

    def current(self) -> LoadedKey:
        self._maybe_reload()
        assert self._current is not None
        return self._current

    def get(self, kid: str) -> LoadedKey | None:
        """The key for ``kid``; an unknown kid forces one re-read, at most every 5 seconds."""
        self._maybe_reload()
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._last_forced > 5:
            self._last_forced = time.monotonic()
            self.reload()
            key = self._keys.get(kid)
        return key

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        self._maybe_reload()
        return {"keys": [k.jwk for k in self._keys.values() if k.jwk is not None]}

    def rotate(self, now: int | None = None) -> SigningKey:
        """Make a new signing key; retire the old ones, published until their tokens expire."""
        if self.secret is not None:
            raise ConfigurationError("HS256 keys come from OAUTH_TOKEN_SECRET; change it to rotate")
        now = now or int(time.time())
        existing = self.storage.list_signing_keys()
        for k in existing:
            if k.retired_at is None:
                k.retired_at = now
                k.expires_at = now + self.overlap_seconds
                self.storage.save_signing_key(k)
        # Keys are ordered by created_at: the new one must sort last even within one second.
        key = new_signing_key(self.alg, max([now] + [k.created_at + 1 for k in existing]))
        self.storage.save_signing_key(key)
        self.reload()
        return key

    def prune(self, now: int | None = None) -> int:
        now = now or int(time.time())
        n = 0
        for k in self.storage.list_signing_keys():
            if k.expires_at is not None and k.expires_at < now:
                self.storage.delete_signing_key(k.kid)
                n += 1
        return n
