"""The local user store: argon2id hashes, uniform failures, session markers, rehashing."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher

from app.contracts import Storage
from app.models import User
from app.users import Authenticator, LocalAuthenticator, password_problem, username_problem
from plugins.storage.memory import MemoryStorage

CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def storage() -> Any:
    store = MemoryStorage.from_url("memory://", {})
    assert isinstance(store, Storage)
    return store


@pytest.fixture
def auth(storage: Any) -> LocalAuthenticator:
    a = LocalAuthenticator(storage, CHEAP)
    a.create("alice", "a long password", 1)
    return a


def test_local_authenticator_implements_the_interface(auth: LocalAuthenticator) -> None:
    assert isinstance(auth, Authenticator)


def test_password_stored_as_argon2id(auth: LocalAuthenticator, storage: Any) -> None:
    stored = storage.get_user("alice").password_hash
    assert stored.startswith("$argon2id$")
    assert "a long password" not in stored


def test_default_parameters_are_rfc_9106_low_memory(storage: Any) -> None:
    hasher = LocalAuthenticator(storage).hasher
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (3, 65536, 4)


def test_authenticate(auth: LocalAuthenticator) -> None:
    assert auth.authenticate("alice", "a long password") == "alice"
    assert auth.authenticate("alice", "a long passwor") is None
    assert auth.authenticate("Alice", "a long password") is None  # usernames are exact
    assert auth.authenticate("nobody", "a long password") is None
    assert auth.authenticate("", "a long password") is None
    assert auth.authenticate("alice", "x" * 2000) is None


def test_disabled_user_cannot_authenticate(auth: LocalAuthenticator, storage: Any) -> None:
    u = storage.get_user("alice")
    storage.save_user(User(u.username, u.password_hash, u.created_at, disabled=True))
    assert auth.authenticate("alice", "a long password") is None
    assert auth.session_marker("alice") is None


def test_corrupt_hash_fails_closed(auth: LocalAuthenticator, storage: Any) -> None:
    storage.save_user(User("alice", "not-a-hash", 1))
    assert auth.authenticate("alice", "a long password") is None


def test_session_marker_changes_with_the_password(auth: LocalAuthenticator) -> None:
    before = auth.session_marker("alice")
    assert before and len(before) == 16
    assert auth.session_marker("alice") == before
    auth.set_password("alice", "a long password")  # same password, new salt: still a change
    assert auth.session_marker("alice") != before
    assert auth.session_marker("nobody") is None


def test_weaker_hash_is_upgraded_at_sign_in(storage: Any) -> None:
    storage.save_user(User("bob", CHEAP.hash("bob's password"), 1))
    strong = LocalAuthenticator(storage, PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    assert strong.authenticate("bob", "bob's password") == "bob"
    upgraded = storage.get_user("bob").password_hash
    assert "m=2048,t=2" in upgraded
    assert strong.authenticate("bob", "bob's password") == "bob"


def test_create_refuses_duplicates_and_weak_passwords(auth: LocalAuthenticator) -> None:
    with pytest.raises(ValueError, match="already exists"):
        auth.create("alice", "another password", 2)
    with pytest.raises(ValueError, match="at least 8"):
        auth.create("carol", "short", 2)
    with pytest.raises(ValueError, match="no user"):
        auth.set_password("nobody", "a long password")


@pytest.mark.parametrize("name", ["alice", "a", "alice.smith", "a_b-c+d@example.com", "A1" * 32])
def test_good_usernames(name: str) -> None:
    assert username_problem(name) is None


@pytest.mark.parametrize("name", ["", " alice", "alice ", ".alice", "al ice", "al\x00ice", "\u00e9", "x" * 65, "a/b"])
def test_bad_usernames(name: str) -> None:
    assert username_problem(name) is not None


@pytest.mark.parametrize(
    ("password", "ok"), [("12345678", True), ("1234567", False), ("x" * 1025, False), ("abc\x00defgh", False)]
)
def test_password_rules(password: str, ok: bool) -> None:
    assert (password_problem(password) is None) is ok
