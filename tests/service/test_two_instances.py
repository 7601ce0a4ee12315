"""Two server instances (separate gunicorn processes on two ports, two workers each) sharing
PostgreSQL (durable data), Redis (short-lived data) and a Redis rate limiter, as behind a load
balancer. Instance A loads the app before forking (``GUNICORN_PRELOAD=1``), B in each worker,
so both ways of getting a connection pool per process are exercised.

Codes are stored directly in Redis, as the authorization endpoint stores them after consent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from plugins.storage.redis_store import RedisTokenStore
from tests.support.backends import postgres_schema, redis_prefix
from tests.support.deploy import prepare
from tests.support.grants import REDIRECT, IssuedCode, store_code
from tests.support.servers import Server, free_port, start_gunicorn

pytestmark = [pytest.mark.service, pytest.mark.postgresql, pytest.mark.redis, pytest.mark.slow]

REGISTRATION_LIMIT = 6


@dataclass
class Pair:
    a: Server
    b: Server
    env: dict[str, str]
    token_store: RedisTokenStore
    client: tuple[str, str]  # (client_id, secret): authorization_code + refresh_token
    introspector: tuple[str, str]  # client_credentials client allowed to introspect
    resource: str

    def both(self) -> tuple[Server, Server]:
        return self.a, self.b


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    logs = tmp_path_factory.mktemp("two-instances")
    with postgres_schema() as pg_url, redis_prefix() as token_url, redis_prefix() as limits_url:
        port_a, port_b = free_port(), free_port()
        issuer = f"http://127.0.0.1:{port_a}"  # one issuer for both, as behind a load balancer
        env = {
            "OAUTH_ISSUER": issuer,
            "OAUTH_STORAGE_URL": pg_url,
            "OAUTH_TOKEN_STORAGE_URL": token_url,
            "RATELIMIT_STORAGE_URL": limits_url,  # key_prefix isolates the counters too
            "RATELIMIT_REGISTRATION": f"{REGISTRATION_LIMIT}/minute",
            "MCP_ALLOWED_HOSTS": f"127.0.0.1:{port_a} 127.0.0.1:{port_b}",
        }
        prepared = prepare(env)
        client, introspector = prepared.client, prepared.introspector
        a = start_gunicorn(env | {"GUNICORN_PRELOAD": "1"}, logs, port=port_a, workers=2, init=False)
        b = start_gunicorn(env, logs, port=port_b, workers=2, init=False)
        store = RedisTokenStore.from_url(token_url, {})
        try:
            yield Pair(a, b, env, store, client, introspector, issuer + "/mcp")
        finally:
            a.stop()
            b.stop()
            store.close()
            for server in (a, b):
                log = server.log()
                assert "Traceback" not in log, log[-3000:]
                assert '" 500 ' not in log, log[-3000:]


def new_code(pair: Pair) -> IssuedCode:
    """A code for the shared client, as the authorization endpoint stores it after consent."""
    return store_code(pair.token_store, pair.client[0], resource=pair.resource)


def exchange(server: Server, pair: Pair, issued: IssuedCode) -> httpx.Response:
    return httpx.post(server.url + "/oauth/token", data=issued.params(), auth=pair.client, timeout=30)


def refresh(server: Server, pair: Pair, token: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    return httpx.post(server.url + "/oauth/token", data=data, auth=pair.client, timeout=30)


def introspect(server: Server, pair: Pair, token: str) -> dict[str, Any]:
    r = httpx.post(server.url + "/oauth/introspect", data={"token": token}, auth=pair.introspector, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def whoami(server: Server, token: str) -> int:
    return httpx.get(server.url + "/mcp/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code


def in_parallel(calls: list[Any]) -> list[httpx.Response]:
    """Run the callables at the same moment, one thread each."""
    barrier = threading.Barrier(len(calls))
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = calls[i]()
        except Exception as e:
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [r for r in out if not isinstance(r, httpx.Response)]
    assert not errors, errors[:3]
    return out


def test_a_token_from_one_instance_is_introspected_and_revoked_on_the_other(pair: Pair) -> None:
    r = exchange(pair.a, pair, new_code(pair))
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert introspect(pair.b, pair, tokens["access_token"])["active"] is True
    assert introspect(pair.b, pair, tokens["refresh_token"])["active"] is True
    assert whoami(pair.b, tokens["access_token"]) == 200

    r = httpx.post(pair.b.url + "/oauth/revoke", data={"token": tokens["access_token"]}, auth=pair.client)
    assert r.status_code == 200
    assert introspect(pair.a, pair, tokens["access_token"]) == {"active": False}
    # Every worker of A refuses it (each has its own verified-token cache; revocation is shared).
    assert {whoami(pair.a, tokens["access_token"]) for _ in range(6)} == {401}


def test_a_refresh_token_rotated_on_one_instance_is_refused_on_the_other(pair: Pair) -> None:
    first = exchange(pair.a, pair, new_code(pair)).json()
    r = refresh(pair.a, pair, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()

    r = refresh(pair.b, pair, first["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # The replay revoked the family: the pair A handed out is dead on both instances.
    for server in pair.both():
        assert introspect(server, pair, second["refresh_token"]) == {"active": False}
        assert whoami(server, second["access_token"]) == 401


def test_a_rate_limit_is_shared_by_both_instances(pair: Pair) -> None:
    body = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}
    statuses = []
    for i in range(REGISTRATION_LIMIT + 2):
        server = pair.both()[i % 2]
        statuses.append(httpx.post(server.url + "/oauth/register", json=body, timeout=30).status_code)
    # Three on each instance used up the limit of six; a per-process limiter would allow 6 x 4.
    assert statuses == [201] * REGISTRATION_LIMIT + [429, 429]


def test_fifty_concurrent_refreshes_across_both_instances_give_one_success(pair: Pair) -> None:
    first = exchange(pair.b, pair, new_code(pair)).json()
    token = first["refresh_token"]
    responses = in_parallel([lambda i=i: refresh(pair.both()[i % 2], pair, token) for i in range(50)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, statuses
    assert set(statuses) == {200, 400}, statuses
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)
    # The losers presented a rotated token: the family is revoked, the winner's pair included.
    winner = next(r for r in responses if r.status_code == 200).json()
    assert introspect(pair.a, pair, winner["refresh_token"]) == {"active": False}


def test_fifty_concurrent_exchanges_of_one_code_give_one_token(pair: Pair) -> None:
    """Exactly one exchange gets past the atomic consume and answers 200 with a token pair.

    The other 49 are replays, which revoke what the code issued (RFC 6749 §4.1.2), so the one
    pair is revoked too, whether the replay landed before the winner stored it (the grant sees
    the family marker: a ``code_replay_race`` revocation) or after (plugins/grants/_issue.py).
    """
    issued = new_code(pair)
    responses = in_parallel([lambda i=i: exchange(pair.both()[i % 2], pair, issued) for i in range(50)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, statuses
    assert set(statuses) == {200, 400}, statuses
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)
    winners = [r.json() for r in responses if r.status_code == 200]

    events = _audit_events(pair)
    revocations = [e for e in events if e["event"] == "family.revoked" and e["family_id"] == issued.family_id]
    assert [e["reason"] for e in revocations].count("code_replay") >= 1
    # Whatever was minted is revoked on both instances.
    for server in pair.both():
        for pair_tokens in winners:
            assert introspect(server, pair, pair_tokens["access_token"]) == {"active": False}
            assert introspect(server, pair, pair_tokens["refresh_token"]) == {"active": False}


def _audit_events(pair: Pair) -> list[dict[str, Any]]:
    logs = pair.a.log() + pair.b.log()
    return [json.loads(line) for line in logs.splitlines() if line.startswith('{"event":')]


def test_metrics_add_up_across_workers(pair: Pair) -> None:
    """Each instance's /metrics counts what all its workers did (multiprocess mode)."""
    assert exchange(pair.a, pair, new_code(pair)).status_code == 200
    text = httpx.get(pair.a.url + "/metrics", timeout=30).text
    issued = [line for line in text.splitlines() if line.startswith('mcp_oauth_tokens_issued_total{grant="')]
    assert issued, text[:2000]
    before = _sample(text, 'mcp_oauth_http_requests_total{endpoint="/healthz",method="GET",status="200"}')
    for _ in range(8):
        assert httpx.get(pair.a.url + "/healthz", timeout=30).status_code == 200
    after = _sample(
        httpx.get(pair.a.url + "/metrics", timeout=30).text,
        'mcp_oauth_http_requests_total{endpoint="/healthz",method="GET",status="200"}',
    )
    assert after - before == 8


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_logs_hold_audit_lines_and_no_secret(pair: Pair) -> None:
    first = exchange(pair.a, pair, new_code(pair)).json()
    second = refresh(pair.b, pair, first["refresh_token"]).json()
    assert refresh(pair.a, pair, first["refresh_token"]).status_code == 400
    httpx.post(pair.b.url + "/oauth/revoke", data={"token": second["access_token"]}, auth=pair.client)
    logs = pair.a.log() + pair.b.log()
    names = {e["event"] for e in _audit_events(pair)}
    assert {"token.issued", "family.revoked", "refresh.rotated", "token.revoked"} <= names, names
    for secret in (pair.client[1], pair.introspector[1], first["refresh_token"], second["access_token"]):
        assert secret not in logs
