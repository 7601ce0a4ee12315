"""PKCE (RFC 7636), S256 only: verifier and challenge syntax, and the S256 transform."""

from __future__ import annotations

import pytest

from app.core import pkce

# RFC 7636 Appendix B.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_s256_matches_rfc_7636_appendix_b() -> None:
    assert pkce.s256(RFC_VERIFIER) == RFC_CHALLENGE


def test_verify_accepts_the_matching_pair() -> None:
    assert pkce.verify(RFC_VERIFIER, RFC_CHALLENGE)


@pytest.mark.parametrize(
    ("verifier", "challenge"),
    [
        (RFC_VERIFIER[:-1] + "l", RFC_CHALLENGE),  # one character off
        (RFC_VERIFIER, RFC_CHALLENGE[:-1] + "d"),
        (RFC_CHALLENGE, RFC_CHALLENGE),  # "plain" method: the challenge itself is not a verifier
        (RFC_VERIFIER, ""),
        ("", RFC_CHALLENGE),
    ],
)
def test_verify_refuses_mismatches(verifier: str, challenge: str) -> None:
    assert not pkce.verify(verifier, challenge)


@pytest.mark.parametrize(
    ("verifier", "valid"),
    [
        ("a" * 43, True),
        ("a" * 128, True),
        ("A-._~z09" * 6, True),
        ("a" * 42, False),  # RFC 7636 §4.1: at least 43 characters
        ("a" * 129, False),  # and at most 128
        ("a" * 42 + "+", False),  # only unreserved characters
        ("a" * 42 + "/", False),
        ("a" * 42 + "=", False),
        ("a" * 42 + " ", False),
        ("a" * 43 + "\n", False),  # a trailing newline must not slip through a `$` anchor
        ("a" * 42 + "\u00e9", False),
    ],
)
def test_verifier_syntax(verifier: str, valid: bool) -> None:
    assert pkce.valid_verifier(verifier) is valid


def test_a_verifier_with_a_trailing_newline_never_verifies() -> None:
    verifier = "a" * 43
    assert not pkce.verify(verifier + "\n", pkce.s256(verifier + "\n"))


@pytest.mark.parametrize(
    ("challenge", "valid"),
    [
        (RFC_CHALLENGE, True),
        (RFC_CHALLENGE[:-1], False),  # an S256 challenge is exactly 43 characters
        (RFC_CHALLENGE + "A", False),
        (RFC_CHALLENGE + "=", False),  # no padding
        (RFC_CHALLENGE[:-1] + "+", False),  # base64url, not base64
        (RFC_CHALLENGE + "\n", False),
        ("", False),
    ],
)
def test_challenge_syntax(challenge: str, valid: bool) -> None:
    assert pkce.valid_challenge(challenge) is valid
