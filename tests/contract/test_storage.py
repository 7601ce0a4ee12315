"""The storage and rate-limiter contracts, run against every installed plugin.

Every entry point of ``mcp_oauth.storage`` and ``mcp_oauth.rate_limiters`` must have a URL
factory below: a newly installed plugin without one fails here loudly instead of going untested.
Plugins implementing only ``TokenStore`` (short-lived data) get only the token-store cases.
PostgreSQL and Redis cases skip unless those servers run (and fail under REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import secrets as pysecrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app import contracts
from app.contracts import RateLimiter, Storage, TokenStore
from app.models import AuthorizationCode, Client, Consent, InitialAccessToken, RefreshToken, SigningKey, User
from tests.support.backends import delete_prefix
from tests.support.services import require_postgres, require_redis

Cleanups = list[Callable[[], None]]


def _postgres(scheme: str) -> Callable[[Path, Cleanups], str]:
    def make(tmp_path: Path, cleanups: Cleanups) -> str:
        import psycopg

        base = require_postgres()
        schema = "contract_" + pysecrets.token_hex(6)  # a fresh schema per test: runs are isolated
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")

        def drop() -> None:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

        cleanups.append(drop)
        url = base.replace("postgresql://", f"{scheme}://", 1)
        return url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"

    return make


def _redis(tmp_path: Path, cleanups: Cleanups) -> str:
    # A fresh key prefix per test: isolated without flushing a database others may share.
    url = require_redis() + f"?key_prefix=contract-{pysecrets.token_hex(6)}:"
    cleanups.append(lambda: delete_prefix(url))  # only this test's keys
    return url


STORAGE_URLS: dict[str, Callable[[Path, Cleanups], str]] = {
    "memory": lambda tmp_path, cleanups: "memory://",
    "sqlite": lambda tmp_path, cleanups: f"sqlite:///{tmp_path}/contract.sqlite3",
    "postgresql": _postgres("postgresql"),
    "postgres": _postgres("postgres"),
    "redis": _redis,
}

RATE_LIMITER_URLS: dict[str, Callable[[], str]] = {
    "memory": lambda: "memory://",
    "redis": lambda: require_redis() + f"?key_prefix=contract-rl-{pysecrets.token_hex(6)}",
}


def plugin_url(factories: dict[str, Any], group: str, name: str) -> Callable[..., str]:
    if name not in factories:
        pytest.fail(
            f"{group} plugin {name!r} is installed but has no URL factory in tests/contract/test_storage.py; "
            "add one so that the contract runs against it"
        )
    factory: Callable[..., str] = factories[name]
    return factory


@pytest.fixture(params=contracts.installed(contracts.STORAGE))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    name: str = request.param
    cls = contracts.load(contracts.STORAGE, name, TokenStore)
    cleanups: Cleanups = []
    url = plugin_url(STORAGE_URLS, contracts.STORAGE, name)(tmp_path, cleanups)
    instance = cls.from_url(url, {})
    if issubclass(cls, Storage):
        instance.migrate()
    try:
        yield instance
    finally:
        instance.close()
        for cleanup in reversed(cleanups):
            cleanup()


@pytest.fixture
def durable(store: Any) -> Any:
    """The store, for the cases that need the full ``Storage`` contract."""
    if not isinstance(store, Storage):
        pytest.skip(f"{type(store).__name__} implements only TokenStore")
    return store


def uid(prefix: str = "") -> str:
    return prefix + pysecrets.token_hex(8)


def digest() -> bytes:
    return pysecrets.token_bytes(32)


def now() -> int:
    return int(time.time())


def make_code(family_id: str | None = None, **overrides: Any) -> AuthorizationCode:
    fields: dict[str, Any] = {
        "code_hash": digest(),
        "client_id": uid("client-"),
        "redirect_uri": "http://127.0.0.1:5000/cb",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "scope": "mcp:tools mcp:resources",
        "resource": "http://127.0.0.1:8000/mcp",
        "subject": uid("alice-"),
        "family_id": family_id or uid("fam-"),
        "expires_at": now() + 60,
        "auth_time": now() - 5,
    }
    fields.update(overrides)
    return AuthorizationCode(**fields)


def make_refresh(family_id: str | None = None, **overrides: Any) -> RefreshToken:
    fields: dict[str, Any] = {
        "token_hash": digest(),
        "family_id": family_id or uid("fam-"),
        "client_id": uid("client-"),
        "subject": uid("alice-"),
        "scope": "mcp:tools",
        "resource": "http://127.0.0.1:8000/mcp",
        "issued_at": now(),
        "expires_at": now() + 3600,
    }
    fields.update(overrides)
    return RefreshToken(**fields)


def concurrently(n: int, fn: Callable[[], Any]) -> list[Any]:
    """Run ``fn`` in ``n`` threads released together; returns results (exceptions re-raised)."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn()
        except BaseException as e:  # surfaced below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results


class TestStorage:
    """``TokenStore`` cases for every storage plugin; ``Storage`` cases for the durable ones."""

    # -- revocation -------------------------------------------------------------------------------

    def test_revoke_jti(self, store: Any) -> None:
        jti = uid("jti-")
        assert store.is_jti_revoked(jti) is False
        store.revoke_jti(jti, now() + 600)
        assert store.is_jti_revoked(jti) is True
        store.revoke_jti(jti, now() + 900)  # revoking again is harmless
        assert store.is_jti_revoked(jti) is True
        assert store.is_jti_revoked(uid("jti-")) is False

    def test_concurrent_revocations_of_one_jti(self, store: Any) -> None:
        jti = uid("jti-")
        concurrently(20, lambda: store.revoke_jti(jti, now() + 600))
        assert store.is_jti_revoked(jti)

    # -- authorization codes ----------------------------------------------------------------------

    def test_consume_code_once(self, store: Any) -> None:
        code = make_code()
        store.save_code(code)
        first, first_use = store.consume_code(code.code_hash, now())
        assert first == code and first_use is True
        again, first_use = store.consume_code(code.code_hash, now())
        assert again == code and first_use is False  # still returned: a replay revokes what it issued
        assert store.consume_code(digest(), now()) == (None, False)

    def test_codes_are_independent(self, store: Any) -> None:
        a, b = make_code(), make_code()
        store.save_code(a)
        store.save_code(b)
        assert store.consume_code(a.code_hash, now())[1] is True
        assert store.consume_code(b.code_hash, now())[1] is True

    def test_twenty_threads_consume_one_code(self, store: Any) -> None:
        code = make_code()
        store.save_code(code)
        results = concurrently(20, lambda: store.consume_code(code.code_hash, now()))
        assert [first for _, first in results].count(True) == 1
        assert all(found == code for found, _ in results)

    # -- refresh tokens ---------------------------------------------------------------------------

    def test_save_and_get_refresh_token(self, store: Any) -> None:
        token = make_refresh()
        store.save_refresh_token(token)
        assert store.get_refresh_token(token.token_hash) == token
        assert store.get_refresh_token(digest()) is None

    def test_rotate_refresh_token(self, store: Any) -> None:
        old = make_refresh()
        store.save_refresh_token(old)
        new = make_refresh(old.family_id, client_id=old.client_id, subject=old.subject)
        t = now()
        assert store.rotate_refresh_token(old.token_hash, new, t, b"sealed-successor") is True
        rotated = store.get_refresh_token(old.token_hash)
        assert rotated is not None and rotated.rotated_at == t and rotated.successor_blob == b"sealed-successor"
        assert store.get_refresh_token(new.token_hash) == new
        # The same old token cannot be rotated twice.
        newer = make_refresh(old.family_id, client_id=old.client_id, subject=old.subject)
        assert store.rotate_refresh_token(old.token_hash, newer, t, None) is False
        assert store.get_refresh_token(newer.token_hash) is None

    def test_rotating_an_unknown_token_stores_nothing(self, store: Any) -> None:
        new = make_refresh()
        assert store.rotate_refresh_token(digest(), new, now(), None) is False
        assert store.get_refresh_token(new.token_hash) is None

    def test_twenty_threads_rotate_one_refresh_token(self, store: Any) -> None:
        old = make_refresh()
        store.save_refresh_token(old)
        successors = [make_refresh(old.family_id, client_id=old.client_id, subject=old.subject) for _ in range(20)]
        index = iter(range(20))
        lock = threading.Lock()

        def rotate() -> tuple[int, bool]:
            with lock:
                i = next(index)
            return i, store.rotate_refresh_token(old.token_hash, successors[i], now(), b"blob")

        results = concurrently(20, rotate)
        winners = [i for i, won in results if won]
        assert len(winners) == 1
        for i, _ in results:
            stored = store.get_refresh_token(successors[i].token_hash)
            assert (stored is not None) == (i == winners[0])

    def test_revoke_family(self, store: Any) -> None:
        family = uid("fam-")
        first = make_refresh(family)
        store.save_refresh_token(first)
        second = make_refresh(family, client_id=first.client_id, subject=first.subject)
        assert store.rotate_refresh_token(first.token_hash, second, now(), None)
        code = make_code(family)
        store.save_code(code)
        jtis = [uid("jti-"), uid("jti-")]
        for jti in jtis:
            store.add_family_jti(family, jti, now() + 600)
        bystander = make_refresh()
        store.save_refresh_token(bystander)
        store.add_family_jti(bystander.family_id, "bystander-" + jtis[0], now() + 600)

        assert store.revoke_family(family, now()) >= len(jtis) + 1
        assert all(store.is_jti_revoked(j) for j in jtis)
        assert store.get_refresh_token(first.token_hash) is None
        assert store.get_refresh_token(second.token_hash) is None
        # The family's code can no longer be exchanged either.
        assert store.consume_code(code.code_hash, now())[1] is False
        # Other families are untouched.
        assert store.get_refresh_token(bystander.token_hash) == bystander
        assert not store.is_jti_revoked("bystander-" + jtis[0])
        # Revoking again, or an unknown family, is harmless.
        store.revoke_family(family, now())
        assert store.revoke_family(uid("fam-"), now()) == 0

    def test_list_families(self, store: Any) -> None:
        subject, client_a, client_b = uid("sub-"), uid("client-"), uid("client-")
        a = make_refresh(subject=subject, client_id=client_a, issued_at=now() - 10)
        b = make_refresh(subject=subject, client_id=client_b, issued_at=now() - 5)
        other = make_refresh(client_id=client_a, issued_at=now() - 1)
        for t in (a, b, other):
            store.save_refresh_token(t)
        # Rotation leaves one live token per family.
        a2 = make_refresh(a.family_id, subject=subject, client_id=client_a, issued_at=now())
        assert store.rotate_refresh_token(a.token_hash, a2, now(), None)

        assert store.list_families(subject=subject) == [b, a2]
        assert store.list_families(subject=subject, client_id=client_a) == [a2]
        assert store.list_families(client_id=client_a) == sorted([a2, other], key=lambda t: t.issued_at)
        assert store.list_families(subject=uid("nobody-")) == []
        store.revoke_family(b.family_id, now())
        assert store.list_families(subject=subject) == [a2]

    def test_prune_keeps_live_entries(self, store: Any) -> None:
        t = now()
        live_jti, live_code, live_rt = uid("jti-"), make_code(), make_refresh()
        store.revoke_jti(live_jti, t + 600)
        store.save_code(live_code)
        store.save_refresh_token(live_rt)
        assert store.prune_tokens(t + 2) >= 0
        assert store.is_jti_revoked(live_jti)
        assert store.get_refresh_token(live_rt.token_hash) == live_rt
        assert store.consume_code(live_code.code_hash, t)[1] is True

    def test_prune_drops_expired_entries(self, store: Any) -> None:
        t = now()
        jti = uid("jti-")
        store.revoke_jti(jti, t + 2)
        refresh = make_refresh(expires_at=t + 2)
        store.save_refresh_token(refresh)
        store.prune_tokens(t + 3)
        if store.is_jti_revoked(jti):
            # A self-expiring store (Redis) keeps entries until their real time comes.
            time.sleep(max(0.0, t + 3 - time.time()) + 0.1)
        assert not store.is_jti_revoked(jti)
        assert store.get_refresh_token(refresh.token_hash) is None

    # -- durable data (Storage) -------------------------------------------------------------------

    def test_migrate_is_idempotent(self, durable: Any) -> None:
        durable.migrate()
        durable.migrate()
        durable.ping()

    def test_clients(self, durable: Any) -> None:
        assert durable.get_client("nosuch") is None
        t = now()
        client = Client(
            client_id=uid("client-"),
            metadata={"client_name": "Caf\u00e9 \u2603", "grant_types": ["client_credentials"], "scope": "mcp:tools"},
            issued_at=t - 10,
            secret_hash=digest(),
            secret_expires_at=t + 3600,
            registration_token_hash=digest(),
            registered_by="iat",
            privileges=frozenset({"introspect"}),
            last_used_at=0,
        )
        public = Client(client_id=uid("client-"), metadata={"token_endpoint_auth_method": "none"}, issued_at=t)
        durable.save_client(client)
        durable.save_client(public)
        assert durable.get_client(client.client_id) == client
        assert durable.get_client(public.client_id) == public
        assert [c.client_id for c in durable.list_clients()] == [client.client_id, public.client_id]
        # Saving again updates.
        client.metadata = {**client.metadata, "client_name": "renamed"}
        client.secret_hash = digest()
        durable.save_client(client)
        assert durable.get_client(client.client_id) == client
        assert len(durable.list_clients()) == 2
        # Returned objects are copies: changing one does not change the store.
        fetched = durable.get_client(client.client_id)
        fetched.metadata["client_name"] = "mutated"
        assert durable.get_client(client.client_id).metadata["client_name"] == "renamed"
        assert durable.delete_client(client.client_id) is True
        assert durable.delete_client(client.client_id) is False
        assert durable.get_client(client.client_id) is None
        assert [c.client_id for c in durable.list_clients()] == [public.client_id]

    def test_touch_client(self, durable: Any) -> None:
        client = Client(client_id=uid("client-"), metadata={}, issued_at=now() - 7200, last_used_at=now() - 7200)
        durable.save_client(client)
        t = now()
        durable.touch_client(client.client_id, t)
        assert durable.get_client(client.client_id).last_used_at == t
        durable.touch_client("nosuch", t)  # unknown ids are ignored

    def test_deleting_a_client_removes_its_grants(self, durable: Any) -> None:
        client = Client(client_id=uid("client-"), metadata={}, issued_at=now())
        durable.save_client(client)
        durable.save_user(User("alice", "hash", now()))
        durable.save_consent(Consent("alice", client.client_id, frozenset({"mcp:tools"}), now()))
        refresh = make_refresh(client_id=client.client_id, subject="alice")
        durable.save_refresh_token(refresh)
        jti = uid("jti-")
        durable.add_family_jti(refresh.family_id, jti, now() + 600)
        durable.delete_client(client.client_id)
        assert durable.get_consent("alice", client.client_id) is None
        assert durable.get_refresh_token(refresh.token_hash) is None
        assert durable.is_jti_revoked(jti)

    def test_signing_keys(self, durable: Any) -> None:
        assert durable.list_signing_keys() == []
        t = now()
        a = SigningKey("kid-a", "ES256", b"-----BEGIN PRIVATE KEY-----\nA\n", t - 10)
        b = SigningKey("kid-b", "RS256", b"-----BEGIN PRIVATE KEY-----\nB\n", t)
        durable.save_signing_key(b)
        durable.save_signing_key(a)
        assert durable.list_signing_keys() == [a, b]  # ordered by created_at
        a.retired_at, a.expires_at = t, t + 3720
        durable.save_signing_key(a)
        assert durable.list_signing_keys() == [a, b]
        durable.delete_signing_key("kid-a")
        durable.delete_signing_key("nosuch")
        assert durable.list_signing_keys() == [b]

    def test_initial_access_tokens(self, durable: Any) -> None:
        iat = InitialAccessToken(digest(), now(), now() + 600, "for the build farm")
        forever = InitialAccessToken(digest(), now(), 0)
        durable.save_initial_access_token(iat)
        durable.save_initial_access_token(forever)
        assert durable.get_initial_access_token(iat.token_hash) == iat
        assert durable.get_initial_access_token(forever.token_hash) == forever
        assert durable.get_initial_access_token(digest()) is None

    def test_users(self, durable: Any) -> None:
        assert durable.get_user("bob") is None
        bob = User("bob", "$argon2id$v=19$m=65536,t=3,p=4$abc", now())
        alice = User("alice", "$argon2id$x", now(), disabled=True)
        durable.save_user(bob)
        durable.save_user(alice)
        assert durable.get_user("bob") == bob
        assert durable.list_users() == [alice, bob]  # by name
        bob.disabled = True
        durable.save_user(bob)
        assert durable.get_user("bob").disabled is True
        durable.save_consent(Consent("bob", "c1", frozenset({"mcp:tools"}), now()))
        assert durable.delete_user("bob") is True
        assert durable.delete_user("bob") is False
        assert durable.get_user("bob") is None
        assert durable.get_consent("bob", "c1") is None

    def test_consents(self, durable: Any) -> None:
        t = now()
        assert durable.get_consent("alice", "c1") is None
        durable.save_consent(Consent("alice", "c1", frozenset({"mcp:tools"}), t))
        durable.save_consent(Consent("alice", "c2", frozenset({"mcp:tools", "mcp:resources"}), t))
        durable.save_consent(Consent("bob", "c1", frozenset(), t))
        assert durable.get_consent("alice", "c2") == Consent(
            "alice", "c2", frozenset({"mcp:tools", "mcp:resources"}), t
        )
        assert durable.get_consent("bob", "c1") == Consent("bob", "c1", frozenset(), t)
        durable.save_consent(Consent("alice", "c1", frozenset({"mcp:prompts"}), t + 1))
        assert durable.get_consent("alice", "c1") == Consent("alice", "c1", frozenset({"mcp:prompts"}), t + 1)
        assert durable.delete_consents(client_id="c1") == 2
        assert durable.get_consent("alice", "c2") is not None
        assert durable.delete_consents(subject="alice") == 1
        assert durable.delete_consents(subject="nobody") == 0

    def test_settings_first_writer_wins(self, durable: Any) -> None:
        assert durable.get_setting("secret_key") is None
        assert durable.set_setting_if_absent("secret_key", "first") == "first"
        assert durable.set_setting_if_absent("secret_key", "second") == "first"
        assert durable.get_setting("secret_key") == "first"

    def test_twenty_workers_start_at_once(self, durable: Any) -> None:
        values = concurrently(20, lambda: durable.set_setting_if_absent("race", pysecrets.token_hex(8)))
        assert len(set(values)) == 1
        assert durable.get_setting("race") == values[0]


class TestRateLimiter:
    """Every rate-limiter plugin counts, refuses over the limit, and reports Retry-After."""

    @pytest.fixture(params=contracts.installed(contracts.RATE_LIMITERS))
    def limiter(self, request: pytest.FixtureRequest) -> RateLimiter:
        name: str = request.param
        cls = contracts.load(contracts.RATE_LIMITERS, name, RateLimiter)
        return cls.from_url(plugin_url(RATE_LIMITER_URLS, contracts.RATE_LIMITERS, name)())

    def test_hits_up_to_the_limit(self, limiter: RateLimiter) -> None:
        key = uid("addr-")
        assert [limiter.hit("3/minute", "test", key).allowed for _ in range(4)] == [True, True, True, False]
        refused = limiter.hit("3/minute", "test", key)
        assert not refused.allowed and 1 <= refused.retry_after <= 61

    def test_test_does_not_count(self, limiter: RateLimiter) -> None:
        key = uid("addr-")
        for _ in range(5):
            assert limiter.test("2/minute", "test", key).allowed
        limiter.hit("2/minute", "test", key)
        limiter.hit("2/minute", "test", key)
        result = limiter.test("2/minute", "test", key)
        assert not result.allowed and result.retry_after >= 1

    def test_keys_are_independent(self, limiter: RateLimiter) -> None:
        a, b = uid("addr-"), uid("addr-")
        limiter.hit("1/minute", "test", a)
        assert not limiter.hit("1/minute", "test", a).allowed
        assert limiter.hit("1/minute", "test", b).allowed
        assert limiter.hit("1/minute", "other-purpose", a).allowed  # the purpose is part of the key

    def test_clear(self, limiter: RateLimiter) -> None:
        key = uid("addr-")
        limiter.hit("1/minute", "test", key)
        assert not limiter.test("1/minute", "test", key).allowed
        limiter.clear("1/minute", "test", key)
        assert limiter.hit("1/minute", "test", key).allowed

    def test_window_passes(self, limiter: RateLimiter) -> None:
        key = uid("addr-")
        assert limiter.hit("1/second", "test", key).allowed
        assert not limiter.hit("1/second", "test", key).allowed
        time.sleep(1.1)
        assert limiter.hit("1/second", "test", key).allowed

    def test_concurrent_hits_never_exceed_the_limit(self, limiter: RateLimiter) -> None:
        key = uid("addr-")
        results = concurrently(20, lambda: limiter.hit("5/minute", "test", key).allowed)
        assert results.count(True) == 5
