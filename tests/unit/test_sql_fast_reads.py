"""The SQL store's fast reads (client lookup, revocation check) see every commit at once."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from app.models import Client
from plugins.storage.sql import SQLStorage


def _store(path: Path) -> SQLStorage:
    store = SQLStorage.from_url(f"sqlite:///{path}", {})
    store.migrate()
    return store


@pytest.fixture
def store(tmp_path: Path) -> SQLStorage:
    s = _store(tmp_path / "oauth.sqlite3")
    yield s
    s.close()


def test_file_database_reads_on_a_connection_per_thread(store: SQLStorage) -> None:
    assert store._direct is not None
    assert store.get_client("nobody") is None
    assert store._direct._opened and all(pid == os.getpid() for pid, _ in store._direct._opened)


def test_in_memory_database_reads_through_the_pool() -> None:
    s = SQLStorage.from_url("sqlite://", {})
    try:
        assert s._direct is None
    finally:
        s.close()


def test_reads_see_writes_made_after_them(store: SQLStorage, tmp_path: Path) -> None:
    assert not store.is_jti_revoked("j1")
    assert store.get_client("c1") is None
    # A second store on the same file stands for another gunicorn worker.
    other = _store(tmp_path / "oauth.sqlite3")
    try:
        other.revoke_jti("j1", 2**40)
        other.save_client(Client(client_id="c1", metadata={"scope": "mcp:tools"}, issued_at=1, secret_hash=b"h" * 32))
    finally:
        other.close()
    assert store.is_jti_revoked("j1")
    client = store.get_client("c1")
    assert client is not None and client.secret_hash == b"h" * 32 and client.scope == "mcp:tools"
    store.delete_client("c1")
    assert store.get_client("c1") is None


def test_close_closes_this_process_connections(store: SQLStorage) -> None:
    store.is_jti_revoked("x")
    assert store._direct is not None
    store._direct.close()
    assert store._direct._opened == []
    assert not store.is_jti_revoked("x")  # reopens on demand


def _child_reads(path: str, queue: multiprocessing.Queue[object]) -> None:
    s = SQLStorage.from_url(f"sqlite:///{path}", {})
    inherited_read = _inherited.is_jti_revoked("forked")
    assert _inherited._direct is not None
    own = any(pid == os.getpid() for pid, _ in _inherited._direct._opened)
    queue.put((s.is_jti_revoked("forked"), inherited_read, own))


_inherited: SQLStorage


def test_a_forked_child_opens_its_own_connection(store: SQLStorage, tmp_path: Path) -> None:
    global _inherited
    store.is_jti_revoked("forked")  # the parent's thread now has a connection
    store.revoke_jti("forked", 2**40)
    _inherited = store
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[object] = ctx.Queue()
    child = ctx.Process(target=_child_reads, args=(str(tmp_path / "oauth.sqlite3"), queue))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    # The inherited store read through a connection the child opened, not the parent's.
    assert queue.get(timeout=5) == (True, True, True)
    # The parent's own connection is untouched by the child.
    assert store.is_jti_revoked("forked")
