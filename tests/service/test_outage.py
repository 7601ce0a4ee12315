"""Backend outages mid-run: Redis killed and restarted, PostgreSQL cut off and reconnected.

What must hold (issue "Past one machine"): every request that needs the missing backend gets
503 ``temporarily_unavailable`` with ``Retry-After`` and a JSON body, never a 500; a log line
says what happened; the server recovers by itself when the backend is back; nothing that was
acknowledged before (or during) the outage is lost; and no token is handed out that was not
recorded (checked directly with a store that fails on the write).

The Redis here is a redis-server of the test's own on a free port (the shared one on 6379 is
never stopped); PostgreSQL is reached through a TCP proxy that the test cuts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core import secrets
from plugins.storage.redis_store import RedisTokenStore
from plugins.storage.sql import SQLStorage
from tests.conftest import base_config
from tests.support.backends import RedisServer, TcpProxy, postgres_schema
from tests.support.deploy import Prepared, prepare
from tests.support.grants import IssuedCode, store_code
from tests.support.people import PASSWORD, fast_authenticator
from tests.support.servers import Server, free_port, start_gunicorn
from tests.support.services import require_postgres

pytestmark = [pytest.mark.service, pytest.mark.slow]


def token(server: Server, auth: tuple[str, str], **data: str) -> httpx.Response:
    return httpx.post(server.url + "/oauth/token", data=data, auth=auth, timeout=30)


def exchange(server: Server, prepared: Prepared, issued: IssuedCode) -> httpx.Response:
    return httpx.post(server.url + "/oauth/token", data=issued.params(), auth=prepared.client, timeout=30)


def whoami(server: Server, access_token: str) -> httpx.Response:
    return httpx.get(server.url + "/mcp/whoami", headers={"Authorization": f"Bearer {access_token}"}, timeout=30)


def introspect(server: Server, prepared: Prepared, value: str) -> httpx.Response:
    return httpx.post(server.url + "/oauth/introspect", data={"token": value}, auth=prepared.introspector, timeout=30)


def assert_unavailable(r: httpx.Response) -> None:
    """503 with the RFC 6749-shaped body and a Retry-After, never a token."""
    assert r.status_code == 503, (r.status_code, r.text)
    body = r.json()
    assert body["error"] == "temporarily_unavailable", body
    assert "unavailable" in body["error_description"]
    assert int(r.headers["Retry-After"]) > 0
    assert r.headers["Cache-Control"] == "no-store"
    assert "access_token" not in body


def assert_clean_log(server: Server) -> None:
    log = server.log()
    assert "Traceback" not in log, log[-4000:]
    assert '" 500 ' not in log, log[-4000:]


# -- Redis ---------------------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def test_redis_killed_and_restarted(tmp_path: Path, redis_server: RedisServer) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {
        "OAUTH_ISSUER": issuer,
        "OAUTH_STORAGE_URL": f"sqlite:///{tmp_path}/oauth.sqlite3",
        "OAUTH_TOKEN_STORAGE_URL": redis_server.url + "/0",
        "RATELIMIT_STORAGE_URL": redis_server.url + "/1",
    }
    prepared = prepare(env)
    store = RedisTokenStore.from_url(env["OAUTH_TOKEN_STORAGE_URL"], {})
    server = start_gunicorn(env, tmp_path, port=port, workers=2, init=False)
    try:
        # Before: a pair from a code, a rotation, and a revoked access token, all acknowledged.
        first = exchange(server, prepared, store_code(store, prepared.client[0], resource=issuer + "/mcp")).json()
        r = token(server, prepared.client, grant_type="refresh_token", refresh_token=first["refresh_token"])
        assert r.status_code == 200, r.text
        live = r.json()
        revoked = exchange(server, prepared, store_code(store, prepared.client[0], resource=issuer + "/mcp")).json()
        r = httpx.post(server.url + "/oauth/revoke", data={"token": revoked["access_token"]}, auth=prepared.client)
        assert r.status_code == 200
        pending = store_code(store, prepared.client[0], resource=issuer + "/mcp")

        redis_server.kill()

        # Everything that needs the token store says so, quickly and in shape.
        refresh_live = {"grant_type": "refresh_token", "refresh_token": live["refresh_token"]}
        assert_unavailable(token(server, prepared.client, **refresh_live))
        assert_unavailable(exchange(server, prepared, pending))
        assert_unavailable(introspect(server, prepared, live["access_token"]))
        assert_unavailable(whoami(server, live["access_token"]))
        health = httpx.get(server.url + "/healthz", timeout=30)
        assert health.status_code == 503
        assert health.json() == {"status": "unavailable", "storage": "ok", "token_storage": "unavailable"}
        # What needs neither the token store nor the rate limiter's Redis keeps working: the
        # limiter fails open (app/limiting.py), and client_credentials writes nothing.
        r = token(server, prepared.worker, grant_type="client_credentials")
        assert r.status_code == 200, r.text
        assert httpx.get(server.url + "/.well-known/oauth-authorization-server", timeout=30).status_code == 200

        redis_server.start()  # same port, same append-only file

        assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200
        # Nothing acknowledged was lost: the rotated-to token refreshes, the revocation holds,
        # the code stored before the outage (its exchange got 503) still redeems once.
        r = token(server, prepared.client, grant_type="refresh_token", refresh_token=live["refresh_token"])
        assert r.status_code == 200, r.text
        assert whoami(server, revoked["access_token"]).status_code == 401
        assert exchange(server, prepared, pending).status_code == 200
        r = token(server, prepared.client, grant_type="refresh_token", refresh_token=first["refresh_token"])
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    finally:
        server.stop()
        store.close()
    assert_clean_log(server)
    log = server.log()
    assert "storage unavailable" in log
    assert "rate limiter unavailable" in log


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.fixture
def pg_proxy() -> Iterator[tuple[TcpProxy, str]]:
    """A schema on the test PostgreSQL, reached through a proxy; yields (proxy, URL via proxy)."""
    require_postgres()
    with postgres_schema() as url:
        proxy = TcpProxy(5432)
        proxy.start()
        yield proxy, url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
        proxy.close()


@pytest.mark.postgresql
def test_postgresql_cut_off_and_reconnected(tmp_path: Path, pg_proxy: tuple[TcpProxy, str]) -> None:
    proxy, url = pg_proxy
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {"OAUTH_ISSUER": issuer, "OAUTH_STORAGE_URL": url}
    prepared = prepare(env)
    direct = SQLStorage.from_url(url, {})
    server = start_gunicorn(env, tmp_path, port=port, workers=2, init=False)
    try:
        first = exchange(server, prepared, store_code(direct, prepared.client[0], resource=issuer + "/mcp")).json()
        r = token(server, prepared.client, grant_type="refresh_token", refresh_token=first["refresh_token"])
        assert r.status_code == 200, r.text
        live = r.json()
        worker = token(server, prepared.worker, grant_type="client_credentials").json()
        r = httpx.post(server.url + "/oauth/revoke", data={"token": worker["access_token"]}, auth=prepared.worker)
        assert r.status_code == 200
        registered = httpx.post(
            server.url + "/oauth/register",
            json={"redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none"},
            timeout=30,
        )
        assert registered.status_code == 201

        proxy.cut()

        for _ in range(3):  # both workers, each with pooled connections that just died
            assert_unavailable(token(server, prepared.worker, grant_type="client_credentials"))
            assert_unavailable(
                token(server, prepared.client, grant_type="refresh_token", refresh_token=live["refresh_token"])
            )
            assert_unavailable(whoami(server, live["access_token"]))
        r = httpx.post(server.url + "/oauth/register", json={"redirect_uris": ["http://127.0.0.1:9/cb"]}, timeout=30)
        assert_unavailable(r)
        health = httpx.get(server.url + "/healthz", timeout=30)
        assert health.status_code == 503 and health.json()["storage"] == "unavailable"

        proxy.start()

        assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200
        r = token(server, prepared.client, grant_type="refresh_token", refresh_token=live["refresh_token"])
        assert r.status_code == 200, r.text
        assert whoami(server, r.json()["access_token"]).status_code == 200
        assert whoami(server, worker["access_token"]).status_code == 401  # revocation kept
        assert direct.get_client(registered.json()["client_id"]) is not None  # registration kept
        r = token(server, prepared.client, grant_type="refresh_token", refresh_token=first["refresh_token"])
        assert r.status_code == 400  # the rotation before the outage held
    finally:
        server.stop()
        direct.close()
    assert_clean_log(server)
    assert "storage unavailable" in server.log()


# -- a write that fails: no token without a record --------------------------------------------

REDIRECT_URI = "http://127.0.0.1:8765/callback"


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    return base_config(tmp_path)


def break_method(state: Any, name: str) -> Callable[[], None]:
    """Make one token-store method fail as a dropped connection would (through the same guard
    that wraps every plugin method); returns a function that mends it."""
    guarded = state.token_store
    original = getattr(guarded, name)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise ConnectionError(f"connection lost during {name}")

    broken.__name__ = name
    setattr(guarded, name, guarded._guard(broken))
    return lambda: setattr(guarded, name, original)


@pytest.mark.parametrize("fail", ["add_family_jti", "save_refresh_token"])
def test_a_failed_write_in_a_code_exchange_hands_out_nothing(
    client: Any, state: Any, make_client: Any, fail: str
) -> None:
    cid, secret = make_client(("authorization_code", "refresh_token"), redirect_uris=(REDIRECT_URI,))
    issued = store_code(state.token_store, cid)
    break_method(state, fail)
    r = client.post("/oauth/token", data=issued.params(), auth=(cid, secret))
    assert r.status_code == 503, r.json
    assert r.json["error"] == "temporarily_unavailable"
    assert "access_token" not in r.get_data(as_text=True)


@pytest.mark.parametrize("fail", ["add_family_jti", "rotate_refresh_token"])
def test_a_failed_write_in_a_refresh_hands_out_nothing_and_keeps_the_old_token(
    client: Any, state: Any, make_client: Any, fail: str
) -> None:
    cid, secret = make_client(("authorization_code", "refresh_token"), redirect_uris=(REDIRECT_URI,))
    fast_authenticator(state).create("alice", PASSWORD, state.now())  # refresh checks the person
    issued = store_code(state.token_store, cid)
    pair = client.post("/oauth/token", data=issued.params(), auth=(cid, secret)).json
    mend = break_method(state, fail)
    data = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    r = client.post("/oauth/token", data=data, auth=(cid, secret))
    assert r.status_code == 503 and "refresh_token" not in r.get_data(as_text=True)
    stored = state.token_store.get_refresh_token(secrets.token_hash(pair["refresh_token"]))
    assert stored is not None and stored.rotated_at is None  # nothing half-done
    mend()
    r = client.post("/oauth/token", data=data, auth=(cid, secret))
    assert r.status_code == 200, r.json  # the client's retry after the outage succeeds


def test_storage_errors_keep_their_cause_and_log_a_line(
    client: Any, state: Any, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cid, secret = make_client()
    state.storage.get_client = state.storage._guard(_refuse)
    r = client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
    assert r.status_code == 503
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "mcp_oauth"]
    assert any("storage unavailable" in line and "/oauth/token" in line and "ConnectionRefusedError" in line
               for line in lines), lines
    assert secret not in caplog.text


def _refuse(*_args: Any) -> None:
    raise ConnectionRefusedError("[Errno 111] Connection refused")
