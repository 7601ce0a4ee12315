"""No secret in any log line: a full run of every flow with every logger at DEBUG (SQL
statements and their parameters included), then a search of everything logged, and of
stdout/stderr, for each secret and token handed out or sent."""

from __future__ import annotations

import logging
import secrets as pysecrets
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.security.conftest import LOOPBACK, Clients, authorization_query, iat, refresh
from tests.support.people import PASSWORD, form, pkce_pair, redirect_params

LOGGERS = ["", "mcp_oauth", "mcp_oauth.audit", "werkzeug", "flask", "sqlalchemy.engine", "httpx", "limits"]


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # the message, its arguments and any traceback


@pytest.fixture
def logged() -> Iterator[Collect]:
    handler = Collect()
    previous = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)
    for name, level in previous.items():
        logging.getLogger(name).setLevel(level)


def test_oauth21_1_4_tokens_confidential_in_storage_logs(
    client: FlaskClient, clients: Clients, state: Any, alice: str, logged: Collect, capfd: pytest.CaptureFixture[str]
) -> None:
    found: dict[str, str] = {}

    # Registration (open and with an initial access token) and RFC 7592 management.
    reg = client.post(
        "/oauth/register", json={"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "client_secret_post"}
    ).get_json()
    found |= {"client_secret": reg["client_secret"], "registration_access_token": reg["registration_access_token"]}
    initial = iat(state)
    found["initial_access_token"] = initial
    machine = client.post(
        "/oauth/register", json={"grant_types": ["client_credentials"]}, headers={"Authorization": f"Bearer {initial}"}
    ).get_json()
    found["machine_secret"] = machine["client_secret"]
    client.get(
        f"/oauth/register/{reg['client_id']}", headers={"Authorization": f"Bearer {reg['registration_access_token']}"}
    )

    # Machine tokens: issue, use, introspect, revoke; and failures with guessed secrets.
    cc = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(machine["client_id"], machine["client_secret"])
    )
    access = cc.get_json()["access_token"]
    found["cc_access_token"] = access
    client.get("/mcp/whoami", headers={"Authorization": f"Bearer {access}"})
    client.post("/oauth/introspect", data={"token": access}, auth=(machine["client_id"], machine["client_secret"]))
    client.post("/oauth/revoke", data={"token": access}, auth=(machine["client_id"], machine["client_secret"]))
    client.get("/mcp/whoami", headers={"Authorization": f"Bearer {access}"})  # revoked: logged refusal
    wrong_secret = pysecrets.token_urlsafe(24)
    found["wrong_secret"] = wrong_secret
    client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(machine["client_id"], wrong_secret))
    near_token = access[:-5] + "AAAAA"
    found["tampered_token"] = near_token
    client.get("/mcp/whoami", headers={"Authorization": f"Bearer {near_token}"})

    # A person: wrong password, right password, consent, code, refresh, replay.
    verifier, challenge = pkce_pair()
    found |= {"code_verifier": verifier, "password": PASSWORD}
    page = client.get("/oauth/authorize", query_string=authorization_query(clients.public, LOOPBACK, challenge))
    login = form(page.get_data(as_text=True), "login")
    found["csrf_token"] = login.fields["csrf_token"]
    wrong_password = "wrong " + pysecrets.token_urlsafe(12)
    found["wrong_password"] = wrong_password
    client.post(login.action, data=login.submit(username="alice", password=wrong_password))
    consent_page = client.post(login.action, data=login.submit(username="alice", password=PASSWORD))
    consent = form(consent_page.get_data(as_text=True), "consent")
    done = client.post(consent.action, data=consent.submit("approve", remember="yes"))
    code = redirect_params(done.headers["Location"])["code"]
    found["code"] = code
    body = client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": clients.public,
            "redirect_uri": LOOPBACK,
        },
    ).get_json()
    found |= {"access_token": body["access_token"], "refresh_token": body["refresh_token"]}
    rotated = refresh(client, clients.public, body["refresh_token"]).get_json()
    found["rotated_refresh_token"] = rotated["refresh_token"]
    refresh(client, clients.public, body["refresh_token"])  # replay: the family is revoked and logged
    client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": clients.public,
            "redirect_uri": LOOPBACK,
        },
    )  # code replay
    session = client.get_cookie("session")
    assert session is not None
    found["session_cookie"] = session.value

    out, err = capfd.readouterr()
    text = "\n".join(logged.lines) + out + err
    assert len(logged.lines) > 20 and "token.issued" in text and "family.revoked" in text  # the run was logged
    leaks = [name for name, value in found.items() if value and value in text]
    # A JWT's signature is its secret part; its claims (jti, client_id) may be logged.
    leaks += [
        f"{name} signature"
        for name, value in found.items()
        if value.count(".") == 2 and value.rsplit(".", 1)[1] in text
    ]
    assert not leaks, f"secrets in the logs: {leaks}"
