"""Soak run: minutes of mixed traffic against two gunicorn workers on PostgreSQL + Redis.

One server (``wsgi:app`` under ``gunicorn.conf.py``, 2 sync workers, 127.0.0.1 only) with
durable data in its own PostgreSQL database (``soak``, dropped and created again at the start)
and short-lived data in Redis (db 12, key prefix ``mcp_oauth_soak:``, cleared at the start).
Several client threads then send, for ``--duration`` seconds, a weighted mix of: token issue
(``client_credentials``), introspection, revocation, MCP sessions (``initialize``,
``notifications/initialized``, ``tools/call whoami``), MCP calls with revoked tokens,
registrations (public clients openly, confidential ones with an initial access token), RFC 7592
reads, and bad requests (malformed JSON, wrong content type, repeated parameter, bad client
secret, oversized body, unknown grant, bad bearer tokens) that must each get their 4xx.

Checks, each pass or fail (the exit code is 1 when one fails):

- no 5xx and no transport error, on any request;
- every request got the status its operation expects (bad requests their 4xx);
- no acknowledged write lost: the server is restarted (fresh workers, empty caches) and every
  client whose registration got 201 is read back with its registration access token (RFC 7592),
  every confidential one still gets a token with its secret, every token whose revocation got
  200 introspects inactive and every other issued token active; introspection of a client's
  own tokens during the run must agree as well;
- worker memory stops growing (the rule is in ``memory_verdict``), and no worker was replaced.

    .venv/bin/python bench/soak.py                    # 120 s, writes docs/benchmarks.md
    .venv/bin/python bench/soak.py --duration 10 --no-doc

Results go to ``bench/results/soak-<time>.json`` and into ``docs/benchmarks.md`` between the
``bench:soak`` markers.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402 - after the sys.path line above
    BIN,
    DOC,
    HIGH_LIMIT,
    RESULTS,
    command_and_machine,
    finish_workdir,
    git_commit,
    service_up,
    update_doc,
    worker_pids,
)

POSTGRES_URL = os.environ.get("SOAK_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/soak")
REDIS_URL = os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/12")
KEY_PREFIX = "mcp_oauth_soak:"
MCP_VERSION = "2025-11-25"
FORM = "application/x-www-form-urlencoded"
# How to start the services (the commands .ci/run uses).
START_COMMANDS = {
    "postgresql": 'pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start',
    "redis": 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
}
SERVICE_ADDRESSES = {"postgresql": "127.0.0.1:5432", "redis": "127.0.0.1:6379"}


# --------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------


@dataclass
class Op:
    """Every answer to one kind of request: statuses, latencies, the unexpected ones."""

    expect: frozenset[int]
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


class Recorder:
    """Thread-safe tally of every request, by operation name."""

    def __init__(self) -> None:
        self.ops: dict[str, Op] = {}
        self.lost: list[str] = []  # acknowledged writes found missing or wrong
        self._lock = threading.Lock()

    def record(self, name: str, expect: frozenset[int], status: int, ms: float, detail: str = "") -> None:
        with self._lock:
            op = self.ops.setdefault(name, Op(expect))
            op.statuses[status] += 1
            op.latencies_ms.append(ms)
            if status not in expect and len(op.unexpected) < 20:
                op.unexpected.append(f"{status}: {detail[:300]}")

    def lost_write(self, what: str) -> None:
        with self._lock:
            self.lost.append(what)


@dataclass
class Token:
    value: str
    client_id: str
    secret: str
    expires_at: float
    issued_at: float  # time.monotonic()
    revoked: bool = False


@dataclass
class Registered:
    client_id: str
    uri: str
    reg_token: str
    secret: str | None


class Session:
    """One traffic thread's HTTP client, and the writes the server acknowledged to it."""

    def __init__(self, url: str, rec: Recorder, cli_client: tuple[str, str], iat: str, rng: random.Random) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)
        self.rec = rec
        self.rng = rng
        self.iat = iat
        self.cli_client = cli_client
        self.clients: list[tuple[str, str]] = [cli_client]  # confidential clients to issue with
        self.tokens: list[Token] = []
        self.registered: list[Registered] = []

    def send(
        self, name: str, expect: int | tuple[int, ...], method: str, path: str, **kwargs: Any
    ) -> httpx.Response | None:
        """One request, recorded under ``name``; None on a transport error (recorded as 0)."""
        wanted = frozenset(expect if isinstance(expect, tuple) else (expect,))
        t0 = time.perf_counter()
        try:
            r = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            self.rec.record(name, wanted, 0, (time.perf_counter() - t0) * 1000, f"{type(e).__name__}: {e}")
            return None
        self.rec.record(name, wanted, r.status_code, (time.perf_counter() - t0) * 1000, r.text)
        return r if r.status_code in wanted else None

    def note(self, name: str, problem: str) -> None:
        """A wanted status with a wrong body: counted as unexpected (status 1)."""
        self.rec.record(name + " (body)", frozenset(), 1, 0.0, problem)

    # -- operations --------------------------------------------------------------------------

    def issue(self) -> None:
        cid, secret = self.rng.choice(self.clients)
        r = self.send(
            "token: client_credentials",
            200,
            "POST",
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": "mcp:tools"},
            auth=(cid, secret),
        )
        if r is None:
            return
        body = r.json()
        if "access_token" not in body:
            self.note("token: client_credentials", f"no access_token in {body}")
            return
        self.tokens.append(
            Token(body["access_token"], cid, secret, time.time() + int(body.get("expires_in", 0)), time.monotonic())
        )

    def introspect(self) -> None:
        """The owner introspects one of its tokens; the answer must match what it was told."""
        if not self.tokens:
            return self.issue()
        tok = self.rng.choice(self.tokens)
        r = self.send(
            "introspect",
            200,
            "POST",
            "/oauth/introspect",
            data={"token": tok.value, "token_type_hint": "access_token"},
            auth=(tok.client_id, tok.secret),
        )
        if r is not None and r.json().get("active") is tok.revoked and time.time() < tok.expires_at - 5:
            self.rec.lost_write(
                f"during the run: introspection says active={not tok.revoked} for a token revoked={tok.revoked}"
            )

    def revoke(self) -> None:
        live = [t for t in self.tokens if not t.revoked]
        if not live:
            return self.issue()
        tok = self.rng.choice(live)
        r = self.send(
            "revoke", 200, "POST", "/oauth/revoke", data={"token": tok.value}, auth=(tok.client_id, tok.secret)
        )
        if r is not None:
            tok.revoked = True  # acknowledged: from now on it must stay revoked

    def _mcp_headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": "Bearer " + token,
            "Accept": "application/json, text/event-stream",
            "Origin": self.url,
        }

    def mcp(self) -> None:
        """An MCP session: initialize, notifications/initialized, then 1-3 tools/call whoami."""
        live = [t for t in self.tokens if not t.revoked and t.expires_at > time.time() + 5]
        if not live:
            return self.issue()
        tok = self.rng.choice(live)
        headers = self._mcp_headers(tok.value)
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": MCP_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "soak", "version": "1"},
            },
        }
        r = self.send("mcp: initialize", 200, "POST", "/mcp", json=init, headers=headers)
        if r is None:
            return
        session = r.headers.get("Mcp-Session-Id")
        if not session:
            return self.note("mcp: initialize", "no Mcp-Session-Id header")
        headers |= {"Mcp-Session-Id": session, "MCP-Protocol-Version": MCP_VERSION}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        if self.send("mcp: notifications/initialized", 202, "POST", "/mcp", json=note, headers=headers) is None:
            return
        for i in range(self.rng.randint(1, 3)):
            call = {
                "jsonrpc": "2.0",
                "id": 2 + i,
                "method": "tools/call",
                "params": {"name": "whoami", "arguments": {}},
            }
            r = self.send("mcp: tools/call whoami", 200, "POST", "/mcp", json=call, headers=headers)
            if r is None:
                return
            got = r.json().get("result", {}).get("structuredContent", {}).get("client_id")
            if got != tok.client_id:
                return self.note("mcp: tools/call whoami", f"client_id {got!r}, expected {tok.client_id!r}")

    def mcp_revoked(self) -> None:
        """A revoked token is refused by the MCP endpoint (whichever worker revoked it)."""
        revoked = [t for t in self.tokens if t.revoked]
        if not revoked:
            return self.revoke()
        tok = self.rng.choice(revoked)
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": MCP_VERSION}}
        self.send("mcp: revoked token (401)", 401, "POST", "/mcp", json=init, headers=self._mcp_headers(tok.value))

    def register_public(self) -> None:
        n = self.rng.randrange(10**9)
        body = {
            "client_name": f"soak public {n}",
            "redirect_uris": [f"http://127.0.0.1:{1024 + n % 60000}/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }
        r = self.send("register: public client", 201, "POST", "/oauth/register", json=body)
        if r is not None:
            self._remember(r, "register: public client", None)

    def register_confidential(self) -> None:
        body = {
            "client_name": f"soak worker {self.rng.randrange(10**9)}",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "mcp:tools",
        }
        r = self.send(
            "register: confidential client (IAT)",
            201,
            "POST",
            "/oauth/register",
            json=body,
            headers={"Authorization": "Bearer " + self.iat},
        )
        if r is None:
            return
        secret = r.json().get("client_secret")
        if not secret:
            return self.note("register: confidential client (IAT)", "no client_secret")
        reg = self._remember(r, "register: confidential client (IAT)", secret)
        if reg is not None:
            self.clients.append((reg.client_id, secret))

    def _remember(self, r: httpx.Response, name: str, secret: str | None) -> Registered | None:
        body = r.json()
        try:
            reg = Registered(
                body["client_id"], body["registration_client_uri"], body["registration_access_token"], secret
            )
        except KeyError as e:
            self.note(name, f"no {e} in the registration answer")
            return None
        self.registered.append(reg)
        return reg

    def read_client(self) -> None:
        if not self.registered:
            return self.register_public()
        reg = self.rng.choice(self.registered)
        r = self.send(
            "register: RFC 7592 read", 200, "GET", reg.uri, headers={"Authorization": "Bearer " + reg.reg_token}
        )
        if r is not None and r.json().get("client_id") != reg.client_id:
            self.note("register: RFC 7592 read", "another client_id")

    def bad(self) -> None:
        name, expect, method, path, kwargs = self.rng.choice(self.bad_requests())
        self.send("bad: " + name, expect, method, path, **kwargs)

    def bad_requests(self) -> list[tuple[str, int, str, str, dict[str, Any]]]:
        cid, secret = self.cli_client
        basic = {"Authorization": "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()}
        form = basic | {"Content-Type": FORM}
        reg = self.registered[-1] if self.registered else None
        out: list[tuple[str, int, str, str, dict[str, Any]]] = [
            (
                "malformed JSON (register)",
                400,
                "POST",
                "/oauth/register",
                {"content": b'{"redirect_uris": [', "headers": {"Content-Type": "application/json"}},
            ),
            (
                "wrong content type (token)",
                415,
                "POST",
                "/oauth/token",
                {"json": {"grant_type": "client_credentials"}, "headers": basic},
            ),
            (
                "repeated parameter (token)",
                400,
                "POST",
                "/oauth/token",
                {"content": b"grant_type=client_credentials&grant_type=client_credentials", "headers": form},
            ),
            (
                "bad client secret (token)",
                401,
                "POST",
                "/oauth/token",
                {"data": {"grant_type": "client_credentials"}, "auth": (cid, secret + "x")},
            ),
            (
                "oversized body (register)",
                413,
                "POST",
                "/oauth/register",
                {
                    "content": b'{"client_name": "' + b"x" * 100_000 + b'"}',
                    "headers": {"Content-Type": "application/json"},
                },
            ),
            (
                "unknown grant (token)",
                400,
                "POST",
                "/oauth/token",
                {"data": {"grant_type": "urn:example:no-such-grant"}, "auth": (cid, secret)},
            ),
            (
                "invalid redirect_uri (register)",
                400,
                "POST",
                "/oauth/register",
                {"json": {"redirect_uris": ["javascript:alert(1)"], "token_endpoint_auth_method": "none"}},
            ),
            (
                "bad bearer token (MCP)",
                401,
                "POST",
                "/mcp",
                {
                    "json": {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    "headers": {"Authorization": "Bearer not-a-token"},
                },
            ),
        ]
        if reg is not None:
            out.append(
                (
                    "wrong registration token (RFC 7592 read)",
                    401,
                    "GET",
                    reg.uri,
                    {"headers": {"Authorization": "Bearer " + reg.reg_token[::-1]}},
                )
            )
        return out

    def close(self) -> None:
        self.http.close()


# Relative weights of the operations in the mix.
MIX: dict[str, int] = {
    "issue": 20,
    "introspect": 18,
    "revoke": 8,
    "mcp": 12,
    "mcp_revoked": 3,
    "register_public": 6,
    "register_confidential": 3,
    "read_client": 8,
    "bad": 12,
}


def traffic(session: Session, stop: threading.Event) -> None:
    names, weights = list(MIX), list(MIX.values())
    ops: dict[str, Callable[[], None]] = {n: getattr(session, n) for n in names}
    session.issue()
    while not stop.is_set():
        ops[session.rng.choices(names, weights)[0]]()


# --------------------------------------------------------------------------------------------
# Server, set-up, memory
# --------------------------------------------------------------------------------------------


def server_env(port: int, token_cache: int) -> dict[str, str]:
    """The application's settings: the soak's storage, limits out of the traffic's reach."""
    return {
        "OAUTH_ISSUER": f"http://127.0.0.1:{port}",
        "OAUTH_STORAGE_URL": POSTGRES_URL,
        "OAUTH_TOKEN_STORAGE_URL": f"{REDIS_URL}?key_prefix={KEY_PREFIX}",
        "OAUTH_TOKEN_CACHE_SIZE": str(token_cache),
        "RATELIMIT_ENABLED": "true",
        "RATELIMIT_TOKEN": HIGH_LIMIT,
        "RATELIMIT_REGISTRATION": HIGH_LIMIT,
        "RATELIMIT_AUTH_FAILURE": HIGH_LIMIT,
    }


def gunicorn_env(app_env: dict[str, str], workers: int, metrics_dir: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("OAUTH_", "FLASK_", "MCP_", "RATELIMIT_"))}
    out.update(app_env)
    out.update(
        {
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_WORKER_CLASS": "sync",
            "GUNICORN_ACCESS_LOG": "",  # the soak counts every status itself
            "GUNICORN_LOG_LEVEL": "warning",
            "GUNICORN_MAX_REQUESTS": "0",  # no recycling: a leak must show in RSS
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
    )
    return out


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py wsgi:app`` on 127.0.0.1:port, its log in ``log``."""

    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(BIN / "gunicorn"),
                    "-c",
                    str(ROOT / "gunicorn.conf.py"),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "wsgi:app",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer on {self.url}: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def check_services() -> list[str]:
    """A message per service that is down, naming the command that starts it."""
    return [
        f"{name} is not reachable on {SERVICE_ADDRESSES[name]}; start it with: {START_COMMANDS[name]}"
        for name in ("postgresql", "redis")
        if not service_up(name)
    ]


def reset_storage() -> None:
    """A clean run: the soak's PostgreSQL database dropped and created again, its Redis keys gone."""
    import redis
    import sqlalchemy as sa

    from plugins.storage.sql import engine_url

    base, _, name = engine_url(POSTGRES_URL).rpartition("/")
    engine = sa.create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
    r = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(r.scan_iter(match=KEY_PREFIX + "*", count=1000))
        for i in range(0, len(keys), 500):
            r.delete(*keys[i : i + 500])
    finally:
        r.close()


def set_up(app_env: dict[str, str]) -> tuple[tuple[str, str], str]:
    """In-process, with the server's settings (as the CLI would): the schema and signing key,
    a client_credentials client with the introspect privilege, and an initial access token.
    Returns ((client_id, secret), initial access token)."""
    from app import create_app
    from app.config import load_unprefixed_env
    from app.core import secrets
    from app.models import InitialAccessToken
    from app.oauth.register import new_client, validate_metadata

    config: dict[str, Any] = {}
    load_unprefixed_env(config, app_env)
    app = create_app(config)
    state = app.extensions["mcp_oauth"]
    try:
        with app.app_context():
            body = {
                "client_name": "soak resource server",
                "grant_types": ["client_credentials"],
                "scope": "mcp:tools mcp:resources",
                "token_endpoint_auth_method": "client_secret_basic",
                "redirect_uris": [],
            }
            client, secret, _ = new_client(
                state, validate_metadata(state, body), registered_by="cli", privileges=frozenset({"introspect"})
            )
            iat = secrets.new_token()
            state.storage.save_initial_access_token(
                InitialAccessToken(secrets.token_hash(iat), state.now(), 0, "soak run")
            )
    finally:
        state.close()
    assert secret is not None
    return (client.client_id, secret), iat


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def sample_memory(master: int, every: float, stop: threading.Event, out: list[dict[str, Any]]) -> None:
    """Every ``every`` seconds: {"t": seconds since start, "rss_kib": {worker pid: VmRSS}}."""
    t0 = time.monotonic()
    while True:
        rss = {pid: kib for pid in worker_pids(master) if (kib := rss_kib(pid)) is not None}
        out.append({"t": round(time.monotonic() - t0, 2), "rss_kib": rss})
        if stop.wait(every):
            return


def memory_verdict(
    samples: list[dict[str, Any]], workers_expected: int, max_growth_mib: float, max_growth_pct: float
) -> dict[str, Any]:
    """Per worker, the mean RSS of the last third of the run against the middle third.

    The first third is warm-up (imports, pools, caches filling). A worker passes when the
    last-third mean exceeds the middle-third mean by no more than ``max_growth_mib`` MiB or
    ``max_growth_pct`` % of it, whichever is larger; also reported: the least-squares slope over
    the last two thirds (MiB per minute). A worker that appears or disappears mid-run (a crash
    and replacement) fails the check.
    """
    pids = sorted({pid for s in samples for pid in s["rss_kib"]})
    end = samples[-1]["t"] if samples else 0.0
    workers: dict[str, Any] = {}
    ok = True
    for pid in pids:
        series = [(s["t"], s["rss_kib"][pid] / 1024) for s in samples if pid in s["rss_kib"]]
        middle = [m for t, m in series if end / 3 <= t < 2 * end / 3]
        last = [m for t, m in series if t >= 2 * end / 3]
        tail = [(t, m) for t, m in series if t >= end / 3]
        row: dict[str, Any] = {
            "samples": len(series),
            "first_mib": series[0][1],
            "peak_mib": max(m for _, m in series),
            "final_mib": series[-1][1],
            "whole_run": len(series) == len(samples),
        }
        if middle and last:
            m_mean, l_mean = statistics.mean(middle), statistics.mean(last)
            allowed = max(max_growth_mib, m_mean * max_growth_pct / 100)
            row |= {
                "middle_mean_mib": m_mean,
                "last_mean_mib": l_mean,
                "growth_mib": l_mean - m_mean,
                "allowed_mib": allowed,
                "slope_mib_per_min": _slope(tail) * 60 if len(tail) >= 2 else None,
                "ok": l_mean - m_mean <= allowed and row["whole_run"],
            }
        else:
            row["ok"] = False
        ok = ok and row["ok"]
        workers[str(pid)] = row
    replaced = len(pids) != workers_expected or not all(w["whole_run"] for w in workers.values())
    return {"ok": ok and not replaced, "workers": workers, "replaced": replaced}


def _slope(points: list[tuple[float, float]]) -> float:
    mt = statistics.mean(t for t, _ in points)
    mm = statistics.mean(m for _, m in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (m - mm) for t, m in points) / den if den else 0.0


# --------------------------------------------------------------------------------------------
# Final verification
# --------------------------------------------------------------------------------------------


def verify(
    url: str, sessions: list[Session], cli_client: tuple[str, str], rec: Recorder, threads: int
) -> dict[str, int]:
    """Every acknowledged write, read back from a freshly started server."""
    tokens = [t for s in sessions for t in s.tokens]
    registered = [r for s in sessions for r in s.registered]
    counts = Counter[str]()
    local = threading.local()

    def http() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=30)
        return local.client  # type: ignore[no-any-return]

    def check_token(tok: Token) -> None:
        if tok.expires_at <= time.time() + 5:
            counts["tokens expired (not checked)"] += 1
            return
        t0 = time.perf_counter()
        try:
            r = http().post("/oauth/introspect", data={"token": tok.value}, auth=cli_client)
        except httpx.HTTPError as e:
            rec.record("verify: introspect", frozenset({200}), 0, 0.0, str(e))
            rec.lost_write("token not checked: transport error")
            return
        rec.record("verify: introspect", frozenset({200}), r.status_code, (time.perf_counter() - t0) * 1000, r.text)
        active = r.json().get("active") if r.status_code == 200 else None
        kind = "revoked" if tok.revoked else "live"
        counts[f"tokens {kind} checked"] += 1
        if active is not (not tok.revoked):
            rec.lost_write(f"after restart: a {kind} token introspects as active={active}")

    def check_client(reg: Registered) -> None:
        t0 = time.perf_counter()
        try:
            r = http().get(reg.uri, headers={"Authorization": "Bearer " + reg.reg_token})
        except httpx.HTTPError as e:
            rec.lost_write(f"client {reg.client_id} not checked: {e}")
            return
        rec.record("verify: RFC 7592 read", frozenset({200}), r.status_code, (time.perf_counter() - t0) * 1000, r.text)
        counts["clients checked"] += 1
        if r.status_code != 200 or r.json().get("client_id") != reg.client_id:
            rec.lost_write(f"after restart: client {reg.client_id} reads back as {r.status_code}")
            return
        if reg.secret is None:
            return
        t0 = time.perf_counter()
        r = http().post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(reg.client_id, reg.secret))
        rec.record(
            "verify: token with a registered secret",
            frozenset({200}),
            r.status_code,
            (time.perf_counter() - t0) * 1000,
            r.text,
        )
        counts["client secrets checked"] += 1
        if r.status_code != 200:
            rec.lost_write(f"after restart: client {reg.client_id}'s secret answered {r.status_code}")

    jobs: list[Callable[[], None]] = [lambda t=t: check_token(t) for t in tokens]
    jobs += [lambda r=r: check_client(r) for r in registered]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda job: job(), jobs))
    return dict(counts)


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def op_table(rec: Recorder) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "requests": sum(op.statuses.values()),
            "statuses": {str(k): v for k, v in sorted(op.statuses.items())},
            "expected": sorted(op.expect),
            "p50_ms": percentile(op.latencies_ms, 0.50),
            "p99_ms": percentile(op.latencies_ms, 0.99),
            "unexpected": op.unexpected,
        }
        for name, op in sorted(rec.ops.items())
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": _version(["psql", "--version"]),
        "redis": _version(["redis-server", "--version"]),
        "loadavg_start": os.getloadavg(),
    }


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    for word in out:
        if word[:1].isdigit() or word.startswith("v="):
            return word.removeprefix("v=")
    return "unknown"


def markdown(result: dict[str, Any]) -> str:
    s, m, mem = result["settings"], result["machine"], result["memory"]
    lines = [
        f"Run of {result['date']}, commit `{result['commit']}`: {s['duration']:g} s of mixed traffic from "
        f"{s['threads']} client threads against gunicorn with {s['workers']} sync workers on PostgreSQL "
        f"{m['postgresql']} (clients, keys) + Redis {m['redis']} (revocations), all on 127.0.0.1. "
        f"{result['total_requests']} requests in the traffic phase ({result['total_requests'] / s['duration']:.0f}/s), "
        f"then {result['verify_requests']} more reading every acknowledged write back from a restarted server. "
        "Rate limits are set out of the traffic's reach. The verified-token cache is capped at "
        f"{s['token_cache']} tokens per worker (default 10000) so that it fills early: "
        f"{result['tokens_first_third']} tokens were issued in the first third of the run"
        + (
            ", so growth after it would be a leak, not a cache filling."
            if result["tokens_first_third"] >= s["token_cache"]
            else ", fewer than it holds: it may still have been filling later."
        ),
        "",
        *command_and_machine(result["command"], m, "shared with other work"),
        "| check | result |",
        "|---|---|",
    ]
    for name, check in result["checks"].items():
        verdict = "pass" if check["ok"] else ("not judged" if check["ok"] is None else "**FAIL**")
        lines.append(f"| {name} | {verdict}: {check['detail']} |")
    lines += [
        "",
        "| operation | requests | statuses | expected | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in result["operations"].items():
        statuses = ", ".join(f"{k} x {v}" for k, v in row["statuses"].items())
        expected = "/".join(str(x) for x in row["expected"]) or "-"
        lines.append(
            f"| {name} | {row['requests']} | {statuses} | {expected} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} |"
        )
    lines += [
        "",
        f"Worker memory (VmRSS, sampled every {s['sample_every']:g} s, {len(mem['samples'])} samples). " + mem["rule"],
        "",
        "| worker | first MiB | middle third MiB | last third MiB | growth MiB (allowed) | slope MiB/min | peak MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, (_, w) in enumerate(mem["workers"].items(), 1):
        if "middle_mean_mib" in w:
            slope = w["slope_mib_per_min"]
            lines.append(
                f"| {i} | {w['first_mib']:.1f} | {w['middle_mean_mib']:.1f} | {w['last_mean_mib']:.1f} | "
                f"{w['growth_mib']:+.2f} ({w['allowed_mib']:.1f}) | {slope:+.2f} | {w['peak_mib']:.1f} |"
            )
        else:
            lines.append(f"| {i} | {w['first_mib']:.1f} | - | - | - | - | {w['peak_mib']:.1f} |")
    lines += ["", f"Raw data: `{result['raw']}` (not committed)."]
    return "\n".join(lines)


def shown_command(argv: list[str]) -> str:
    args = [a for a in argv if a != "--no-doc"]
    if os.environ.get("MAKELEVEL"):
        return "make soak" + (f" SOAK_ARGS={shlex.quote(' '.join(args))}" if args else "")
    return " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/soak.py", *args])


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=120, help="seconds of mixed traffic (default 120)")
    p.add_argument("--threads", type=int, default=6, help="client threads sending traffic (default 6)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    p.add_argument("--sample-every", type=float, default=2, help="seconds between RSS samples (default 2)")
    p.add_argument("--token-cache", type=int, default=256, help="OAUTH_TOKEN_CACHE_SIZE per worker (default 256)")
    p.add_argument("--max-growth-mib", type=float, default=2.0, help="allowed RSS growth, MiB (default 2)")
    p.add_argument("--max-growth-pct", type=float, default=3.0, help="or percent, whichever is larger (default 3)")
    p.add_argument(
        "--min-judged", type=float, default=60, help="shorter runs report memory without judging it (default 60 s)"
    )
    p.add_argument("--seed", type=int, default=None, help="random seed for the traffic mix")
    p.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    p.add_argument("--keep", action="store_true", help="keep the work directory (server log)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    down = check_services()
    if down:
        for message in down:
            print(f"soak: {message}", file=sys.stderr)
        return 2
    for k in [k for k in os.environ if k.startswith(("OAUTH_", "FLASK_OAUTH", "MCP_", "RATELIMIT_"))]:
        del os.environ[k]  # the server's settings come from server_env only

    from bench.run import free_port

    RESULTS.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    info = machine()
    workdir = Path(tempfile.mkdtemp(prefix="mcp-oauth-soak-"))
    port = free_port()
    app_env = server_env(port, args.token_cache)
    env = gunicorn_env(app_env, args.workers, workdir / "prometheus")
    rec = Recorder()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    samples: list[dict[str, Any]] = []
    server: Gunicorn | None = None
    try:
        print("resetting the soak database and Redis keys ...", flush=True)
        reset_storage()
        cli_client, iat = set_up(app_env)
        server = Gunicorn(port, env, workdir / "gunicorn.log")
        print(
            f"gunicorn on {server.url}, workers {worker_pids(server.proc.pid)}; {args.duration:g} s of traffic",
            flush=True,
        )
        sessions = [Session(server.url, rec, cli_client, iat, random.Random(seed + i)) for i in range(args.threads)]
        stop, stop_sampling = threading.Event(), threading.Event()
        sampler = threading.Thread(
            target=sample_memory, args=(server.proc.pid, args.sample_every, stop_sampling, samples), daemon=True
        )
        sampler.start()
        workers = [threading.Thread(target=traffic, args=(s, stop), daemon=True) for s in sessions]
        t0 = time.monotonic()
        for w in workers:
            w.start()
        while time.monotonic() - t0 < args.duration:
            time.sleep(min(10, args.duration - (time.monotonic() - t0)) if args.duration > 0 else 0)
            done = sum(sum(op.statuses.values()) for op in rec.ops.values())
            print(f"  {time.monotonic() - t0:5.0f} s  {done} requests", flush=True)
        stop.set()
        for w in workers:
            w.join(60)
        elapsed = time.monotonic() - t0
        stop_sampling.set()
        sampler.join(10)
        traffic_ops = op_table(rec)
        total = sum(r["requests"] for r in traffic_ops.values())
        for s in sessions:
            s.close()

        print("restarting the server and reading every acknowledged write back ...", flush=True)
        server.stop()
        server = Gunicorn(port, env, workdir / "gunicorn.log")
        counts = verify(server.url, sessions, cli_client, rec, args.threads)
        server.stop()
        log_tail = server.tail()
        server = None
    finally:
        if server is not None:
            server.stop()
        finish_workdir(workdir, args.keep, "server log")

    info["loadavg_end"] = os.getloadavg()
    operations = op_table(rec)
    mem = memory_verdict(samples, args.workers, args.max_growth_mib, args.max_growth_pct)
    mem["samples"] = samples
    mem["rule"] = (
        "Rule: per worker, the mean of the last third of the samples against the mean of the middle third "
        "(the first third is warm-up); growth must stay within "
        f"{args.max_growth_mib:g} MiB or {args.max_growth_pct:g} % of the middle-third mean, whichever is larger, "
        "and neither worker may be replaced."
    )
    judged = elapsed >= args.min_judged
    all_statuses = Counter[int]()
    for op in rec.ops.values():
        all_statuses.update(op.statuses)
    fivexx = sum(v for k, v in all_statuses.items() if k >= 500)
    transport = all_statuses.get(0, 0)
    unexpected = {n: r for n, r in operations.items() if any(int(k) not in r["expected"] for k in r["statuses"])}
    n_unexpected = sum(v for r in unexpected.values() for k, v in r["statuses"].items() if int(k) not in r["expected"])
    bad_total = sum(r["requests"] for n, r in operations.items() if n.startswith("bad: "))
    grown = [w for w in mem["workers"].values() if not w["ok"]]
    checks = {
        "no 5xx, no transport error": {
            "ok": fivexx == 0 and transport == 0,
            "detail": f"{fivexx} 5xx and {transport} transport errors in {sum(all_statuses.values())} requests",
        },
        "every answer as expected (bad requests their 4xx)": {
            "ok": not unexpected,
            "detail": f"{n_unexpected} unexpected of {sum(all_statuses.values())}, of which {bad_total} bad requests"
            + (f"; unexpected in {', '.join(unexpected)}" if unexpected else ""),
        },
        "no acknowledged write lost": {
            "ok": not rec.lost,
            "detail": ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + f"; {len(rec.lost)} lost or wrong",
        },
        "worker memory stops growing": {
            "ok": (mem["ok"] if judged else None) if not mem["replaced"] else False,
            "detail": (
                "a worker was replaced mid-run"
                if mem["replaced"]
                else (
                    f"{len(mem['workers'])} workers, growth last vs middle third "
                    + ", ".join(f"{w.get('growth_mib', float('nan')):+.2f} MiB" for w in mem["workers"].values())
                    + ("" if judged else f" (run shorter than {args.min_judged:g} s: not judged)")
                    + (f"; over the limit: {len(grown)}" if grown and judged else "")
                )
            ),
        },
    }
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    raw_path = RESULTS / f"soak-{stamp}.json"
    result = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "command": shown_command(argv),
        "settings": {
            "duration": round(elapsed, 1),
            "requested_duration": args.duration,
            "threads": args.threads,
            "workers": args.workers,
            "sample_every": args.sample_every,
            "token_cache": args.token_cache,
            "max_growth_mib": args.max_growth_mib,
            "max_growth_pct": args.max_growth_pct,
            "seed": seed,
            "mix": MIX,
        },
        "machine": info,
        "total_requests": total,
        "tokens_first_third": sum(1 for s in sessions for t in s.tokens if t.issued_at - t0 < elapsed / 3),
        "verify_requests": sum(operations[n]["requests"] for n in operations if n.startswith("verify: ")),
        "operations": operations,
        "checks": checks,
        "lost": rec.lost[:100],
        "verified": counts,
        "memory": mem,
        "raw": str(raw_path.relative_to(ROOT)),
    }
    raw_path.write_text(json.dumps(result, indent=1))
    text = markdown(result)
    print("\n" + text)
    for name, row in operations.items():
        for line in row["unexpected"][:3]:
            print(f"  unexpected in {name}: {line}")
    for line in rec.lost[:10]:
        print(f"  lost: {line}")
    if fivexx or transport:
        print("\nserver log (tail):\n" + log_tail)
    if not args.no_doc:
        update_doc("soak", text)
        print(f"\nupdated {DOC.relative_to(ROOT)}; raw data in {raw_path.relative_to(ROOT)}")
    failed = [n for n, c in checks.items() if c["ok"] is False]
    print("\nsoak: " + ("FAILED: " + "; ".join(failed) if failed else "all checks passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
