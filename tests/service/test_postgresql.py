"""The ``postgresql`` storage (the SQL implementation on psycopg 3) against the real server.

Each test runs in its own schema (``search_path`` in the URL), dropped afterwards.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, g

from app import create_app
from app.core import secrets
from app.models import AuthorizationCode, RefreshToken
from plugins.storage.sql import MIGRATIONS, SQLStorage
from tests.conftest import base_config
from tests.support.backends import postgres_schema
from tests.support.grants import REDIRECT, store_code
from tests.support.people import PASSWORD, fast_authenticator

pytestmark = [pytest.mark.service, pytest.mark.postgresql]


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


@pytest.fixture
def app_config(tmp_path: Any, pg_url: str) -> dict[str, Any]:
    return base_config(tmp_path, OAUTH_STORAGE_URL=pg_url)


@pytest.fixture
def store(pg_url: str) -> Iterator[SQLStorage]:
    s = SQLStorage.from_url(pg_url, {"pool_size": 10})
    s.migrate()
    yield s
    s.close()


def race(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(i)`` in ``n`` threads released together; exceptions are returned, not raised."""
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as e:  # collected so the test can show every failure
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def refresh(family: str = "fam") -> RefreshToken:
    now = int(time.time())
    return RefreshToken(os.urandom(32), family, "c1", "alice", "mcp:tools", "http://x/mcp", now, now + 3600)


def test_storage_lives_in_the_schema_named_by_the_url(store: SQLStorage, pg_url: str) -> None:
    schema = pg_url.rsplit("%3D", 1)[1]
    with store.engine.connect() as conn:
        tables = {
            r[0]
            for r in conn.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}
            )
        }
        search_path = conn.exec_driver_sql("SHOW search_path").scalar()
    assert {"clients", "refresh_tokens", "auth_codes", "revoked_jtis", "schema_version"} <= tables
    assert search_path == schema
    assert store.engine.dialect.driver == "psycopg"


def test_concurrent_migrations_apply_each_version_once(pg_url: str) -> None:
    stores = [SQLStorage.from_url(pg_url, {}) for _ in range(8)]
    results = race(8, lambda i: stores[i].migrate())
    assert [r for r in results if r is not None] == []
    with stores[0].engine.connect() as conn:
        versions = [r[0] for r in conn.exec_driver_sql("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    for s in stores:
        s.close()


def test_code_is_consumed_once_under_concurrency(store: SQLStorage) -> None:
    now = int(time.time())
    c = AuthorizationCode(os.urandom(32), "c1", REDIRECT, "x" * 43, "mcp:tools", "http://x/mcp", "alice", "f", now + 60)
    store.save_code(c)
    results = race(30, lambda _i: store.consume_code(c.code_hash, now))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(1 for _code, first in results if first) == 1


def test_rotation_has_exactly_one_winner_under_concurrency(store: SQLStorage) -> None:
    old = refresh()
    store.save_refresh_token(old)
    candidates = [refresh() for _ in range(30)]
    now = int(time.time())
    won = race(30, lambda i: store.rotate_refresh_token(old.token_hash, candidates[i], now, None))
    assert not [r for r in won if isinstance(r, Exception)], won
    assert won.count(True) == 1
    live = store.list_families(subject="alice")
    assert [t.token_hash for t in live] == [candidates[won.index(True)].token_hash]


def test_concurrent_revocations_of_one_family_do_not_fail(store: SQLStorage) -> None:
    """A replay storm: many requests revoke the same family (and jtis) at once."""
    now = int(time.time())
    for i in range(5):
        store.add_family_jti("f", f"jti-{i}", now + 100)
    store.save_refresh_token(refresh("f"))
    results = race(20, lambda i: (store.revoke_jti("jti-0", now + 100), store.revoke_family("f", now)))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert all(store.is_jti_revoked(f"jti-{i}") for i in range(5))
    assert store.list_families(subject="alice") == []


def test_first_writer_wins_a_setting(store: SQLStorage) -> None:
    results = race(20, lambda i: store.set_setting_if_absent("secret_key", f"value-{i}"))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len(set(results)) == 1
    assert store.get_setting("secret_key") == results[0]


def test_the_postgres_scheme_alias_works(tmp_path: Any, pg_url: str) -> None:
    app = create_app(base_config(tmp_path, OAUTH_STORAGE_URL="postgres" + pg_url.removeprefix("postgresql")))
    assert app.extensions["mcp_oauth"].storage.target.dialect == "postgresql"
    app.extensions["mcp_oauth"].close()


def test_instances_share_keys_and_secret(app: Flask, app_config: dict[str, Any]) -> None:
    """A second app on the same database uses the same signing key and session secret."""
    other = create_app(app_config)
    assert other.config["SECRET_KEY"] == app.config["SECRET_KEY"]
    a, b = app.extensions["mcp_oauth"], other.extensions["mcp_oauth"]
    token, _ = a.access_tokens.issue(subject="s", client_id="c", scope="mcp:tools", audience=a.default_resource)
    assert b.access_tokens.verify(token, b.default_resource).sub == "s"
    b.close()


def works(client: Any, access_token: str) -> bool:
    g.pop("oauth_token", None)  # pytest-flask keeps one request context (and g) per test
    r = client.get("/mcp/whoami", headers={"Authorization": f"Bearer {access_token}"})
    assert r.status_code in (200, 401), r.status_code
    return bool(r.status_code == 200)


def test_the_grants_end_to_end_on_postgresql(client: Any, state: Any, make_client: Any) -> None:
    cid, secret = make_client(("authorization_code", "refresh_token"), redirect_uris=(REDIRECT,), scope="mcp:tools")
    fast_authenticator(state).create("alice", PASSWORD, state.now())  # refresh checks the person
    auth = (cid, secret)
    issued = store_code(state.token_store, cid)
    r = client.post("/oauth/token", data=issued.params(), auth=auth)
    assert r.status_code == 200, r.json
    first = r.json
    assert works(client, first["access_token"])

    # The code is single use; the replay revokes what it issued.
    r = client.post("/oauth/token", data=issued.params(), auth=auth)
    assert r.status_code == 400 and r.json["error"] == "invalid_grant"
    assert not works(client, first["access_token"])

    issued = store_code(state.token_store, cid)
    pair = client.post("/oauth/token", data=issued.params(), auth=auth).json
    data = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    r = client.post("/oauth/token", data=data, auth=auth)
    assert r.status_code == 200, r.json
    rotated = r.json
    assert works(client, rotated["access_token"])

    # RFC 7009 revocation of the refresh token ends the family's access tokens too.
    r = client.post("/oauth/revoke", data={"token": rotated["refresh_token"]}, auth=auth)
    assert r.status_code == 200
    assert not works(client, rotated["access_token"])
    assert state.storage.get_refresh_token(secrets.token_hash(rotated["refresh_token"])) is None
