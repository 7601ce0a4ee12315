"""Bad input at every endpoint: always an RFC-shaped 4xx, never a 500, never half-written state.

One table of request bodies per kind of endpoint (form-encoded, JSON, bearer-protected), each
sent to every endpoint of that kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.oauth.register import new_client, validate_metadata
from app.state import OAuthState
from tests.conftest import base_config
from tests.support.checks import assert_error, assert_no_store_json, basic, bearer

FORM = "application/x-www-form-urlencoded"
BIG = 64 * 1024 + 1  # just over MAX_CONTENT_LENGTH


@dataclass
class Ctx:
    cid: str
    secret: str
    reg: dict[str, Any]  # a dynamically registered client, with its registration token
    token: str  # a live access token of cid


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app for the whole table: every case must leave it as it found it (check_unchanged)."""
    app = create_app(base_config(tmp_path_factory.mktemp("bad_input")))
    yield app
    app.extensions["mcp_oauth"].close()


@pytest.fixture(scope="module")
def ctx(app: Flask) -> Ctx:
    client = app.test_client()
    reg = client.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "Before"})
    assert reg.status_code == 201
    ids = {c.client_id for c in app.extensions["mcp_oauth"].storage.list_clients()}
    with app.app_context():
        state = app.extensions["mcp_oauth"]
        client_obj, secret, _ = new_client(
            state, validate_metadata(state, {"grant_types": ["client_credentials"]}), registered_by="cli"
        )
    assert secret and client_obj.client_id not in ids
    t = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(client_obj.client_id, secret)
    )
    assert t.status_code == 200
    return Ctx(client_obj.client_id, secret, reg.get_json(), t.json["access_token"])


def check_unchanged(client: FlaskClient, state: OAuthState, ctx: Ctx) -> None:
    """Nothing was written: the same two clients, the registered one unmodified, the token alive."""
    assert sorted(c.client_id for c in state.storage.list_clients()) == sorted([ctx.cid, ctx.reg["client_id"]])
    stored = state.storage.get_client(ctx.reg["client_id"])
    assert stored is not None and stored.metadata.get("client_name") == "Before"
    assert client.get("/mcp/whoami", headers=bearer(ctx.token)).status_code == 200


# -- form-encoded endpoints -----------------------------------------------------------------------

FORM_ENDPOINTS = {
    "token": ("/oauth/token", "grant_type=client_credentials"),
    "token-alias": ("/token", "grant_type=client_credentials"),
    "introspect": ("/oauth/introspect", "token=abc"),
    "revoke": ("/oauth/revoke", "token=abc"),
}

# (id, body, content type, status, words the description must contain)
FORM_CASES: list[tuple[str, bytes | str, str | None, int, str]] = [
    ("missing-everything", "", FORM, 400, "required"),
    ("empty-values-are-omitted", "grant_type=&token=", FORM, 400, "required"),
    ("repeated", "{valid}&{valid}", FORM, 400, "repeated"),
    ("repeated-empty", "{valid}&grant_type=&token=", FORM, 400, "repeated"),
    ("no-content-type", "{valid}", None, 415, "x-www-form-urlencoded"),
    ("json", '{"grant_type": "client_credentials", "token": "abc"}', "application/json", 415, "x-www-form-urlencoded"),
    ("text-plain", "{valid}", "text/plain", 415, "x-www-form-urlencoded"),
    ("multipart", "--b\r\n\r\n--b--", "multipart/form-data; boundary=b", 415, "x-www-form-urlencoded"),
    ("latin-1-charset", "{valid}", FORM + "; charset=iso-8859-1", 415, "utf-8"),
    ("raw-non-utf8", b"{valid}&x=\xff\xfe", FORM, 400, "UTF-8"),
    ("escaped-non-utf8", "{valid}&x=%ff", FORM, 400, "UTF-8"),
    ("escaped-lone-surrogate", "{valid}&x=%ed%a0%80", FORM, 400, "UTF-8"),
    ("overlong-utf8", "{valid}&x=%c0%af", FORM, 400, "UTF-8"),
    ("nul", "{valid}&x=a%00b", FORM, 400, "NUL"),
    ("nul-in-name", "{valid}&a%00b=1", FORM, 400, "NUL"),
    ("oversized-parameter", "{valid}&x=" + "a" * 5000, FORM, 400, "longer"),
    ("oversized-body", "{valid}&x=" + "a" * BIG, FORM, 413, "larger"),
]


@pytest.mark.parametrize("endpoint", list(FORM_ENDPOINTS))
@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"), [c[1:] for c in FORM_CASES], ids=[c[0] for c in FORM_CASES]
)
def test_form_endpoints(
    client: FlaskClient,
    state: OAuthState,
    ctx: Ctx,
    endpoint: str,
    body: bytes | str,
    content_type: str | None,
    status: int,
    words: str,
) -> None:
    path, valid = FORM_ENDPOINTS[endpoint]
    data = body.replace(b"{valid}", valid.encode()) if isinstance(body, bytes) else body.replace("{valid}", valid)
    headers = basic(ctx.cid, ctx.secret)
    if content_type is None:
        r = client.post(path, data=data, headers=headers)
        assert "Content-Type" not in r.request.headers
    else:
        r = client.post(path, data=data, content_type=content_type, headers=headers)
    body_json = assert_error(r, status, "invalid_request")
    assert words.lower() in body_json["error_description"].lower()
    check_unchanged(client, state, ctx)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("scope", "\u202emcp:tools", "invalid_scope"),  # right-to-left override
        ("scope", "mcp:tools\u0000", "invalid_request"),
        ("scope", "\ufeffmcp:tools", "invalid_scope"),
        ("scope", "mcp:tools\u2028", "invalid_scope"),
        ("resource", "http://127.0.0.1:8000/mcp\u202e", "invalid_target"),
        ("resource", "http://127.0.0.1:8000/\u0000", "invalid_request"),
        ("grant_type", "client_credentials\u200b", "unsupported_grant_type"),
    ],
)
def test_odd_unicode_at_the_token_endpoint(
    client: FlaskClient, state: OAuthState, ctx: Ctx, field: str, value: str, error: str
) -> None:
    data = {"grant_type": "client_credentials", field: value}
    r = client.post("/oauth/token", data=data, headers=basic(ctx.cid, ctx.secret))
    assert_error(r, 400, error)
    check_unchanged(client, state, ctx)


@pytest.mark.parametrize("token", ["\u202eabc", "\ufeff", "a\u2028b", "\U0001f600", "x" * 4096])
@pytest.mark.parametrize("path", ["/oauth/introspect", "/oauth/revoke"])
def test_odd_tokens_are_just_unknown(client: FlaskClient, state: OAuthState, ctx: Ctx, path: str, token: str) -> None:
    r = client.post(path, data={"token": token}, headers=basic(ctx.cid, ctx.secret))
    assert r.status_code == 200
    if path.endswith("introspect"):
        assert assert_no_store_json(r) == {"active": False}
    check_unchanged(client, state, ctx)


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + "A" * 6000,
        "Basic Og==",  # ":" - empty id and secret
        "Basic " + "w6k6w6k=",  # "é:é" in UTF-8
        "Basic " + "6Trp",  # "é:é" in latin-1: not UTF-8
        "Basic",
        "Basic  ",
        "Basic\tdXNlcjpwYXNz",
        "basic dXNlcjpwYXNz",  # lower-case scheme still parses, and fails as unknown client
    ],
)
@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
def test_bad_basic_credentials(client: FlaskClient, state: OAuthState, ctx: Ctx, path: str, authorization: str) -> None:
    data = {"grant_type": "client_credentials", "token": ctx.token}
    r = client.post(path, data=data, headers={"Authorization": authorization})
    assert_error(r, 401, "invalid_client")
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    check_unchanged(client, state, ctx)


# -- JSON endpoints -------------------------------------------------------------------------------

VALID_META = {"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "After"}

# (id, body, content type, status, error, words in the description)
JSON_CASES: list[tuple[str, bytes | str, str | None, int, str, str]] = [
    ("empty", "", "application/json", 400, "invalid_request", "JSON"),
    ("truncated", '{"redirect_uris": [', "application/json", 400, "invalid_request", "JSON"),
    ("single-quotes", "{'a': 1}", "application/json", 400, "invalid_request", "JSON"),
    ("trailing-garbage", "{} {}", "application/json", 400, "invalid_request", "JSON"),
    ("array", "[]", "application/json", 400, "invalid_request", "object"),
    ("string", '"registration"', "application/json", 400, "invalid_request", "object"),
    ("number", "1", "application/json", 400, "invalid_request", "object"),
    ("null", "null", "application/json", 400, "invalid_request", "object"),
    ("true", "true", "application/json", 400, "invalid_request", "object"),
    ("duplicate-key", '{"client_name": "a", "client_name": "b"}', "application/json", 400, "invalid_request", "JSON"),
    ("nan", '{"x": NaN}', "application/json", 400, "invalid_request", "JSON"),
    ("infinity", '{"x": -Infinity}', "application/json", 400, "invalid_request", "JSON"),
    ("deep-nesting", "[" * 30000, "application/json", 400, "invalid_request", "JSON"),
    ("deep-but-valid", '{"x": ' + "[" * 900 + "]" * 900 + "}", "application/json", 400, "invalid_redirect_uri", ""),
    ("bom", "\ufeff{}", "application/json", 400, "invalid_request", "JSON"),
    ("raw-non-utf8", b'{"client_name": "\xff"}', "application/json", 400, "invalid_request", "UTF-8"),
    ("utf16", '{"a": 1}'.encode("utf-16"), "application/json", 400, "invalid_request", ""),
    ("lone-surrogate", '{"client_name": "a\\ud800b"}', "application/json", 400, "invalid_request", "surrogate"),
    ("lone-surrogate-key", '{"\\udfff": 1}', "application/json", 400, "invalid_request", "surrogate"),
    (
        "nul",
        json.dumps({**VALID_META, "client_name": "a\u0000b"}),
        "application/json",
        400,
        "invalid_client_metadata",
        "client_name",
    ),
    (
        "rtl-override",
        json.dumps({**VALID_META, "client_name": "gpj.\u202eexe"}),
        "application/json",
        400,
        "invalid_client_metadata",
        "client_name",
    ),
    (
        "wrong-type",
        json.dumps({"redirect_uris": {"a": 1}}),
        "application/json",
        400,
        "invalid_redirect_uri",
        "redirect_uris",
    ),
    ("form", "redirect_uris=http://127.0.0.1/cb", FORM, 415, "invalid_request", "application/json"),
    ("text-plain", json.dumps(VALID_META), "text/plain", 415, "invalid_request", "application/json"),
    ("no-content-type", json.dumps(VALID_META), None, 415, "invalid_request", "application/json"),
    ("oversized", json.dumps({**VALID_META, "pad": "a" * BIG}), "application/json", 413, "invalid_request", "larger"),
]


@pytest.mark.parametrize("endpoint", ["register", "register-alias", "update"])
@pytest.mark.parametrize(
    ("body", "content_type", "status", "error", "words"),
    [c[1:] for c in JSON_CASES],
    ids=[c[0] for c in JSON_CASES],
)
def test_json_endpoints(
    client: FlaskClient,
    state: OAuthState,
    ctx: Ctx,
    endpoint: str,
    body: bytes | str,
    content_type: str | None,
    status: int,
    error: str,
    words: str,
) -> None:
    if endpoint == "update":
        method, path = "PUT", f"/oauth/register/{ctx.reg['client_id']}"
        headers = bearer(ctx.reg["registration_access_token"])
        if error in ("invalid_client_metadata", "invalid_redirect_uri"):
            # A PUT body must name the client; keep that right so the field error is what fails.
            body = json.dumps({**json.loads(body), "client_id": ctx.reg["client_id"]})
    else:
        method, path, headers = "POST", "/oauth/register" if endpoint == "register" else "/register", {}
    kwargs: dict[str, Any] = {"data": body, "headers": headers}
    if content_type is not None:
        kwargs["content_type"] = content_type
    r = client.open(path, method=method, **kwargs)
    description = assert_error(r, status, error)["error_description"]
    assert words.lower() in description.lower()
    check_unchanged(client, state, ctx)


# -- bearer-protected and path-parameter endpoints ------------------------------------------------


@pytest.mark.parametrize(
    "client_id",
    ["nosuch", "x" * 5000, "%00", "caf%C3%A9", "%ED%A0%80", "..%2F..%2Fetc", "a%20b"],
)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_registration_management_with_odd_client_ids(
    client: FlaskClient, state: OAuthState, ctx: Ctx, method: str, client_id: str
) -> None:
    r = client.open(
        f"/oauth/register/{client_id}",
        method=method,
        json=VALID_META,
        headers=bearer(ctx.reg["registration_access_token"]),
    )
    assert r.status_code in (401, 404), r.status_code
    assert_no_store_json(r)
    check_unchanged(client, state, ctx)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer " + "a" * 8000,
        "Bearer \u00e9\u00e9.\u00e9.\u00e9",
        "Bearer a.b.c.d.e",
        "Bearer ..",
        "Bearer eyJ.eyJ.sig",
        "Bearer e30.e30.e30",  # {} header
        "Bearer W10.W10.W10",  # [] header
        "Bearer bnVsbA.bnVsbA.bnVsbA",  # null header
        "Bearer eyJhbGciOiJFUzI1NiIsImtpZCI6W119.e30.c2ln",  # kid is a list
        "Bearer eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6MX0.e30.c2ln",  # kid is a number
    ],
)
def test_mangled_bearer_tokens(client: FlaskClient, state: OAuthState, ctx: Ctx, authorization: str) -> None:
    r = client.get("/mcp/whoami", headers={"Authorization": authorization})
    assert r.status_code == 401
    assert assert_no_store_json(r)["error"] == "invalid_token"
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    token = authorization.removeprefix("Bearer ")
    for path in ("/oauth/introspect", "/oauth/revoke"):
        r = client.post(path, data={"token": token}, headers=basic(ctx.cid, ctx.secret))
        if len(token) > 4096:  # OAUTH_MAX_PARAM_LENGTH
            assert_error(r, 400, "invalid_request", mentions="longer")
        else:
            assert r.status_code == 200
    check_unchanged(client, state, ctx)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/oauth/token"),
        ("DELETE", "/oauth/token"),
        ("GET", "/oauth/introspect"),
        ("PUT", "/oauth/revoke"),
        ("PATCH", "/oauth/register"),
        ("POST", "/.well-known/oauth-authorization-server"),
        ("POST", "/.well-known/jwks.json"),
        ("GET", "/oauth/nowhere"),
    ],
)
def test_wrong_methods_and_paths_are_json(client: FlaskClient, method: str, path: str) -> None:
    r = client.open(path, method=method)
    assert r.status_code in (404, 405)
    body = assert_no_store_json(r)
    assert body["error"] in ("not_found", "method_not_allowed")
