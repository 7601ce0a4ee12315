"""``oauth prune`` and ``oauth grants list|revoke``, plus the last-used stamp prune relies on."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from flask import g

from app.audit import jwt_claims
from app.models import Consent, RefreshToken
from tests.conftest import base_config
from tests.support.grants import REDIRECT, store_code
from tests.support.people import PASSWORD, fast_authenticator

DAY = 86400


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    return base_config(tmp_path, OAUTH_GRANT_TYPES="authorization_code refresh_token client_credentials")


@pytest.fixture
def oauth(app: Any) -> Any:
    """Run ``flask oauth ...`` against the test app; returns the click result (exit 0 checked)."""
    runner = app.test_cli_runner()

    def run(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(args=["oauth", *args])
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


@pytest.fixture
def people(app: Any, state: Any) -> None:
    with app.app_context():
        auth = fast_authenticator(state)
        auth.create("alice", PASSWORD, state.now())
        auth.create("bob", PASSWORD, state.now())


@pytest.fixture
def code_client(make_client: Any) -> tuple[str, str]:
    cid, secret = make_client(("authorization_code", "refresh_token"), redirect_uris=(REDIRECT,), scope="mcp:tools")
    assert secret is not None
    return cid, secret


def grant(client: Any, state: Any, auth: tuple[str, str], subject: str = "alice") -> dict[str, Any]:
    issued = store_code(state.token_store, auth[0], subject=subject)
    r = client.post("/oauth/token", data=issued.params(), auth=auth)
    assert r.status_code == 200, r.json
    return dict(r.json) | {"family_id": issued.family_id}


def works(client: Any, access_token: str) -> bool:
    g.pop("oauth_token", None)  # pytest-flask keeps one request context (and g) per test
    return client.get("/mcp/whoami", headers={"Authorization": f"Bearer {access_token}"}).status_code == 200


# -- last_used_at --------------------------------------------------------------------------------


def test_the_token_endpoint_stamps_last_use_at_most_hourly(client: Any, state: Any, make_client: Any) -> None:
    cid, secret = make_client()
    stale = state.storage.get_client(cid)
    stale.last_used_at = state.now() - 2 * 3600
    state.storage.save_client(stale)
    client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
    stamped = state.storage.get_client(cid).last_used_at
    assert stamped >= state.now() - 5
    # Within the hour, no write at all.
    writes = []
    original = state.storage.touch_client
    state.storage.touch_client = lambda *a: writes.append(a) or original(*a)
    client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
    assert writes == []
    # A failed authentication is not a use.
    stale.last_used_at = 1
    state.storage.save_client(stale)
    client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, "wrong"))
    assert state.storage.get_client(cid).last_used_at == 1


# -- prune ---------------------------------------------------------------------------------------


def test_prune_removes_expired_records_and_keeps_live_ones(oauth: Any, state: Any) -> None:
    now = state.now()

    def rt(expires_at: int) -> RefreshToken:
        family = "f-" + os.urandom(4).hex()
        return RefreshToken(os.urandom(32), family, "c", "s", "mcp:tools", "r", now - 10, expires_at)

    expired, live = rt(now - 1), rt(now + 3600)
    state.token_store.save_refresh_token(expired)
    state.token_store.save_refresh_token(live)
    state.token_store.revoke_jti("old-jti", now - 1)
    state.token_store.revoke_jti("live-jti", now + 3600)
    store_code(state.token_store, "c", expires_in=-2 * 3600)
    out = oauth("prune").output
    assert "pruned 3 expired token records, 0 signing keys" in out
    assert state.token_store.get_refresh_token(expired.token_hash) is None
    assert state.token_store.get_refresh_token(live.token_hash) is not None
    assert state.token_store.is_jti_revoked("live-jti")
    assert "deleted" not in out  # no client pruning without --unused-days


def test_prune_removes_signing_keys_past_their_window(oauth: Any, state: Any) -> None:
    old = state.keys.current().kid
    state.keys.rotate()
    assert "0 signing keys" in oauth("prune").output  # still published for its tokens' lifetime
    key = next(k for k in state.storage.list_signing_keys() if k.kid == old)
    key.expires_at = state.now() - 1
    state.storage.save_signing_key(key)
    assert "1 signing keys" in oauth("prune").output
    assert old not in {k.kid for k in state.storage.list_signing_keys()}


def test_prune_unused_clients(oauth: Any, client: Any, state: Any, make_client: Any, people: None) -> None:
    now = state.now()
    old_dynamic = client.post("/oauth/register", json={"redirect_uris": [REDIRECT]}).json["client_id"]
    fresh_dynamic = client.post("/oauth/register", json={"redirect_uris": [REDIRECT]}).json["client_id"]
    old_cli, old_cli_secret = make_client(("authorization_code", "refresh_token"), redirect_uris=(REDIRECT,))
    for cid in (old_dynamic, old_cli):
        c = state.storage.get_client(cid)
        c.issued_at = c.last_used_at = now - 40 * DAY
        state.storage.save_client(c)
    pair = grant(client, state, (old_cli, old_cli_secret))
    c = state.storage.get_client(old_cli)
    c.last_used_at = now - 40 * DAY  # the grant above stamped it; make it old again
    state.storage.save_client(c)

    out = oauth("prune", "--unused-days", "30").output
    assert "deleted 1 clients unused for 30 days" in out and old_dynamic in out
    assert state.storage.get_client(old_dynamic) is None
    assert state.storage.get_client(fresh_dynamic) is not None
    assert state.storage.get_client(old_cli) is not None  # operator-made: kept by default

    out = oauth("prune", "--unused-days", "30", "--include-cli").output
    assert old_cli in out and state.storage.get_client(old_cli) is None
    assert not works(client, pair["access_token"])  # its grants ended with it
    assert oauth("prune", "--unused-days", "0", ok=False).exit_code == 2


# -- grants --------------------------------------------------------------------------------------


def test_grants_list(
    oauth: Any, client: Any, state: Any, people: None, code_client: tuple[str, str], make_client: Any
) -> None:
    other = make_client(("authorization_code", "refresh_token"), redirect_uris=(REDIRECT,), scope="mcp:tools")
    a = grant(client, state, code_client, "alice")
    b = grant(client, state, code_client, "bob")
    c = grant(client, state, other, "alice")  # type: ignore[arg-type]
    rows = [json.loads(line) for line in oauth("grants", "list", "--json").output.splitlines()]
    assert {r["family_id"] for r in rows} == {a["family_id"], b["family_id"], c["family_id"]}
    row = next(r for r in rows if r["family_id"] == a["family_id"])
    assert row | {"issued_at": 0, "expires_at": 0} == {
        "family_id": a["family_id"],
        "client_id": code_client[0],
        "user": "alice",
        "scope": "mcp:tools",
        "resource": "http://127.0.0.1:8000/mcp",
        "issued_at": 0,
        "expires_at": 0,
    }
    alice = oauth("grants", "list", "--user", "alice").output
    assert a["family_id"] in alice and c["family_id"] in alice and b["family_id"] not in alice
    both = oauth("grants", "list", "--user", "alice", "--client", code_client[0]).output
    assert both.count("\n") == 1 and a["family_id"] in both
    listing = oauth("grants", "list").output
    for pair in (a, b, c):
        assert pair["refresh_token"] not in listing and pair["access_token"] not in listing


def test_grants_revoke_by_family(oauth: Any, client: Any, state: Any, people: None, code_client: Any) -> None:
    a, b = grant(client, state, code_client), grant(client, state, code_client)
    out = oauth("grants", "revoke", "--family", a["family_id"]).output
    assert f"revoked grant {a['family_id']}" in out
    assert not works(client, a["access_token"]) and works(client, b["access_token"])
    data = {"grant_type": "refresh_token", "refresh_token": a["refresh_token"]}
    assert client.post("/oauth/token", data=data, auth=code_client).status_code == 400
    assert state.token_store.is_jti_revoked(jwt_claims(a["access_token"])["jti"])
    r = oauth("grants", "revoke", "--family", a["family_id"], ok=False)
    assert r.exit_code == 1 and "no live grant" in r.output


def test_grants_revoke_by_user_ends_consents_too(
    oauth: Any, client: Any, state: Any, people: None, code_client: Any
) -> None:
    a, b = grant(client, state, code_client, "alice"), grant(client, state, code_client, "bob")
    for who in ("alice", "bob"):
        state.storage.save_consent(Consent(who, code_client[0], frozenset({"mcp:tools"}), state.now()))
    out = oauth("grants", "revoke", "--user", "alice").output
    assert "revoked 1 grants" in out and a["family_id"] in out
    assert not works(client, a["access_token"]) and works(client, b["access_token"])
    assert state.storage.get_consent("alice", code_client[0]) is None
    assert state.storage.get_consent("bob", code_client[0]) is not None


def test_grants_revoke_by_client(oauth: Any, client: Any, state: Any, people: None, code_client: Any) -> None:
    a, b = grant(client, state, code_client, "alice"), grant(client, state, code_client, "bob")
    assert "revoked 2 grants" in oauth("grants", "revoke", "--client", code_client[0]).output
    assert not works(client, a["access_token"]) and not works(client, b["access_token"])
    assert oauth("grants", "list", "--client", code_client[0]).output == ""


@pytest.mark.parametrize(
    "args", [(), ("--family", "f", "--user", "alice"), ("--family", "f", "--client", "c")]
)
def test_grants_revoke_needs_one_clear_target(oauth: Any, args: tuple[str, ...]) -> None:
    result = oauth("grants", "revoke", *args, ok=False)
    assert result.exit_code == 2


def test_audit_lines_for_cli_revocations(
    oauth: Any, client: Any, state: Any, people: None, code_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    a = grant(client, state, code_client)
    caplog.set_level("INFO", logger="mcp_oauth.audit")
    oauth("grants", "revoke", "--family", a["family_id"])
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "mcp_oauth.audit"]
    assert any(e["event"] == "family.revoked" and e["reason"] == "cli" and e["family_id"] == a["family_id"]
               for e in events)
    assert time.time() - events[-1]["ts"] < 60
