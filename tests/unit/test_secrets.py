"""Random tokens and their stored hashes."""

from __future__ import annotations

import hashlib

import pytest

from app.core import secrets


def test_new_token_has_256_bits_by_default() -> None:
    token = secrets.new_token()
    # token_urlsafe(32): 32 random bytes as unpadded base64url = 43 characters.
    assert len(token) == 43
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_new_token_size_and_uniqueness() -> None:
    assert len(secrets.new_token(16)) == 22
    assert len({secrets.new_token() for _ in range(1000)}) == 1000


def test_token_hash_is_sha256() -> None:
    assert secrets.token_hash("abc") == hashlib.sha256(b"abc").digest()
    assert len(secrets.token_hash(secrets.new_token())) == 32


def test_token_hash_accepts_lone_surrogates() -> None:
    # A JSON body can carry "\ud800"; hashing it must not raise (it simply never matches).
    assert len(secrets.token_hash("\ud800")) == 32


@pytest.mark.parametrize(
    ("value", "stored", "expected"),
    [
        ("s3cret", secrets.token_hash("s3cret"), True),
        ("s3cret", secrets.token_hash("s3cret "), False),
        ("S3cret", secrets.token_hash("s3cret"), False),
        ("", secrets.token_hash("s3cret"), False),
        ("s3cret", None, False),  # nothing stored: never matches, not even ""
        ("", None, False),
        ("s3cret", b"", False),
    ],
)
def test_matches(value: str, stored: bytes | None, expected: bool) -> None:
    assert secrets.matches(value, stored) is expected


def test_identifiers_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # A client ID such as "-wBon..." was read as an option by `oauth client rotate-secret ID`.
    draws = iter(["-leading", "--twice", "ok-value"])
    monkeypatch.setattr(secrets.secrets, "token_urlsafe", lambda n: next(draws))
    assert secrets.new_identifier() == "ok-value"
    monkeypatch.undo()
    values = [secrets.new_identifier() for _ in range(2000)]  # ~31 would start with "-" unchecked
    assert not [v for v in values if v.startswith("-")]
    assert all(len(v) == 22 for v in values)
