"""RemoteResourceServer against a fake authorization server (httpx.MockTransport, no network)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask import Blueprint, Flask

from app.errors import ConfigurationError, InvalidTokenError, TemporarilyUnavailableError, register_error_handlers
from app.guard import current_token, protect, require_scope
from app.keys import public_jwk
from app.resource import RemoteResourceServer, init_resource_server

ISSUER = "https://as.example"
RESOURCE = "https://worker.example/mcp"


class FakeAS:
    """Serves metadata, a JWKS and introspection; counts requests per path."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, Any]] = {}
        self.hits: dict[str, int] = {}
        self.issuer = ISSUER
        self.down = False
        self.extra_jwks: list[dict[str, Any]] = []
        self.introspection: dict[str, dict[str, Any]] = {}
        self.add_key("k1")

    def add_key(self, kid: str, alg: str = "ES256") -> Any:
        private: Any = {
            "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
            "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "EdDSA": ed25519.Ed25519PrivateKey.generate,
        }[alg]()
        self.keys[kid] = (alg, private)
        return private

    def token(self, kid: str = "k1", *, header: dict[str, Any] | None = None, **claims: Any) -> str:
        alg, key = self.keys[kid]
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "sub": "alice",
            "aud": RESOURCE,
            "client_id": "c1",
            "scope": "mcp:tools",
            "jti": "j1",
            "iat": now,
            "exp": now + 300,
        } | claims
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid, "typ": "at+jwt"} | (header or {}))

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.hits[path] = self.hits.get(path, 0) + 1
        if self.down:
            raise httpx.ConnectError("down")
        if path == "/.well-known/oauth-authorization-server":
            return httpx.Response(
                200,
                json={
                    "issuer": self.issuer,
                    "jwks_uri": f"{ISSUER}/.well-known/jwks.json",
                    "introspection_endpoint": f"{ISSUER}/oauth/introspect",
                    "scopes_supported": ["mcp:tools", "mcp:resources"],
                },
            )
        if path == "/.well-known/jwks.json":
            keys = [
                public_jwk(alg, k.public_key()) | {"kid": kid, "use": "sig", "alg": alg}
                for kid, (alg, k) in self.keys.items()
            ]
            return httpx.Response(200, json={"keys": keys + self.extra_jwks})
        if path == "/oauth/introspect":
            assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"rs:secret").decode()
            form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
            return httpx.Response(200, json=self.introspection.get(form["token"], {"active": False}))
        return httpx.Response(404)


@pytest.fixture
def fake() -> FakeAS:
    return FakeAS()


@pytest.fixture
def make_rs(fake: FakeAS) -> Callable[..., RemoteResourceServer]:
    def make(**kw: Any) -> RemoteResourceServer:
        return RemoteResourceServer(
            ISSUER, RESOURCE, http=httpx.Client(transport=httpx.MockTransport(fake.handler)), **kw
        )

    return make


def test_verifies_a_token_from_the_jwks(fake: FakeAS, make_rs: Callable[..., RemoteResourceServer]) -> None:
    rs = make_rs()
    claims = rs.verify(fake.token())
    assert (claims.sub, claims.client_id, claims.scopes, claims.aud) == ("alice", "c1", {"mcp:tools"}, RESOURCE)
    assert fake.hits == {"/.well-known/oauth-authorization-server": 1, "/.well-known/jwks.json": 1}
    rs.verify(fake.token(jti="j2"))
    assert fake.hits["/.well-known/jwks.json"] == 1  # keys are cached


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
def test_other_algorithms(fake: FakeAS, make_rs: Callable[..., RemoteResourceServer], alg: str) -> None:
    fake.add_key("k2", alg)
    assert make_rs().verify(fake.token("k2")).sub == "alice"


@pytest.mark.parametrize(
    ("claims", "header", "reason"),
    [
        ({"aud": "https://other.example/mcp"}, {}, "not issued for this resource"),
        ({"aud": RESOURCE + "/extra"}, {}, "not issued for this resource"),
        ({"iss": "https://as.example/"}, {}, "invalid"),
        ({"exp": int(time.time()) - 120}, {}, "expired"),
        ({}, {"typ": "JWT"}, "typ must be"),
        ({}, {"kid": "nope"}, "unknown key"),
    ],
)
def test_refuses_bad_tokens(
    fake: FakeAS,
    make_rs: Callable[..., RemoteResourceServer],
    claims: dict[str, Any],
    header: dict[str, Any],
    reason: str,
) -> None:
    if header.get("kid") == "nope":
        token = fake.token()
        head, rest = token.split(".", 1)
        decoded = json.loads(base64.urlsafe_b64decode(head + "=="))
        head = base64.urlsafe_b64encode(json.dumps(decoded | header).encode()).rstrip(b"=").decode()
        token = f"{head}.{rest}"
    else:
        token = fake.token(header=header, **claims)
    with pytest.raises(InvalidTokenError, match=reason):
        make_rs().verify(token)


def test_missing_claims_are_refused(fake: FakeAS, make_rs: Callable[..., RemoteResourceServer]) -> None:
    _, key = fake.keys["k1"]
    token = jwt.encode(
        {"iss": ISSUER, "aud": RESOURCE, "exp": int(time.time()) + 60},
        key,
        "ES256",
        headers={"kid": "k1", "typ": "at+jwt"},
    )
    with pytest.raises(InvalidTokenError):
        make_rs().verify(token)


def test_algorithm_comes_from_the_jwk_not_the_header(
    fake: FakeAS, make_rs: Callable[..., RemoteResourceServer]
) -> None:
    rs = make_rs()
    rs.verify(fake.token())
    # HS256 "signed" with the public key as the secret: the classic confusion attack.
    _, key = fake.keys["k1"]
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"k1","typ":"at+jwt"}').rstrip(b"=").decode()
    body = fake.token().split(".")[1]
    sig = base64.urlsafe_b64encode(hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()).rstrip(b"=")
    with pytest.raises(InvalidTokenError):
        rs.verify(f"{head}.{body}.{sig.decode()}")
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none","kid":"k1","typ":"at+jwt"}').rstrip(b"=").decode()
    with pytest.raises(InvalidTokenError):
        rs.verify(f"{unsigned}.{body}.")


def test_symmetric_jwks_entries_are_ignored(fake: FakeAS, make_rs: Callable[..., RemoteResourceServer]) -> None:
    secret = b"s" * 32
    fake.extra_jwks.append(
        {"kty": "oct", "kid": "hs", "alg": "HS256", "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()}
    )
    now = int(time.time())
    token = jwt.encode(
        {"iss": ISSUER, "sub": "x", "aud": RESOURCE, "client_id": "c", "jti": "j", "iat": now, "exp": now + 60},
        secret,
        "HS256",
        headers={"kid": "hs", "typ": "at+jwt"},
    )
    with pytest.raises(InvalidTokenError, match="unknown key"):
        make_rs().verify(token)


def test_unknown_kid_refetches_once_per_interval(fake: FakeAS, make_rs: Callable[..., RemoteResourceServer]) -> None:
    rs = make_rs(refetch_interval=0.3)
    rs.verify(fake.token())
    fake.add_key("k2")  # rotated in on the AS
    assert rs.verify(fake.token("k2")).sub == "alice"
    assert fake.hits["/.well-known/jwks.json"] == 2
    # Forged kids cannot make it fetch again within the interval...
    fake.add_key("k3")
    for _ in range(5):
        with pytest.raises(InvalidTokenError, match="unknown key"):
            rs.verify(fake.token("k3"))
    assert fake.hits["/.well-known/jwks.json"] == 2
    # ...but after it, the new key is picked up.
    time.sleep(0.35)
    assert rs.verify(fake.token("k3")).sub == "alice"
    assert fake.hits["/.well-known/jwks.json"] == 3


def test_removed_keys_stop_working_after_max_age(fake: FakeAS, make_rs: Callable[..., RemoteResourceServer]) -> None:
    rs = make_rs(jwks_max_age=0.2, refetch_interval=0)
    rs.verify(fake.token())
    later = fake.token(jti="later")  # signed by k1, not yet seen by the worker
    del fake.keys["k1"]  # the AS stopped publishing k1
    time.sleep(0.25)
    with pytest.raises(InvalidTokenError, match="unknown key"):
        rs.verify(later)


def test_issuer_must_match_byte_for_byte(fake: FakeAS, make_rs: Callable[..., RemoteResourceServer]) -> None:
    fake.issuer = ISSUER + "/"
    with pytest.raises(TemporarilyUnavailableError):
        make_rs().verify(fake.token())


def test_unreachable_as_is_503_not_401(fake: FakeAS, make_rs: Callable[..., RemoteResourceServer]) -> None:
    fake.down = True
    rs = make_rs(refetch_interval=60)
    with pytest.raises(TemporarilyUnavailableError):
        rs.verify(fake.token())
    with pytest.raises(TemporarilyUnavailableError):
        rs.verify(fake.token())
    assert fake.hits["/.well-known/oauth-authorization-server"] == 1  # retried only after the interval


def test_keys_survive_a_later_outage(fake: FakeAS, make_rs: Callable[..., RemoteResourceServer]) -> None:
    rs = make_rs(jwks_max_age=0, refetch_interval=0)
    rs.verify(fake.token())
    fake.down = True
    assert rs.verify(fake.token(jti="other")).sub == "alice"


@pytest.mark.parametrize("issuer", ["http://as.example", "ftp://as.example"])
def test_issuer_must_be_https_unless_loopback(issuer: str) -> None:
    with pytest.raises(ConfigurationError):
        RemoteResourceServer(issuer, RESOURCE)
    RemoteResourceServer("http://127.0.0.1:8000", "http://127.0.0.1:9000/mcp")


def test_resource_is_canonicalised() -> None:
    rs = RemoteResourceServer(ISSUER, "HTTPS://Worker.Example/mcp/")
    assert rs.resource == RESOURCE
    assert rs.resource_metadata_url == "https://worker.example/.well-known/oauth-protected-resource/mcp"


# -- introspection ---------------------------------------------------------------------------


def _active(**extra: Any) -> dict[str, Any]:
    return {
        "active": True,
        "sub": "bob",
        "client_id": "c2",
        "scope": "mcp:tools",
        "aud": RESOURCE,
        "iss": ISSUER,
        "exp": int(time.time()) + 300,
        "iat": int(time.time()),
        "jti": "j9",
        "token_type": "Bearer",
    } | extra


def test_introspection_accepts_and_caches(fake: FakeAS, make_rs: Callable[..., RemoteResourceServer]) -> None:
    fake.introspection["t1"] = _active()
    rs = make_rs(introspection=("rs", "secret"), introspection_cache_seconds=0.3)
    claims = rs.verify("t1")
    assert (claims.sub, claims.client_id, claims.scopes) == ("bob", "c2", {"mcp:tools"})
    rs.verify("t1")
    assert fake.hits["/oauth/introspect"] == 1
    fake.introspection["t1"] = {"active": False}  # revoked on the AS
    assert rs.verify("t1").sub == "bob"  # still cached...
    time.sleep(0.35)
    with pytest.raises(InvalidTokenError, match="not active"):
        rs.verify("t1")  # ...until the cache entry runs out


def test_introspection_cache_never_outlives_exp(fake: FakeAS, make_rs: Callable[..., RemoteResourceServer]) -> None:
    fake.introspection["t1"] = _active(exp=int(time.time()) + 1)
    rs = make_rs(introspection=("rs", "secret"), introspection_cache_seconds=60)
    rs.verify("t1")
    time.sleep(1.1)
    with pytest.raises(InvalidTokenError):
        rs.verify("t1")
    assert fake.hits["/oauth/introspect"] == 2


@pytest.mark.parametrize(
    "answer",
    [
        {"active": False},
        {"active": "true"},
        _active(aud="https://other.example/mcp"),
        _active(iss="https://evil.example"),
        _active(token_type="refresh_token"),
        _active(exp=int(time.time()) - 1),
        _active(exp="soon"),
    ],
)
def test_introspection_refusals(
    fake: FakeAS, make_rs: Callable[..., RemoteResourceServer], answer: dict[str, Any]
) -> None:
    fake.introspection["t"] = answer
    with pytest.raises(InvalidTokenError):
        make_rs(introspection=("rs", "secret")).verify("t")


# -- in a Flask app --------------------------------------------------------------------------


def test_guard_and_metadata_in_a_worker_app(fake: FakeAS, make_rs: Callable[..., RemoteResourceServer]) -> None:
    app = Flask(__name__)
    register_error_handlers(app)
    init_resource_server(app, make_rs(resource_name="Worker"))
    bp = protect(Blueprint("w", __name__))

    @bp.get("/mcp/whoami")
    @require_scope("mcp:tools")
    def whoami() -> Any:
        return {"sub": current_token().sub}

    app.register_blueprint(bp)
    c = app.test_client()
    r = c.get("/mcp/whoami")
    assert r.status_code == 401
    assert (
        'resource_metadata="https://worker.example/.well-known/oauth-protected-resource/mcp"'
        in (r.headers["WWW-Authenticate"])
    )
    assert c.get("/mcp/whoami", headers={"Authorization": f"Bearer {fake.token()}"}).get_json() == {"sub": "alice"}
    r = c.get("/mcp/whoami", headers={"Authorization": f"Bearer {fake.token(scope='mcp:resources')}"})
    assert r.status_code == 403
    other = fake.token(aud="https://other.example/mcp")
    assert c.get("/mcp/whoami", headers={"Authorization": f"Bearer {other}"}).status_code == 401
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        doc = c.get(path).get_json()
        assert doc == {
            "resource": RESOURCE,
            "authorization_servers": [ISSUER],
            "scopes_supported": ["mcp:resources", "mcp:tools"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Worker",
        }
    fake.down = True
    fresh = make_rs()
    app.extensions["mcp_oauth_resource"] = fresh
    r = c.get("/mcp/whoami", headers={"Authorization": f"Bearer {fake.token()}"})
    assert r.status_code == 503 and r.get_json()["error"] == "temporarily_unavailable"
