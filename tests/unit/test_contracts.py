"""Plugin contracts: entry-point discovery, ``load()`` checks, and storage error wrapping."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

from app import contracts
from app.contracts import GRANTS, RATE_LIMITERS, STORAGE, Grant, RateLimiter, Storage, TokenStore
from app.errors import ConfigurationError, StorageError
from app.state import GuardedStore, scheme_of
from plugins.storage.memory import MemoryStorage


def test_builtin_plugins_are_installed_through_entry_points() -> None:
    assert {"memory", "sqlite"} <= set(contracts.installed(STORAGE))
    assert "client_credentials" in contracts.installed(GRANTS)
    assert "memory" in contracts.installed(RATE_LIMITERS)


@pytest.mark.parametrize("name", contracts.installed(STORAGE))
def test_every_installed_storage_plugin_implements_token_store(name: str) -> None:
    cls = contracts.load(STORAGE, name, TokenStore)
    assert callable(getattr(cls, "from_url", None))


@pytest.mark.parametrize("name", ["memory", "sqlite"])
def test_durable_builtins_implement_storage(name: str) -> None:
    assert issubclass(contracts.load(STORAGE, name, TokenStore), Storage)


@pytest.mark.parametrize("name", contracts.installed(GRANTS))
def test_every_installed_grant_has_a_grant_type(name: str) -> None:
    cls = contracts.load(GRANTS, name, Grant)
    assert isinstance(getattr(cls, "grant_type", None), str)


@pytest.mark.parametrize("name", contracts.installed(RATE_LIMITERS))
def test_every_installed_rate_limiter_implements_the_protocol(name: str) -> None:
    assert issubclass(contracts.load(RATE_LIMITERS, name, RateLimiter), RateLimiter)


def test_load_unknown_names_the_installed_plugins() -> None:
    with pytest.raises(ConfigurationError) as info:
        contracts.load(STORAGE, "nosuch", TokenStore)
    message = str(info.value)
    assert "'nosuch'" in message and "installed" in message
    for name in contracts.installed(STORAGE):
        assert repr(name) in message


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    eps = [EntryPoint(name=name, value=value, group=STORAGE) for name, value in values.items()]

    def entry_points(group: str) -> list[EntryPoint]:
        return [ep for ep in eps if ep.group == group]

    monkeypatch.setattr(contracts, "entry_points", entry_points)


def test_a_plugin_that_fails_to_import_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, broken="no_such_module_anywhere:Store")
    with pytest.raises(ConfigurationError, match="'broken'.*failed to load.*ModuleNotFoundError"):
        contracts.load(STORAGE, "broken", TokenStore)


def test_a_missing_attribute_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, broken="plugins.storage.memory:NoSuchClass")
    with pytest.raises(ConfigurationError, match="failed to load"):
        contracts.load(STORAGE, "broken", TokenStore)


@pytest.mark.parametrize(
    "value", ["builtins:dict", "builtins:len", "plugins.ratelimit.limits_backend:LimitsRateLimiter"]
)
def test_a_class_not_implementing_the_protocol_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    fake_entry_points(monkeypatch, wrong=value)
    with pytest.raises(ConfigurationError, match="does not implement TokenStore"):
        contracts.load(STORAGE, "wrong", TokenStore)


def test_a_partial_implementation_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    module = types.ModuleType("half_store")

    class HalfStore:
        @classmethod
        def from_url(cls, url: str, options: Any) -> HalfStore:
            return cls()

        def revoke_jti(self, jti: str, expires_at: int) -> None: ...

    module.HalfStore = HalfStore  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "half_store", module)
    fake_entry_points(monkeypatch, half="half_store:HalfStore")
    with pytest.raises(ConfigurationError, match="does not implement"):
        contracts.load(STORAGE, "half", TokenStore)


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("memory://", "memory"),
        ("sqlite:////tmp/x.db", "sqlite"),
        ("postgresql+psycopg://u@h/db", "postgresql"),
        ("PostgreSQL://u@h/db", "postgresql"),
        ("redis://127.0.0.1:6379/0", "redis"),
        ("memory:", "memory"),
    ],
)
def test_scheme_of(url: str, scheme: str) -> None:
    assert scheme_of(url) == scheme


class Exploding(MemoryStorage):
    def get_client(self, client_id: str) -> Any:
        raise ConnectionResetError("db went away: password=hunter2")

    def list_clients(self) -> Any:
        raise StorageError("already wrapped")


def test_guarded_store_wraps_backend_exceptions_once() -> None:
    store = GuardedStore(Exploding(), ["get_client", "list_clients", "get_setting"])
    with pytest.raises(StorageError) as info:
        store.get_client("x")
    # The message names the failure without the backend's text (which may carry secrets).
    assert str(info.value) == "ConnectionResetError in get_client"
    assert isinstance(info.value.__cause__, ConnectionResetError)
    with pytest.raises(StorageError, match="^already wrapped$"):
        store.list_clients()
    assert store.get_setting("missing") is None  # normal results pass through
