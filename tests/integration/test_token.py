"""The token endpoint with the client_credentials grant (RFC 6749 §4.4, §5; RFC 8707; RFC 9068)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from flask.testing import FlaskClient

from app.state import OAuthState
from tests.conftest import ISSUER, MCP_RESOURCE, base_config
from tests.support.checks import assert_error, assert_invalid_client, assert_no_store_json, basic, bearer

TOKEN = "/oauth/token"
CC = {"grant_type": "client_credentials"}
MakeClient = Callable[..., tuple[str, str | None]]


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    return base_config(tmp_path, OAUTH_RESOURCES="https://worker.example.com/mcp")


@pytest.fixture
def worker(make_client: MakeClient) -> tuple[str, str]:
    cid, secret = make_client(scope="mcp:tools mcp:resources")
    assert secret is not None
    return cid, secret


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def test_client_secret_basic(client: FlaskClient, worker: tuple[str, str]) -> None:
    r = client.post(TOKEN, data=CC, headers=basic(*worker))
    assert r.status_code == 200
    body = assert_no_store_json(r)
    assert r.headers["Pragma"] == "no-cache"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "mcp:tools mcp:resources"
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}  # no refresh token for machines
    claims = claims_of(body["access_token"])
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    assert claims["iss"] == ISSUER and claims["aud"] == MCP_RESOURCE
    assert claims["sub"] == claims["client_id"] == worker[0]
    assert claims["exp"] - claims["iat"] == 3600
    # The token works at the protected route.
    assert client.get("/mcp/whoami", headers=bearer(body["access_token"])).status_code == 200


def test_client_secret_post(client: FlaskClient, worker: tuple[str, str]) -> None:
    r = client.post(TOKEN, data={**CC, "client_id": worker[0], "client_secret": worker[1]})
    assert r.status_code == 200 and assert_no_store_json(r)["access_token"]


def test_basic_credentials_are_form_urlencoded(client: FlaskClient, worker: tuple[str, str]) -> None:
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
    encoded = quote(worker[0], safe=""), quote(worker[1], safe="")
    assert client.post(TOKEN, data=CC, headers=basic(*encoded)).status_code == 200


def test_basic_with_the_same_client_id_in_the_body(client: FlaskClient, worker: tuple[str, str]) -> None:
    r = client.post(TOKEN, data={**CC, "client_id": worker[0]}, headers=basic(*worker))
    assert r.status_code == 200


def test_basic_with_a_different_client_id_in_the_body(client: FlaskClient, worker: tuple[str, str]) -> None:
    r = client.post(TOKEN, data={**CC, "client_id": "someone-else"}, headers=basic(*worker))
    assert_error(r, 400, "invalid_request", mentions="client_id")


def test_two_authentication_methods_at_once(client: FlaskClient, worker: tuple[str, str]) -> None:
    r = client.post(TOKEN, data={**CC, "client_id": worker[0], "client_secret": worker[1]}, headers=basic(*worker))
    assert_error(r, 400, "invalid_request", mentions="exactly one")


def test_root_alias(client: FlaskClient, worker: tuple[str, str]) -> None:
    r = client.post("/token", data=CC, headers=basic(*worker))
    assert r.status_code == 200 and assert_no_store_json(r)["token_type"] == "Bearer"


# -- client authentication failures: always 401 invalid_client + WWW-Authenticate: Basic ----------


@pytest.mark.parametrize(
    "credentials",
    [
        lambda cid, secret: {"headers": basic("no-such-client", secret)},
        lambda cid, secret: {"headers": basic(cid, "wrong-secret")},
        lambda cid, secret: {"headers": basic(cid, "")},
        lambda cid, secret: {"headers": basic(cid, secret + "x")},
        lambda cid, secret: {"headers": basic(cid.upper(), secret)},
        lambda cid, secret: {"data": {"client_id": cid, "client_secret": "wrong"}},
        lambda cid, secret: {"data": {"client_id": "no-such-client", "client_secret": secret}},
        lambda cid, secret: {"data": {"client_id": cid}},  # a confidential client without its secret
        lambda cid, secret: {"data": {"client_secret": secret}},  # secret without an id
        lambda cid, secret: {},  # no authentication at all
        lambda cid, secret: {"headers": {"Authorization": "Basic !!!not-base64"}},
        lambda cid, secret: {"headers": {"Authorization": "Basic " + "bm9jb2xvbg=="}},  # "nocolon"
        lambda cid, secret: {"headers": {"Authorization": "Basic /w=="}},  # not UTF-8
        lambda cid, secret: {"headers": {"Authorization": "Bearer " + secret}},
        lambda cid, secret: {"headers": {"Authorization": "Digest username=x"}},
    ],
    ids=[
        "unknown-client",
        "wrong-secret",
        "empty-secret",
        "secret-with-suffix",
        "client-id-case",
        "post-wrong-secret",
        "post-unknown-client",
        "post-no-secret",
        "post-secret-only",
        "none",
        "basic-not-base64",
        "basic-no-colon",
        "basic-not-utf8",
        "bearer-scheme",
        "digest-scheme",
    ],
)
def test_failed_client_authentication(
    client: FlaskClient, worker: tuple[str, str], credentials: Callable[[str, str], dict[str, Any]]
) -> None:
    kwargs = credentials(*worker)
    r = client.post(TOKEN, data={**CC, **kwargs.pop("data", {})}, **kwargs)
    if r.status_code == 400:
        # Only "secret without client_id" is a malformed request rather than a failed login.
        assert_error(r, 400, "invalid_request", mentions="client_id")
    else:
        assert_invalid_client(r)


def test_expired_secret_is_refused_like_a_wrong_one(
    client: FlaskClient, state: OAuthState, worker: tuple[str, str]
) -> None:
    stored = state.storage.get_client(worker[0])
    stored.secret_expires_at = int(time.time()) - 1
    state.storage.save_client(stored)
    body = assert_invalid_client(client.post(TOKEN, data=CC, headers=basic(*worker)))
    assert "expired" in body["error_description"]


def test_secret_not_yet_expired_works(client: FlaskClient, state: OAuthState, worker: tuple[str, str]) -> None:
    stored = state.storage.get_client(worker[0])
    stored.secret_expires_at = int(time.time()) + 60
    state.storage.save_client(stored)
    assert client.post(TOKEN, data=CC, headers=basic(*worker)).status_code == 200


def test_a_public_client_cannot_use_client_credentials(client: FlaskClient, make_client: MakeClient) -> None:
    cid, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=("http://127.0.0.1/cb",))
    r = client.post(TOKEN, data={**CC, "client_id": cid})
    assert_error(r, 400, "unauthorized_client")


def test_a_public_client_cannot_send_a_secret(client: FlaskClient, make_client: MakeClient) -> None:
    cid, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=("http://127.0.0.1/cb",))
    assert_invalid_client(client.post(TOKEN, data=CC, headers=basic(cid, "anything")))


# -- scopes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        (None, "mcp:tools mcp:resources"),  # nothing asked: everything the client may have
        ("mcp:tools", "mcp:tools"),
        ("mcp:resources", "mcp:resources"),
        ("mcp:resources mcp:tools", "mcp:resources mcp:tools"),
        ("mcp:tools mcp:tools", "mcp:tools"),
        ("", "mcp:tools mcp:resources"),  # RFC 6749 §3.1: an empty parameter is omitted
    ],
)
def test_scope_narrowing(client: FlaskClient, worker: tuple[str, str], requested: str | None, granted: str) -> None:
    data = dict(CC) | ({"scope": requested} if requested is not None else {})
    r = client.post(TOKEN, data=data, headers=basic(*worker))
    assert r.status_code == 200, r.json
    assert r.json["scope"] == granted
    assert claims_of(r.json["access_token"])["scope"] == granted


@pytest.mark.parametrize("requested", ["mcp:prompts", "mcp:tools mcp:prompts", "admin", 'mcp:"x"', "caf\u00e9"])
def test_invalid_scope(client: FlaskClient, worker: tuple[str, str], requested: str) -> None:
    r = client.post(TOKEN, data={**CC, "scope": requested}, headers=basic(*worker))
    assert_error(r, 400, "invalid_scope")


def test_client_without_registered_scope_gets_the_defaults(
    client: FlaskClient, make_client: MakeClient, state: OAuthState
) -> None:
    cid, secret = make_client(scope="")
    r = client.post(TOKEN, data=CC, headers=basic(cid, secret))
    assert r.json["scope"] == " ".join(state.default_scopes)
    assert_error(
        client.post(TOKEN, data={**CC, "scope": "mcp:prompts"}, headers=basic(cid, secret)), 400, "invalid_scope"
    )


# -- resource indicators (RFC 8707) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "audience"),
    [
        (MCP_RESOURCE, MCP_RESOURCE),
        (MCP_RESOURCE + "/", MCP_RESOURCE),  # canonical form: no trailing slash
        ("HTTP://127.0.0.1:8000/mcp", MCP_RESOURCE),  # scheme and host are case-insensitive
        ("https://worker.example.com/mcp", "https://worker.example.com/mcp"),  # OAUTH_RESOURCES
    ],
)
def test_resource_becomes_the_audience(
    client: FlaskClient, worker: tuple[str, str], resource: str, audience: str
) -> None:
    r = client.post(TOKEN, data={**CC, "resource": resource}, headers=basic(*worker))
    assert r.status_code == 200, r.json
    assert claims_of(r.json["access_token"])["aud"] == audience


def test_a_token_for_another_resource_is_refused_here(client: FlaskClient, worker: tuple[str, str]) -> None:
    r = client.post(TOKEN, data={**CC, "resource": "https://worker.example.com/mcp"}, headers=basic(*worker))
    assert client.get("/mcp/whoami", headers=bearer(r.json["access_token"])).status_code == 401


@pytest.mark.parametrize(
    "resource",
    [
        "https://unknown.example.com/mcp",
        "http://127.0.0.1:8000/other",
        MCP_RESOURCE + "#frag",
        "not-a-uri",
        "/mcp",
    ],
)
def test_unknown_resource_is_invalid_target(client: FlaskClient, worker: tuple[str, str], resource: str) -> None:
    r = client.post(TOKEN, data={**CC, "resource": resource}, headers=basic(*worker))
    assert_error(r, 400, "invalid_target")


# -- grant types and malformed requests ----------------------------------------------------------


@pytest.mark.parametrize(
    "grant_type", ["password", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer", "x" * 300]
)
def test_unsupported_grant_type(client: FlaskClient, worker: tuple[str, str], grant_type: str) -> None:
    r = client.post(TOKEN, data={"grant_type": grant_type}, headers=basic(*worker))
    body = assert_error(r, 400, "unsupported_grant_type")
    assert len(body["error_description"]) < 200


def test_missing_grant_type(client: FlaskClient, worker: tuple[str, str]) -> None:
    r = client.post(TOKEN, data="", content_type="application/x-www-form-urlencoded", headers=basic(*worker))
    assert_error(r, 400, "invalid_request", mentions="grant_type")
    r = client.post(TOKEN, data={"scope": "mcp:tools"}, headers=basic(*worker))
    assert_error(r, 400, "invalid_request", mentions="grant_type")


def test_unauthorized_client(client: FlaskClient, make_client: MakeClient) -> None:
    cid, secret = make_client(("authorization_code",), redirect_uris=("http://127.0.0.1/cb",))
    r = client.post(TOKEN, data=CC, headers=basic(cid, secret))
    assert_error(r, 400, "unauthorized_client")


@pytest.mark.parametrize("name", ["grant_type", "scope", "resource", "client_id", "client_secret"])
def test_repeated_parameters(client: FlaskClient, worker: tuple[str, str], name: str) -> None:
    # RFC 6749 §3.2: request parameters MUST NOT be included more than once.
    value = {"grant_type": "client_credentials", "scope": "mcp:tools", "resource": MCP_RESOURCE}.get(name, worker[0])
    body = f"grant_type=client_credentials&{name}={quote(value)}&{name}={quote(value)}"
    r = client.post(TOKEN, data=body, content_type="application/x-www-form-urlencoded", headers=basic(*worker))
    assert_error(r, 400, "invalid_request", mentions=name)


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/json", '{"grant_type": "client_credentials"}'),
        ("text/plain", "grant_type=client_credentials"),
        (
            "multipart/form-data; boundary=x",
            "--x\r\nContent-Disposition: form-data; name=grant_type\r\n\r\nclient_credentials\r\n--x--",
        ),
        ("application/x-www-form-urlencoded; charset=latin-1", "grant_type=client_credentials"),
    ],
)
def test_wrong_content_type(client: FlaskClient, worker: tuple[str, str], content_type: str, data: str) -> None:
    r = client.post(TOKEN, data=data, content_type=content_type, headers=basic(*worker))
    assert_error(r, 415, "invalid_request")


def test_charset_utf8_is_accepted(client: FlaskClient, worker: tuple[str, str]) -> None:
    r = client.post(
        TOKEN,
        data="grant_type=client_credentials",
        content_type="application/x-www-form-urlencoded; charset=UTF-8",
        headers=basic(*worker),
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    "body", [b"grant_type=client_credentials&scope=\xff\xfe", b"grant_type=client_credentials&scope=%ff"]
)
def test_non_utf8(client: FlaskClient, worker: tuple[str, str], body: bytes) -> None:
    r = client.post(TOKEN, data=body, content_type="application/x-www-form-urlencoded", headers=basic(*worker))
    assert_error(r, 400, "invalid_request", mentions="UTF-8")


def test_oversized_body(client: FlaskClient, worker: tuple[str, str]) -> None:
    body = "grant_type=client_credentials&pad=" + "x" * (64 * 1024)
    r = client.post(TOKEN, data=body, content_type="application/x-www-form-urlencoded", headers=basic(*worker))
    assert_error(r, 413, "invalid_request")


def test_oversized_parameter(client: FlaskClient, worker: tuple[str, str]) -> None:
    r = client.post(TOKEN, data={**CC, "scope": "a" * 5000}, headers=basic(*worker))
    assert_error(r, 400, "invalid_request", mentions="scope")


def test_parameters_in_the_query_string_do_not_count(client: FlaskClient, worker: tuple[str, str]) -> None:
    r = client.post(TOKEN + "?grant_type=client_credentials", data={"scope": "mcp:tools"}, headers=basic(*worker))
    assert_error(r, 400, "invalid_request", mentions="grant_type")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods(client: FlaskClient, method: str) -> None:
    r = client.open(TOKEN, method=method)
    assert r.status_code == 405
    assert_no_store_json(r)


def test_every_response_is_no_store_json(client: FlaskClient, worker: tuple[str, str]) -> None:
    for kwargs in (
        {"data": CC, "headers": basic(*worker)},
        {"data": CC, "headers": basic(worker[0], "bad")},
        {"data": {"grant_type": "nope"}},
        {"data": {**CC, "scope": "nope"}, "headers": basic(*worker)},
    ):
        assert_no_store_json(client.post(TOKEN, **kwargs))


def test_issuing_writes_nothing_per_token(client: FlaskClient, state: OAuthState, worker: tuple[str, str]) -> None:
    client.post(TOKEN, data=CC, headers=basic(*worker))  # the first use may record last_used_at
    calls: list[str] = []
    target = state.storage.target
    for name in ("save_client", "revoke_jti", "save_refresh_token", "add_family_jti", "touch_client"):
        original = getattr(target, name)

        def spy(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kwargs)

        setattr(target, name, spy)
    for _ in range(3):
        assert client.post(TOKEN, data=CC, headers=basic(*worker)).status_code == 200
    assert calls == []
