"""What the token endpoint's faster paths must keep: the same bodies, lines, answers and errors.

Each shortcut here (reading the body straight from the WSGI input, orjson for token payloads,
responses and audit lines, the limiter answering untouched keys without reading counters, the
gunicorn workers' frozen start-up heap) is checked against what the slower path gave.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import runpy
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from app import audit, create_app
from app.oauth.params import form_params
from app.oauth.register import new_client, validate_metadata
from app.oauth.responses import no_store_json
from app.state import OAuthState
from plugins.ratelimit.limits_backend import LimitsRateLimiter
from plugins.storage.sql import _loads
from tests.conftest import base_config
from tests.support.checks import assert_error, basic

FORM = "application/x-www-form-urlencoded"
ROOT = Path(__file__).resolve().parents[2]


# -- the form body ----------------------------------------------------------------------------


def _form_environ(body: bytes, length: str | None, **extra: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {"CONTENT_TYPE": FORM, "wsgi.input": io.BytesIO(body), **extra}
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    return environ


def test_form_body_read_once_and_left_for_get_data(app: Flask) -> None:
    body = b"grant_type=client_credentials&scope=mcp%3Atools"
    with app.test_request_context("/oauth/token", method="POST", environ_overrides=_form_environ(body, str(len(body)))):
        assert form_params() == {"grant_type": "client_credentials", "scope": "mcp:tools"}
        assert request.get_data() == body  # cached where werkzeug looks, not read again
        assert form_params() == {"grant_type": "client_credentials", "scope": "mcp:tools"}


def test_form_body_stops_at_content_length(app: Flask) -> None:
    # Without wsgi.input_terminated the stream may hold more than the body (a pipelined request).
    environ = _form_environ(b"grant_type=x&scope=y" + b"GET / HTTP/1.1\r\n", "20")
    with app.test_request_context("/oauth/token", method="POST", environ_overrides=environ):
        assert form_params() == {"grant_type": "x", "scope": "y"}


def test_body_shorter_than_content_length_is_invalid_request(client: FlaskClient) -> None:
    body = b"grant_type=client_credentials"
    r = client.post("/oauth/token", environ_overrides=_form_environ(body, str(len(body) + 10)))
    assert_error(r, 400, "invalid_request", "shorter than its Content-Length")


def test_body_without_content_length_still_parsed_when_the_server_terminates_it(
    client: FlaskClient, make_client: Any
) -> None:
    cid, secret = make_client()
    body = b"grant_type=client_credentials&scope=mcp%3Atools"
    environ = _form_environ(body, None, **{"wsgi.input_terminated": True})
    r = client.post("/oauth/token", headers=basic(cid, secret), environ_overrides=environ)
    assert r.status_code == 200, r.data
    assert r.get_json()["scope"] == "mcp:tools"


def test_oversized_declared_body_is_413_and_not_read(client: FlaskClient) -> None:
    stream = io.BytesIO(b"a" * 10)
    environ = {"CONTENT_TYPE": FORM, "CONTENT_LENGTH": str(64 * 1024 + 1), "wsgi.input": stream}
    r = client.post("/oauth/token", environ_overrides=environ)
    assert_error(r, 413, "invalid_request", "larger")
    assert stream.tell() == 0


# -- JSON encodings ---------------------------------------------------------------------------


def test_token_payload_is_compact_json_and_verifies(client: FlaskClient, make_client: Any, state: OAuthState) -> None:
    cid, secret = make_client()
    r = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(cid, secret))
    assert r.status_code == 200, r.data
    token = r.get_json()["access_token"]
    payload = jwt.utils.base64url_decode(token.split(".")[1])
    claims = json.loads(payload)
    assert payload == json.dumps(claims, separators=(",", ":")).encode()  # what jwt.encode would sign
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": state.keys.current().kid, "typ": "at+jwt"}
    assert state.access_tokens.decode(token, claims["aud"]).jti == claims["jti"]


def test_responses_are_sorted_compact_utf8_json_without_nulls(app: Flask) -> None:
    with app.test_request_context("/"):
        r = no_store_json({"b": 1, "a": "caf\u00e9 \U0001f600", "c": None, "d": [1, "x"]}, 201)
    assert r.status_code == 201 and r.mimetype == "application/json"
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"
    assert r.get_data() == '{"a":"caf\u00e9 \U0001f600","b":1,"d":[1,"x"]}\n'.encode()
    assert int(r.headers["Content-Length"]) == len(r.get_data())


@pytest.mark.parametrize(
    "fields",
    [
        {"client_id": "abc", "scope": "mcp:tools", "refresh": False, "count": 3, "ratio": 0.5},
        {"username": "caf\u00e9", "emoji": "\U0001f600"},  # non-ASCII: escaped, as the json module does
        {"label": "a\x7fb\x01c\nd\u2028"},  # DEL and control characters escaped; one line
        {"big": 2**70, "negative": -(2**65)},  # beyond orjson's 64 bits
        {"when": time, "items": frozenset({"b", "a"}), "pair": ("x", 1)},  # default=str, sets sorted
    ],
)
def test_audit_lines_match_the_json_module(fields: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mcp_oauth.audit")
    audit.event("test.event", **fields)
    (record,) = [r for r in caplog.records if r.name == "mcp_oauth.audit"]
    line = record.getMessage()
    expected = dict(json.loads(line))
    # The same text the json module writes (ensure_ascii, default=str), field for field.
    reference = {"event": "test.event", "ts": expected["ts"]}
    reference |= {k: audit._clean(v) for k, v in fields.items()}
    assert line == json.dumps(reference, separators=(",", ":"), default=str, ensure_ascii=True)
    assert line.isascii() and "\n" not in line and "\x7f" not in line


def test_token_issued_line_has_ids_and_no_token(
    caplog: pytest.LogCaptureFixture, client: FlaskClient, make_client: Any
) -> None:
    caplog.set_level(logging.INFO, logger="mcp_oauth.audit")
    cid, secret = make_client()
    r = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(cid, secret))
    token = r.get_json()["access_token"]
    lines = [r.getMessage() for r in caplog.records if r.name == "mcp_oauth.audit"]
    issued = [json.loads(line) for line in lines if '"token.issued"' in line]
    assert len(issued) == 1 and token not in lines[-1] and secret not in lines[-1]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert issued[0] == {
        "event": "token.issued",
        "ts": issued[0]["ts"],
        "ip": "127.0.0.1",
        "grant": "client_credentials",
        "client_id": cid,
        "sub": cid,
        "scope": claims["scope"],
        "aud": claims["aud"],
        "jti": claims["jti"],
        "refresh": False,
    }


def test_stored_json_reads_with_either_parser() -> None:
    assert _loads('{"scope":"mcp:tools","n":[1,2]}') == {"scope": "mcp:tools", "n": [1, 2]}
    assert _loads('{"big":' + str(2**70) + "}") == {"big": 2**70}  # orjson refuses, json reads
    with pytest.raises(ValueError):
        _loads("{not json")


# -- the limiter ------------------------------------------------------------------------------


def test_untouched_key_answered_without_reading_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = LimitsRateLimiter("memory://")
    reads: list[str] = []
    real = limiter.storage.get_sliding_window

    def counting(key: str, expiry: int) -> Any:
        reads.append(key)
        return real(key, expiry)

    monkeypatch.setattr(limiter.storage, "get_sliding_window", counting)
    assert limiter.test("2/minute", "auth", "10.0.0.1").allowed
    assert reads == []
    limiter.hit("2/minute", "auth", "10.0.0.1")
    assert limiter.test("2/minute", "auth", "10.0.0.1").allowed
    limiter.hit("2/minute", "auth", "10.0.0.1")
    refused = limiter.test("2/minute", "auth", "10.0.0.1")
    assert not refused.allowed and refused.retry_after >= 1
    assert len(reads) == 3  # a key that was hit is read every time (and once more for Retry-After)
    assert limiter.test("2/minute", "auth", "10.0.0.2").allowed and len(reads) == 3


def test_limiter_forgets_keys_two_windows_after_their_last_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = LimitsRateLimiter("memory://")
    storage = limiter.storage
    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    limiter.hit("1/second", "auth", "a")
    assert not limiter.test("1/second", "auth", "a").allowed
    (key,) = list(storage._live_until)
    assert storage.may_have_counters(key)
    now[0] += 2.01  # both the current and the previous window are over
    assert not storage.may_have_counters(key)
    assert limiter.test("1/second", "auth", "a").allowed
    storage._next_expiry = 0.0
    storage._MemoryStorage__schedule_expiry()
    assert storage._live_until == {}


def test_failed_authentications_still_throttle_the_address(tmp_path: Path) -> None:
    # 3 failed authentications per minute per address, then 429 even with the right secret:
    # the failure count is read because the address has been hit.
    app = create_app(base_config(tmp_path, RATELIMIT_AUTH_FAILURE="3/minute"))
    client = app.test_client()
    with app.app_context():
        state: OAuthState = app.extensions["mcp_oauth"]
        body = {"grant_types": ["client_credentials"], "scope": "mcp:tools", "redirect_uris": []}
        registered, secret, _ = new_client(state, validate_metadata(state, body), registered_by="cli")
    cid = registered.client_id
    r = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(cid, secret))
    assert r.status_code == 200  # an address that never failed
    for _ in range(3):
        r = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(cid, "wrong"))
        assert r.status_code == 401
    r = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(cid, secret))
    assert_error(r, 429, "rate_limited")


# -- gunicorn workers -------------------------------------------------------------------------


def test_workers_freeze_their_start_up_heap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Reading the settings sets PROMETHEUS_MULTIPROC_DIR when unset: keep it to this test.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    hooks = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert gc.get_freeze_count() == 0
    try:
        hooks["post_worker_init"](None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


# -- audit lines with logging left unconfigured (gunicorn's default) ---------------------------

AUDIT_SCRIPT = """
import io, json, logging, sys
from app import audit

audit.configure()  # nothing configured: the default stderr handler
audit.event("one", client_id="a", secret="s")
made = []
real = logging.Logger.makeRecord
logging.Logger.makeRecord = lambda *a, **k: made.append(1) or real(*a, **k)
audit.event("two", client_id="b")
print("records", len(made), file=sys.stdout)
class Drop(logging.Filter):
    def filter(self, record):
        return "three" not in record.getMessage()
audit.log.addFilter(Drop())  # a filter: logging decides
audit.event("three")
audit.event("four")
audit.log.filters.clear()
extra = io.StringIO()
logging.getLogger().addHandler(logging.StreamHandler(extra))  # a second handler: both get the line
audit.event("five")
logging.getLogger().handlers.clear()
audit.log.setLevel(logging.WARNING)  # the level still decides
audit.event("six")
audit.log.setLevel(logging.INFO)
audit.event("seven")
print("records", len(made), "extra", extra.getvalue().strip(), file=sys.stdout)
"""


def test_default_handler_lines_are_written_directly_and_logging_still_rules() -> None:
    out = subprocess.run(
        [sys.executable, "-c", AUDIT_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in out.stderr.splitlines()]
    assert [e["event"] for e in lines] == ["one", "two", "four", "five", "seven"]
    assert lines[0]["secret"] == "[redacted]" and lines[0]["client_id"] == "a"
    first, second = out.stdout.splitlines()
    assert first == "records 0"  # the sole default handler: no LogRecord built
    records, count, extra_label, extra_line = second.split(" ", 3)
    # The filter and the second handler each sent lines through logging (three, four, five).
    assert (records, count, extra_label) == ("records", "3", "extra")
    assert json.loads(extra_line)["event"] == "five"
    assert out.stderr.endswith("\n") and "\n\n" not in out.stderr
