"""PKCE (RFC 7636), S256 only as OAuth 2.1 requires of this server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

# RFC 7636 §4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# An S256 challenge is the base64url (no padding) of a 32-byte digest: 43 characters.
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


def valid_verifier(verifier: str) -> bool:
    # fullmatch, not match with `$`: `$` also matches before a trailing newline.
    return bool(_VERIFIER.fullmatch(verifier))


def valid_challenge(challenge: str) -> bool:
    return bool(_CHALLENGE.fullmatch(challenge))


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(verifier: str, challenge: str) -> bool:
    """True when ``verifier`` is well formed and hashes to ``challenge`` (constant time)."""
    return valid_verifier(verifier) and hmac.compare_digest(s256(verifier), challenge)
