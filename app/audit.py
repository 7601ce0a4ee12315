"""Structured audit events: one JSON object per line on the ``mcp_oauth.audit`` logger.

Call ``event(name, **fields)`` where something security-relevant happens. Each line carries
``event``, ``ts`` (Unix seconds), the client address when there is a request, and the fields.
Events (name: fields):

- ``client.registered`` / ``client.updated`` / ``client.deleted``: client_id (+ registered_by,
  grant_types, auth_method on registration; by = "registration" or "cli")
- ``token.issued``: grant, client_id, sub, scope, aud, jti, refresh (bool)
- ``refresh.rotated``: client_id, sub, family_id
- ``family.revoked``: reason (``refresh_replay``, ``code_replay``, ``code_replay_race``,
  ``revocation``, ``cli``), client_id, family_id, tokens
- ``token.revoked``: client_id, kind (``access`` or ``refresh``), jti or family_id
- ``login.succeeded`` / ``login.failed``: username, reason on failure
- ``consent.granted`` / ``consent.denied``: sub, client_id, scope
- ``consent.revoked``: sub, client_id (absent = all), count, by
- ``user.created`` / ``user.password_changed`` / ``user.deleted``: username, by

Never a secret or token: fields named like one (``token``, ``password``, ``client_secret``,
``code``, ...) are replaced by ``"[redacted]"`` whatever the caller passes.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson
from flask import has_request_context, request

log = logging.getLogger("mcp_oauth.audit")

# Field names that could carry a credential. A caller's mistake must not put one in the log.
SECRET_FIELDS = frozenset(
    {
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "code",
        "code_verifier",
        "client_secret",
        "secret",
        "password",
        "registration_access_token",
        "initial_access_token",
        "authorization",
        "assertion",
    }
)


def configure() -> None:
    """Send audit lines to stderr (bare JSON, one per line) unless logging is set up already.

    gunicorn leaves the root logger without handlers, so without this INFO lines would vanish;
    an operator who configures logging (or a test's log capture) gets the records as they are.
    """
    global _default_handler
    if log.handlers or logging.getLogger().handlers:
        log.setLevel(logging.INFO)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LINE_FORMAT)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    _default_handler = handler


_LINE_FORMAT = logging.Formatter("%(message)s")


# The handler ``configure`` installed, if it did. While it is the only handler an audit record
# would reach (no other handler on the way to the root, no filter, levels letting INFO through),
# a line is written to its stream as its formatter ("%(message)s") would write it, without
# building a LogRecord: the record and logging's dispatch were ~6% of a token request. Any other
# set-up (a handler added later, a filter, pytest's log capture) goes through logging as usual.
_default_handler: logging.StreamHandler | None = None  # type: ignore[type-arg]


def _write(handler: logging.StreamHandler, line: str) -> bool:  # type: ignore[type-arg]
    """Write one line as the handler would; False if the stream failed (logging then reports it)."""
    handler.acquire()
    try:
        handler.stream.write(line + handler.terminator)
        handler.flush()
    except Exception:  # noqa: BLE001 - the caller hands the record to logging, whose handleError reports it
        return False
    finally:
        handler.release()
    return True


def _sole_default_handler() -> logging.StreamHandler | None:  # type: ignore[type-arg]
    handler = _default_handler
    if (
        handler is None
        or handler.formatter is not _LINE_FORMAT
        or handler.filters
        or handler.level > logging.INFO
        or log.filters
        or log.disabled
    ):
        return None
    found = False
    logger: logging.Logger | None = log
    while logger is not None:
        for other in logger.handlers:
            if other is not handler:
                return None
            found = True
        if not logger.propagate:
            break
        logger = logger.parent
    return handler if found else None


_PLAIN = (str, int, float, bool)


def _clean(value: Any) -> Any:
    if isinstance(value, frozenset | set | tuple):
        return sorted(value) if isinstance(value, frozenset | set) else list(value)
    return value


def event(name: str, **fields: Any) -> None:
    """Log one audit event as a JSON line. Never raises (an audit line must not fail a request)."""
    if not log.isEnabledFor(logging.INFO):
        return
    record = _start(name)
    for key, value in fields.items():
        if value is None:
            continue
        if key in SECRET_FIELDS or key.lower() in SECRET_FIELDS:
            record[key] = "[redacted]"
        else:
            record[key] = value if type(value) in _PLAIN else _clean(value)
    _emit(record)


def _start(name: str, ip: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"event": name, "ts": round(time.time(), 3)}
    if ip is not None:
        record["ip"] = ip
    elif has_request_context():
        record["ip"] = request.remote_addr or ""
    return record


def _emit(record: dict[str, Any]) -> None:
    """Hand one finished line to the logger.

    On the token endpoint's hot path, so it skips what logging would spend on nothing: with the
    default handler alone, the line goes straight to its stream (``_sole_default_handler``);
    otherwise the record is made with ``makeRecord`` rather than ``log.info``, which walks the
    stack for a caller (file and line) that a JSON line never shows, and handlers, filters and
    levels apply as usual (``Logger.handle``).
    """
    try:
        line = _dumps(record)
    except (TypeError, ValueError):
        line = json.dumps({"event": record["event"], "ts": record["ts"], "error": "unserializable fields"})
    handler = _sole_default_handler()
    if handler is not None and _write(handler, line):
        return
    log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, line, None, None, "event"))


_ascii_dumps = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=True).encode


def _dumps(record: dict[str, Any]) -> str:
    """One compact JSON line, ASCII only (other text as \\u escapes, as the json module writes it).

    orjson writes the line about 10x faster than the json module; the few lines that hold
    non-ASCII text (a person's user name, say) go through the json module for its escapes.
    """
    try:
        line = orjson.dumps(record, default=str).decode()
    except TypeError:  # an integer beyond 64 bits, say: the json module writes those
        return _ascii_dumps(record)
    # The json module escapes DEL too; orjson, like JSON itself, only control characters.
    return line if line.isascii() and "\x7f" not in line else _ascii_dumps(record)


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT we just minted, read without verification (no crypto; for logging).

    Returns {} for anything that is not a JWT.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return {}
    return payload if isinstance(payload, dict) else {}


def token_issued(grant: str, body: Mapping[str, Any], ip: str | None = None) -> None:
    """``token.issued`` for a token-endpoint response body: ids and scope, never the tokens.

    Once per token, so the line is built directly: every field here is a known, non-secret
    name (the generic ``event`` checks each name against SECRET_FIELDS). ``ip`` is the client
    address when the caller has it at hand (default: the current request's).
    """
    if not log.isEnabledFor(logging.INFO):
        return
    claims = getattr(body, "claims", None)
    if not isinstance(claims, dict):
        access = body.get("access_token")
        claims = jwt_claims(access) if isinstance(access, str) else {}
    record = _start("token.issued", ip)
    record["grant"] = grant
    fields = {
        "client_id": claims.get("client_id"),
        "sub": claims.get("sub"),
        "scope": body.get("scope", claims.get("scope")),
        "aud": claims.get("aud"),
        "jti": claims.get("jti"),
    }
    for key, value in fields.items():
        if value is not None:
            record[key] = value if type(value) in _PLAIN else _clean(value)
    record["refresh"] = "refresh_token" in body
    _emit(record)
