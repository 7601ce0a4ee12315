"""RFC 9068 JWT access tokens: what is issued, and every way a forged or stale token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from app.errors import InvalidTokenError
from app.keys import KeyRing
from app.tokens import AccessTokens
from plugins.storage.memory import MemoryStorage

ISSUER = "http://127.0.0.1:8000"
AUD = ISSUER + "/mcp"


class Revocations:
    def __init__(self) -> None:
        self.jtis: set[str] = set()
        self.calls = 0

    def __call__(self, jti: str) -> bool:
        self.calls += 1
        return jti in self.jtis


def make(alg: str = "ES256", secret: str | None = None, ttl: int = 3600) -> tuple[AccessTokens, Revocations]:
    keys = KeyRing(MemoryStorage(), alg=alg, secret=secret, overlap_seconds=ttl + 120)
    keys.ensure()
    revoked = Revocations()
    return AccessTokens(keys, ISSUER, ttl, is_revoked=revoked), revoked


@pytest.fixture
def tokens() -> AccessTokens:
    return make()[0]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)])


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def issue(tokens: AccessTokens, **overrides: Any) -> tuple[str, dict[str, Any]]:
    args: dict[str, Any] = {"subject": "worker-1", "client_id": "worker-1", "scope": "mcp:tools", "audience": AUD}
    args.update(overrides)
    return tokens.issue(**args)


def resign(tokens: AccessTokens, claims: dict[str, Any], **header: Any) -> str:
    key = tokens.keys.current()
    headers = {"kid": key.kid, "typ": "at+jwt"} | header
    return jwt.encode(claims, key.private, algorithm=key.alg, headers=headers)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_issued_token_follows_rfc_9068(alg: str) -> None:
    tokens, _ = make(alg)
    before = int(time.time())
    token, claims = issue(tokens)
    header, payload = parts(token)
    assert header["typ"] == "at+jwt"  # RFC 9068 §2.1
    assert header["alg"] == alg and header["kid"] == tokens.keys.current().kid
    assert payload == claims
    assert set(payload) == {"iss", "sub", "aud", "client_id", "scope", "jti", "iat", "exp"}
    assert payload["iss"] == ISSUER and payload["aud"] == AUD
    assert payload["sub"] == payload["client_id"] == "worker-1"
    assert payload["scope"] == "mcp:tools"
    assert before <= payload["iat"] <= int(time.time())
    assert payload["exp"] - payload["iat"] == 3600
    assert len(payload["jti"]) >= 16


def test_jtis_are_unique(tokens: AccessTokens) -> None:
    assert len({issue(tokens)[1]["jti"] for _ in range(200)}) == 200


def test_verify_returns_the_claims(tokens: AccessTokens) -> None:
    token, claims = issue(tokens, scope="mcp:tools mcp:resources")
    verified = tokens.verify(token, AUD)
    assert verified.sub == "worker-1" and verified.client_id == "worker-1"
    assert verified.scopes == frozenset({"mcp:tools", "mcp:resources"})
    assert verified.jti == claims["jti"] and verified.exp == claims["exp"] and verified.iss == ISSUER
    assert verified.raw == claims


def test_hs256_round_trip() -> None:
    tokens, _ = make(secret="k" * 32)
    token, _ = issue(tokens)
    assert parts(token)[0]["alg"] == "HS256"
    assert tokens.verify(token, AUD).sub == "worker-1"
    # The same token under another secret is refused.
    other, _ = make(secret="j" * 32)
    with pytest.raises(InvalidTokenError):
        other.verify(token, AUD)


def refusal(tokens: AccessTokens, token: str, audience: str | None = AUD) -> str:
    with pytest.raises(InvalidTokenError) as info:
        if audience is None:
            tokens.decode(token, None)
        else:
            tokens.verify(token, audience)
    assert info.value.status_code == 401
    return info.value.description or ""


def test_refuses_alg_none(tokens: AccessTokens) -> None:
    _, claims = issue(tokens)
    kid = tokens.keys.current().kid
    for alg in ("none", "None", "NONE"):
        assert refusal(tokens, forge({"alg": alg, "typ": "at+jwt", "kid": kid}, claims))


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_refuses_hs256_signed_with_the_public_key(alg: str) -> None:
    # Algorithm confusion (RFC 8725 §2.1): an attacker HMACs with the published public key.
    tokens, _ = make(alg)
    _, claims = issue(tokens)
    key = tokens.keys.current()
    pem = key.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk = json.dumps(tokens.keys.jwks()["keys"][0]).encode()
    for secret in (pem, pem.strip(), jwk):
        header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
        signing_input = ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims).encode())])
        sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert refusal(tokens, signing_input + "." + b64(sig))


def test_refuses_a_token_whose_header_alg_differs_from_the_key(tokens: AccessTokens) -> None:
    other, _ = make("RS256")
    token, _ = issue(other)
    header, payload = parts(token)
    # RS256-signed, but naming our ES256 key: the key's algorithm decides, not the header.
    forged = jwt.encode(
        payload,
        other.keys.current().private,
        algorithm="RS256",
        headers={"kid": tokens.keys.current().kid, "typ": "at+jwt"},
    )
    assert refusal(tokens, forged)


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "at+JWT ", "application/jwt", "id_token+jwt"])
def test_refuses_wrong_typ(tokens: AccessTokens, typ: str | None) -> None:
    _, claims = issue(tokens)
    key = tokens.keys.current()
    headers: dict[str, Any] = {"kid": key.kid}
    if typ is not None:
        headers["typ"] = typ
    token = jwt.encode(claims, key.private, algorithm=key.alg, headers=headers)
    if typ is None:
        # PyJWT adds typ "JWT" when none is given; either way it is not at+jwt.
        assert parts(token)[0].get("typ") != "at+jwt"
    assert "typ" in refusal(tokens, token)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: "no-dots-at-all",
        lambda t: "!!!!." + t.split(".", 1)[1],  # header is not base64url
        lambda t: base64.urlsafe_b64encode(b"[1,2]").decode().rstrip("=") + "." + t.split(".", 1)[1],  # not an object
        lambda t: "A" * 4096 + "." + t.split(".", 1)[1],  # oversized header
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
        lambda t: t + "!",  # junk in the signature (PyJWT's strict character check)
    ],
)
def test_refuses_malformed_tokens(tokens: AccessTokens, mangle: Any) -> None:
    """The header is read once without verification, only to pick the key by kid; everything
    else is PyJWT's strict parse and the signature check."""
    token, _ = issue(tokens)
    assert refusal(tokens, mangle(token))


def test_accepts_the_media_type_spelling_of_typ(tokens: AccessTokens) -> None:
    _, claims = issue(tokens)
    assert tokens.verify(resign(tokens, claims, typ="application/at+jwt"), AUD).sub == "worker-1"


def test_refuses_a_foreign_audience(tokens: AccessTokens) -> None:
    token, _ = issue(tokens, audience="https://other.example/mcp")
    assert "not issued for this resource" in refusal(tokens, token)


def test_a_cached_token_is_still_checked_for_audience(tokens: AccessTokens) -> None:
    token, _ = issue(tokens)
    tokens.verify(token, AUD)
    assert "not issued for this resource" in refusal(tokens, token, "https://other.example/mcp")


def test_audience_may_be_a_list(tokens: AccessTokens) -> None:
    token, _ = issue(tokens, audience=[AUD, "https://other.example/mcp"])
    assert tokens.verify(token, AUD).sub == "worker-1"
    assert tokens.verify(token, "https://other.example/mcp").sub == "worker-1"


@pytest.mark.parametrize("iss", ["http://127.0.0.1:8000/", "http://localhost:8000", "https://evil.example", ""])
def test_refuses_wrong_issuer(tokens: AccessTokens, iss: str) -> None:
    _, claims = issue(tokens)
    assert refusal(tokens, resign(tokens, claims | {"iss": iss}))


def test_refuses_expired(tokens: AccessTokens) -> None:
    now = int(time.time())
    token, _ = issue(tokens, now=now - 3600 - 31)  # past exp by more than the 30 s leeway
    assert "expired" in refusal(tokens, token)


def test_tolerates_small_clock_skew(tokens: AccessTokens) -> None:
    token, _ = issue(tokens, now=int(time.time()) - 3600 - 5)
    assert tokens.verify(token, AUD).sub == "worker-1"


def test_expired_token_is_dropped_from_the_cache(tokens: AccessTokens) -> None:
    token, claims = issue(tokens)
    tokens.verify(token, AUD)
    cached = tokens.cache.get(token, time.time())
    assert cached is not None and cached.jti == claims["jti"]
    # Once exp + leeway has passed the cache forgets it, so verify() re-decodes and refuses.
    assert tokens.cache.get(token, claims["exp"] + 31) is None
    assert token not in tokens.cache._data


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"])
def test_refuses_missing_required_claims(tokens: AccessTokens, claim: str) -> None:
    _, claims = issue(tokens)
    del claims[claim]
    assert refusal(tokens, resign(tokens, claims))


def test_refuses_an_unknown_kid(tokens: AccessTokens) -> None:
    _, claims = issue(tokens)
    assert "unknown key" in refusal(tokens, resign(tokens, claims, kid="no-such-kid"))
    header_without_kid = jwt.encode(claims, tokens.keys.current().private, algorithm="ES256", headers={"typ": "at+jwt"})
    assert "unknown key" in refusal(tokens, header_without_kid)


def test_refuses_a_token_from_another_server_with_the_same_kid(tokens: AccessTokens) -> None:
    other, _ = make()
    _, claims = issue(other)
    forged = jwt.encode(
        claims,
        other.keys.current().private,
        algorithm="ES256",
        headers={"kid": tokens.keys.current().kid, "typ": "at+jwt"},
    )
    assert refusal(tokens, forged)


def test_refuses_a_tampered_payload(tokens: AccessTokens) -> None:
    token, claims = issue(tokens)
    header, _, sig = token.split(".")
    escalated = b64(json.dumps(claims | {"scope": "mcp:tools mcp:admin"}).encode())
    assert refusal(tokens, f"{header}.{escalated}.{sig}")


def test_refuses_a_tampered_signature(tokens: AccessTokens) -> None:
    token, _ = issue(tokens)
    head, body, sig = token.split(".")
    mid = len(sig) // 2
    flipped = sig[:mid] + ("A" if sig[mid] != "A" else "B") + sig[mid + 1 :]
    assert refusal(tokens, f"{head}.{body}.{flipped}")
    assert refusal(tokens, f"{head}.{body}.")


@pytest.mark.parametrize(
    "token", ["", "a", "a.b", "a.b.c", "...", "x" * 5000, "eyJhbGciOiJFUzI1NiJ9.e30.", "\u00e9.\u00e9.\u00e9"]
)
def test_refuses_garbage(tokens: AccessTokens, token: str) -> None:
    assert refusal(tokens, token)


def test_revoked_jti_is_refused_even_when_cached() -> None:
    tokens, revoked = make()
    token, claims = issue(tokens)
    tokens.verify(token, AUD)
    tokens.verify(token, AUD)  # served from the cache
    assert token in tokens.cache._data
    revoked.jtis.add(claims["jti"])
    assert "revoked" in refusal(tokens, token)
    assert revoked.calls == 3  # the revocation list is consulted on every call


def test_cache_is_bounded() -> None:
    keys = KeyRing(MemoryStorage(), alg="ES256", secret=None, overlap_seconds=60)
    keys.ensure()
    tokens = AccessTokens(keys, ISSUER, 3600, is_revoked=lambda _: False, cache_size=3)
    issued = [issue(tokens)[0] for _ in range(5)]
    for t in issued:
        tokens.verify(t, AUD)
    assert list(tokens.cache._data) == issued[2:]


def test_decode_without_audience_skips_only_the_audience(tokens: AccessTokens) -> None:
    token, _ = issue(tokens, audience="https://other.example/mcp")
    assert tokens.decode(token, None).aud == "https://other.example/mcp"
    expired, _ = issue(tokens, now=int(time.time()) - 4000)
    assert "expired" in refusal(tokens, expired, None)
    assert tokens.decode(expired, None, verify_exp=False).sub == "worker-1"


def test_token_signed_by_a_retired_key_verifies_until_the_key_expires() -> None:
    tokens, _ = make()
    token, _ = issue(tokens)
    tokens.keys.rotate()
    tokens.cache._data.clear()
    assert tokens.verify(token, AUD).sub == "worker-1"
    new_token, _ = issue(tokens)
    assert parts(new_token)[0]["kid"] == tokens.keys.current().kid != parts(token)[0]["kid"]


def test_decode_cached_verifies_once_and_still_refuses_forgeries(app: Any) -> None:
    """Introspection's path: a token seen before skips the signature check; a tampered one does not."""
    state = app.extensions["mcp_oauth"]
    with app.app_context():
        token, _ = state.access_tokens.issue(subject="s", client_id="c", scope="mcp:tools", audience="http://x/mcp")
        first = state.access_tokens.decode_cached(token)
        assert state.access_tokens.cache.get(token, first.iat) is first
        assert state.access_tokens.decode_cached(token) is first  # served from the cache
        head, payload, sig = token.split(".")
        forged = f"{head}.{payload}.{sig[:-4]}AAAA"
        with pytest.raises(InvalidTokenError):
            state.access_tokens.decode_cached(forged)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA", "HS256"])
def test_issued_tokens_are_what_jwt_encode_writes_and_verify_without_pyjwt(alg: str) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    tokens, _ = make(alg, secret="s" * 40 if alg == "HS256" else None)
    token, claims = issue(tokens)
    key = tokens.keys.current()
    # Header and payload segments byte for byte as PyJWT's own jwt.encode gives them.
    reference = jwt.encode(claims, key.private, algorithm=alg, headers={"kid": key.kid, "typ": "at+jwt"})
    assert token.split(".")[:2] == reference.split(".")[:2]
    assert jwt.decode(token, key.public, algorithms=[alg], audience=AUD, issuer=ISSUER) == claims
    # The signature checked with cryptography directly (RFC 7515 §5.2, RFC 7518 §3): no PyJWT.
    signing_input, _, signature_b64 = token.rpartition(".")
    signature = base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4))
    data = signing_input.encode()
    if alg == "ES256":
        assert len(signature) == 64  # raw r || s, not DER
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        key.public.verify(der, data, ec.ECDSA(hashes.SHA256()))
    elif alg == "RS256":
        key.public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "EdDSA":
        key.public.verify(signature, data)
    else:
        assert hmac.compare_digest(signature, hmac.new(key.private, data, hashlib.sha256).digest())


def test_a_rotated_or_reloaded_key_signs_from_then_on() -> None:
    tokens, _ = make()
    first, _ = issue(tokens)
    tokens.keys.rotate()
    second, claims = issue(tokens)
    assert parts(first)[0]["kid"] != parts(second)[0]["kid"] == tokens.keys.current().kid
    assert tokens.verify(second, AUD).jti == claims["jti"] and tokens.verify(first, AUD)
    tokens.keys.reload()  # new key objects for the same kids: the signer follows them
    third, _ = issue(tokens)
    assert parts(third)[0]["kid"] == parts(second)[0]["kid"]
    assert tokens.verify(third, AUD)
