"""One gunicorn, two workers, one SQLite file: what one worker issues, the other introspects,
revokes and then refuses.

Nothing is added to the app to tell the workers apart: gunicorn's own access log carries the
worker's pid (``%(p)s``), each request goes out on a fresh connection so either worker may take
it, and requests are sent several at a time so that a busy worker leaves the next to the other.
Every request is checked, and the test asserts that both workers answered in each phase.
"""

from __future__ import annotations

import json
import re
import secrets as pysecrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.servers import Server, flask_cli, start_gunicorn

pytestmark = pytest.mark.slow

LOG_FORMAT = "%(p)s %(m)s %(U)s?%(q)s %(s)s"
LINE = re.compile(r"^<(\d+)> (\w+) (\S+)\?(\S*) (\d{3})$")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("gunicorn")
    env = {
        "OAUTH_STORAGE_URL": f"sqlite:///{tmp}/oauth.sqlite3",
        "RATELIMIT_TOKEN": "100000/minute",
        "RATELIMIT_AUTH_FAILURE": "100000/minute",
        "GUNICORN_ACCESS_LOG": "-",
        "GUNICORN_WORKER_CLASS": "sync",
    }
    srv = start_gunicorn(env, tmp, workers=2, extra_args=["--access-logformat", LOG_FORMAT])
    try:
        yield srv, env
    finally:
        srv.stop()
    assert "Traceback" not in srv.log(), srv.log()[-3000:]


def worker_pids(server: Server) -> set[str]:
    return set(re.findall(r"Booting worker with pid: (\d+)", server.log()))


def served_by(server: Server, phase: str) -> list[tuple[str, str, str]]:
    """(pid, path, status) of every logged request tagged ``phase=<phase>``."""
    out = []
    for line in server.log().splitlines():
        m = LINE.match(line.strip())
        if m and f"phase={phase}" in m.group(4).split("&"):
            out.append((m.group(1), m.group(3), m.group(5)))
    return out


def logged_once(server: Server, phase: str) -> tuple[str, str, str]:
    """The one access-log line of ``phase``; gunicorn writes it after sending the response, so
    the line may trail the response by a moment."""
    deadline = time.monotonic() + 10
    lines = served_by(server, phase)
    while not lines and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = served_by(server, phase)
    assert len(lines) == 1, (phase, lines)
    return lines[0]


def fan_out(n: int, request: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """``n`` requests, four at a time, each on its own connection."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(request, range(n)))


def until_both_workers(
    server: Server, phase: str, request: Callable[[int], httpx.Response], check: Callable[[httpx.Response], None]
) -> int:
    """Send batches until the access log shows both workers answered ``phase``; check every answer."""
    pids = worker_pids(server)
    assert len(pids) == 2, server.log()[-2000:]
    sent = 0
    for _ in range(10):
        for response in fan_out(40, request):
            check(response)
            sent += 1
        seen = {pid for pid, _, _ in served_by(server, phase)}
        if seen == pids:
            return sent
    pytest.fail(f"after {sent} requests only workers {seen} of {pids} answered phase {phase}")


def test_issue_introspect_revoke_refuse_across_workers(server: tuple[Server, dict[str, str]]) -> None:
    srv, env = server
    client = json.loads(flask_cli(["client", "create", "--name", "gunicorn-worker"], env, srv.port))
    auth = (client["client_id"], client["client_secret"])
    fresh = {"Connection": "close"}
    tag = pysecrets.token_hex(3)

    def phase(name: str) -> str:
        return f"{name}-{tag}"

    r = httpx.post(
        f"{srv.url}/oauth/token?phase={phase('issue')}",
        data={"grant_type": "client_credentials"},
        auth=auth,
        headers=fresh,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    issuer_pid, _, _ = logged_once(srv, phase("issue"))
    bearer = {"Authorization": f"Bearer {token}", **fresh}

    def introspect(name: str) -> Callable[[int], httpx.Response]:
        return lambda i: httpx.post(
            f"{srv.url}/oauth/introspect?phase={phase(name)}&i={i}",
            data={"token": token},
            auth=auth,
            headers=fresh,
            timeout=30,
        )

    def whoami(name: str) -> Callable[[int], httpx.Response]:
        return lambda i: httpx.get(f"{srv.url}/mcp/whoami?phase={phase(name)}&i={i}", headers=bearer, timeout=30)

    def active(r: httpx.Response) -> None:
        assert r.status_code == 200 and r.json()["active"] is True and r.json()["client_id"] == auth[0], r.text

    def allowed(r: httpx.Response) -> None:
        assert r.status_code == 200 and r.json()["client_id"] == auth[0], r.text

    # Before revocation: both workers accept the token (and now hold it in their verified caches).
    until_both_workers(srv, phase("introspect-before"), introspect("introspect-before"), active)
    until_both_workers(srv, phase("whoami-before"), whoami("whoami-before"), allowed)

    r = httpx.post(
        f"{srv.url}/oauth/revoke?phase={phase('revoke')}", data={"token": token}, auth=auth, headers=fresh, timeout=30
    )
    assert r.status_code == 200
    revoker_pid, _, _ = logged_once(srv, phase("revoke"))

    def inactive(r: httpx.Response) -> None:
        assert r.status_code == 200 and r.json() == {"active": False}, r.text

    def refused(r: httpx.Response) -> None:
        assert r.status_code == 401, r.text
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
        assert r.json()["error"] == "invalid_token"

    # After: every request, whichever worker takes it, is refused; both workers are seen doing so.
    sent = until_both_workers(srv, phase("whoami-after"), whoami("whoami-after"), refused)
    sent += until_both_workers(srv, phase("introspect-after"), introspect("introspect-after"), inactive)
    assert sent >= 80

    log = served_by(srv, phase("whoami-after")) + served_by(srv, phase("introspect-after"))
    assert all(status in ("401", "200") for _, _, status in log)
    assert {status for _, path, status in log if path == "/mcp/whoami"} == {"401"}
    # The token was issued and revoked by workers of this server, and refused by both of them.
    assert {issuer_pid, revoker_pid} <= worker_pids(srv)
