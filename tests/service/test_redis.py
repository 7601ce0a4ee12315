"""The ``redis`` token store against the real Redis on 127.0.0.1:6379 (database 15).

Each test gets its own key prefix and deletes only its keys afterwards.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app import admin, create_app
from app.audit import jwt_claims
from app.core import secrets
from app.errors import ConfigurationError
from app.models import AuthorizationCode, RefreshToken
from app.oauth.register import new_client, validate_metadata
from plugins.storage.redis_store import RedisTokenStore
from tests.conftest import base_config
from tests.support.backends import record_footprint, redis_client, redis_prefix
from tests.support.grants import store_code
from tests.support.people import PASSWORD, fast_authenticator

pytestmark = [pytest.mark.service, pytest.mark.redis]


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_prefix() as url:
        yield url


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisTokenStore]:
    s = RedisTokenStore.from_url(redis_url, {})
    yield s
    s.close()


def prefixed_keys(store: RedisTokenStore) -> list[bytes]:
    return list(store.client.scan_iter(match=store.prefix.encode() + b"*", count=1000))


def refresh(family: str = "fam", *, subject: str = "alice", client_id: str = "c1", ttl: int = 3600) -> RefreshToken:
    now = int(time.time())
    return RefreshToken(
        token_hash=os.urandom(32),
        family_id=family,
        client_id=client_id,
        subject=subject,
        scope="mcp:tools",
        resource="http://127.0.0.1:8000/mcp",
        issued_at=now,
        expires_at=now + ttl,
    )


def code(family: str = "fam", ttl: int = 60) -> AuthorizationCode:
    now = int(time.time())
    return AuthorizationCode(
        code_hash=os.urandom(32),
        client_id="c1",
        redirect_uri="http://127.0.0.1:9/cb",
        code_challenge="x" * 43,
        scope="mcp:tools",
        resource="http://127.0.0.1:8000/mcp",
        subject="alice",
        family_id=family,
        expires_at=now + ttl,
        auth_time=now,
    )


def race(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(i)`` in ``n`` threads released together; returns results in order."""
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        out[i] = fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_every_key_written_has_a_ttl(store: RedisTokenStore) -> None:
    now = int(time.time())
    c = code("f1")
    store.save_code(c)
    store.consume_code(c.code_hash, now)
    old, new = refresh("f1"), refresh("f1")
    store.save_refresh_token(old)
    assert store.rotate_refresh_token(old.token_hash, new, now, b"sealed")
    store.add_family_jti("f1", "jti-1", now + 100)
    store.revoke_jti("jti-2", now + 100)
    other = refresh("f2", subject="bob", client_id="c2")
    store.save_refresh_token(other)
    store.add_family_jti("f2", "jti-3", now + 100)
    store.revoke_family("f2", now)

    keys = prefixed_keys(store)
    kinds = {k[len(store.prefix) :].split(b":", 1)[0] for k in keys}
    assert kinds == {b"rt", b"code", b"jti", b"fam", b"sub", b"cli"}
    no_ttl = [k for k in keys if store.client.ttl(k) < 0]
    assert no_ttl == []


def test_ttls_follow_the_expiry_of_what_a_key_holds(store: RedisTokenStore) -> None:
    now = int(time.time())
    rt = refresh(ttl=1000)
    store.save_refresh_token(rt)
    assert 990 <= store.client.ttl(store._key("rt", rt.token_hash)) <= 1000
    c = code(ttl=60)
    store.save_code(c)
    # Codes outlive their expiry by an hour so a late replay is still recognised.
    assert 3640 <= store.client.ttl(store._key("code", c.code_hash)) <= 3660
    store.revoke_jti("j", now + 50)
    assert 40 <= store.client.ttl(store._key("jti", "j")) <= 50
    # A family index lives as long as its longest-lived token.
    longer = refresh(ttl=5000)
    store.save_refresh_token(longer)
    assert store.client.ttl(store._key("fam", "fam")) >= 4990
    store.save_refresh_token(refresh(ttl=10))
    assert store.client.ttl(store._key("fam", "fam")) >= 4990


def test_an_already_expired_revocation_or_token_is_not_stored(store: RedisTokenStore) -> None:
    now = int(time.time())
    store.revoke_jti("old", now - 1)
    assert store.is_jti_revoked("old") is False
    dead = refresh(ttl=-5)
    store.save_refresh_token(dead)
    assert store.get_refresh_token(dead.token_hash) is None
    assert prefixed_keys(store) == []


def test_hashes_are_raw_bytes_in_key_names(store: RedisTokenStore) -> None:
    rt = refresh()
    store.save_refresh_token(rt)
    assert store.client.exists(store.prefix.encode() + b"rt:" + rt.token_hash)
    # The stored record holds ids and scope, never the token or its hash.
    fields = store.client.hgetall(store._key("rt", rt.token_hash))
    assert rt.token_hash not in fields.values()


def test_code_is_consumed_once_under_concurrency(store: RedisTokenStore) -> None:
    c = code()
    store.save_code(c)
    results = race(50, lambda _i: store.consume_code(c.code_hash, int(time.time())))
    assert sum(1 for _code, first in results if first) == 1
    assert all(found is not None and found.code_challenge == c.code_challenge for found, _ in results)
    assert store.consume_code(os.urandom(32), int(time.time())) == (None, False)


def test_rotation_has_exactly_one_winner_under_concurrency(store: RedisTokenStore) -> None:
    old = refresh()
    store.save_refresh_token(old)
    candidates = [refresh() for _ in range(50)]
    now = int(time.time())
    won = race(50, lambda i: store.rotate_refresh_token(old.token_hash, candidates[i], now, None))
    assert won.count(True) == 1
    winner = candidates[won.index(True)]
    assert store.get_refresh_token(winner.token_hash) is not None
    losers = [c for c, w in zip(candidates, won, strict=True) if not w]
    assert all(store.get_refresh_token(c.token_hash) is None for c in losers)
    rotated = store.get_refresh_token(old.token_hash)
    assert rotated is not None and rotated.rotated_at == now


def test_rotating_an_unknown_token_fails(store: RedisTokenStore) -> None:
    new = refresh()
    assert store.rotate_refresh_token(os.urandom(32), new, int(time.time()), None) is False
    assert store.get_refresh_token(new.token_hash) is None


def test_round_trip_keeps_every_field(store: RedisTokenStore) -> None:
    rt = refresh()
    rt.rotated_at, rt.successor_blob = 123, b"\x00\xffblob"
    store.save_refresh_token(rt)
    assert store.get_refresh_token(rt.token_hash) == rt
    c = code()
    store.save_code(c)
    found, first = store.consume_code(c.code_hash, int(time.time()))
    assert first and found == c


def test_revoke_family_ends_tokens_access_tokens_and_code(store: RedisTokenStore) -> None:
    now = int(time.time())
    c = code("fx")
    store.save_code(c)
    assert store.consume_code(c.code_hash, now)[1] is True
    first, second = refresh("fx"), refresh("fx")
    store.save_refresh_token(first)
    store.rotate_refresh_token(first.token_hash, second, now, None)
    store.add_family_jti("fx", "a1", now + 100)
    store.add_family_jti("fx", "a2", now + 100)
    unrelated = refresh("fy")
    store.save_refresh_token(unrelated)

    assert store.revoke_family("fx", now) == 4  # two refresh tokens, two access tokens
    assert store.get_refresh_token(first.token_hash) is None
    assert store.get_refresh_token(second.token_hash) is None
    assert store.is_jti_revoked("a1") and store.is_jti_revoked("a2")
    assert store.get_refresh_token(unrelated.token_hash) is not None
    assert store.revoke_family("fx", now) == 0


def test_revoke_family_marks_an_unused_code_used(store: RedisTokenStore) -> None:
    c = code("fz")
    store.save_code(c)
    store.revoke_family("fz", int(time.time()))
    found, first = store.consume_code(c.code_hash, int(time.time()))
    assert found is not None and first is False


def test_list_families_by_subject_client_both_and_all(store: RedisTokenStore) -> None:
    now = int(time.time())
    a1 = refresh("fa1", subject="alice", client_id="c1")
    a2 = refresh("fa2", subject="alice", client_id="c2")
    b1 = refresh("fb1", subject="bob", client_id="c1")
    for t in (a1, a2, b1):
        store.save_refresh_token(t)
    a1_next = refresh("fa1", subject="alice", client_id="c1")
    store.rotate_refresh_token(a1.token_hash, a1_next, now, None)

    def fams(**kw: str) -> set[str]:
        return {t.family_id for t in store.list_families(**kw)}

    assert fams(subject="alice") == {"fa1", "fa2"}
    assert fams(client_id="c1") == {"fa1", "fb1"}
    assert fams(subject="alice", client_id="c1") == {"fa1"}
    assert fams() == {"fa1", "fa2", "fb1"}
    # Only the live token of a family is listed.
    listed = store.list_families(subject="alice", client_id="c1")
    assert [t.token_hash for t in listed] == [a1_next.token_hash]
    store.revoke_family("fa2", now)
    assert fams(subject="alice") == {"fa1"}
    assert b"fa2" not in store.client.hkeys(store._key("sub", "alice"))


def test_indexes_shed_ended_families_as_new_ones_arrive(store: RedisTokenStore) -> None:
    now = int(time.time())
    for i in range(200):
        store.save_refresh_token(refresh(f"dead-{i}"))
        store.revoke_family(f"dead-{i}", now)
    index = store._key("sub", "alice")
    # Revocation does not know the indexes; later writes drop what they find ended.
    assert store.client.hlen(index) < 50
    for i in range(200):
        store.save_refresh_token(refresh(f"live-{i}"))
    fields = store.client.hkeys(index)
    dead = [f for f in fields if f.startswith(b"dead-")]
    assert len(fields) - len(dead) == 200
    assert len(dead) < 50, len(dead)  # without any sweep


def test_prefixes_isolate_deployments(redis_url: str) -> None:
    with redis_prefix() as other_url:
        a = RedisTokenStore.from_url(redis_url, {})
        b = RedisTokenStore.from_url(other_url, {})
        rt = refresh()
        a.save_refresh_token(rt)
        a.revoke_jti("j", int(time.time()) + 60)
        assert b.get_refresh_token(rt.token_hash) is None
        assert b.is_jti_revoked("j") is False
        assert b.list_families() == []
        a.close()
        b.close()


def test_metadata_documents_are_shared_with_their_ttl(store: RedisTokenStore) -> None:
    url = "https://client.example.com/mcp.json"
    assert store.get_document(url) is None
    doc = {"client_id": url, "redirect_uris": ["http://127.0.0.1/cb"], "client_name": "Ünïcode"}
    store.put_document(url, doc, 120)
    got = store.get_document(url)
    assert got is not None and got[0] == doc and 118 <= got[1] <= 120
    (key,) = [k for k in prefixed_keys(store) if k.startswith(store.prefix.encode() + b"cimd:")]
    assert 118 <= store.client.ttl(key) <= 120 and url.encode() not in key
    store.put_document(url, doc, 0)  # nothing to keep: not stored, the old entry untouched
    assert store.get_document(url) is not None


def test_prune_is_a_no_op(store: RedisTokenStore) -> None:
    store.save_refresh_token(refresh())
    assert store.prune_tokens(int(time.time()) + 10**6) == 0
    assert len(prefixed_keys(store)) > 0


def test_ping_and_a_down_server_fails_fast() -> None:
    store = RedisTokenStore.from_url("redis://127.0.0.1:1/15", {})
    started = time.monotonic()
    with pytest.raises(Exception, match="(?i)connect"):
        store.ping()
    assert time.monotonic() - started < 2


def test_redis_cannot_be_the_main_storage(tmp_path: Any, redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="OAUTH_TOKEN_STORAGE_URL"):
        create_app(base_config(tmp_path, OAUTH_STORAGE_URL=redis_url))


def test_memory_per_refresh_token(store: RedisTokenStore, redis_url: str) -> None:
    """Bytes Redis holds per stored refresh token (printed for docs/benchmarks.md).

    2000 first tokens, each starting a family (200 people, 20 clients), then one rotation of
    each: a rotation adds a token to an existing family, a first token also adds the family.
    """
    client = redis_client(redis_url)
    n = 2000

    def used() -> int:
        return int(client.info("memory")["used_memory"])

    before = used()
    tokens = []
    for i in range(n):
        t = refresh(f"family-{secrets.new_token(16)}", subject=f"user{i % 200}", client_id=f"client-{i % 20:02d}")
        tokens.append(t)
        store.save_refresh_token(t)
    after_first = used()
    now = int(time.time())
    for t in tokens:
        successor = refresh(t.family_id, subject=t.subject, client_id=t.client_id)
        assert store.rotate_refresh_token(t.token_hash, successor, now, None)
    after_rotation = used()
    per_key = sum(store.memory_usage(t.token_hash) for t in tokens[:100]) / 100
    first = (after_first - before) / n
    rotated = (after_rotation - after_first) / n
    print(
        f"\nredis: {per_key:.0f} B per refresh-token key (MEMORY USAGE); used_memory grows {first:.0f} B "
        f"per first token (with its family and index entries), {rotated:.0f} B per rotation"
    )
    client.close()
    record_footprint("redis", (after_rotation - before) / (2 * n))
    assert 0 < per_key < 400
    assert 0 < first < 1000
    assert 0 < rotated < 600


def test_split_deployment_through_the_app(tmp_path: Any, redis_url: str) -> None:
    """Durable data in SQLite, short-lived data in Redis: code, refresh, replay, revocation."""
    app = create_app(
        base_config(
            tmp_path,
            OAUTH_TOKEN_STORAGE_URL=redis_url,
            OAUTH_GRANT_TYPES="authorization_code refresh_token client_credentials",
        )
    )
    state = app.extensions["mcp_oauth"]
    assert isinstance(state.token_store.target, RedisTokenStore)
    # Metadata documents fetched by one worker are shared through Redis (app/cimd.py).
    assert state.extras["cimd"].shared is state.token_store.target
    http = app.test_client()
    with app.app_context():
        meta = validate_metadata(
            state,
            {
                "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": ["http://127.0.0.1:8765/callback"],
                "token_endpoint_auth_method": "client_secret_basic",
                "scope": "mcp:tools",
            },
        )
        client, secret, _ = new_client(state, meta, registered_by="cli")
        fast_authenticator(state).create("alice", PASSWORD, state.now())  # refresh checks the person
    auth = (client.client_id, secret)
    issued = store_code(state.token_store, client.client_id)
    r = http.post("/oauth/token", data=issued.params(), auth=auth)
    assert r.status_code == 200, r.json
    first = r.json
    assert state.storage.target.list_families() == []  # nothing short-lived went to SQLite
    assert [t.family_id for t in state.token_store.list_families(client_id=client.client_id)] == [issued.family_id]

    again = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    r = http.post("/oauth/token", data=again, auth=auth)
    assert r.status_code == 200, r.json
    second = r.json
    bearer = {"Authorization": f"Bearer {second['access_token']}"}
    assert http.get("/mcp/whoami", headers=bearer).status_code == 200

    # Replaying the first refresh token revokes the family, in Redis.
    r = http.post("/oauth/token", data=again, auth=auth)
    assert r.status_code == 400 and r.json["error"] == "invalid_grant"
    assert http.get("/mcp/whoami", headers=bearer).status_code == 401
    assert state.token_store.list_families(client_id=client.client_id) == []

    # A new grant, then deleting the client ends it in Redis too.
    issued = store_code(state.token_store, client.client_id)
    third = http.post("/oauth/token", data=issued.params(), auth=auth).json
    with app.app_context():
        assert admin.delete_client(state, client.client_id, by="test")
    assert state.token_store.get_refresh_token(secrets.token_hash(third["refresh_token"])) is None
    assert state.token_store.is_jti_revoked(_jti(third["access_token"]))
    state.close()


def _jti(token: str) -> str:
    return str(jwt_claims(token)["jti"])
