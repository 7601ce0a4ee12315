"""Strategies, storage counts and response checks shared by the property tests."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit

import sqlalchemy as sa
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from app.core import redirects
from plugins.storage.memory import MemoryStorage
from plugins.storage.sql import SQLStorage

MAX_CONTENT_LENGTH = 64 * 1024  # the default, which property_config keeps

# -- storage counts ---------------------------------------------------------------------------

# Records a refused request must never add. (A refused code replay may *revoke*: revoked_jtis
# can grow, and a consumed code is marked used; neither creates anything usable.)
CREATED = ("clients", "auth_codes", "refresh_tokens", "family_jtis", "consents", "users", "initial_access_tokens")
_MEMORY_FIELDS = {
    "clients": "_clients",
    "auth_codes": "_codes",
    "refresh_tokens": "_refresh",
    "consents": "_consents",
    "users": "_users",
    "initial_access_tokens": "_iats",
    "revoked_jtis": "_revoked",
}


def counts(state: Any) -> dict[str, int]:
    """How many records of each kind the app's storage holds (memory or SQL backend)."""
    target = state.storage.target
    if isinstance(target, MemoryStorage):
        out = {name: len(getattr(target, attr)) for name, attr in _MEMORY_FIELDS.items()}
        out["family_jtis"] = sum(len(jtis) for jtis in target._family_jtis.values())
        return out
    assert isinstance(target, SQLStorage), type(target)
    with target.engine.connect() as conn:
        return {
            name: int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one())  # noqa: S608 - fixed names
            for name in (*CREATED, "revoked_jtis")
        }


def assert_nothing_created(before: dict[str, int], after: dict[str, int]) -> None:
    grown = {k: (before[k], after[k]) for k in CREATED if after[k] > before[k]}
    assert not grown, f"a refused request created records: {grown}"


# -- response checks --------------------------------------------------------------------------

_ERROR_CHARS = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]+")


def assert_not_server_error(r: TestResponse) -> None:
    assert r.status_code < 500, (r.status_code, r.get_data()[:300])


def assert_rfc_error(r: TestResponse) -> dict[str, Any]:
    """A 4xx whose body is an RFC 6749 §5.2 error object, sent with ``Cache-Control: no-store``."""
    assert 400 <= r.status_code < 500, (r.status_code, r.get_data()[:300])
    assert r.mimetype == "application/json", (r.status_code, r.mimetype, r.get_data()[:300])
    assert "no-store" in r.headers.get("Cache-Control", ""), dict(r.headers)
    body = json.loads(r.get_data())
    assert isinstance(body, dict) and set(body) <= {"error", "error_description", "error_uri"}, body
    assert isinstance(body.get("error"), str) and _ERROR_CHARS.fullmatch(body["error"]), body
    description = body.get("error_description")
    assert description is None or (isinstance(description, str) and _ERROR_CHARS.fullmatch(description)), body
    return body


def assert_error_page(r: TestResponse) -> None:
    """The authorization endpoint's HTML error page: no redirect, no framing, no caching."""
    assert "Location" not in r.headers, r.headers
    assert r.mimetype == "text/html", (r.status_code, r.mimetype)
    assert r.headers.get("X-Frame-Options") == "DENY"
    assert "frame-ancestors 'none'" in r.headers.get("Content-Security-Policy", "")
    assert "no-store" in r.headers.get("Cache-Control", "")


_RESPONSE_KEYS = ("code", "error")


def redirect_target(location: str) -> tuple[str, dict[str, str]]:
    """Split an authorization-response Location into (the client's target URI, the response
    parameters the server appended). The server appends ``code`` or ``error`` (first) after the
    target's own query, so everything from the first of those on is the response."""
    pairs = parse_qsl(urlsplit(location).query, keep_blank_values=True)
    start = next((i for i, (k, _v) in enumerate(pairs) if k in _RESPONSE_KEYS), None)
    assert start is not None, f"no code or error in {location}"
    appended = urlencode(pairs[start:])
    assert location.endswith(appended), location
    target = location[: -len(appended)]
    assert target.endswith(("?", "&")), location
    target = target[:-1]  # the separator the server added (no seeded URI ends in ? or &)
    response = dict(pairs[start:])
    assert len(response) == len(pairs[start:]), f"repeated response parameters in {location}"
    return target, response


def assert_verified_redirect(location: str, registered: list[str], issuer: str) -> dict[str, str]:
    """The redirect goes to a registered URI (exactly, or a loopback one on another port) and
    carries ``iss`` (RFC 9207). Returns the response parameters."""
    target, response = redirect_target(location)
    assert redirects.matches(target, registered) is not None, (target, registered)
    assert response.get("iss") == issuer, response
    return response


# -- strategies -------------------------------------------------------------------------------

# Characters that have broken parsers before: NUL, controls, bidi overrides, BOM, separators,
# quoting, lone surrogates (sent percent-encoded, so the server sees invalid UTF-8).
ODD_CHARS = [
    "\x00", "\x01", "\x1f", "\x7f", "\x85", "\n", "\r\n", "\t", " ", "\u00a0", "\u202e", "\u2066", "\u200b",
    "\ufeff", "\ud800", "\udfff", "\U0001f600", "é", "%", "+", "&", "=", "#", "?", "/", "\\", '"', "'",
    "<script>", "javascript:", "../", ";", "%00", "%zz", "%e9",
]  # fmt: skip
odd_text = st.lists(st.sampled_from(ODD_CHARS) | st.text(max_size=3), max_size=8).map("".join)
long_text = st.builds(
    lambda ch, n: ch * n, st.sampled_from(["a", "%", "\u202e", "é"]), st.sampled_from([1000, 4095, 4096, 4097, 9000])
)


def param_values(known: list[str]) -> st.SearchStrategy[str]:
    """Parameter values: known-good ones (to get deep into the code), empty, odd and long."""
    return st.one_of(
        st.sampled_from(known) if known else st.nothing(),
        st.just(""),
        st.text(max_size=30),
        odd_text,
        long_text,
    )


def encode_text(value: str) -> str:
    """Form-encode text, lone surrogates included (as the bytes a careless client would send)."""
    return quote_plus(value.encode("utf-8", "surrogatepass"))


GARBAGE_PIECES = st.one_of(
    st.binary(max_size=24),
    st.sampled_from([b"%", b"%G1", b"%e9", b"%ED%A0%80", b"%%", b"=", b"&&", b"a=%ZZ", b"\xff\xfe", b"==", b";a=b"]),
)


@st.composite
def form_bodies(draw: Callable[..., Any], names: list[str], values: st.SearchStrategy[str]) -> bytes:
    """A form body: name=value pairs (repeats included), percent-encoding garbage, raw bytes,
    and sometimes padding to a size around MAX_CONTENT_LENGTH."""
    name_st = st.sampled_from(names) | st.text(max_size=10) | st.sampled_from(ODD_CHARS)
    pairs = draw(st.lists(st.tuples(name_st, values), max_size=10))
    if pairs and draw(st.booleans()):
        pairs.append(draw(st.sampled_from(pairs)))  # an exact repeat
    pieces = [f"{encode_text(n)}={encode_text(v)}".encode("ascii") for n, v in pairs]
    for _ in range(draw(st.integers(0, 3))):
        pieces.insert(draw(st.integers(0, len(pieces))), draw(GARBAGE_PIECES))
    body = b"&".join(pieces)
    size = draw(st.sampled_from([None, None, None, MAX_CONTENT_LENGTH - 1, MAX_CONTENT_LENGTH, MAX_CONTENT_LENGTH + 1]))
    if size is not None and len(body) < size - 6:
        body += b"&pad=" + b"a" * (size - len(body) - 5)
    return body


FORM_TYPES = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "application/x-www-form-urlencoded; charset=latin-1",
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=xyz",
        "",
    ]
)
JSON_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/x-www-form-urlencoded",
        "text/json",
        "",
    ]
)
