"""Fixtures for the security walk: an app with every grant, a person, and one client of each
kind (operator-registered public and confidential, machine, self-registered), plus a helper that
walks the person's browser through login and consent to a code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.core import secrets
from app.models import InitialAccessToken
from tests.conftest import base_config
from tests.support.people import PASSWORD, fast_authenticator, form, pkce_pair, redirect_params

LOOPBACK = "http://127.0.0.1:8765/callback"
WEB = "https://app.example.com/cb"
SELF_WEB = "https://self.example.com/cb"


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    return base_config(tmp_path, OAUTH_GRANT_TYPES="authorization_code refresh_token client_credentials")


@pytest.fixture
def alice(app: Any, state: Any) -> str:
    with app.app_context():
        fast_authenticator(state).create("alice", PASSWORD, state.now())
    return "alice"


@dataclass
class Clients:
    public: str  # operator-registered public client, loopback redirect (a desktop MCP client)
    confidential: tuple[str, str]  # operator-registered web client with a secret
    machine: tuple[str, str]  # client_credentials worker
    dynamic: str  # self-registered public client with a web redirect


@pytest.fixture
def clients(client: FlaskClient, make_client: Callable[..., tuple[str, str | None]]) -> Clients:
    public, _ = make_client(
        ("authorization_code", "refresh_token"),
        auth_method="none",
        redirect_uris=(LOOPBACK,),
        client_name="Desktop Client",
    )
    conf, conf_secret = make_client(
        ("authorization_code", "refresh_token"), auth_method="client_secret_post", redirect_uris=(WEB, LOOPBACK)
    )
    machine, machine_secret = make_client(("client_credentials",))
    reg = client.post(
        "/oauth/register",
        json={"redirect_uris": [SELF_WEB], "token_endpoint_auth_method": "none", "client_name": "Self Registered"},
    )
    assert reg.status_code == 201, reg.get_json()
    assert conf_secret and machine_secret
    return Clients(public, (conf, conf_secret), (machine, machine_secret), reg.get_json()["client_id"])


def iat(state: Any) -> str:
    """A fresh initial access token (as ``oauth iat create`` makes)."""
    token = secrets.new_token()
    state.storage.save_initial_access_token(InitialAccessToken(secrets.token_hash(token), state.now(), 0))
    return token


@dataclass
class Authorized:
    """The end of a person's authorization: the redirect and what the client needs next."""

    status: int
    location: str
    params: dict[str, str]
    verifier: str

    @property
    def code(self) -> str:
        return self.params["code"]


def authorization_query(client_id: str, redirect_uri: str, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "xyz",
        **extra,
    }


def authorize(
    client: FlaskClient, client_id: str, redirect_uri: str = LOOPBACK, *, decision: str = "approve", **extra: str
) -> Authorized:
    """GET the authorization request, sign in as alice, approve (or deny); the final redirect."""
    verifier, challenge = pkce_pair()
    page = client.get("/oauth/authorize", query_string=authorization_query(client_id, redirect_uri, challenge, **extra))
    if page.status_code == 200 and 'value="login"' in page.get_data(as_text=True):
        login = form(page.get_data(as_text=True), "login")
        page = client.post(login.action, data=login.submit(username="alice", password=PASSWORD))
    if page.status_code == 200:
        consent = form(page.get_data(as_text=True), "consent")
        page = client.post(consent.action, data=consent.submit(decision, remember=None))
    assert page.status_code in (302, 303), page.get_data(as_text=True)[:400]
    location = page.headers["Location"]
    return Authorized(page.status_code, location, redirect_params(location), verifier)


def exchange(
    client: FlaskClient, got: Authorized, client_id: str, redirect_uri: str = LOOPBACK, secret: str | None = None
) -> Any:
    body = {
        "grant_type": "authorization_code",
        "code": got.code,
        "code_verifier": got.verifier,
        "client_id": client_id,
        "redirect_uri": redirect_uri,
    }
    if secret is not None:
        body["client_secret"] = secret
    return client.post("/oauth/token", data=body)


def person_tokens(
    client: FlaskClient, client_id: str, redirect_uri: str = LOOPBACK, secret: str | None = None
) -> dict[str, Any]:
    """Access and refresh token for alice through the full browser flow."""
    r = exchange(client, authorize(client, client_id, redirect_uri), client_id, redirect_uri, secret)
    assert r.status_code == 200, r.get_json()
    body: dict[str, Any] = r.get_json()
    return body


def refresh(client: FlaskClient, client_id: str, token: str, **extra: str) -> Any:
    return client.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id, **extra}
    )


def whoami(client: FlaskClient, token: str) -> Any:
    return client.get("/mcp/whoami", headers={"Authorization": f"Bearer {token}"})
