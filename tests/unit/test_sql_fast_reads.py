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


# -- the client row kept while the database is unchanged ---------------------------------------


def _save(store: SQLStorage, client_id: str = "c1", scope: str = "mcp:tools", secret: bytes = b"h" * 32) -> None:
    store.save_client(Client(client_id=client_id, metadata={"scope": scope}, issued_at=1, secret_hash=secret))


def _statements(store: SQLStorage) -> list[str]:
    """The SQL this thread's fast-read connection runs from now on."""
    assert store._direct is not None
    _, conn = store._direct._connection()
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    return seen


def test_an_unchanged_database_answers_a_second_lookup_from_the_kept_row(store: SQLStorage) -> None:
    _save(store)
    assert store.get_client("c1") is not None
    seen = _statements(store)
    client = store.get_client("c1")
    assert client is not None and client.scope == "mcp:tools"
    assert seen == ["PRAGMA data_version"]


def test_unknown_clients_are_read_every_time(store: SQLStorage) -> None:
    assert store.get_client("nobody") is None
    seen = _statements(store)
    assert store.get_client("nobody") is None
    assert len(seen) == 2 and seen[0] == "PRAGMA data_version" and seen[1].startswith("SELECT")


def test_each_lookup_gets_its_own_client(store: SQLStorage) -> None:
    _save(store)
    first = store.get_client("c1")
    assert first is not None
    first.metadata["scope"] = "changed by a caller"
    second = store.get_client("c1")
    assert second is not None and second.scope == "mcp:tools" and second is not first


@pytest.mark.parametrize("change", ["rotate", "delete", "other client"])
def test_a_commit_by_another_worker_is_seen_by_the_next_lookup(
    store: SQLStorage, tmp_path: Path, change: str
) -> None:
    _save(store)
    _save(store, "c2")
    assert store.get_client("c1") is not None  # kept
    other = _store(tmp_path / "oauth.sqlite3")  # another gunicorn worker on the same file
    try:
        if change == "rotate":
            _save(other, secret=b"n" * 32)
        elif change == "delete":
            other.delete_client("c1")
        else:
            _save(other, "c2", scope="other")
    finally:
        other.close()
    client = store.get_client("c1")
    if change == "rotate":
        assert client is not None and client.secret_hash == b"n" * 32
    elif change == "delete":
        assert client is None
    else:
        assert client is not None and client.secret_hash == b"h" * 32
        c2 = store.get_client("c2")
        assert c2 is not None and c2.scope == "other"


def test_a_commit_made_through_this_store_is_seen_by_the_next_lookup(store: SQLStorage) -> None:
    _save(store)
    assert store.get_client("c1") is not None
    _save(store, secret=b"n" * 32)  # the pool's connection, not the fast-read one
    client = store.get_client("c1")
    assert client is not None and client.secret_hash == b"n" * 32
    store.delete_client("c1")
    assert store.get_client("c1") is None


def _child_deletes(path: str) -> None:
    s = _store(Path(path))
    s.delete_client("c1")
    s.close()


def test_a_delete_by_another_process_is_seen_by_the_next_lookup(store: SQLStorage, tmp_path: Path) -> None:
    _save(store)
    assert store.get_client("c1") is not None
    child = multiprocessing.get_context("spawn").Process(target=_child_deletes, args=(str(tmp_path / "oauth.sqlite3"),))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert store.get_client("c1") is None


def test_kept_rows_are_bounded(store: SQLStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    assert store._direct is not None
    monkeypatch.setattr(type(store._direct), "CACHE_MAX", 3)
    for i in range(5):
        _save(store, f"c{i}")
    for i in range(5):
        assert store.get_client(f"c{i}") is not None
        local, _ = store._direct._connection()
        assert 1 <= len(local.rows) <= 3
    assert store.get_client("c4") is not None and "c4" in local.rows


def test_a_failed_read_drops_the_connection_and_its_rows(store: SQLStorage) -> None:
    _save(store)
    assert store.get_client("c1") is not None
    assert store._direct is not None
    local, conn = store._direct._connection()
    conn.close()  # the next statement on it raises
    with pytest.raises(Exception):  # noqa: B017 - sqlite3.ProgrammingError, whatever the driver wraps it as
        store.get_client("c1")
    client = store.get_client("c1")  # a fresh connection, read again
    assert client is not None and local.conn is not conn


def test_a_revocation_check_is_answered_from_the_kept_answer_until_a_commit(store: SQLStorage) -> None:
    assert not store.is_jti_revoked("j1")
    seen = _statements(store)
    assert not store.is_jti_revoked("j1")  # "not revoked" is kept as well
    assert seen == ["PRAGMA data_version"]
    store.revoke_jti("j1", 2**40)
    assert store.is_jti_revoked("j1")
    assert store.is_jti_revoked("j1")
    assert seen[-1] == "PRAGMA data_version" and sum(s.startswith("SELECT") for s in seen) == 1


def test_client_ids_and_jtis_are_kept_apart(store: SQLStorage) -> None:
    _save(store, "same")
    assert not store.is_jti_revoked("same")
    assert store.get_client("same") is not None
    store.revoke_jti("other", 2**40)  # a commit: both answers are read again
    assert store.get_client("same") is not None
    assert not store.is_jti_revoked("same")
