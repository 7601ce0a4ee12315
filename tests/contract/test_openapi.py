"""The OpenAPI description (``GET /openapi.json``) is valid, complete and true.

- it validates as OpenAPI 3.1 and its ``servers`` URL is the issuer;
- every route of ``app.url_map`` with every method is described, and nothing else is;
- every example in it validates against its schema;
- a table of real requests through the app, reaching every described operation and most
  statuses (success, each error family, 413, 415, 429, 503, redirects, pages), gets responses
  that conform: status documented, content type documented, body valid against the schema,
  required headers present and valid. (tests/e2e/test_schemathesis.py adds generated requests
  against a live gunicorn.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug.test import TestResponse

from app import create_app
from app.errors import StorageError
from app.state import OAuthState
from tests.conftest import ISSUER, base_config
from tests.support.checks import basic, bearer, nulls
from tests.support.grants import REDIRECT, store_code
from tests.support.people import PASSWORD, fast_authenticator, form, pkce_pair, redirect_params

HTTP_METHODS = ("get", "head", "post", "put", "delete", "options", "patch", "trace")
DOC_URI = "urn:mcp-oauth:openapi"


# -- loading and resolving -----------------------------------------------------------------------


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    return base_config(tmp_path)


@pytest.fixture
def doc(client: FlaskClient) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    body = r.get_json()
    assert isinstance(body, dict)
    return body


def _registry(document: dict[str, Any]) -> Registry[Any]:
    return Registry().with_resource(DOC_URI, Resource.from_contents(document, default_specification=DRAFT202012))


def validator_at(document: dict[str, Any], pointer: str) -> Draft202012Validator:
    """A validator for the schema at JSON pointer ``pointer`` of the document, its $refs resolved."""
    return Draft202012Validator(
        {"$ref": f"{DOC_URI}#{pointer}"},
        registry=_registry(document),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def resolve(document: dict[str, Any], node: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Follow a local ``$ref`` (once or more); returns (object, pointer of the object or None)."""
    pointer = None
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        pointer = ref[1:]
        node = document
        for part in pointer.lstrip("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, pointer


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def openapi_path(rule: str) -> str:
    """Flask's ``/oauth/register/<client_id>`` (or ``<path:filename>``) as OpenAPI's ``{client_id}``."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


# -- the document itself -------------------------------------------------------------------------


def test_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(doc).validate()
    assert not nulls(doc), nulls(doc)  # a JSON response like the others: no null anywhere


def test_servers_url_is_the_issuer(doc: dict[str, Any]) -> None:
    assert doc["servers"] == [{"url": ISSUER, "description": "The issuer (OAUTH_ISSUER)."}]


def test_document_follows_the_configuration(tmp_path: Any) -> None:
    """Another issuer, other scopes, fewer grants: the document says so."""
    app = create_app(
        base_config(
            tmp_path,
            OAUTH_ISSUER="https://auth.example.com",
            OAUTH_SCOPES={"mcp:tools": "Tools", "files:read": "Read files"},
            OAUTH_GRANT_TYPES="client_credentials",
        )
    )
    try:
        other = app.test_client().get("/openapi.json").get_json()
    finally:
        app.extensions["mcp_oauth"].close()
    OpenAPIV31SpecValidator(other).validate()
    assert other["servers"][0]["url"] == "https://auth.example.com"
    schemas = other["components"]["schemas"]
    assert schemas["AuthorizationServerMetadata"]["properties"]["issuer"] == {"const": "https://auth.example.com"}
    assert schemas["AuthorizationServerMetadata"]["properties"]["scopes_supported"]["items"]["enum"] == [
        "files:read",
        "mcp:tools",
    ]
    assert [v["$ref"].rsplit("/", 1)[-1] for v in schemas["TokenRequest"]["oneOf"]] == [
        "TokenRequest_client_credentials"
    ]
    assert "TokenRequest_refresh_token" not in schemas


def test_every_route_and_method_is_described_and_nothing_else(app: Flask, doc: dict[str, Any]) -> None:
    served: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        served.setdefault(openapi_path(rule.rule), set()).update(m.lower() for m in rule.methods or ())
    described = {path: {m for m in item if m in HTTP_METHODS} for path, item in doc["paths"].items()}
    assert served == described


def test_get_mcp_is_undeclared_and_answers_405(client: FlaskClient, doc: dict[str, Any]) -> None:
    """The MCP transport's answer when no SSE stream is offered; the document says so in words."""
    assert "get" not in doc["paths"]["/mcp"]
    assert "405" in doc["paths"]["/mcp"]["description"]
    r = client.get("/mcp")
    assert r.status_code == 405
    assert set(r.headers["Allow"].split(", ")) == {"POST", "DELETE", "OPTIONS"}


def test_operation_ids_are_unique(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in doc["paths"].values() for m, op in item.items() if m in HTTP_METHODS]
    assert len(ids) == len(set(ids))


def _examples(node: Any, pointer: str = "") -> Iterator[tuple[str, Any, str]]:
    """(pointer of the schema, example value, where) for every media-type and schema example."""
    if isinstance(node, dict):
        if "schema" in node and "example" in node:
            yield pointer + "/schema", node["example"], pointer
        for example_name, example in (node.get("examples") or {}).items() if "schema" in node else ():
            yield pointer + "/schema", example["value"], f"{pointer}/examples/{example_name}"
        if "examples" in node and isinstance(node["examples"], list) and "schema" not in node:
            for i, value in enumerate(node["examples"]):
                yield pointer, value, f"{pointer}/examples/{i}"
        for key, value in node.items():
            yield from _examples(value, f"{pointer}/{_escape(str(key))}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _examples(value, f"{pointer}/{i}")


def test_examples_validate_against_their_schemas(doc: dict[str, Any]) -> None:
    found = list(_examples(doc))
    assert len(found) >= 14, found  # the document carries examples; this test must see them
    for schema_pointer, value, where in found:
        errors = [e.message for e in validator_at(doc, schema_pointer).iter_errors(value)]
        assert not errors, (where, errors)


def test_error_descriptions_pattern_matches_the_server_rule() -> None:
    """The document's RFC 6749 §5.2 character rule is the one app.errors enforces."""
    from app.errors import safe_description
    from app.oauth.openapi import DESCRIPTION_PATTERN

    sample = "".join(chr(c) for c in range(0, 0x80)) + "\u00e9"
    assert re.fullmatch(DESCRIPTION_PATTERN, safe_description(sample))
    assert not re.fullmatch(DESCRIPTION_PATTERN, 'with "quotes"')


# -- real responses conform ----------------------------------------------------------------------


@dataclass
class Conformance:
    """Checks responses against the document and records which operations and statuses were seen."""

    doc: dict[str, Any]
    seen: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        for template, item in self.doc["paths"].items():
            pattern = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(pattern, path) and method in item:
                return template, item[method]
        raise AssertionError(f"{method.upper()} {path} is not described")

    def check(self, method: str, path: str, r: TestResponse) -> None:
        method = method.lower()
        template, op = self.operation(method, path.split("?", 1)[0])
        label = f"{method.upper()} {template} -> {r.status_code}"
        status = str(r.status_code)
        assert status in op["responses"], f"{label}: undocumented status ({sorted(op['responses'])})"
        self.seen.setdefault((template, method), set()).add(status)
        response, pointer = resolve(self.doc, op["responses"][status])
        if pointer is None:
            pointer = f"/paths/{_escape(template)}/{method}/responses/{status}"
        for name, header in (response.get("headers") or {}).items():
            header, _ = resolve(self.doc, header)
            value = r.headers.get(name)
            if value is None:
                assert not header.get("required"), f"{label}: required header {name} is missing"
                continue
            schema = header["schema"]
            wire: Any = int(value) if schema.get("type") == "integer" else value
            errors = [e.message for e in Draft202012Validator(schema).iter_errors(wire)]
            assert not errors, f"{label}: header {name}: {value!r}: {errors}"
        content = response.get("content")
        if method == "head" or not content:
            assert not r.data, f"{label}: a body where none is described: {r.data[:200]!r}"
            return
        media = r.mimetype
        assert media in content, f"{label}: content type {r.content_type} not in {sorted(content)}"
        if media == "application/json":
            body = json.loads(r.data)
            schema_pointer = f"{pointer}/content/{_escape(media)}/schema"
            errors = [
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in validator_at(self.doc, schema_pointer).iter_errors(body)
            ]
            assert not errors, f"{label}: {errors} in {body}"


@pytest.fixture
def conform(doc: dict[str, Any]) -> Conformance:
    return Conformance(doc)


@pytest.fixture
def call(client: FlaskClient, conform: Conformance) -> Callable[..., TestResponse]:
    """Send a request through the app and check the response against the document."""

    def send(method: str, path: str, expect: int, **kwargs: Any) -> TestResponse:
        r = client.open(path, method=method.upper(), **kwargs)
        assert r.status_code == expect, (method, path, r.status_code, r.data[:300])
        conform.check(method, path, r)
        return r

    return send


FORM = "application/x-www-form-urlencoded"


def _register(call: Callable[..., TestResponse], path: str = "/oauth/register", **metadata: Any) -> dict[str, Any]:
    body = {"redirect_uris": [REDIRECT], "client_name": "Conformance"} | metadata
    return dict(call("post", path, 201, json=body).get_json())


def test_responses_conform_to_the_document(
    app: Flask,
    state: OAuthState,
    client: FlaskClient,
    call: Callable[..., TestResponse],
    conform: Conformance,
    make_client: Callable[..., tuple[str, str | None]],
    doc: dict[str, Any],
) -> None:
    # Metadata, keys, health, metrics, this document, the static route.
    for path in (
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/jwks.json",
        "/healthz",
        "/metrics",
        "/openapi.json",
    ):
        call("get", path, 200)
    call("get", "/static/pages.css", 404)
    metrics_type = client.get("/metrics").headers["Content-Type"]
    assert metrics_type.startswith("text/plain;") and metrics_type.count("charset=") == 1, metrics_type

    # Token endpoint: every grant, every error family, both paths.
    cid, secret = make_client(
        ("client_credentials", "authorization_code", "refresh_token"),
        scope="mcp:tools mcp:resources",
        redirect_uris=(REDIRECT,),
    )
    auth = basic(cid, secret)
    for path in ("/oauth/token", "/token"):
        call("post", path, 200, data={"grant_type": "client_credentials"}, headers=auth)
        call("post", path, 400, data={"grant_type": "password"}, headers=auth)
        call("post", path, 401, data={"grant_type": "client_credentials"})
        call("post", path, 415, json={"grant_type": "client_credentials"}, headers=auth)
        call("post", path, 413, data="x=" + "a" * 70000, content_type=FORM, headers=auth)
    with app.app_context():
        fast_authenticator(state).create("alice", PASSWORD, state.now())
        code = store_code(state.token_store, cid)
    issued = call("post", "/oauth/token", 200, data=code.params(), headers=auth).get_json()
    assert "refresh_token" in issued
    refreshed = call(
        "post",
        "/oauth/token",
        200,
        data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
        headers=auth,
    ).get_json()
    call("post", "/oauth/token", 400, data=code.params(), headers=auth)  # a replayed code

    # Introspection and revocation.
    call("post", "/oauth/introspect", 200, data={"token": refreshed["access_token"]}, headers=auth)
    call("post", "/oauth/introspect", 200, data={"token": refreshed["refresh_token"]}, headers=auth)
    call("post", "/oauth/introspect", 200, data={"token": "unknown"}, headers=auth)
    call("post", "/oauth/introspect", 400, data={"token": ""}, headers=auth)
    call("post", "/oauth/introspect", 401, data={"token": "x", "client_id": "nobody"})
    call("post", "/oauth/introspect", 415, data=b"{}", content_type="application/json", headers=auth)
    call("post", "/oauth/introspect", 413, data="x=" + "a" * 70000, content_type=FORM, headers=auth)
    call("post", "/oauth/revoke", 200, data={"token": refreshed["refresh_token"]}, headers=auth)
    call("post", "/oauth/revoke", 400, data={"token": ""}, headers=auth)
    call("post", "/oauth/revoke", 401, data={"token": "x"})
    call("post", "/oauth/revoke", 415, data=b"token=x", content_type="text/plain", headers=auth)
    call("post", "/oauth/revoke", 413, data="x=" + "a" * 70000, content_type=FORM, headers=auth)

    # Registration (RFC 7591) and management (RFC 7592).
    public = _register(call, token_endpoint_auth_method="none")
    confidential = _register(call, path="/register")
    call("post", "/oauth/register", 400, json={"redirect_uris": ["javascript:alert(1)"]})
    call("post", "/oauth/register", 400, data=b"{", content_type="application/json")
    call("post", "/register", 401, json={"grant_types": ["client_credentials"]})
    call("post", "/oauth/register", 415, data={"client_name": "x"})
    call("post", "/oauth/register", 413, data=b"[" + b" " * 70000 + b"]", content_type="application/json")
    rat = bearer(confidential["registration_access_token"])
    location = f"/oauth/register/{confidential['client_id']}"
    call("get", location, 200, headers=rat)
    call("head", location, 200, headers=rat)
    call("get", location, 401)
    call("get", "/oauth/register/a%2Fb", 404, headers=rat)
    update = {"client_id": confidential["client_id"], "redirect_uris": [REDIRECT], "client_name": "Renamed"}
    call("put", location, 200, json=update, headers=rat)
    call("put", location, 400, json=update | {"client_id": "other"}, headers=rat)
    call("put", location, 415, data="x", content_type="text/plain", headers=rat)
    call("put", location, 413, data=b"[" + b" " * 70000 + b"]", content_type="application/json", headers=rat)
    call("put", location, 401, json=update)
    call("delete", location, 401)
    call("delete", location, 204, headers=rat)
    call("delete", location, 401, headers=rat)  # gone: the same answer as a wrong token

    # The authorization endpoint: pages, redirects, errors, both paths.
    verifier, challenge = pkce_pair()
    authz = {
        "response_type": "code",
        "client_id": public["client_id"],
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "xyz",
    }
    for path in ("/oauth/authorize", "/authorize"):
        call("get", path, 400)  # no client_id: a page, never a redirect
        call("head", path, 400)
        call("get", path, 302, query_string=authz | {"scope": "unknown:scope"})
        call("post", path, 413, data="x=" + "a" * 70000, content_type=FORM)
    login_page = call("get", "/oauth/authorize", 200, query_string=authz)
    login = form(login_page.get_data(as_text=True), "login")
    consent_page = call("post", "/oauth/authorize", 200, data=login.submit(username="alice", password=PASSWORD))
    consent = form(consent_page.get_data(as_text=True), "consent")
    approved = call("post", "/authorize", 303, data=consent.submit("approve"))
    assert "code" in redirect_params(approved.headers["Location"])

    # The MCP endpoint.
    tok = bearer(
        call("post", "/oauth/token", 200, data={"grant_type": "client_credentials"}, headers=auth).json["access_token"]
    )
    narrow = bearer(
        call(
            "post",
            "/oauth/token",
            200,
            data={"grant_type": "client_credentials", "scope": "mcp:resources"},
            headers=auth,
        ).json["access_token"]
    )
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    started = call("post", "/mcp", 200, json=init, headers=tok)
    session = {"Mcp-Session-Id": started.headers["Mcp-Session-Id"], "MCP-Protocol-Version": "2025-06-18"}
    call("post", "/mcp", 200, json={"jsonrpc": "2.0", "id": "a", "method": "tools/list"}, headers=tok | session)
    call("post", "/mcp", 202, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=tok | session)
    call("post", "/mcp", 400, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=tok)
    call("post", "/mcp", 400, json=init, headers=tok, query_string={"access_token": "x"})
    call("post", "/mcp", 401, json=init)
    call("post", "/mcp", 403, json=init, headers=tok | {"Origin": "https://evil.example"})
    call(
        "post",
        "/mcp",
        403,
        json={"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}},
        headers=narrow
        | {"Mcp-Session-Id": call("post", "/mcp", 200, json=init, headers=narrow).headers["Mcp-Session-Id"]},
    )
    call("post", "/mcp", 404, json={"jsonrpc": "2.0", "id": 4, "method": "ping"}, headers=tok | {"Mcp-Session-Id": "x"})
    call("post", "/mcp", 406, json=init, headers=tok | {"Accept": "text/html"})
    call("post", "/mcp", 413, data=b"[" + b" " * 70000 + b"]", content_type="application/json", headers=tok)
    call("post", "/mcp", 415, data="x", content_type="text/plain", headers=tok)
    call("delete", "/mcp", 400, headers=tok)
    call("delete", "/mcp", 204, headers=tok | session)
    call("delete", "/mcp", 404, headers=tok | session)
    call("delete", "/mcp", 401)
    call("get", "/mcp/whoami", 200, headers=tok)
    call("get", "/mcp/whoami", 400, headers=tok, query_string={"access_token": "x"})
    call("get", "/mcp/whoami", 401)
    call("get", "/mcp/whoami", 403, headers=narrow)
    call("head", "/mcp/whoami", 401)
    call("options", "/mcp", 403, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})

    # Every path answers HEAD (for GET) and OPTIONS, preflights included.
    for template, item in doc["paths"].items():
        path = template.replace("{client_id}", public["client_id"]).replace("{filename}", "x.css")
        preflight = {"Origin": "http://127.0.0.1:3000", "Access-Control-Request-Method": "POST"}
        r = call("options", path, 200, headers=preflight)
        assert set(r.headers["Allow"].lower().split(", ")) == {m for m in item if m in HTTP_METHODS}
        # The description says which paths allow CORS (by the preflight headers it lists).
        cors = "Access-Control-Allow-Origin" in item["options"]["responses"]["200"]["headers"]
        assert ("Access-Control-Allow-Origin" in r.headers) == cors, (template, dict(r.headers))
        plain = "{" not in template and not template.startswith(("/mcp", "/oauth/authorize", "/authorize"))
        if "head" in item and plain:
            call("head", path, 200)  # the others are reached above, with their credentials or parameters
    call("head", "/static/x.css", 404)

    # Operations this table did not reach would be described but never shown true.
    unreached = [
        f"{m.upper()} {p}"
        for p, item in doc["paths"].items()
        for m in item
        if m in HTTP_METHODS and (p, m) not in conform.seen
    ]
    assert not unreached, unreached


@pytest.fixture
def limited_app(tmp_path: Any) -> Iterator[Flask]:
    app = create_app(base_config(tmp_path, RATELIMIT_AUTH_FAILURE="1/minute", RATELIMIT_REGISTRATION="1/minute"))
    yield app
    app.extensions["mcp_oauth"].close()


def test_rate_limited_responses_conform(limited_app: Flask, doc: dict[str, Any]) -> None:
    conform = Conformance(doc)
    c = limited_app.test_client()
    for path in ("/oauth/token", "/oauth/introspect", "/oauth/revoke"):
        data = {"grant_type": "client_credentials", "token": "x", "client_id": "nobody"}
        statuses = [c.post(path, data=data) for _ in range(3)]
        assert [r.status_code for r in statuses][-1] == 429
        for r in statuses:
            conform.check("post", path, r)
    registrations = [c.post("/oauth/register", json={"redirect_uris": [REDIRECT]}) for _ in range(2)]
    assert [r.status_code for r in registrations] == [201, 429]
    for r in registrations:
        conform.check("post", "/oauth/register", r)


def test_storage_outage_responses_conform(
    app: Flask, state: OAuthState, client: FlaskClient, conform: Conformance, token_for: Callable[..., str]
) -> None:
    tok = bearer(token_for())

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("unreachable")

    for name in ("get_client", "ping", "is_jti_revoked", "get_initial_access_token"):
        setattr(state.storage, name, down)
    state.access_tokens.is_revoked = down  # bound when the app was built
    cases = [
        ("post", "/oauth/token", {"data": {"grant_type": "client_credentials", "client_id": "x"}}, 503),
        ("post", "/oauth/introspect", {"data": {"token": "x"}, "headers": basic("x", "y")}, 503),
        ("post", "/oauth/revoke", {"data": {"token": "x", "client_id": "x"}}, 503),
        ("post", "/oauth/register", {"json": {"redirect_uris": [REDIRECT]}, "headers": bearer("iat")}, 503),
        ("get", "/oauth/register/x", {"headers": bearer("x")}, 503),
        ("put", "/oauth/register/x", {"headers": bearer("x"), "json": {}}, 503),
        ("delete", "/oauth/register/x", {"headers": bearer("x")}, 503),
        ("get", "/oauth/authorize", {"query_string": {"client_id": "x"}}, 503),
        ("get", "/healthz", {}, 503),
        ("get", "/mcp/whoami", {"headers": tok}, 503),
        ("post", "/mcp", {"headers": tok, "json": {"jsonrpc": "2.0", "id": 1, "method": "ping"}}, 503),
        ("delete", "/mcp", {"headers": tok}, 503),
    ]
    for method, path, kwargs, expect in cases:
        r = client.open(path, method=method.upper(), **kwargs)
        assert r.status_code == expect, (method, path, r.status_code, r.data[:300])
        conform.check(method, path, r)
