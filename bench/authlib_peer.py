"""The peer reference for the benchmark: the same ``client_credentials`` work, built on Authlib.

A small Flask app on Authlib's Flask OAuth 2 server integration, doing what this server does
on its hot rows, so ``bench/run.py`` can put the two side by side:

- ``POST /oauth/token``: ``grant_type=client_credentials`` with ``client_secret_basic``
  (Authlib's ``AuthorizationServer`` and ``ClientCredentialsGrant``). The client is read from a
  SQLite file on every request and its secret checked against a stored SHA-256 hash in constant
  time, as ours does. The access token is an RFC 9068 JWT (``typ: at+jwt``) signed ES256 by
  Authlib's ``JWTBearerTokenGenerator``; nothing is written per token (ours writes nothing either).
- ``GET /whoami``: Authlib's ``ResourceProtector`` with its RFC 9068 ``JWTBearerTokenValidator``
  (signature, ``iss``, ``aud``, ``exp``, and here ``typ`` required), answering a small JSON object.
- ``GET /jwks.json``: the public key (the benchmark's start-up probe).

It is meant to be a fair reference, not a straw man: the client lookup uses a per-thread
``sqlite3`` connection (as our SQLite reads do), the signing and verification keys are imported
once per process, and nothing else (rate limits, metrics, CORS) runs. Run it as the benchmark does::

    AUTHLIB_PEER_DB=/tmp/peer.sqlite3 .venv/bin/gunicorn -c gunicorn.conf.py 'bench.authlib_peer:create_app()'

Environment (read once, in ``create_app``):

- ``AUTHLIB_PEER_ISSUER``: the ``iss`` of the tokens and the only issuer ``/whoami`` accepts
  (default ``http://127.0.0.1:8000``; it need not match the port the app listens on);
- ``AUTHLIB_PEER_RESOURCE``: the ``aud`` of the tokens and the resource ``/whoami`` is
  (default ``<issuer>/mcp``);
- ``AUTHLIB_PEER_DB``: the SQLite file (default ``authlib-peer.sqlite3`` in the temp directory);
- ``AUTHLIB_PEER_CLIENT_ID`` and ``AUTHLIB_PEER_CLIENT_SECRET``: the confidential client created
  at start if missing (defaults ``bench-peer`` and ``bench-peer-secret-...``);
- ``AUTHLIB_PEER_TTL``: access token lifetime in seconds (default 3600, as ours).

Every worker process runs ``create_app``; the schema, the client and the signing key are created
with ``IF NOT EXISTS`` / ``INSERT OR IGNORE``, so the workers agree on one key (stored in the file).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import tempfile
import threading
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector, current_token
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator, JWTBearerTokenValidator
from flask import Flask
from flask.typing import ResponseReturnValue
from joserfc.jwk import ECKey

DEFAULT_CLIENT_ID = "bench-peer"
DEFAULT_CLIENT_SECRET = "bench-peer-secret-0123456789abcdef0123456789abcdef"
SCOPES = ("mcp:tools", "mcp:resources")

SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    scope TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    auth_method TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS signing_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    jwk TEXT NOT NULL
);
"""


def secret_hash(secret: str) -> bytes:
    """The SHA-256 digest stored in place of a client secret (as ours stores it)."""
    return hashlib.sha256(secret.encode()).digest()


class Client(ClientMixin):
    """One row of ``clients``: the methods Authlib's server calls on a client."""

    def __init__(self, client_id: str, stored_hash: bytes, scope: str, grant_types: str, auth_method: str) -> None:
        self.client_id = client_id
        self.stored_hash = stored_hash
        self.scope = scope
        self.grant_types = grant_types.split()
        self.auth_method = auth_method

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        # Authlib's SQLAlchemy mixin does the same: the requested scopes this client may have.
        if not scope:
            return ""
        allowed = set(self.scope.split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(secret_hash(client_secret), self.stored_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint != "token" or method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


class Store:
    """The SQLite file: one ``sqlite3`` connection per thread (and process), opened on first use."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def conn(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            local.pid = os.getpid()
        conn: sqlite3.Connection = local.conn
        return conn

    def setup(self, client_id: str, client_secret: str) -> ECKey:
        """Schema, the benchmark's client and the signing key, each created unless present
        (every worker runs this; the first one's key wins). Returns the signing key."""
        conn = self.conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        conn.execute(
            "INSERT OR IGNORE INTO clients VALUES (?, ?, ?, ?, ?)",
            (client_id, secret_hash(client_secret), " ".join(SCOPES), "client_credentials", "client_secret_basic"),
        )
        fresh = ECKey.generate_key("P-256", private=True)
        conn.execute("INSERT OR IGNORE INTO signing_key VALUES (1, ?)", (json.dumps(fresh.as_dict(private=True)),))
        (jwk,) = conn.execute("SELECT jwk FROM signing_key WHERE id = 1").fetchone()
        key = ECKey.import_key(json.loads(jwk))
        key.ensure_kid()
        return key

    def client(self, client_id: str) -> Client | None:
        """The client, read from the file on every call (no cache, as ours)."""
        row = (
            self.conn()
            .execute(
                "SELECT client_id, secret_hash, scope, grant_types, auth_method FROM clients WHERE client_id = ?",
                (client_id,),
            )
            .fetchone()
        )
        return Client(*row) if row is not None else None


class TokenGenerator(JWTBearerTokenGenerator):
    """RFC 9068 access tokens signed with the stored key, for the configured resource."""

    def __init__(self, issuer: str, resource: str, key: ECKey, ttl: int) -> None:
        super().__init__(issuer, alg="ES256", expires_generator=lambda client, grant_type: ttl)
        self.resource = resource
        self.key = key

    def get_jwks(self) -> ECKey:
        return self.key  # an imported key: Authlib uses it as it is

    def get_audiences(self, client: Any, user: Any, scope: str) -> str:
        return self.resource


class TokenValidator(JWTBearerTokenValidator):
    """Authlib's RFC 9068 validator with the public key, and ``typ`` required, not only checked
    when present (RFC 9068 section 4: resource servers MUST check it is ``at+jwt``)."""

    def __init__(self, issuer: str, resource: str, public_key: ECKey) -> None:
        super().__init__(issuer=issuer, resource_server=resource)
        self.public_key = public_key

    def get_jwks(self) -> ECKey:
        return self.public_key

    def validate_token(self, token: Any, scopes: Any, request: Any, **kwargs: Any) -> None:
        if str(token.header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            raise InvalidTokenError(realm=self.realm, extra_attributes=self.extra_attributes)
        super().validate_token(token, scopes, request, **kwargs)


def create_app() -> Flask:
    """The peer app, configured from the environment (see the module docstring)."""
    env = os.environ
    issuer = env.get("AUTHLIB_PEER_ISSUER", "http://127.0.0.1:8000").rstrip("/")
    resource = env.get("AUTHLIB_PEER_RESOURCE", issuer + "/mcp")
    path = env.get("AUTHLIB_PEER_DB") or os.path.join(tempfile.gettempdir(), "authlib-peer.sqlite3")
    client_id = env.get("AUTHLIB_PEER_CLIENT_ID", DEFAULT_CLIENT_ID)
    client_secret = env.get("AUTHLIB_PEER_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
    ttl = int(env.get("AUTHLIB_PEER_TTL", "3600"))

    store = Store(path)
    key = store.setup(client_id, client_secret)
    public_key = ECKey.import_key(key.as_dict(private=False))

    app = Flask(__name__)
    app.config["OAUTH2_SCOPES_SUPPORTED"] = list(SCOPES)
    server = AuthorizationServer(app, query_client=store.client, save_token=lambda token, request: None)
    server.register_grant(ClientCredentialsGrant)
    server.register_token_generator("client_credentials", TokenGenerator(issuer, resource, key, ttl))
    require_oauth = ResourceProtector()
    require_oauth.register_token_validator(TokenValidator(issuer, resource, public_key))

    @app.post("/oauth/token")
    def issue_token() -> ResponseReturnValue:
        return server.create_token_response()

    @app.get("/whoami")
    @require_oauth("mcp:tools")
    def whoami() -> ResponseReturnValue:
        claims = current_token
        return {"sub": claims["sub"], "client_id": claims["client_id"], "scope": claims.get("scope", "")}

    @app.get("/jwks.json")
    def jwks() -> ResponseReturnValue:
        return {"keys": [public_key.as_dict(private=False) | {"alg": "ES256", "use": "sig"}]}

    return app
