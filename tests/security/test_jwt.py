"""JWT access tokens under attack (RFC 8725, RFC 9068 §4, RFC 7515 §4.1.11): every forgery is
refused by both resource-server sides, the in-app guard (``GET /mcp/whoami``) and a worker's
``RemoteResourceServer`` (app/resource.py) that reads this app's metadata and JWKS over HTTP.

Tokens are built by hand (header, payload, signature) so that nothing in a JWT library's
encoder can quietly repair them; most are signed with the server's real key, so the one defect
under test is the only reason to refuse them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.errors import ConfigurationError, InvalidTokenError
from app.keys import public_jwk, thumbprint
from app.resource import RemoteResourceServer
from tests.conftest import ISSUER, MCP_RESOURCE, base_config
from tests.security.conftest import whoami


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def part(value: dict[str, Any] | bytes) -> str:
    return b64(value if isinstance(value, bytes) else json.dumps(value).encode())


class Forge:
    """Builds tokens with the server's real signing key, or any other key."""

    def __init__(self, state: Any) -> None:
        self.key = state.keys.current()
        self.alg, self.kid = self.key.alg, self.key.kid

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": ISSUER,
            "sub": "alice",
            "aud": MCP_RESOURCE,
            "client_id": "client-1",
            "scope": "mcp:tools",
            "jti": b64(hashlib.sha256(str(time.perf_counter_ns()).encode()).digest()[:16]),
            "iat": now,
            "exp": now + 300,
        }
        base.update(changes)
        return {k: v for k, v in base.items() if v is not DROP}

    def header(self, **changes: Any) -> dict[str, Any]:
        base = {"alg": self.alg, "kid": self.kid, "typ": "at+jwt"} | changes
        return {k: v for k, v in base.items() if v is not DROP}

    def sign(
        self, header: dict[str, Any], payload: dict[str, Any] | bytes, key: Any = None, alg: str | None = None
    ) -> str:
        signing_input = f"{part(header)}.{part(payload)}"
        algorithm = jwt.get_algorithm_by_name(alg or self.alg)
        signature = algorithm.sign(signing_input.encode(), key if key is not None else self.key.private)
        return f"{signing_input}.{b64(signature)}"

    def token(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        return self.sign(header or self.header(), self.claims(**claims))


DROP = object()  # a claim or header left out


class RecordingTransport(httpx.WSGITransport):
    """The worker's view of the AS (this app, over WSGI), with every requested URL recorded and
    optionally extra keys slipped into the JWKS."""

    def __init__(self, app: Any, extra_keys: list[dict[str, Any]] | None = None) -> None:
        super().__init__(app=app)
        self.urls: list[str] = []
        self.extra_keys = extra_keys or []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        response = super().handle_request(request)
        if request.url.path == "/.well-known/jwks.json" and self.extra_keys:
            response.read()
            keys = response.json()["keys"] + self.extra_keys
            return httpx.Response(200, json={"keys": keys})
        return response


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app for the whole module: a refused forgery changes nothing (the revocation test
    revokes only a token of its own)."""
    app = create_app(base_config(tmp_path_factory.mktemp("jwt")))
    yield app
    app.extensions["mcp_oauth"].close()


@pytest.fixture
def forge(state: Any) -> Forge:
    return Forge(state)


@pytest.fixture
def transport(client: FlaskClient) -> RecordingTransport:
    return RecordingTransport(client.application)


@pytest.fixture
def worker(transport: RecordingTransport) -> RemoteResourceServer:
    return RemoteResourceServer(ISSUER, MCP_RESOURCE, http=httpx.Client(transport=transport))


@pytest.fixture(params=["guard", "worker"])
def refuses(request: pytest.FixtureRequest, client: FlaskClient, worker: RemoteResourceServer) -> Callable[[str], None]:
    """Asserts that a token is refused as invalid (401 / InvalidTokenError), never a crash."""

    def guard(token: str) -> None:
        r = whoami(client, token)
        assert r.status_code == 401, (r.status_code, r.get_data()[:200])
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]

    def remote(token: str) -> None:
        with pytest.raises(InvalidTokenError):
            worker.verify(token)

    return guard if request.param == "guard" else remote


@pytest.fixture(params=["guard", "worker"])
def accepts(request: pytest.FixtureRequest, client: FlaskClient, worker: RemoteResourceServer) -> Callable[[str], None]:
    def guard(token: str) -> None:
        r = whoami(client, token)
        assert r.status_code == 200, r.headers.get("WWW-Authenticate")

    def remote(token: str) -> None:
        assert worker.verify(token).sub == "alice"

    return guard if request.param == "guard" else remote


def test_rfc9068_4_validation_accepts_a_genuine_token(forge: Forge, accepts: Callable[[str], None]) -> None:
    """The control: a well-formed token passes both sides, so each refusal below has one cause."""
    accepts(forge.token())
    accepts(forge.token(forge.header(typ="application/at+jwt")))


# -- RFC 8725 §3.1: algorithm verification ---------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_rfc8725_3_1_algorithm_verification_alg_none(forge: Forge, refuses: Callable[[str], None], alg: str) -> None:
    header = forge.header(alg=alg)
    refuses(f"{part(header)}.{part(forge.claims())}.")
    refuses(f"{part(header)}.{part(forge.claims())}")


@pytest.mark.parametrize("material", ["pem", "pem-pkcs1", "jwk-json", "jwk-x"])
def test_rfc8725_3_1_algorithm_verification_hs256_with_the_public_key(
    forge: Forge, client: FlaskClient, refuses: Callable[[str], None], material: str
) -> None:
    """Algorithm confusion: HS256 keyed with the published public key, in each form an attacker
    can fetch it (PEM, the JWK JSON, a JWK member)."""
    public = forge.key.public
    jwk = next(k for k in client.get("/.well-known/jwks.json").get_json()["keys"] if k["kid"] == forge.kid)
    secret = {
        "pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "pem-pkcs1": public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "jwk-json": json.dumps(jwk).encode(),
        "jwk-x": jwk["x"].encode(),
    }[material]
    header = forge.header(alg="HS256")
    signing_input = f"{part(header)}.{part(forge.claims())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    refuses(f"{signing_input}.{b64(signature)}")


@pytest.mark.parametrize("alg", ["ES384", "ES512", "RS256", "PS256", "EdDSA", "HS512"])
def test_rfc8725_3_1_algorithm_verification_header_alg_ignored(
    forge: Forge, refuses: Callable[[str], None], alg: str
) -> None:
    """The algorithm comes from the key, never the header: a real signature under another label
    is refused."""
    token = forge.token()
    _, payload, signature = token.split(".")
    refuses(f"{part(forge.header(alg=alg))}.{payload}.{signature}")


# -- §3.2, §3.3, §3.5: algorithms, signatures, key strength ----------------------------------------


def test_rfc8725_3_2_appropriate_algorithms(client: FlaskClient, forge: Forge) -> None:
    """Asymmetric ES256 by default; a worker drops symmetric keys from a JWKS, so a shared
    secret published there (or slipped in) cannot sign tokens it accepts."""
    assert forge.alg == "ES256"
    assert all(k["kty"] != "oct" for k in client.get("/.well-known/jwks.json").get_json()["keys"])
    secret = b"0123456789abcdef0123456789abcdef"
    transport = RecordingTransport(
        client.application, extra_keys=[{"kty": "oct", "kid": "hs", "k": b64(secret), "alg": "HS256"}]
    )
    worker = RemoteResourceServer(ISSUER, MCP_RESOURCE, http=httpx.Client(transport=transport))
    header = forge.header(alg="HS256", kid="hs")
    signing_input = f"{part(header)}.{part(forge.claims())}"
    token = f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
    with pytest.raises(InvalidTokenError, match="unknown key"):
        worker.verify(token)


def test_rfc8725_3_3_validate_cryptographic_operations(forge: Forge, refuses: Callable[[str], None]) -> None:
    genuine = forge.token()
    header, payload, signature = genuine.split(".")
    escalated = part(forge.claims(scope="mcp:tools mcp:admin", sub="admin"))
    refuses(f"{header}.{escalated}.{signature}")  # payload changed
    sig = bytearray(base64.urlsafe_b64decode(signature + "=="))
    sig[-1] ^= 1
    refuses(f"{header}.{payload}.{b64(bytes(sig))}")  # one bit flipped
    refuses(f"{header}.{payload}.{signature[:20]}")  # truncated
    refuses(f"{header}.{payload}.")  # stripped
    other = ec.generate_private_key(ec.SECP256R1())
    refuses(forge.sign(forge.header(), forge.claims(), key=other))  # another key, our kid


def test_rfc8725_3_5_key_entropy(tmp_path: Any, client: FlaskClient) -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        create_app(base_config(tmp_path, OAUTH_TOKEN_SECRET="correct horse battery staple"))
    keys = client.get("/.well-known/jwks.json").get_json()["keys"]
    assert keys and all(k["kty"] == "EC" and k["crv"] == "P-256" for k in keys)


# -- §3.7 - §3.12 -------------------------------------------------------------------------------------


def test_rfc8725_3_7_utf8(forge: Forge, refuses: Callable[[str], None]) -> None:
    """The header is read before any signature is checked (to find the key), so it is where an
    attacker's bytes arrive: non-UTF-8 there (or in a validly signed payload) is a refusal,
    never a crash."""
    refuses(forge.sign(forge.header(), b'{"iss":"\xff\xfe"}'))  # payload not UTF-8
    for bad_header in (
        b'{"alg":"ES256","typ":"at+jwt","kid":"\xff"}',
        b'{"alg":"ES256","typ":"at+jwt","kid":"\xed\xa0\x80"}',  # an encoded surrogate
        b'{"alg":"ES256","typ":"at+jwt","kid":"\\ud800"}',  # an escaped one
        b"\xfe\xff\x00{",
    ):
        signing_input = f"{b64(bad_header)}.{part(forge.claims())}"
        signature = jwt.get_algorithm_by_name("ES256").sign(signing_input.encode(), forge.key.private)
        refuses(f"{signing_input}.{b64(signature)}")
    refuses("\u00e9.\u00e9.\u00e9")


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": DROP},
        {"iss": "https://evil.example"},
        {"iss": ISSUER + "/"},
        {"iss": ISSUER.upper()},
        {"iss": [ISSUER]},
        {"sub": DROP},
    ],
    ids=["iss-missing", "iss-foreign", "iss-trailing-slash", "iss-case", "iss-list", "sub-missing"],
)
def test_rfc8725_3_8_issuer_and_subject(forge: Forge, refuses: Callable[[str], None], claims: dict[str, Any]) -> None:
    refuses(forge.token(**claims))


@pytest.mark.parametrize(
    "aud",
    [DROP, "https://evil.example/mcp", MCP_RESOURCE + "/", ["https://evil.example/mcp"], [], "", ISSUER],
    ids=["missing", "foreign", "trailing-slash", "foreign-list", "empty-list", "empty", "the-issuer"],
)
def test_rfc8725_3_9_audience(forge: Forge, refuses: Callable[[str], None], aud: Any) -> None:
    refuses(forge.token(aud=aud))


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../etc/passwd",
        "/dev/null",
        "' OR '1'='1",
        "x'; DROP TABLE signing_keys; --",
        "\x00",
        "k" * 10000,
        "%00",
        1,
        ["a"],
        None,
        {"$ne": ""},
    ],
    ids=["path", "dev-null", "sql-or", "sql-drop", "nul", "huge", "pct-nul", "int", "list", "null", "object"],
)
def test_rfc8725_3_10_received_claims_kid_injection(
    forge: Forge, refuses: Callable[[str], None], state: Any, kid: Any
) -> None:
    # Signed with the real key: only the kid is wrong, and it must not select anything.
    refuses(forge.sign(forge.header(kid=kid), forge.claims()))
    # HMAC keyed with the empty string / the file a path would read: nothing to find either.
    header = forge.header(kid=kid, alg="HS256")
    signing_input = f"{part(header)}.{part(forge.claims())}"
    refuses(f"{signing_input}.{b64(hmac.new(b'', signing_input.encode(), hashlib.sha256).digest())}")
    assert [k.kid for k in state.storage.list_signing_keys()] == [forge.kid]  # the keys table is intact


@pytest.mark.parametrize("kid", ["attacker", "ours"])
def test_rfc8725_3_10_received_claims_key_headers_ignored(
    forge: Forge, refuses: Callable[[str], None], transport: RecordingTransport, kid: str
) -> None:
    """jwk, jku, x5u and x5c in a header are never used: a token signed with the attacker's key
    and carrying that key (or a URL to it) is refused, and nothing is fetched from the URL."""
    attacker = ec.generate_private_key(ec.SECP256R1())
    attacker_jwk = public_jwk("ES256", attacker.public_key())
    header = forge.header(
        kid=thumbprint(attacker_jwk) if kid == "attacker" else forge.kid,
        jwk=attacker_jwk | {"kid": thumbprint(attacker_jwk)},
        jku="https://attacker.example/jwks.json",
        x5u="https://attacker.example/cert.pem",
        x5c=["MIIBattacker"],
    )
    refuses(forge.sign(header, forge.claims(), key=attacker))
    assert not [u for u in transport.urls if "attacker" in u], transport.urls


@pytest.mark.parametrize("typ", [DROP, "JWT", "jwt", "application/jwt", "at+jws", "id_token+jwt", "dpop+jwt", "", 1])
def test_rfc8725_3_11_explicit_typing(forge: Forge, refuses: Callable[[str], None], typ: Any) -> None:
    refuses(forge.token(forge.header(typ=typ)))


@pytest.mark.parametrize("kind", ["id-token", "dpop-proof", "client-assertion", "logout-token"])
def test_rfc8725_3_12_mutually_exclusive_rules(forge: Forge, refuses: Callable[[str], None], kind: str) -> None:
    """JWTs of other kinds, even signed by this server's key and carrying plausible claims,
    never pass as access tokens: typ at+jwt is required and the claims differ."""
    now = int(time.time())
    header, claims = {
        "id-token": (forge.header(typ="JWT"), forge.claims(aud="client-1", nonce="n", client_id=DROP, scope=DROP)),
        "dpop-proof": (forge.header(typ="dpop+jwt"), {"htm": "GET", "htu": MCP_RESOURCE, "iat": now, "jti": "j"}),
        "client-assertion": (
            forge.header(typ="JWT"),
            forge.claims(iss="client-1", sub="client-1", aud=ISSUER + "/oauth/token"),
        ),
        "logout-token": (
            forge.header(typ="logout+jwt"),
            forge.claims(events={"http://schemas.openid.net/event/backchannel-logout": {}}),
        ),
    }[kind]
    refuses(forge.sign(header, claims))


# -- RFC 9068 §4 and RFC 7515 §4.1.11 ------------------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": DROP},
        {"exp": int(time.time()) - 3600},
        {"exp": "tomorrow"},
        {"exp": None},
        {"nbf": int(time.time()) + 3600},
        {"iat": DROP},
        {"jti": DROP},
        {"client_id": DROP},
    ],
    ids=[
        "exp-missing",
        "exp-past",
        "exp-string",
        "exp-null",
        "nbf-future",
        "iat-missing",
        "jti-missing",
        "client_id-missing",
    ],
)
def test_rfc9068_4_validation_claims(forge: Forge, refuses: Callable[[str], None], claims: dict[str, Any]) -> None:
    refuses(forge.token(**claims))


def test_rfc9068_4_validation_revoked_token(forge: Forge, client: FlaskClient, state: Any) -> None:
    """The guard checks revocation on every request (a worker on JWKS learns of it only through
    introspection or expiry: see README, workers)."""
    token = forge.token()
    assert whoami(client, token).status_code == 200
    state.token_store.revoke_jti(jwt.decode(token, options={"verify_signature": False})["jti"], int(time.time()) + 600)
    assert whoami(client, token).status_code == 401


@pytest.mark.parametrize(
    "crit",
    [["exp"], ["http://example.com/ext"], [], "exp", ["alg"]],
    ids=["registered-name", "unknown-extension", "empty", "not-a-list", "jws-header-name"],
)
def test_rfc7515_4_1_11_crit(forge: Forge, refuses: Callable[[str], None], crit: Any) -> None:
    header = forge.header(crit=crit, exp=1) | {"http://example.com/ext": 1}
    refuses(forge.sign(header, forge.claims()))
