"""Isolated PostgreSQL schemas and Redis key prefixes for tests, removed afterwards.

Every test run gets its own PostgreSQL schema (``search_path`` set through the URL's libpq
``options``) and its own Redis key prefix in database 15, so runs never see each other's data
and nothing outside them is touched: cleanup drops only that schema / deletes only keys with
that prefix.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import redis
import sqlalchemy as sa

from plugins.storage.redis_store import split_url
from plugins.storage.sql import engine_url
from tests.support.services import require_postgres, require_redis


def with_search_path(url: str, schema: str) -> str:
    """``url`` with libpq ``options=-csearch_path=<schema>``."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def postgres_schema(base_url: str | None = None) -> Iterator[str]:
    """A fresh schema on the test PostgreSQL; yields a ``postgresql://`` URL that uses it."""
    base = base_url or require_postgres()
    name = "t_" + secrets.token_hex(6)
    admin = sa.create_engine(engine_url(base), poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    try:
        yield with_search_path(base, name)
    finally:
        with admin.begin() as conn:
            # Never hang the suite on a connection a failed test left open.
            conn.exec_driver_sql("SET LOCAL lock_timeout = '20s'")
            conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
        admin.dispose()


def redis_client(url: str) -> redis.Redis:
    real, _prefix = split_url(url)
    return redis.Redis.from_url(real)


def delete_prefix(url: str) -> int:
    """Delete every key under the URL's ``key_prefix``; returns how many."""
    real, prefix = split_url(url)
    client = redis.Redis.from_url(real)
    try:
        n = 0
        for key in client.scan_iter(match=prefix.encode() + b"*", count=1000):
            n += int(client.delete(key))
        return n
    finally:
        client.close()


@contextmanager
def redis_prefix(base_url: str | None = None) -> Iterator[str]:
    """A fresh key prefix on the test Redis (database 15); yields a ``redis://`` URL using it."""
    base = base_url or require_redis()
    prefix = f"test-{secrets.token_hex(6)}:"
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}key_prefix={prefix}"
    try:
        yield url
    finally:
        delete_prefix(url)
