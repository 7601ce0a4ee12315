"""Signing keys: generation per algorithm, RFC 7638 kids, rotation with overlap, HS256 opt-in."""

from __future__ import annotations

import time

import jwt
import pytest

from app.errors import ConfigurationError
from app.keys import KeyRing, public_jwk, thumbprint
from plugins.storage.memory import MemoryStorage

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}
SECRET = "s" * 32


def ring(storage: MemoryStorage | None = None, alg: str = "ES256", **kwargs: object) -> KeyRing:
    kr = KeyRing(storage or MemoryStorage(), alg=alg, secret=None, overlap_seconds=3720, **kwargs)  # type: ignore[arg-type]
    kr.ensure()
    return kr


def test_rfc_7638_example_thumbprint() -> None:
    # RFC 7638 §3.1: members other than the required ones (alg, kid) do not count.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4"
        "n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0"
        "zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-cs"
        "FCur-kEgU8awapJzKnqDKgw"
    )
    jwk = {"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize(
    ("alg", "members"),
    [
        ("ES256", {"kty": "EC", "crv": "P-256"}),
        ("RS256", {"kty": "RSA", "e": "AQAB"}),
        ("EdDSA", {"kty": "OKP", "crv": "Ed25519"}),
    ],
)
def test_generation_per_algorithm(alg: str, members: dict[str, str]) -> None:
    storage = MemoryStorage()
    kr = ring(storage, alg)
    stored = storage.list_signing_keys()
    assert len(stored) == 1 and stored[0].alg == alg and stored[0].retired_at is None
    [jwk] = kr.jwks()["keys"]
    assert members.items() <= jwk.items()
    assert jwk["alg"] == alg and jwk["use"] == "sig"
    assert not PRIVATE_MEMBERS & set(jwk), "a private member leaked into the JWKS"
    # kid = RFC 7638 thumbprint of the public key
    assert jwk["kid"] == stored[0].kid == thumbprint(jwk)
    assert kr.current().kid == jwk["kid"]
    # The published key verifies what the ring's private key signs (checked with PyJWT alone).
    token = jwt.encode({"x": 1}, kr.current().private, algorithm=alg, headers={"kid": jwk["kid"]})
    assert jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[alg]) == {"x": 1}


def test_rsa_keys_are_at_least_2048_bits() -> None:
    assert ring(alg="RS256").current().private.key_size >= 2048


def test_ensure_is_idempotent_and_shared_through_storage() -> None:
    storage = MemoryStorage()
    a = ring(storage)
    b = ring(storage)
    b.ensure()
    assert len(storage.list_signing_keys()) == 1
    assert a.current().kid == b.current().kid


def test_changing_the_algorithm_adds_a_key_of_the_new_one() -> None:
    storage = MemoryStorage()
    es = ring(storage, "ES256")
    rs = ring(storage, "RS256")
    assert rs.current().alg == "RS256"
    assert {k["alg"] for k in rs.jwks()["keys"]} == {"ES256", "RS256"}
    assert rs.get(es.current().kid) is not None  # tokens signed before the change still verify


def test_rotation_keeps_the_old_key_published_until_it_expires() -> None:
    storage = MemoryStorage()
    kr = ring(storage)
    old = kr.current().kid
    before = int(time.time())
    new = kr.rotate()
    assert new.kid != old and kr.current().kid == new.kid
    published = {k["kid"] for k in kr.jwks()["keys"]}
    assert published == {old, new.kid}
    retired = {k.kid: k for k in storage.list_signing_keys()}[old]
    assert retired.retired_at is not None and retired.retired_at >= before
    # Published for at least the access-token lifetime after retirement.
    assert retired.expires_at == retired.retired_at + 3720
    assert kr.get(old) is not None and kr.get(old).retired  # type: ignore[union-attr]


def test_an_expired_key_leaves_the_jwks_and_can_be_pruned() -> None:
    storage = MemoryStorage()
    kr = ring(storage)
    old = kr.current().kid
    kr.rotate(now=int(time.time()) - 4000)  # retired 4000 s ago: its overlap (3720 s) is over
    assert old not in {k["kid"] for k in kr.jwks()["keys"]}
    assert kr.get(old) is None
    assert kr.prune() == 1
    assert old not in {k.kid for k in storage.list_signing_keys()}
    assert len(storage.list_signing_keys()) == 1


def test_rotation_within_one_second_still_picks_the_new_key() -> None:
    kr = ring()
    now = int(time.time())
    first = kr.rotate(now=now)
    second = kr.rotate(now=now)
    assert kr.current().kid == second.kid != first.kid


def test_another_process_sees_a_rotation() -> None:
    storage = MemoryStorage()
    reader = ring(storage, refresh_seconds=3600)
    writer = ring(storage)
    new = writer.rotate()
    # An unknown kid forces one re-read, so a token from the new key verifies at once.
    assert reader.get(new.kid) is not None
    assert reader.current().kid == new.kid


def test_periodic_reload_picks_up_the_new_signing_key() -> None:
    storage = MemoryStorage()
    reader = ring(storage, refresh_seconds=0)
    new = ring(storage).rotate()
    time.sleep(0.01)
    assert reader.current().kid == new.kid


@pytest.mark.parametrize("alg", ["none", "ES512", "RS384", "es256", ""])
def test_unknown_algorithms_are_refused(alg: str) -> None:
    with pytest.raises(ConfigurationError, match="OAUTH_SIGNING_ALG"):
        KeyRing(MemoryStorage(), alg=alg, secret=None, overlap_seconds=60)


def test_hs256_without_a_secret_is_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="OAUTH_TOKEN_SECRET"):
        KeyRing(MemoryStorage(), alg="HS256", secret=None, overlap_seconds=60)


@pytest.mark.parametrize("secret", ["", "short", "x" * 31, "\u00e9" * 15])
def test_hs256_needs_a_32_byte_secret(secret: str) -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        KeyRing(MemoryStorage(), alg="ES256", secret=secret or "x", overlap_seconds=60)


def test_hs256_with_a_secret_publishes_no_jwks_and_stores_nothing() -> None:
    storage = MemoryStorage()
    kr = KeyRing(storage, alg="ES256", secret=SECRET, overlap_seconds=60)
    kr.ensure()
    assert kr.alg == "HS256" and kr.current().alg == "HS256"
    assert kr.jwks() == {"keys": []}
    assert storage.list_signing_keys() == []
    assert SECRET not in kr.current().kid
    with pytest.raises(ConfigurationError, match="OAUTH_TOKEN_SECRET"):
        kr.rotate()


def test_a_32_byte_multibyte_secret_is_enough() -> None:
    KeyRing(MemoryStorage(), alg="ES256", secret="\u00e9" * 16, overlap_seconds=60)


def test_public_jwk_has_only_public_members() -> None:
    kr = ring(alg="RS256")
    jwk = public_jwk("RS256", kr.current().public)
    assert set(jwk) == {"kty", "n", "e"}
