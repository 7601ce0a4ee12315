"""In-process storage for tests and demos. Per process: wrong behind several gunicorn workers."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping

from app.models import (
    AuthorizationCode,
    Client,
    Consent,
    InitialAccessToken,
    RefreshToken,
    SigningKey,
    User,
)


class MemoryStorage:
    """Every record in dicts behind one lock; copies in and out so callers cannot alias."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, Client] = {}
        self._keys: dict[str, SigningKey] = {}
        self._iats: dict[bytes, InitialAccessToken] = {}
        self._revoked: dict[str, int] = {}
        self._codes: dict[bytes, tuple[AuthorizationCode, bool]] = {}
        self._refresh: dict[bytes, RefreshToken] = {}
        self._family_jtis: dict[str, dict[str, int]] = {}
        self._users: dict[str, User] = {}
        self._consents: dict[tuple[str, str], Consent] = {}
        self._settings: dict[str, str] = {}

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, object]) -> MemoryStorage:
        return cls()

    def close(self) -> None:
        pass

    def ping(self) -> None:
        pass

    def migrate(self) -> None:
        pass

    # clients
    def get_client(self, client_id: str) -> Client | None:
        with self._lock:
            c = self._clients.get(client_id)
            return copy.deepcopy(c) if c else None

    def save_client(self, client: Client) -> None:
        with self._lock:
            self._clients[client.client_id] = copy.deepcopy(client)

    def delete_client(self, client_id: str) -> bool:
        with self._lock:
            found = self._clients.pop(client_id, None) is not None
            for key in [k for k in self._consents if k[1] == client_id]:
                del self._consents[key]
            families = {t.family_id for t in self._refresh.values() if t.client_id == client_id}
        for fam in families:
            self.revoke_family(fam, 0)
        return found

    def list_clients(self) -> list[Client]:
        with self._lock:
            return sorted((copy.deepcopy(c) for c in self._clients.values()), key=lambda c: c.issued_at)

    def touch_client(self, client_id: str, now: int) -> None:
        with self._lock:
            c = self._clients.get(client_id)
            if c is not None:
                c.last_used_at = now

    # keys
    def list_signing_keys(self) -> list[SigningKey]:
        with self._lock:
            return sorted((copy.copy(k) for k in self._keys.values()), key=lambda k: k.created_at)

    def save_signing_key(self, key: SigningKey) -> None:
        with self._lock:
            self._keys[key.kid] = copy.copy(key)

    def delete_signing_key(self, kid: str) -> None:
        with self._lock:
            self._keys.pop(kid, None)

    # initial access tokens
    def save_initial_access_token(self, token: InitialAccessToken) -> None:
        with self._lock:
            self._iats[token.token_hash] = copy.copy(token)

    def get_initial_access_token(self, token_hash: bytes) -> InitialAccessToken | None:
        with self._lock:
            t = self._iats.get(token_hash)
            return copy.copy(t) if t else None

    # revocation
    def revoke_jti(self, jti: str, expires_at: int) -> None:
        with self._lock:
            self._revoked.setdefault(jti, expires_at)

    def is_jti_revoked(self, jti: str) -> bool:
        return jti in self._revoked

    # codes
    def save_code(self, code: AuthorizationCode) -> None:
        with self._lock:
            self._codes[code.code_hash] = (copy.copy(code), False)

    def consume_code(self, code_hash: bytes, now: int) -> tuple[AuthorizationCode | None, bool]:
        with self._lock:
            entry = self._codes.get(code_hash)
            if entry is None:
                return None, False
            code, used = entry
            self._codes[code_hash] = (code, True)
            return copy.copy(code), not used

    # refresh tokens
    def save_refresh_token(self, token: RefreshToken) -> None:
        with self._lock:
            self._refresh[token.token_hash] = copy.copy(token)

    def get_refresh_token(self, token_hash: bytes) -> RefreshToken | None:
        with self._lock:
            t = self._refresh.get(token_hash)
            return copy.copy(t) if t else None

    def rotate_refresh_token(
        self, old_hash: bytes, new: RefreshToken, now: int, successor_blob: bytes | None
    ) -> bool:
        with self._lock:
            old = self._refresh.get(old_hash)
            if old is None or old.rotated_at is not None:
                return False
            old.rotated_at = now
            old.successor_blob = successor_blob
            self._refresh[new.token_hash] = copy.copy(new)
            return True

    def add_family_jti(self, family_id: str, jti: str, expires_at: int) -> None:
        with self._lock:
            self._family_jtis.setdefault(family_id, {})[jti] = expires_at

    def revoke_family(self, family_id: str, now: int) -> int:
        with self._lock:
            doomed = [h for h, t in self._refresh.items() if t.family_id == family_id]
            for h in doomed:
                del self._refresh[h]
            for h, (code, _used) in list(self._codes.items()):
                if code.family_id == family_id:
                    self._codes[h] = (code, True)
            jtis = self._family_jtis.pop(family_id, {})
            for jti, exp in jtis.items():
                self._revoked.setdefault(jti, exp)
            return len(doomed) + len(jtis)

    def list_families(self, *, subject: str | None = None, client_id: str | None = None) -> list[RefreshToken]:
        with self._lock:
            return sorted(
                (
                    copy.copy(t)
                    for t in self._refresh.values()
                    if t.rotated_at is None
                    and (subject is None or t.subject == subject)
                    and (client_id is None or t.client_id == client_id)
                ),
                key=lambda t: t.issued_at,
            )

    def prune_tokens(self, now: int) -> int:
        with self._lock:
            n = 0
            for jti in [j for j, exp in self._revoked.items() if exp < now]:
                del self._revoked[jti]
                n += 1
            for h in [h for h, (c, _u) in self._codes.items() if c.expires_at < now - 3600]:
                del self._codes[h]
                n += 1
            for h in [h for h, t in self._refresh.items() if t.expires_at < now]:
                del self._refresh[h]
                n += 1
            for fam, jtis in list(self._family_jtis.items()):
                for jti in [j for j, exp in jtis.items() if exp < now]:
                    del jtis[jti]
                    n += 1
                if not jtis:
                    del self._family_jtis[fam]
            return n

    # users and consents
    def get_user(self, username: str) -> User | None:
        with self._lock:
            u = self._users.get(username)
            return copy.copy(u) if u else None

    def save_user(self, user: User) -> None:
        with self._lock:
            self._users[user.username] = copy.copy(user)

    def delete_user(self, username: str) -> bool:
        with self._lock:
            for key in [k for k in self._consents if k[0] == username]:
                del self._consents[key]
            return self._users.pop(username, None) is not None

    def list_users(self) -> list[User]:
        with self._lock:
            return [copy.copy(self._users[k]) for k in sorted(self._users)]

    def get_consent(self, subject: str, client_id: str) -> Consent | None:
        with self._lock:
            c = self._consents.get((subject, client_id))
            return copy.copy(c) if c else None

    def save_consent(self, consent: Consent) -> None:
        with self._lock:
            self._consents[(consent.subject, consent.client_id)] = copy.copy(consent)

    def delete_consents(self, *, subject: str | None = None, client_id: str | None = None) -> int:
        with self._lock:
            doomed = [
                k
                for k in self._consents
                if (subject is None or k[0] == subject) and (client_id is None or k[1] == client_id)
            ]
            for k in doomed:
                del self._consents[k]
            return len(doomed)

    # settings
    def get_setting(self, name: str) -> str | None:
        with self._lock:
            return self._settings.get(name)

    def set_setting_if_absent(self, name: str, value: str) -> str:
        with self._lock:
            return self._settings.setdefault(name, value)
