"""Random tokens and their hashes. Stored values are SHA-256 hashes, compared in constant time.

High-entropy random values (256 bits) need no slow password hash: SHA-256 of such a value
cannot be brute-forced, and a fast hash keeps client authentication under 5 us.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random string with ``nbytes`` of entropy (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def new_identifier(nbytes: int = 16) -> str:
    """A URL-safe random identifier (client IDs, grant family IDs) that never starts with ``-``, so it
    can be passed to the CLI (``oauth client rotate-secret ID``) without being read as an option.
    A leading ``-`` is re-drawn rather than replaced, which keeps every allowed value equally likely."""
    while True:
        value = secrets.token_urlsafe(nbytes)
        if not value.startswith("-"):
            return value


def token_hash(value: str) -> bytes:
    """The SHA-256 digest stored in place of a secret."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def matches(value: str, stored_hash: bytes | None) -> bool:
    """Constant-time check of ``value`` against a stored hash; False when nothing is stored."""
    if stored_hash is None:
        return False
    return hmac.compare_digest(token_hash(value), stored_hash)
