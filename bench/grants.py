"""Benchmark targets for the grants that spend what they are given: the code exchange and the
refresh grant. Each request needs its own unused code or refresh token, so these targets make a
pool of single-use bodies (``Request.pool``) that ``bench/lua/pool.lua`` sends once each.

Codes and refresh tokens are written straight into the server's storage, as the authorization
endpoint and an earlier exchange would have written them, so the measurement is the token
endpoint alone: client lookup, the atomic consume or rotation, PKCE, minting a JWT, recording
its ``jti`` in the family, and (code exchange) storing the first refresh token.
"""

from __future__ import annotations

import base64
import hashlib
import secrets as pysecrets
import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode

if TYPE_CHECKING:
    from bench.run import Fixture

REDIRECT = "http://127.0.0.1:33418/callback"
SUBJECT = "bench-user"


def public_client(fx: Fixture) -> str:
    """A public MCP client (PKCE only), registered as the Python SDK registers: its client_id."""

    def make() -> str:
        from app.models import User
        from app.oauth.register import new_client, validate_metadata

        body = {
            "client_name": "bench MCP client",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "scope": "mcp:tools mcp:resources",
        }
        with fx.app.app_context():
            client, _, _ = new_client(fx.state, validate_metadata(fx.state, body), registered_by="cli")
        # The refresh grant checks that the person still exists and may sign in.
        fx.state.storage.save_user(User(username=SUBJECT, password_hash="$argon2id$unused", created_at=0))
        return client.client_id

    return fx.once("public_client", make)  # type: ignore[no-any-return]


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def code_pool(fx: Fixture, n: int) -> list[str]:
    """``n`` stored authorization codes, as token-request bodies (one hour to live: pools are
    made before a measurement, and a code must not expire while it waits its turn)."""
    from app.core import secrets
    from app.models import AuthorizationCode

    cid = public_client(fx)
    store = fx.state.token_store
    now = int(time.time())
    bodies, records = [], []
    for _ in range(n):
        code, verifier = secrets.new_token(), pysecrets.token_urlsafe(48)
        records.append(
            AuthorizationCode(
                code_hash=secrets.token_hash(code),
                client_id=cid,
                redirect_uri=REDIRECT,
                code_challenge=_s256(verifier),
                scope="mcp:tools",
                resource=fx.state.default_resource,
                subject=SUBJECT,
                family_id=secrets.new_token(16),
                expires_at=now + 3600,
                auth_time=now,
            )
        )
        bodies.append(
            urlencode(
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "code_verifier": verifier,
                    "client_id": cid,
                    "redirect_uri": REDIRECT,
                }
            )
        )
    fx.save_all(store.save_code, records)
    return bodies


def refresh_pool(fx: Fixture, n: int) -> list[str]:
    """``n`` current refresh tokens, each the head of its own family, as request bodies."""
    from app.core import secrets
    from app.models import RefreshToken

    cid = public_client(fx)
    store = fx.state.token_store
    now = int(time.time())
    ttl = int(fx.state.config["OAUTH_REFRESH_TOKEN_TTL"])
    bodies, records = [], []
    for _ in range(n):
        value = secrets.new_token()
        records.append(
            RefreshToken(
                token_hash=secrets.token_hash(value),
                family_id=secrets.new_token(16),
                client_id=cid,
                subject=SUBJECT,
                scope="mcp:tools",
                resource=fx.state.default_resource,
                issued_at=now,
                expires_at=now + ttl,
            )
        )
        bodies.append(urlencode({"grant_type": "refresh_token", "refresh_token": value, "client_id": cid}))
    fx.save_all(store.save_refresh_token, records)
    return bodies
