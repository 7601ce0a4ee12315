"""Test helpers for the code and refresh grants: store authorization codes directly (as the
authorization endpoint does after consent), and build the token requests that redeem them."""

from __future__ import annotations

import base64
import hashlib
import secrets as pysecrets
import time
from dataclasses import dataclass
from typing import Any

from app.core import secrets
from app.models import AuthorizationCode, User

ISSUER = "http://127.0.0.1:8000"
MCP_RESOURCE = ISSUER + "/mcp"
REDIRECT = "http://127.0.0.1:8765/callback"


def new_verifier() -> str:
    """A valid RFC 7636 verifier (43-128 unreserved characters)."""
    return pysecrets.token_urlsafe(48)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class IssuedCode:
    code: str
    verifier: str
    family_id: str
    client_id: str
    redirect_uri: str

    def params(self, **overrides: str | None) -> dict[str, str]:
        """The token request for this code; an override of None leaves that parameter out."""
        base: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "code": self.code,
            "code_verifier": self.verifier,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri or None,
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}


def add_person(storage: Any, username: str = "alice", *, disabled: bool = False) -> None:
    """A person in the local user store, as ``oauth user create`` makes one (the password hash is
    never checked by the token endpoint, so a placeholder stands in for it)."""
    storage.save_user(User(username=username, password_hash="$argon2id$placeholder", created_at=0, disabled=disabled))


def store_code(
    token_store: Any,
    client_id: str,
    *,
    redirect_uri: str = REDIRECT,
    scope: str = "mcp:tools",
    resource: str = MCP_RESOURCE,
    subject: str = "alice",
    expires_in: int = 60,
    now: int | None = None,
) -> IssuedCode:
    """Save an authorization code the way the authorization endpoint does; returns its secrets.

    ``redirect_uri=""`` records an authorization request that omitted the redirect URI.
    """
    now = int(time.time()) if now is None else now
    code = secrets.new_token()
    verifier = new_verifier()
    family_id = secrets.new_token(16)
    token_store.save_code(
        AuthorizationCode(
            code_hash=secrets.token_hash(code),
            client_id=client_id,
            redirect_uri=redirect_uri,
            code_challenge=s256(verifier),
            scope=scope,
            resource=resource,
            subject=subject,
            family_id=family_id,
            expires_at=now + expires_in,
            auth_time=now,
        )
    )
    return IssuedCode(code, verifier, family_id, client_id, redirect_uri)
