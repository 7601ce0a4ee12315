"""MCP sessions as signed, self-contained ids (``Mcp-Session-Id``).

Why signed ids rather than session records in storage: every gunicorn worker (and every
instance sharing ``SECRET_KEY``) accepts a session the moment ``initialize`` returns, with no
storage write on the hot path and no sticky routing; concurrent POSTs in one session share no
mutable state, so they cannot race. The id carries the negotiated protocol version and is
bound to the token's subject and client: another caller holding a stolen session id gets 404.
Ending a session (``DELETE``) is the only write: the id's nonce goes into the revocation list
(``revoke_jti("mcp-session:<nonce>")``) until the id would have expired anyway.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.models import TokenClaims
from app.tokens import VerifiedCache

SESSION_TTL = 24 * 3600  # seconds a session id stays valid after initialize
MAX_ID_LENGTH = 512


class Revocations(Protocol):
    """The part of the token store sessions use (``TokenStore.revoke_jti`` / ``is_jti_revoked``)."""

    def revoke_jti(self, jti: str, expires_at: int) -> None: ...
    def is_jti_revoked(self, jti: str) -> bool: ...


class MemoryRevocations:
    """A per-process revocation list, for an app without a token store (the worker example)."""

    def __init__(self) -> None:
        self._data: dict[str, int] = {}
        self._lock = threading.Lock()

    def revoke_jti(self, jti: str, expires_at: int) -> None:
        with self._lock:
            now = int(time.time())
            self._data = {k: v for k, v in self._data.items() if v > now}
            self._data[jti] = expires_at

    def is_jti_revoked(self, jti: str) -> bool:
        expires_at = self._data.get(jti)
        return expires_at is not None and expires_at > time.time()


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    nonce: str
    version: str
    subject: str
    client_id: str
    issued_at: int


class SessionManager:
    """Issues and checks session ids."""

    def __init__(
        self, secret_key: str | bytes, revocations: Revocations, ttl: int = SESSION_TTL, cache_size: int = 10000
    ) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="mcp-session")
        self.revocations = revocations
        self.ttl = ttl
        # Ids whose signature was checked, until they expire: the HMAC, base64 and JSON of an id
        # cost more than the rest of a tools/call. An ended session is still refused on every
        # request (the revocation list is read each time, as for access tokens).
        self._verified: VerifiedCache[Session] = VerifiedCache(cache_size, expires=lambda s: s.issued_at + ttl)

    def new(self, version: str, claims: TokenClaims) -> Session:
        nonce = secrets.token_urlsafe(12)
        payload = {"n": nonce, "v": version, "s": claims.sub, "c": claims.client_id}
        sid = self._serializer.dumps(payload)
        assert isinstance(sid, str)
        return Session(sid, nonce, version, claims.sub, claims.client_id, int(time.time()))

    def get(self, sid: str, claims: TokenClaims) -> Session | None:
        """The live session ``sid`` of this token's subject and client; None when the id is
        forged, expired, ended or belongs to someone else (all answered alike: 404)."""
        if not sid or len(sid) > MAX_ID_LENGTH:
            return None
        session = self._verified.get(sid, time.time())
        if session is None:
            session = self._verify(sid)
            if session is None:
                return None
            self._verified.put(sid, session)
        if session.subject != claims.sub or session.client_id != claims.client_id:
            return None
        if self.revocations.is_jti_revoked(self._key(session.nonce)):
            return None
        return session

    def _verify(self, sid: str) -> Session | None:
        try:
            payload, signed_at = self._serializer.loads(sid, max_age=self.ttl, return_timestamp=True)
        except BadSignature:  # SignatureExpired is a BadSignature too
            return None
        if not isinstance(payload, dict) or not all(isinstance(payload.get(k), str) for k in "nvsc"):
            return None
        return Session(sid, payload["n"], payload["v"], payload["s"], payload["c"], int(signed_at.timestamp()))

    def end(self, session: Session) -> None:
        """Record the end of ``session`` (kept until the id would expire by itself)."""
        self.revocations.revoke_jti(self._key(session.nonce), session.issued_at + self.ttl + 60)

    @staticmethod
    def _key(nonce: str) -> str:
        return f"mcp-session:{nonce}"
