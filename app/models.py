"""Plain records that cross the storage contract. No behaviour beyond small derived views."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CONFIDENTIAL_METHODS = frozenset({"client_secret_basic", "client_secret_post"})


@dataclass(slots=True)
class Client:
    """A registered client. Secrets and registration tokens are kept only as SHA-256 hashes."""

    client_id: str
    metadata: dict[str, Any]
    issued_at: int
    secret_hash: bytes | None = None
    secret_expires_at: int = 0  # 0 = never (RFC 7591)
    registration_token_hash: bytes | None = None
    # "dynamic" (open registration), "iat" (initial access token) or "cli".
    registered_by: str = "dynamic"
    # Extra rights granted by an operator, e.g. {"introspect"}.
    privileges: frozenset[str] = frozenset()
    last_used_at: int = 0

    @property
    def auth_method(self) -> str:
        return str(self.metadata.get("token_endpoint_auth_method", "client_secret_basic"))

    @property
    def is_public(self) -> bool:
        return self.auth_method == "none"

    @property
    def grant_types(self) -> list[str]:
        return list(self.metadata.get("grant_types", ["authorization_code"]))

    @property
    def redirect_uris(self) -> list[str]:
        return list(self.metadata.get("redirect_uris", []))

    @property
    def scope(self) -> str:
        return str(self.metadata.get("scope", ""))


@dataclass(slots=True)
class SigningKey:
    """A signing key. ``private_pem`` holds the PEM (or the raw secret for HS256)."""

    kid: str
    alg: str
    private_pem: bytes
    created_at: int
    # After this time the key no longer signs; it stays published until ``expires_at``.
    retired_at: int | None = None
    expires_at: int | None = None


@dataclass(slots=True)
class InitialAccessToken:
    token_hash: bytes
    created_at: int
    expires_at: int  # 0 = never
    description: str = ""


@dataclass(slots=True)
class AuthorizationCode:
    code_hash: bytes
    client_id: str
    redirect_uri: str
    code_challenge: str
    scope: str
    resource: str
    subject: str
    family_id: str
    expires_at: int
    auth_time: int = 0


@dataclass(slots=True)
class RefreshToken:
    token_hash: bytes
    family_id: str
    client_id: str
    subject: str
    scope: str
    resource: str
    issued_at: int
    expires_at: int
    # Set once the token has been exchanged for a successor.
    rotated_at: int | None = None
    # The successor response, encrypted under a key derived from this token (grace window).
    successor_blob: bytes | None = None


@dataclass(slots=True)
class User:
    username: str
    password_hash: str
    created_at: int
    disabled: bool = False


@dataclass(slots=True)
class Consent:
    subject: str
    client_id: str
    scopes: frozenset[str]
    granted_at: int


@dataclass(slots=True)
class TokenClaims:
    """Verified access-token claims, as the guard hands them to views."""

    sub: str
    client_id: str
    scopes: frozenset[str]
    aud: str | list[str]
    jti: str
    exp: int
    iat: int
    iss: str
    raw: dict[str, Any] = field(default_factory=dict)
