"""Isolated PostgreSQL schemas and Redis key prefixes for tests, removed afterwards.

Every test run gets its own PostgreSQL schema (``search_path`` set through the URL's libpq
``options``) and its own Redis key prefix in database 15, so runs never see each other's data
and nothing outside them is touched: cleanup drops only that schema / deletes only keys with
that prefix.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
import sqlalchemy as sa

from plugins.storage.redis_store import split_url
from plugins.storage.sql import engine_url
from tests.support.servers import ROOT, free_port
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


def record_footprint(backend: str, per_token: float) -> None:
    """Note bytes per stored refresh token in test-artifacts/footprint.json (and print it)."""
    out = ROOT / "test-artifacts" / "footprint.json"
    out.parent.mkdir(exist_ok=True)
    data = json.loads(out.read_text()) if out.exists() else {}
    data[backend] = round(per_token)
    out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"\n{backend}: {per_token:.0f} bytes per stored refresh token (indexes included)")


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


class RedisServer:
    """A throwaway redis-server of our own on a free loopback port, for tests that stop it.

    It writes an append-only file fsynced on every write, so what it acknowledged survives a
    kill and restart (the shared Redis on 6379 is never stopped by a test).
    """

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            if os.environ.get("REQUIRE_SERVICES") == "1":
                pytest.fail("redis-server is not installed and REQUIRE_SERVICES=1")
            pytest.skip("redis-server is not installed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                exe,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.workdir),
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--protected-mode", "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = redis.Redis(port=self.port, socket_connect_timeout=0.5)
            try:
                if probe.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
            finally:
                probe.close()
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        """Stop it abruptly (SIGKILL): no chance to flush anything it had not fsynced."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class TcpProxy:
    """A TCP forwarder on a free loopback port in front of ``target_port`` that a test can cut
    (close the listener and every open connection, as a network partition or a database restart
    looks to clients) and restore on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._server: asyncio.base_events.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._transports |= {writer.transport, up_writer.transport}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._transports -= {writer.transport, up_writer.transport}

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    def start(self) -> None:
        self._call(self._start())

    def cut(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
