"""Prepare a deployment's storage in-process before starting gunicorn on it: what ``oauth init``,
``oauth client create`` and ``oauth user create`` do, without a subprocess each."""

from __future__ import annotations

from dataclasses import dataclass

from app import create_app
from app.oauth.register import new_client, validate_metadata
from app.users import LocalAuthenticator
from tests.support.grants import REDIRECT

PERSON = "alice"
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Prepared:
    client: tuple[str, str]  # (client_id, secret): authorization_code + refresh_token, confidential
    introspector: tuple[str, str]  # client_credentials, may introspect any token
    worker: tuple[str, str]  # client_credentials, plain


def prepare(env: dict[str, str]) -> Prepared:
    """Migrate, make a signing key, register three clients and the person ``alice``."""
    app = create_app({"TESTING": True, **env})
    state = app.extensions["mcp_oauth"]
    made = []
    with app.app_context():
        for body, privileges in (
            (
                {
                    "client_name": "desktop app",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "redirect_uris": [REDIRECT],
                    "scope": "mcp:tools",
                    "token_endpoint_auth_method": "client_secret_basic",
                },
                frozenset(),
            ),
            ({"client_name": "resource server", "grant_types": ["client_credentials"]}, frozenset({"introspect"})),
            ({"client_name": "worker", "grant_types": ["client_credentials"]}, frozenset()),
        ):
            client, secret, _ = new_client(
                state, validate_metadata(state, body), registered_by="cli", privileges=privileges
            )
            assert secret is not None
            made.append((client.client_id, secret))
        LocalAuthenticator(state.storage).create(PERSON, PASSWORD, state.now())
    state.close()
    return Prepared(made[0], made[1], made[2])
