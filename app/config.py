"""Every configuration key, typed, with its default.

Three layers, later wins: these defaults, the environment (``OAUTH_ISSUER`` or the Flask-style
``FLASK_OAUTH_ISSUER``), then the ``test_config`` mapping given to ``create_app``. Keys are read
only while the app is built; request code uses ``app.extensions["mcp_oauth"]``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from typing import Any


class Defaults:
    # The one issuer string: metadata issuer, JWT iss, RFC 9207 iss, PRM authorization_servers[0].
    OAUTH_ISSUER: str = "http://127.0.0.1:8000"
    # Durable storage (clients, users, consents, keys); the URL scheme picks the plugin.
    # None means a SQLite file under the app's instance folder.
    OAUTH_STORAGE_URL: str | None = None
    # Optional separate storage for short-lived data (codes, refresh tokens, revocations).
    OAUTH_TOKEN_STORAGE_URL: str | None = None
    # Grant plugins to enable (space-separated entry-point names of mcp_oauth.grants).
    OAUTH_GRANT_TYPES: str = "authorization_code client_credentials refresh_token"
    # Access-token signing algorithm: ES256 (default), RS256 or EdDSA.
    OAUTH_SIGNING_ALG: str = "ES256"
    # Setting this opts in to HS256 with a shared secret (the Node version's variable).
    OAUTH_TOKEN_SECRET: str | None = None
    # Lifetimes, in seconds.
    OAUTH_ACCESS_TOKEN_TTL: int = 3600
    OAUTH_REFRESH_TOKEN_TTL: int = 604800
    OAUTH_CODE_TTL: int = 60
    # Default lifetime of client secrets; 0 means they never expire.
    OAUTH_CLIENT_SECRET_TTL: int = 0
    # Scopes this server knows, with the plain-language text shown on the consent page.
    OAUTH_SCOPES: dict[str, str] = {
        "mcp:tools": "Call tools on the MCP server on your behalf",
        "mcp:resources": "Read resources from the MCP server",
        "mcp:prompts": "Use prompts from the MCP server",
    }
    # Scopes granted when a client registers or asks with no scope.
    OAUTH_DEFAULT_SCOPES: str = "mcp:tools"
    # Extra resources (RFC 8707) tokens may be minted for, e.g. workers on other machines.
    OAUTH_RESOURCES: str = ""
    # Whether anyone may register clients that need a person's consent (RFC 7591 open mode).
    OAUTH_REGISTRATION_OPEN: bool = True
    # Largest request body accepted, in bytes (413 beyond it).
    MAX_CONTENT_LENGTH: int = 64 * 1024
    # Longest single parameter value accepted, in characters.
    OAUTH_MAX_PARAM_LENGTH: int = 4096
    # How many verified access tokens are cached in-process (revocation is still checked).
    OAUTH_TOKEN_CACHE_SIZE: int = 10000
    # Seconds between re-reads of the signing keys from storage (picks up CLI rotation).
    OAUTH_KEY_REFRESH_SECONDS: int = 30
    # Refresh-token grace window in seconds (0 = off): a lost response can be fetched again.
    OAUTH_REFRESH_GRACE_SECONDS: int = 0
    # Rate limiting (the limits library): storage URL and per-purpose limits.
    RATELIMIT_ENABLED: bool = True
    RATELIMIT_STORAGE_URL: str = "memory://"
    RATELIMIT_TOKEN: str = "600/minute"  # per client at the token endpoint
    RATELIMIT_REGISTRATION: str = "30/minute"  # per address at registration
    RATELIMIT_AUTH_FAILURE: str = "30/minute"  # failed client authentications per address
    RATELIMIT_LOGIN: str = "10/minute"  # failed logins per address and per username
    # MCP endpoint: tools to enable, and allowed Host / Origin values (DNS-rebinding defence).
    MCP_TOOLS: str = "whoami"
    MCP_ALLOWED_HOSTS: str = ""
    MCP_ALLOWED_ORIGINS: str = ""
    # Client ID Metadata Documents: allow private/loopback addresses (development only).
    OAUTH_CIMD_ALLOW_PRIVATE: bool = False
    # Seconds a person stays signed in at the authorization endpoint before signing in again.
    OAUTH_LOGIN_SESSION_TTL: int = 28800
    # Reverse proxies in front of the server whose X-Forwarded-For/-Proto/-Host are trusted
    # (werkzeug ProxyFix); 0 = none, so request.remote_addr is the TCP peer.
    OAUTH_TRUSTED_PROXIES: int = 0
    # Secret for session cookies (login, CSRF); generated and stored when unset.
    SECRET_KEY: str | None = None


def load_unprefixed_env(config: MutableMapping[str, Any], environ: dict[str, str] | None = None) -> None:
    """Copy ``OAUTH_*``, ``MCP_*``, ``RATELIMIT_*`` and ``MAX_CONTENT_LENGTH`` from the environment.

    Values are parsed as JSON when they parse (numbers, booleans, objects), else kept as text,
    the same rule as Flask's ``from_prefixed_env``.
    """
    env = os.environ if environ is None else environ
    for key in vars(Defaults):
        if key.isupper() and key in env:
            raw = env[key]
            try:
                config[key] = json.loads(raw)
            except ValueError:
                config[key] = raw


def check_types(config: Mapping[str, Any]) -> None:
    """Every ``int`` and ``bool`` key of ``Defaults`` holds a value of that type.

    Environment values are JSON when they parse, so ``OAUTH_REGISTRATION_OPEN=no`` arrives as
    the text "no": truthy, which would leave registration open, and ``OAUTH_ACCESS_TOKEN_TTL=1h``
    would fail on a request instead of at start-up. Raises ConfigurationError naming the key.
    """
    from app.errors import ConfigurationError

    for key, hint in Defaults.__annotations__.items():
        value = config.get(key)
        if hint == "bool" and not isinstance(value, bool):
            raise ConfigurationError(f"{key} must be true or false, not {value!r}")
        if hint == "int" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ConfigurationError(f"{key} must be a whole number, 0 or more, not {value!r}")
