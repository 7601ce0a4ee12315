"""Bytes each backend spends per stored refresh token, indexes included (printed with -s, and
written to test-artifacts/footprint.json for docs/benchmarks.md).

Same workload everywhere: 2000 first tokens (each its own family; 200 people, 20 clients), then
one rotation of each, so 4000 stored tokens. Redis is measured in tests/service/test_redis.py
(``used_memory``, ``MEMORY USAGE``), where the same workload runs.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.models import RefreshToken
from plugins.storage.sql import SQLStorage
from tests.support.backends import postgres_schema, record_footprint

N = 2000


def workload(store: Any) -> None:
    now = int(time.time())
    firsts = []
    for i in range(N):
        t = RefreshToken(
            os.urandom(32),
            os.urandom(16).hex()[:22],
            f"client-{i % 20:02d}-{'x' * 12}",
            f"user{i % 200}",
            "mcp:tools",
            "http://127.0.0.1:8000/mcp",
            now,
            now + 604800,
        )
        firsts.append(t)
        store.save_refresh_token(t)
    for t in firsts:
        nxt = RefreshToken(os.urandom(32), t.family_id, t.client_id, t.subject, t.scope, t.resource, now, now + 604800)
        assert store.rotate_refresh_token(t.token_hash, nxt, now, None)


def test_sqlite_bytes_per_refresh_token(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite3"
    url = f"sqlite:///{path}"

    def size() -> int:
        # Read with a plain connection once the store is closed (its WAL checkpointed).
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pragmas = ("page_count", "freelist_count", "page_size")
            pages, free, page = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in pragmas)
        return int((pages - free) * page)

    store = SQLStorage.from_url(url, {})
    store.migrate()
    store.close()
    before = size()
    store = SQLStorage.from_url(url, {})
    workload(store)
    store.close()
    per_token = (size() - before) / (2 * N)
    record_footprint("sqlite", per_token)
    assert 50 < per_token < 1000


@pytest.mark.service
@pytest.mark.postgresql
def test_postgresql_bytes_per_refresh_token() -> None:
    with postgres_schema() as url:
        store = SQLStorage.from_url(url, {})
        store.migrate()

        def size() -> int:
            with store.engine.begin() as conn:
                return int(conn.execute(sa.text("SELECT pg_total_relation_size('refresh_tokens')")).scalar())

        before = size()
        workload(store)
        per_token = (size() - before) / (2 * N)
        store.close()
    record_footprint("postgresql", per_token)
    assert 50 < per_token < 1500
