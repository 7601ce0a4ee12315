"""Properties of the registration, token and authorization endpoints through the test client.

Arbitrary parameters (names and values, repeats, empty values, odd Unicode, percent-encoding
garbage, raw non-UTF-8 bytes, wrong content types, bodies around MAX_CONTENT_LENGTH) never give
a 5xx; every refusal is RFC-shaped (a JSON error object, or at the authorization endpoint the
HTML error page or a redirect to a verified redirect URI); and a refused request never creates a
client, code, refresh token, token record or consent. Run on the memory backend and on SQLite.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
from flask import Flask
from hypothesis import event, given
from hypothesis import strategies as st

from app.core import secrets
from app.models import InitialAccessToken
from app.oauth.register import new_client, validate_metadata
from app.state import OAuthState
from tests.conftest import ISSUER, MCP_RESOURCE
from tests.property.conftest import examples
from tests.property.support import (
    FORM_TYPES,
    GARBAGE_PIECES,
    JSON_TYPES,
    MAX_CONTENT_LENGTH,
    assert_error_page,
    assert_not_server_error,
    assert_nothing_created,
    assert_rfc_error,
    assert_verified_redirect,
    counts,
    encode_text,
    form_bodies,
    param_values,
)
from tests.property.test_registration_schema import json_values, metadata_like
from tests.support.grants import add_person, store_code
from tests.support.people import pkce_pair

LOOPBACK = "http://127.0.0.1:8765/callback"
PRIVATE_USE = "com.example.app:/callback"
HTTPS_WITH_QUERY = "https://app.example.com/cb?tenant=7"
DYNAMIC_HTTPS = "https://dyn.example.com/cb"


@dataclass
class Env:
    app: Flask
    state: OAuthState
    cc: tuple[str, str]  # client_credentials client (id, secret)
    conf: tuple[str, str]  # confidential authorization_code client
    public: str  # public authorization_code client
    dynamic: str  # dynamically registered (unverified) public client
    iat: str  # an initial access token
    redirects: dict[str, list[str]] = field(default_factory=dict)
    known: list[str] = field(default_factory=list)  # values worth trying in any parameter


def _cli_client(state: OAuthState, **metadata: Any) -> tuple[str, str | None]:
    client, secret, _ = new_client(state, validate_metadata(state, metadata), registered_by="cli")
    return client.client_id, secret


@pytest.fixture(scope="module")
def env(backend_app: Flask) -> Env:
    """Seeded clients, codes, a refresh token and an initial access token, so generated requests
    can carry real values and reach deep into the endpoints."""
    app = backend_app
    state: OAuthState = app.extensions["mcp_oauth"]
    with app.app_context():
        cc_id, cc_secret = _cli_client(state, grant_types=["client_credentials"], scope="mcp:tools mcp:resources")
        conf_id, conf_secret = _cli_client(
            state,
            grant_types=["authorization_code", "refresh_token"],
            redirect_uris=[HTTPS_WITH_QUERY, LOOPBACK],
            token_endpoint_auth_method="client_secret_post",
        )
        pub_id, _ = _cli_client(
            state,
            grant_types=["authorization_code", "refresh_token"],
            redirect_uris=[LOOPBACK, PRIVATE_USE],
            token_endpoint_auth_method="none",
        )
        iat = secrets.new_token()
        state.storage.save_initial_access_token(InitialAccessToken(secrets.token_hash(iat), state.now(), 0))
        add_person(state.storage, "alice")
    assert cc_secret and conf_secret
    client = app.test_client()
    reg = client.post("/oauth/register", json={"redirect_uris": [DYNAMIC_HTTPS], "token_endpoint_auth_method": "none"})
    assert reg.status_code == 201, reg.get_json()
    dyn_id = reg.get_json()["client_id"]
    codes = [store_code(state.token_store, pub_id, redirect_uri=LOOPBACK) for _ in range(3)]
    codes.append(store_code(state.token_store, conf_id, redirect_uri=""))
    first = client.post("/oauth/token", data=codes.pop(0).params())
    assert first.status_code == 200, first.get_json()
    known = [
        "authorization_code", "refresh_token", "client_credentials", "password", "code", "token", "S256", "plain",
        "mcp:tools", "mcp:tools mcp:resources", "openid", MCP_RESOURCE, "https://other.example/mcp",
        cc_id, cc_secret, conf_id, conf_secret, pub_id, dyn_id, "unknown-client",
        LOOPBACK, "http://127.0.0.1:9999/callback", "http://localhost:8765/callback", PRIVATE_USE, HTTPS_WITH_QUERY,
        DYNAMIC_HTTPS, "https://evil.example/cb", "javascript:alert(1)",
        first.get_json()["refresh_token"], first.get_json()["access_token"], pkce_pair()[1], pkce_pair()[0],
        "none", "login", "consent", "switch", "approve", "deny", "yes",
    ]  # fmt: skip
    for issued in codes:
        known += [issued.code, issued.verifier]
    return Env(
        app=app,
        state=state,
        cc=(cc_id, cc_secret),
        conf=(conf_id, conf_secret),
        public=pub_id,
        dynamic=dyn_id,
        iat=iat,
        redirects={
            conf_id: [HTTPS_WITH_QUERY, LOOPBACK],
            pub_id: [LOOPBACK, PRIVATE_USE],
            dyn_id: [DYNAMIC_HTTPS],
        },
        known=known,
    )


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def auth_headers(env: Env) -> st.SearchStrategy[str | None]:
    return st.sampled_from(
        [
            None,
            None,
            basic(*env.cc),
            basic(*env.conf),
            basic(env.cc[0], "wrong"),
            basic(env.public, ""),
            "Basic !!!",
            "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode(),
            "Basic " + base64.b64encode(b"no-colon").decode(),
            "Bearer " + env.iat,
            "Bearer ",
            "Digest x",
        ]
    )


def _headers(ctype: str, auth: str | None) -> dict[str, str]:
    headers = {"Content-Type": ctype} if ctype else {}
    if auth is not None:
        headers["Authorization"] = auth
    return headers


# -- token endpoint -----------------------------------------------------------------------------

TOKEN_NAMES = [
    "grant_type", "code", "code_verifier", "redirect_uri", "client_id", "client_secret", "refresh_token", "scope",
    "resource", "access_token", "assertion", "username", "password", "audience",
]  # fmt: skip


FORM = "application/x-www-form-urlencoded"
DELETE = object()  # a perturbation that removes the parameter


def _fresh_request(env: Env, kind: str) -> tuple[dict[str, str], str | None]:
    """A valid token request of ``kind`` (with fresh single-use values stored for it) and its
    Authorization header."""
    if kind == "client_credentials":
        return {"grant_type": "client_credentials", "scope": "mcp:tools"}, basic(*env.cc)
    issued = store_code(env.state.token_store, env.public, redirect_uri=LOOPBACK)
    if kind == "authorization_code":
        return issued.params(), None
    first = env.app.test_client().post("/oauth/token", data=issued.params())
    assert first.status_code == 200, first.get_json()
    refresh = first.get_json()["refresh_token"]
    return {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": env.public}, None


@examples(220)
@given(data=st.data())
def test_token_endpoint_refusals_are_rfc_shaped_and_create_nothing(env: Env, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["client_credentials", "authorization_code", "refresh_token", "free"]), "kind")
    values = param_values(env.known)
    if kind == "free":
        body = data.draw(form_bodies(TOKEN_NAMES, values), label="body")
        auth = data.draw(auth_headers(env), label="authorization")
    else:
        # A valid request with a few parameters changed, removed or added, and maybe garbage.
        params, auth = _fresh_request(env, kind)
        changes = data.draw(
            st.lists(st.tuples(st.sampled_from(TOKEN_NAMES), st.just(DELETE) | values), max_size=3), "changes"
        )
        for name, value in changes:
            if value is DELETE:
                params.pop(name, None)
            else:
                params[name] = value  # type: ignore[assignment]
        body = b"&".join(f"{encode_text(k)}={encode_text(v)}".encode("ascii") for k, v in params.items())
        if data.draw(st.integers(0, 3), "garbage") == 0:
            body += b"&" + data.draw(form_bodies(TOKEN_NAMES, values), label="tail")
        if data.draw(st.integers(0, 3), "other auth") == 0:
            auth = data.draw(auth_headers(env), label="authorization")
    ctype = data.draw(st.just(FORM) | FORM_TYPES, label="content_type")
    path = data.draw(st.sampled_from(["/oauth/token", "/token"]), label="path")
    before = counts(env.state)
    r = env.app.test_client().post(path, data=body, headers=_headers(ctype, auth))
    event(f"{kind}: status {r.status_code}")
    assert_not_server_error(r)
    if r.status_code == 200:
        got = r.get_json()
        assert got["token_type"] == "Bearer" and got["access_token"] and "no-store" in r.headers["Cache-Control"]
        return
    assert_rfc_error(r)
    assert_nothing_created(before, counts(env.state))
    if r.status_code == 401:
        assert r.headers.get("WWW-Authenticate", "").startswith("Basic"), r.headers


# -- registration endpoint ----------------------------------------------------------------------


@st.composite
def json_bodies(draw: Any) -> bytes:
    """Registration bodies: metadata-like objects, any JSON value, or broken bytes."""
    kind = draw(st.sampled_from(["metadata", "metadata", "json", "raw", "padded"]))
    if kind == "raw":
        return draw(
            st.sampled_from(
                [b"", b"{", b"null", b'{"a":1,"a":2}', b'{"x":NaN}', b"[" * 5000 + b"]" * 5000, b"\xef\xbb\xbf{}",
                 b'{"client_name":"\\ud800"}', b'{"redirect_uris":["\\udfff"]}', b"\xff\xfe{}"]
            )
            | st.binary(max_size=64)
            | GARBAGE_PIECES
        )  # fmt: skip
    value = draw(metadata_like() if kind in ("metadata", "padded") else json_values)
    body = json.dumps(value, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if kind == "padded" and isinstance(value, dict):
        size = draw(st.sampled_from([MAX_CONTENT_LENGTH - 1, MAX_CONTENT_LENGTH, MAX_CONTENT_LENGTH + 1]))
        filler = max(0, size - len(body) - len(', "pad": ""'))
        body = json.dumps(value | {"pad": "a" * filler}).encode("utf-8", "surrogatepass")
    return body


@examples(200)
@given(data=st.data())
def test_registration_refusals_are_rfc_shaped_and_create_nothing(env: Env, data: st.DataObject) -> None:
    body = data.draw(json_bodies(), label="body")
    ctype = data.draw(st.just("application/json") | JSON_TYPES, label="content_type")
    likely = st.sampled_from([None, None, None, None, "Bearer " + env.iat])
    auth = data.draw(likely | auth_headers(env), label="authorization")
    path = data.draw(st.sampled_from(["/oauth/register", "/register"]), label="path")
    before = counts(env.state)
    r = env.app.test_client().post(path, data=body, headers=_headers(ctype, auth))
    event(f"status {r.status_code}")
    assert_not_server_error(r)
    after = counts(env.state)
    if r.status_code == 201:
        got = r.get_json()
        assert after["clients"] == before["clients"] + 1
        assert env.state.storage.get_client(got["client_id"]) is not None
        assert "no-store" in r.headers["Cache-Control"] and None not in got.values()
        if not set(got["grant_types"]) <= {"authorization_code", "refresh_token"}:
            # Open registration never creates a client that acts without a person.
            assert auth == "Bearer " + env.iat, got
        return
    assert_rfc_error(r)
    assert_nothing_created(before, after)


# -- authorization endpoint ---------------------------------------------------------------------

AUTHZ_NAMES = [
    "response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method",
    "resource", "prompt", "action", "csrf_token", "username", "password", "decision", "remember", "subject",
    "request", "request_uri", "response_mode", "nonce",
]  # fmt: skip


@st.composite
def authorization_requests(draw: Any, env: Env) -> bytes:
    """Often a valid request for a seeded client with one thing changed; sometimes anything."""
    if draw(st.booleans()):
        cid = draw(st.sampled_from([env.conf[0], env.public, env.dynamic]))
        pairs = {
            "response_type": "code",
            "client_id": cid,
            "redirect_uri": draw(st.sampled_from(env.redirects[cid])),
            "code_challenge": pkce_pair()[1],
            "code_challenge_method": "S256",
            "state": "s",
        }
        broken = draw(st.lists(st.sampled_from(AUTHZ_NAMES), max_size=2, unique=True))
        values = param_values(env.known)
        for name in broken:
            pairs[name] = draw(values)
        tail = draw(form_bodies(AUTHZ_NAMES, values)) if draw(st.booleans()) else b""
        head = b"&".join(f"{encode_text(k)}={encode_text(v)}".encode("ascii") for k, v in pairs.items())
        return head + (b"&" + tail if tail else b"")
    return draw(form_bodies(AUTHZ_NAMES, param_values(env.known)))


def _client_of(raw: bytes, env: Env) -> list[str] | None:
    """The registered redirect URIs of the one seeded client the request names, else None."""
    ids = [v for k, v in parse_qsl(raw.decode("latin-1"), keep_blank_values=True) if k == "client_id"]
    return env.redirects.get(ids[0]) if len(ids) == 1 else None


@examples(220)
@given(data=st.data())
def test_authorization_endpoint_never_redirects_to_an_unverified_uri(env: Env, data: st.DataObject) -> None:
    raw = data.draw(authorization_requests(env), label="request")
    method = data.draw(st.sampled_from(["GET", "GET", "POST"]), label="method")
    client = env.app.test_client()
    before = counts(env.state)
    if method == "GET":
        r = client.get("/oauth/authorize", environ_overrides={"QUERY_STRING": raw.decode("latin-1")})
    else:
        ctype = data.draw(FORM_TYPES, label="content_type")
        r = client.post("/oauth/authorize", data=raw, headers=_headers(ctype, None))
    event(f"status {r.status_code}")
    assert_not_server_error(r)
    assert_nothing_created(before, counts(env.state))
    if r.status_code in (302, 303):
        assert r.status_code == (303 if method == "POST" else 302)
        registered = _client_of(raw, env)
        assert registered is not None, (raw[:200], r.headers["Location"])
        # RFC 9700 §4.11.2: nobody signed in, so no bounce to a self-registered client's web site.
        assert registered != env.redirects[env.dynamic], r.headers["Location"]
        response = assert_verified_redirect(r.headers["Location"], registered, ISSUER)
        assert "code" not in response  # nobody signed in: no code, whatever the request said
        return
    assert r.status_code in (200, 400, 413), r.status_code
    if r.status_code == 200:
        # A valid request: the sign-in page, never framed or cached.
        assert r.mimetype == "text/html" and 'name="action" value="login"' in r.get_data(as_text=True)
        assert r.headers["X-Frame-Options"] == "DENY" and "no-store" in r.headers["Cache-Control"]
    else:
        assert_error_page(r)


def test_metadata_document_with_an_unpaired_surrogate_is_a_page_not_a_crash(env: Env) -> None:
    """Found by the schema property: a Client ID Metadata Document may escape a lone surrogate
    in client_name (valid JSON, not text); it used to be accepted and crash the consent page."""
    from app.cimd import MetadataDocuments

    url = "https://client.example.com/oauth/metadata.json"

    class Fetcher:
        def fetch(self, _url: str) -> tuple[dict[str, Any], int]:
            doc = {"client_id": url, "client_name": "Doc \ud800", "redirect_uris": [LOOPBACK]}
            return doc | {"token_endpoint_auth_method": "none"}, 300

    previous = env.state.extras["cimd"]
    env.state.extras["cimd"] = MetadataDocuments(Fetcher(), lambda body: validate_metadata(env.state, body))  # type: ignore[arg-type]
    try:
        query = f"response_type=code&client_id={url}&redirect_uri={LOOPBACK}&code_challenge={pkce_pair()[1]}"
        r = env.app.test_client().get(f"/oauth/authorize?{query}&code_challenge_method=S256")
    finally:
        env.state.extras["cimd"] = previous
    assert r.status_code == 400
    assert_error_page(r)
    assert "unpaired surrogates" in r.get_data(as_text=True)
