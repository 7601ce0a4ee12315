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
    if log.handlers or logging.getLogger().handlers:
        log.setLevel(logging.INFO)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


_PLAIN = (str, int, float, bool)


def _clean(value: Any) -> Any:
    if isinstance(value, frozenset | set | tuple):
        return sorted(value) if isinstance(value, frozenset | set) else list(value)
    return value


def event(name: str, **fields: Any) -> None:
    """Log one audit event as a JSON line. Never raises (an audit line must not fail a request).

    On the token endpoint's hot path, so it skips what logging would spend on nothing: no line is
    built when the logger would drop it, and the record is made with ``makeRecord`` rather than
    ``log.info``, which walks the stack for a caller (file and line) that a JSON line never shows.
    Handlers, filters and levels apply as usual (``Logger.handle``).
    """
    if not log.isEnabledFor(logging.INFO):
        return
    record: dict[str, Any] = {"event": name, "ts": round(time.time(), 3)}
    if has_request_context():
        record["ip"] = request.remote_addr or ""
    for key, value in fields.items():
        if value is None:
            continue
        if key in SECRET_FIELDS or key.lower() in SECRET_FIELDS:
            record[key] = "[redacted]"
        else:
            record[key] = value if type(value) in _PLAIN else _clean(value)
    try:
        line = _dumps(record)
    except (TypeError, ValueError):
        line = json.dumps({"event": name, "ts": record["ts"], "error": "unserializable fields"})
    log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, line, None, None, "event"))


_dumps = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=True).encode


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


def token_issued(grant: str, body: Mapping[str, Any]) -> None:
    """``token.issued`` for a token-endpoint response body: ids and scope, never the tokens."""
    claims = getattr(body, "claims", None)
    if not isinstance(claims, dict):
        access = body.get("access_token")
        claims = jwt_claims(access) if isinstance(access, str) else {}
    event(
        "token.issued",
        grant=grant,
        client_id=claims.get("client_id"),
        sub=claims.get("sub"),
        scope=body.get("scope", claims.get("scope")),
        aud=claims.get("aud"),
        jti=claims.get("jti"),
        refresh="refresh_token" in body,
    )
