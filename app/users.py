"""People who sign in at the authorization endpoint: the ``Authenticator`` interface and the
local user store behind it.

The authorization endpoint only ever talks to an ``Authenticator``; ``LocalAuthenticator`` keeps
usernames and argon2id password hashes in the storage plugin and is managed with ``oauth user``.
Another identity source (LDAP, an upstream OpenID provider, ...) replaces it by putting its own
object in ``state.extras["authenticator"]`` after ``create_app``.

Why argon2id: it is the password hash RFC 9106 and OWASP recommend. It is memory-hard (each
guess costs 64 MiB here, which makes GPU and ASIC cracking of a stolen database expensive) and
its ``id`` variant resists both side-channel and trade-off attacks. Parameters are those of
argon2-cffi's ``PasswordHasher`` (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4; about 0.1 s
per check on a small server), and are stored inside each hash, so raising them later rehashes
a person's password at their next sign-in.
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol, runtime_checkable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.contracts import Storage
from app.models import User

_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+\-]{0,63}")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


@runtime_checkable
class Authenticator(Protocol):
    """Checks a person's credentials for the login page."""

    def authenticate(self, username: str, password: str) -> str | None:
        """The subject (stable user id) for these credentials, or None.

        None covers every failure alike (unknown person, wrong password, disabled account) so
        that the login page cannot tell them apart. Never raises for bad credentials.
        """
        ...

    def session_marker(self, subject: str) -> str | None:
        """A short value that changes whenever the person's credentials change.

        A login session stores it and ends when it no longer matches, so a password change or
        deletion signs the person out everywhere. None: the person may no longer sign in.
        """
        ...


def username_problem(username: str) -> str | None:
    """Why ``username`` cannot be used, or None when it can."""
    if not _USERNAME.fullmatch(username):
        return "must be 1-64 characters: letters, digits and . _ @ + - (starting with a letter or digit)"
    return None


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be set, or None when it can."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    if "\x00" in password:
        return "must not contain a NUL character"
    return None


class LocalAuthenticator:
    """Usernames and argon2id password hashes in the storage plugin (``users`` table)."""

    def __init__(self, storage: Storage, hasher: PasswordHasher | None = None) -> None:
        self.storage = storage
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    # -- Authenticator ------------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> str | None:
        if not username or len(username) > 255 or len(password) > MAX_PASSWORD_LENGTH:
            return None
        user = self.storage.get_user(username)
        if user is None:
            # Spend the same time as a real check so response times do not reveal who exists.
            self._verify(self._dummy(), password)
            return None
        if not self._verify(user.password_hash, password) or user.disabled:
            return None
        if self._needs_rehash(user.password_hash):
            user.password_hash = self.hasher.hash(password)
            self.storage.save_user(user)
        return user.username

    def session_marker(self, subject: str) -> str | None:
        user = self.storage.get_user(subject)
        if user is None or user.disabled:
            return None
        # A digest of the hash: changes with every new password (new salt), reveals nothing.
        return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]

    # -- management (the CLI) -----------------------------------------------------------------

    def create(self, username: str, password: str, now: int) -> User:
        """Add a person. Raises ValueError for a bad or taken username or a weak password."""
        problem = username_problem(username)
        if problem:
            raise ValueError(f"username {problem}")
        if self.storage.get_user(username) is not None:
            raise ValueError(f"user {username} already exists")
        problem = password_problem(password)
        if problem:
            raise ValueError(f"password {problem}")
        user = User(username=username, password_hash=self.hasher.hash(password), created_at=now)
        self.storage.save_user(user)
        return user

    def set_password(self, username: str, password: str) -> None:
        """Replace a person's password (ends their login sessions). Raises ValueError."""
        user = self.storage.get_user(username)
        if user is None:
            raise ValueError(f"no user {username}")
        problem = password_problem(password)
        if problem:
            raise ValueError(f"password {problem}")
        user.password_hash = self.hasher.hash(password)
        self.storage.save_user(user)

    # -- internals ----------------------------------------------------------------------------

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(stored, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _needs_rehash(self, stored: str) -> bool:
        try:
            return bool(self.hasher.check_needs_rehash(stored))
        except (InvalidHashError, ValueError):
            return False

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash("not a real password")
        return self._dummy_hash
