"""Audit events: one JSON object per line on ``mcp_oauth.audit`` for each security-relevant
action, with ids and never a secret or token."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from app import audit
from tests.conftest import base_config
from tests.integration.test_login_consent import consent, login, query, start
from tests.support.grants import REDIRECT, store_code
from tests.support.people import PASSWORD, fast_authenticator


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    return base_config(tmp_path, OAUTH_GRANT_TYPES="authorization_code refresh_token client_credentials")


@pytest.fixture
def events(caplog: pytest.LogCaptureFixture) -> Any:
    """A function returning the audit events logged so far (each line parsed as JSON)."""
    caplog.set_level(logging.INFO, logger="mcp_oauth.audit")

    def get(name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for rec in caplog.records:
            if rec.name == "mcp_oauth.audit":
                line = rec.getMessage()
                assert "\n" not in line
                event = json.loads(line)
                assert isinstance(event["ts"], float | int)
                if name is None or event["event"] == name:
                    out.append(event)
        return out

    return get


@pytest.fixture
def person(app: Any, state: Any) -> None:
    with app.app_context():
        fast_authenticator(state).create("alice", PASSWORD, state.now())


@pytest.fixture
def code_client(make_client: Any) -> tuple[str, str]:
    cid, secret = make_client(("authorization_code", "refresh_token"), redirect_uris=(REDIRECT,), scope="mcp:tools")
    assert secret is not None
    return cid, secret


def claims(token: str) -> dict[str, Any]:
    return audit.jwt_claims(token)


def test_registration_update_and_delete(client: Any, events: Any, caplog: pytest.LogCaptureFixture) -> None:
    body = {"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "x"}
    reg = client.post("/oauth/register", json=body).json
    [registered] = events("client.registered")
    assert registered["client_id"] == reg["client_id"]
    assert registered["registered_by"] == "dynamic"
    assert registered["grant_types"] == ["authorization_code"]
    assert registered["ip"] == "127.0.0.1"
    bearer = {"Authorization": f"Bearer {reg['registration_access_token']}"}
    r = client.put(f"/oauth/register/{reg['client_id']}", json=body | {"client_id": reg["client_id"]}, headers=bearer)
    assert r.status_code == 200
    assert events("client.updated")[0]["client_id"] == reg["client_id"]
    assert client.delete(f"/oauth/register/{reg['client_id']}", headers=bearer).status_code == 204
    assert events("client.deleted") == [
        {"event": "client.deleted", "ts": events("client.deleted")[0]["ts"], "ip": "127.0.0.1",
         "client_id": reg["client_id"], "by": "registration"}
    ]
    assert reg["client_secret"] not in caplog.text
    assert reg["registration_access_token"] not in caplog.text


def test_token_issued_names_ids_never_the_token(client: Any, make_client: Any, events: Any, caplog: Any) -> None:
    cid, secret = make_client(scope="mcp:tools mcp:resources")
    r = client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "mcp:tools"}, auth=(cid, secret))
    access = r.json["access_token"]
    [issued] = events("token.issued")
    assert issued | {"ts": 0} == {
        "event": "token.issued",
        "ts": 0,
        "ip": "127.0.0.1",
        "grant": "client_credentials",
        "client_id": cid,
        "sub": cid,
        "scope": "mcp:tools",
        "aud": "http://127.0.0.1:8000/mcp",
        "jti": claims(access)["jti"],
        "refresh": False,
    }
    assert access not in caplog.text and access.split(".")[2] not in caplog.text
    assert str(secret) not in caplog.text


def test_code_refresh_replays_and_revocation(
    client: Any, state: Any, person: None, code_client: tuple[str, str], events: Any, caplog: Any
) -> None:
    cid, secret = code_client
    issued = store_code(state.token_store, cid)
    first = client.post("/oauth/token", data=issued.params(), auth=code_client).json
    assert events("token.issued")[-1]["grant"] == "authorization_code"
    assert events("token.issued")[-1]["refresh"] is True
    assert events("token.issued")[-1]["sub"] == "alice"

    data = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = client.post("/oauth/token", data=data, auth=code_client).json
    [rotated] = events("refresh.rotated")
    assert rotated["client_id"] == cid and rotated["family_id"] == issued.family_id and rotated["sub"] == "alice"
    assert events("token.issued")[-1]["grant"] == "refresh_token"

    # Replaying the first refresh token: detected, and the family revoked.
    assert client.post("/oauth/token", data=data, auth=code_client).status_code == 400
    [replay] = events("family.revoked")
    assert replay["reason"] == "refresh_replay" and replay["family_id"] == issued.family_id
    assert replay["tokens"] >= 2

    # Replaying a code.
    issued2 = store_code(state.token_store, cid)
    client.post("/oauth/token", data=issued2.params(), auth=code_client)
    assert client.post("/oauth/token", data=issued2.params(), auth=code_client).status_code == 400
    assert events("family.revoked")[-1]["reason"] == "code_replay"
    assert events("family.revoked")[-1]["family_id"] == issued2.family_id

    # RFC 7009 revocation, of an access token and of a refresh token.
    issued3 = store_code(state.token_store, cid)
    third = client.post("/oauth/token", data=issued3.params(), auth=code_client).json
    client.post("/oauth/revoke", data={"token": third["access_token"]}, auth=code_client)
    client.post("/oauth/revoke", data={"token": third["refresh_token"]}, auth=code_client)
    access_rev, refresh_rev = events("token.revoked")
    assert access_rev["kind"] == "access" and access_rev["jti"] == claims(third["access_token"])["jti"]
    assert refresh_rev["kind"] == "refresh" and refresh_rev["family_id"] == issued3.family_id

    for value in (first, second, third):
        for tok in (value["access_token"], value["refresh_token"]):
            assert tok not in caplog.text
    for code in (issued, issued2, issued3):
        assert code.code not in caplog.text and code.verifier not in caplog.text
    assert secret not in caplog.text


def test_login_and_consent(client: Any, person: None, make_client: Any, events: Any, caplog: Any) -> None:
    cid, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=(REDIRECT,), scope="mcp:tools")
    page = start(client, query(cid))
    login(client, page, password="wrong password")
    failed = events("login.failed")
    assert [e["username"] for e in failed] == ["alice"] and failed[0]["reason"] == "bad_credentials"
    r = login(client, start(client, query(cid)))
    assert events("login.succeeded")[0]["username"] == "alice"
    consent(client, r, "deny")
    assert events("consent.denied")[0]["client_id"] == cid
    consent(client, start(client, query(cid)), "approve")
    granted = events("consent.granted")
    assert granted[0]["client_id"] == cid and granted[0]["sub"] == "alice"
    assert PASSWORD not in caplog.text and "wrong password" not in caplog.text


def test_secret_named_fields_are_redacted(events: Any, app: Any) -> None:
    audit.event(
        "test.event",
        client_id="c",
        token="t0ken",
        refresh_token="r",
        password="p4ss",
        client_secret="s3cret",
        code="c0de",
        scopes=frozenset({"b", "a"}),
        nothing=None,
    )
    [e] = events("test.event")
    assert e["client_id"] == "c" and e["scopes"] == ["a", "b"]
    for name in ("token", "refresh_token", "password", "client_secret", "code"):
        assert e[name] == "[redacted]"
    assert "nothing" not in e


def test_jwt_claims_reads_only_jwts() -> None:
    assert audit.jwt_claims("opaque-refresh-token") == {}
    assert audit.jwt_claims("a.b.c") == {}
    assert audit.jwt_claims("x.eyJzdWIiOiJhIn0.y") == {"sub": "a"}
