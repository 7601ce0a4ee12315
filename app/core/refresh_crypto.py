"""Sealing a refresh response under a key only the holder of the old refresh token can derive.

The refresh grace window (``OAUTH_REFRESH_GRACE_SECONDS``) lets a client that lost a refresh
response present its previous refresh token again and get the same new pair. That response has
to be kept somewhere, and it holds live tokens, so it is stored only encrypted: AES-256-GCM
under a key derived with HKDF-SHA256 from the old refresh token itself. Storage keeps only
SHA-256 of that token, from which the key cannot be derived, so a reader of the database (or a
backup) learns nothing; a client that still holds the old token can open its own response.

Blob layout: version byte ``0x01`` || 12-byte random nonce || ciphertext with 16-byte GCM tag.
The associated data binds the blob to the row it is stored on (the old token's hash), so a blob
copied onto another row does not open.
"""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
_SALT = b"mcp-oauth refresh successor"
_INFO = b"mcp-oauth refresh successor v1 aes-256-gcm"
_NONCE_LEN = 12


class SealError(Exception):
    """The blob is malformed, of an unknown version, or was not sealed under this token."""


def _key(old_token: str) -> bytes:
    # The token has 256 bits of entropy, so a single HKDF step (no slow KDF) is enough.
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO)
    return hkdf.derive(old_token.encode("utf-8", "surrogatepass"))


def seal(old_token: str, binding: bytes, payload: dict[str, Any]) -> bytes:
    """Encrypt ``payload`` (JSON-serialisable) under a key derived from ``old_token``.

    ``binding`` (the old token's stored hash) is authenticated but not encrypted.
    """
    nonce = os.urandom(_NONCE_LEN)
    plaintext = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return bytes([VERSION]) + nonce + AESGCM(_key(old_token)).encrypt(nonce, plaintext, binding)


def open_sealed(old_token: str, binding: bytes, blob: bytes) -> dict[str, Any]:
    """Decrypt a blob made by :func:`seal`. Raises SealError if anything does not match."""
    if len(blob) < 1 + _NONCE_LEN + 16 or blob[0] != VERSION:
        raise SealError("unknown or truncated blob")
    nonce, ciphertext = blob[1 : 1 + _NONCE_LEN], blob[1 + _NONCE_LEN :]
    try:
        plaintext = AESGCM(_key(old_token)).decrypt(nonce, ciphertext, binding)
    except InvalidTag:
        raise SealError("blob was not sealed under this token") from None
    payload = json.loads(plaintext)
    if not isinstance(payload, dict):
        raise SealError("blob does not hold an object")
    return payload
