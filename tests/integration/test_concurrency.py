"""Concurrent use of one refresh token or one code: exactly one winner, nothing left alive that
should not be.

With the grace window off (the default), every loser of a refresh race is a presentation of a
just-rotated token, which RFC 9700 §4.14.2 treats as theft: the family is revoked, the winner's
fresh pair included. With the grace window on, every loser gets the winner's pair. Both are
tested in-process (threads against the Flask app, SQLite and memory storage) and across
processes (threads against gunicorn with two workers on one SQLite file). The in-process tests
also run on PostgreSQL and on Redis (short-lived data) when those servers are reachable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from app import create_app
from tests.conftest import base_config
from tests.support.backends import postgres_schema, redis_prefix
from tests.support.grants import REDIRECT, IssuedCode, add_person, store_code
from tests.support.servers import Server, start_gunicorn


def race(n: int, call: Callable[[], tuple[int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    """Run ``call`` in ``n`` threads released together; returns every (status, body)."""
    barrier = threading.Barrier(n)
    results: list[tuple[int, dict[str, Any]]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            outcome = call()
        except BaseException as e:  # surfaced below: a thread's failure must fail the test
            with lock:
                errors.append(e)
            return
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(results) == n
    return results


def split(results: list[tuple[int, dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    wins = [body for status, body in results if status == 200]
    losses = [body for status, body in results if status != 200]
    assert all(status in (200, 400) for status, _ in results), results
    return wins, losses


def register_public(state: Any) -> str:
    from app.oauth.register import new_client, validate_metadata

    meta = validate_metadata(
        state,
        {
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "redirect_uris": [REDIRECT],
            "scope": "mcp:tools",
        },
    )
    client, _, _ = new_client(state, meta, registered_by="cli")
    add_person(state.storage, "alice")
    return client.client_id


# -- in-process: threads against the Flask app ---------------------------------------------------


@pytest.fixture(
    params=[
        "sqlite",
        "memory",
        pytest.param("postgresql", marks=[pytest.mark.service, pytest.mark.postgresql]),
        pytest.param("sqlite+redis", marks=[pytest.mark.service, pytest.mark.redis]),
    ]
)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Storage settings: SQLite, memory, PostgreSQL, or SQLite with short-lived data in Redis."""
    if request.param == "sqlite":
        yield {"OAUTH_STORAGE_URL": f"sqlite:///{tmp_path}/oauth.sqlite3"}
    elif request.param == "memory":
        yield {"OAUTH_STORAGE_URL": "memory://"}
    elif request.param == "postgresql":
        with postgres_schema() as url:
            yield {"OAUTH_STORAGE_URL": url}
    else:
        with redis_prefix() as url:
            yield {"OAUTH_STORAGE_URL": f"sqlite:///{tmp_path}/oauth.sqlite3", "OAUTH_TOKEN_STORAGE_URL": url}


def make_app(tmp_path: Path, storage: dict[str, str], grace: int) -> Flask:
    return create_app(base_config(tmp_path, **storage, OAUTH_REFRESH_GRACE_SECONDS=grace))


@pytest.fixture
def flask_app(tmp_path: Path, storage: dict[str, str], request: pytest.FixtureRequest) -> Iterator[Flask]:
    app = make_app(tmp_path, storage, getattr(request, "param", 0))
    yield app
    app.extensions["mcp_oauth"].close()


def app_post(app: Flask, data: dict[str, str]) -> Callable[[], tuple[int, dict[str, Any]]]:
    def call() -> tuple[int, dict[str, Any]]:
        r = app.test_client().post("/oauth/token", data=data)
        return r.status_code, dict(r.json or {})

    return call


def app_token_works(app: Flask, access_token: str) -> bool:
    r = app.test_client().get("/mcp/whoami", headers={"Authorization": f"Bearer {access_token}"})
    return r.status_code == 200


def first_pair(app: Flask) -> tuple[str, dict[str, Any]]:
    state = app.extensions["mcp_oauth"]
    cid = register_public(state)
    r = app.test_client().post("/oauth/token", data=store_code(state.token_store, cid).params())
    assert r.status_code == 200, r.json
    return cid, dict(r.json)


@pytest.mark.parametrize("n", [2, 20])
def test_concurrent_refreshes_one_winner_and_the_family_is_revoked(flask_app: Flask, n: int) -> None:
    cid, pair = first_pair(flask_app)
    data = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"], "client_id": cid}
    wins, losses = split(race(n, app_post(flask_app, data)))
    assert len(wins) == 1
    assert len(losses) == n - 1
    assert all(body["error"] == "invalid_grant" for body in losses)
    # RFC 9700 §4.14.2 with the grace window off: the losers presented a rotated token, so the
    # family is revoked, the winner's new pair included.
    assert not app_token_works(flask_app, wins[0]["access_token"])
    assert not app_token_works(flask_app, pair["access_token"])
    again = flask_app.test_client().post("/oauth/token", data=data | {"refresh_token": wins[0]["refresh_token"]})
    assert again.json["error"] == "invalid_grant"


@pytest.mark.parametrize("grace", [0, 30])
def test_only_one_of_many_simultaneous_rotations_wins(
    tmp_path: Path, storage: dict[str, str], grace: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every racer reads the token while it is still current (held at a barrier right after the
    read), so all of them reach the atomic rotation: exactly one may succeed there."""
    n = 8
    app = make_app(tmp_path, storage, grace)
    try:
        state = app.extensions["mcp_oauth"]
        cid, pair = first_pair(app)
        store = state.token_store
        real_get, real_rotate = store.get_refresh_token, store.rotate_refresh_token
        barrier, seen, outcomes = threading.Barrier(n), threading.local(), []

        def get_then_wait(token_hash: bytes) -> Any:
            found = real_get(token_hash)
            if not getattr(seen, "done", False):
                seen.done = True
                assert found is not None and found.rotated_at is None
                barrier.wait(timeout=30)
            return found

        def counted_rotate(*args: Any) -> bool:
            won = bool(real_rotate(*args))
            outcomes.append(won)
            return won

        monkeypatch.setattr(store, "get_refresh_token", get_then_wait)
        monkeypatch.setattr(store, "rotate_refresh_token", counted_rotate)
        data = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"], "client_id": cid}
        wins, losses = split(race(n, app_post(app, data)))
        assert sorted(outcomes) == [False] * (n - 1) + [True]
        if grace:
            assert losses == [] and len({w["refresh_token"] for w in wins}) == 1
        else:
            assert len(wins) == 1 and [b["error"] for b in losses] == ["invalid_grant"] * (n - 1)
    finally:
        app.extensions["mcp_oauth"].close()


@pytest.mark.parametrize("flask_app", [30], indirect=True)
@pytest.mark.parametrize("n", [2, 20])
def test_concurrent_refreshes_inside_the_grace_window_all_get_the_winners_pair(flask_app: Flask, n: int) -> None:
    cid, pair = first_pair(flask_app)
    data = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"], "client_id": cid}
    wins, losses = split(race(n, app_post(flask_app, data)))
    assert losses == []
    assert len({w["refresh_token"] for w in wins}) == 1
    assert len({w["access_token"] for w in wins}) == 1
    assert app_token_works(flask_app, wins[0]["access_token"])
    nxt = flask_app.test_client().post("/oauth/token", data=data | {"refresh_token": wins[0]["refresh_token"]})
    assert nxt.status_code == 200


@pytest.mark.parametrize("n", [2, 20])
def test_concurrent_code_exchanges_leave_no_live_token(flask_app: Flask, n: int) -> None:
    state = flask_app.extensions["mcp_oauth"]
    cid = register_public(state)
    issued = store_code(state.token_store, cid)
    wins, losses = split(race(n, app_post(flask_app, issued.params())))
    # A code presented twice was leaked: at most one exchange succeeds, and whatever it issued is
    # revoked by the replays (or the winner notices a replay that raced it and fails too).
    assert len(wins) <= 1
    assert len(losses) >= n - 1
    assert all(body["error"] == "invalid_grant" for body in losses)
    for body in wins:
        assert not app_token_works(flask_app, body["access_token"])
        r = flask_app.test_client().post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": cid},
        )
        assert r.json["error"] == "invalid_grant"
    assert state.token_store.list_families(client_id=cid) == []


# -- across processes: gunicorn with two workers on one SQLite file -----------------------------


class Deployment:
    """A gunicorn server plus an in-process app on the same database, for storing codes."""

    def __init__(self, server: Server, app: Flask) -> None:
        self.server, self.app = server, app
        self.state = app.extensions["mcp_oauth"]
        self.client_id = register_public(self.state)

    def code(self) -> IssuedCode:
        return store_code(
            self.state.token_store, self.client_id, resource=self.server.url + "/mcp", redirect_uri=REDIRECT
        )

    def post(self, data: dict[str, str]) -> Callable[[], tuple[int, dict[str, Any]]]:
        def call() -> tuple[int, dict[str, Any]]:
            with httpx.Client(timeout=30) as http:
                r = http.post(self.server.url + "/oauth/token", data=data)
            return r.status_code, r.json()

        return call

    def works(self, access_token: str) -> bool:
        r = httpx.get(self.server.url + "/mcp/whoami", headers={"Authorization": f"Bearer {access_token}"})
        return r.status_code == 200

    def first_pair(self) -> dict[str, Any]:
        status, body = self.post(self.code().params())()
        assert status == 200, body
        return body


def deploy(tmp: Path, worker_class: str, grace: int) -> Iterator[Deployment]:
    db = f"sqlite:///{tmp}/oauth.sqlite3"
    env = {
        "OAUTH_STORAGE_URL": db,
        "OAUTH_REFRESH_GRACE_SECONDS": str(grace),
        "RATELIMIT_TOKEN": "10000/minute",
        "RATELIMIT_AUTH_FAILURE": "10000/minute",
        "GUNICORN_WORKER_CLASS": worker_class,
        "GUNICORN_THREADS": "4",
        "GUNICORN_ACCESS_LOG": "",
    }
    server = start_gunicorn(env, tmp, workers=2)
    app = create_app(base_config(tmp, OAUTH_ISSUER=server.url, OAUTH_STORAGE_URL=db))
    try:
        yield Deployment(server, app)
    finally:
        app.extensions["mcp_oauth"].close()
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]


@pytest.fixture(scope="module", params=["sync", "gthread"])
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    yield from deploy(tmp_path_factory.mktemp(f"gunicorn-{request.param}"), request.param, grace=0)


@pytest.fixture(scope="module")
def grace_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    yield from deploy(tmp_path_factory.mktemp("gunicorn-grace"), "gthread", grace=30)


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 20])
def test_gunicorn_concurrent_refreshes_have_exactly_one_winner(deployment: Deployment, n: int) -> None:
    pair = deployment.first_pair()
    data = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"], "client_id": deployment.client_id}
    wins, losses = split(race(n, deployment.post(data)))
    assert len(wins) == 1, (wins, losses)
    assert [b["error"] for b in losses] == ["invalid_grant"] * (n - 1)
    assert not deployment.works(wins[0]["access_token"])
    status, body = deployment.post(data | {"refresh_token": wins[0]["refresh_token"]})()
    assert (status, body["error"]) == (400, "invalid_grant")


@pytest.mark.slow
def test_gunicorn_concurrent_code_exchanges_leave_no_live_token(deployment: Deployment) -> None:
    issued = deployment.code()
    wins, losses = split(race(20, deployment.post(issued.params())))
    assert len(wins) <= 1 and len(losses) >= 19
    assert all(b["error"] == "invalid_grant" for b in losses)
    assert not any(deployment.works(b["access_token"]) for b in wins)


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 20])
def test_gunicorn_grace_window_gives_every_racer_the_same_pair(grace_deployment: Deployment, n: int) -> None:
    pair = grace_deployment.first_pair()
    data = {
        "grant_type": "refresh_token",
        "refresh_token": pair["refresh_token"],
        "client_id": grace_deployment.client_id,
    }
    wins, losses = split(race(n, grace_deployment.post(data)))
    assert losses == []
    assert len({(w["access_token"], w["refresh_token"]) for w in wins}) == 1
    assert grace_deployment.works(wins[0]["access_token"])
