"""Properties of the registration schema (app/oauth/schemas.py via register.validate_metadata),
in process: any JSON value is either refused with marshmallow's ValidationError or an OAuthError,
or accepted as metadata that keeps every rule the rest of the server relies on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from app import create_app
from app.core import redirects
from app.errors import OAuthError
from app.oauth.register import validate_metadata
from app.oauth.schemas import AUTH_METHODS, GRANT_TYPES, ClientMetadataSchema, client_metadata_schema
from app.state import OAuthState
from tests.property.conftest import examples, property_config
from tests.property.support import ODD_CHARS, long_text, odd_text
from tests.support.checks import nulls

URIS = [
    "http://127.0.0.1:8765/cb",
    "http://localhost/cb",
    "http://[::1]:9/cb",
    "https://app.example.com/cb",
    "https://app.example.com/cb?x=1",
    "com.example.app:/cb",
    "myapp://cb",
    "http://example.com/cb",
    "https://x.example/cb#frag",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,x",
    "file:///etc/passwd",
    "https://",
    "//evil.example/cb",
    "/relative",
    "",
    " ",
    "https://a.example/\u202e",
    "https://a.example/é",
    "http://127.0.0.1:99999/cb",
    "http://user@127.0.0.1/cb",
    "HTTP://127.0.0.1/cb",
    "https://app.example.com/cb\x00",
    "https://[::1/cb",
    "http://127.0.0.1.evil.example/cb",
]
GRANTS = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
    "implicit",
    "urn:ietf:params:oauth:grant-type:device_code",
    "",
    "AUTHORIZATION_CODE",
    "x" * 70,
    "authorization_code ",
]
SCOPES = ["mcp:tools", "mcp:tools mcp:resources", "mcp:tools  mcp:tools", "unknown", "", " ", "mcp:tools\x00", "é"]
TEXT_FIELDS = ["client_name", "software_id", "software_version"]
URI_FIELDS = ["client_uri", "logo_uri", "tos_uri", "policy_uri"]
FIELDS = sorted(ClientMetadataSchema().fields)

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    odd_text,
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
text_values = st.one_of(st.text(max_size=40), odd_text, long_text, st.sampled_from(ODD_CHARS))
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "redirect_uris": st.lists(st.sampled_from(URIS) | text_values, max_size=4)
    | st.lists(st.sampled_from(URIS[:3]), min_size=21, max_size=22),
    "grant_types": st.lists(st.sampled_from(GRANTS), max_size=4),
    "response_types": st.lists(st.sampled_from(["code", "token", "id_token", ""]), max_size=2),
    "token_endpoint_auth_method": st.sampled_from([*AUTH_METHODS, "private_key_jwt", "", "NONE"]),
    "scope": st.sampled_from(SCOPES) | text_values,
    "contacts": st.lists(text_values, max_size=3),
    **{name: text_values for name in TEXT_FIELDS},
    **{name: st.sampled_from(URIS) | text_values for name in URI_FIELDS},
}


VALID_BASES: list[dict[str, Any]] = [
    {},
    {"redirect_uris": ["http://127.0.0.1:8765/cb"]},
    {"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "none"},
    {"redirect_uris": ["com.example.app:/cb"], "grant_types": ["authorization_code", "refresh_token"]},
    {"grant_types": ["client_credentials"]},
    {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"},
]


@st.composite
def metadata_like(draw: Any) -> dict[str, Any]:
    """A valid registration (often) with fields added or overwritten: plausible values mostly,
    arbitrary JSON sometimes, so that both acceptance and every refusal get exercised."""
    names = draw(st.lists(st.sampled_from([*FIELDS, "client_id", "client_secret", "jwks", "extra"]), max_size=6))
    body: dict[str, Any] = dict(draw(st.sampled_from(VALID_BASES)))
    for name in names:
        strategy = PLAUSIBLE.get(name, json_values)
        body[name] = draw(st.one_of(strategy, json_values) if draw(st.integers(0, 4)) == 0 else strategy)
    return body


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthState]:
    app: Flask = create_app(property_config(Path(tmp_path_factory.mktemp("schema")), "memory"))
    yield app.extensions["mcp_oauth"]
    app.extensions["mcp_oauth"].close()


def _validate(state: OAuthState, body: Any) -> dict[str, Any] | None:
    """The accepted metadata, or None when refused the documented way."""
    try:
        return validate_metadata(state, body)
    except (ValidationError, OAuthError):
        return None


BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _plain(text: str) -> bool:
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in BIDI or "\ud800" <= c <= "\udfff" for c in text)


def check_invariants(state: OAuthState, data: dict[str, Any]) -> None:
    """Everything the registration endpoint, the authorization endpoint and the pages assume."""
    assert set(data) <= set(FIELDS), data
    assert not nulls(data), data
    # Stored as JSON, shown on pages, sent in headers: it must be encodable UTF-8 text.
    json.dumps(data, ensure_ascii=False).encode("utf-8")
    uris = data["redirect_uris"]
    assert isinstance(uris, list) and len(uris) <= 20 and len(set(uris)) == len(uris), uris
    assert all(isinstance(u, str) and redirects.problem(u) is None for u in uris), uris
    grants = data["grant_types"]
    assert grants and len(set(grants)) == len(grants), grants
    assert all(g in GRANT_TYPES or g in state.grants for g in grants), grants
    if "refresh_token" in grants:
        assert "authorization_code" in grants, grants
    if "authorization_code" in grants:
        assert uris and data["response_types"] == ["code"], data
    else:
        assert data["response_types"] == [], data
    method = data["token_endpoint_auth_method"]
    assert method in AUTH_METHODS, method
    if "client_credentials" in grants:
        assert method != "none", data
    if "scope" in data:
        tokens = data["scope"].split(" ")
        assert tokens and all(tokens) and len(set(tokens)) == len(tokens), data["scope"]
        assert all(s in state.scopes for s in tokens), data["scope"]
    for name in TEXT_FIELDS:
        if name in data:
            assert isinstance(data[name], str) and _plain(data[name]), (name, data[name])
    for contact in data.get("contacts", []):
        assert _plain(contact), contact
    for name in URI_FIELDS:
        if name in data:
            assert redirects.problem(data[name]) is None, data
            assert data[name].split(":", 1)[0].lower() in ("http", "https"), data
    # Normalising is idempotent: stored metadata re-validates to itself (RFC 7592 reads and updates).
    assert validate_metadata(state, data) == data


@examples(400)
@given(body=json_values)
def test_any_json_value_is_refused_or_valid(state: OAuthState, body: Any) -> None:
    data = _validate(state, body)
    if data is not None:
        check_invariants(state, data)


@examples(1200)
@given(body=metadata_like())
def test_accepted_metadata_keeps_every_invariant(state: OAuthState, body: dict[str, Any]) -> None:
    data = _validate(state, body)
    if data is not None:
        check_invariants(state, data)


@examples(200)
@given(body=json_values)
def test_schema_load_raises_only_validation_errors(body: Any) -> None:
    """The marshmallow schema alone: garbage is a ValidationError, never a TypeError or such."""
    try:
        client_metadata_schema.load(body)
    except ValidationError:
        pass


def test_the_strategies_reach_acceptance(state: OAuthState) -> None:
    """The generators can produce accepted metadata (else the invariant test proves nothing)."""
    accepted = [
        {"redirect_uris": ["http://127.0.0.1:8765/cb"]},
        {"grant_types": ["client_credentials"], "scope": "mcp:tools  mcp:tools"},
        {"redirect_uris": ["com.example.app:/cb"], "grant_types": ["authorization_code", "refresh_token"]},
    ]
    for body in accepted:
        data = _validate(state, body)
        assert data is not None, body
        check_invariants(state, data)
