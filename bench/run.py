"""Side-by-side HTTP benchmark: every target under gunicorn, loaded by wrk, in one run.

Each server (the bare Flask ceiling, this server on each storage backend, the Authlib peer
reference in ``bench/authlib_peer.py``, ...) runs under
gunicorn with the same settings on a free 127.0.0.1 port. A run is ``--rounds`` rounds; each
round measures every target once for ``--duration`` seconds, round-robin, starting one target
later each round, with the bare route measured again after every ``--bare-every`` targets. The
machine is small and shared, so absolute req/s mean little: what is reported is, per target,
the median over rounds of (target req/s / bare req/s measured on either side of it in the same
round), with min-max, plus the server's CPU time per request, which other load barely moves.
Results go to ``bench/results/<time>.json`` and into ``docs/benchmarks.md`` between the
``bench:run:<worker class>`` markers (the rest of the document is hand-written), with a
comparison against the Authlib reference and a chart, ``docs/benchmarks-<worker class>.png``
(``bench/chart.py``), next to the document.

    .venv/bin/python bench/run.py                         # the whole suite, defaults
    .venv/bin/python bench/run.py --rounds 3 --duration 10 --targets bare,token_cc,whoami
    .venv/bin/python bench/run.py --list                  # the targets and whether they can run
    .venv/bin/python bench/run.py --rounds 1 --duration 2 --doc /tmp/benchmarks.md   # a trial run

A target is one entry of ``TARGETS`` below: the server it hits, the request (method, path,
headers, a fixed body or a pool of single-use bodies) and its goal ratios, if any, each with
the issue that set it.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
LUA = BENCH / "lua"
RESULTS = BENCH / "results"
DOC = ROOT / "docs" / "benchmarks.md"
BIN = Path(sys.executable).parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
# Operators keep the limiter on, so the benchmark does too, with a limit no client reaches. Per
# second, not per minute: the in-memory moving window keeps one entry per hit in its window, so
# an unreachable per-minute limit would hold ~40000 entries per worker (a list insert is O(n)),
# while an operator's limit (default 600/minute) never holds more than the limit.
HIGH_LIMIT = "1000000/second"


# --------------------------------------------------------------------------------------------
# Declarations: servers and targets
# --------------------------------------------------------------------------------------------


Ports = Mapping[str, int]


@dataclass(frozen=True)
class ServerSpec:
    """One gunicorn server. ``env(ports)`` is added to the common benchmark environment
    (``ports`` maps every server name to its port, so servers can point at each other)."""

    name: str
    app: str = "wsgi:app"
    env: Callable[[Ports], Mapping[str, str]] = lambda ports: {}
    oauth: bool = True  # an instance of this server (fixtures are made in-process)
    needs: tuple[str, ...] = ()  # "postgresql", "redis", or repository paths that must exist
    after: tuple[str, ...] = ()  # servers that must be up first
    probe: str = "/healthz"
    db_env: str = ""  # not ours: the variable that gets a SQLite file path in the work directory


@dataclass
class Request:
    """What wrk sends. ``pool(n)`` returns n single-use bodies; otherwise ``body`` is fixed."""

    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    pool: Callable[[int], list[str]] | None = None
    expect: int = 200


class Goal(NamedTuple):
    """A least ratio to ``bare``, and the issue that set it."""

    ratio: float
    issue: int


@dataclass(frozen=True)
class Target:
    """One benchmark row: a request against a server, with goal ratios to ``bare``, if any
    (oldest first: a later issue may raise the bar; every goal is shown, the last is current)."""

    name: str
    title: str
    server: str
    build: Callable[[Fixture], Request]
    goals: tuple[Goal, ...] = ()
    issue: int = 2
    needs: tuple[str, ...] = ()

    @property
    def goal(self) -> float | None:
        """The current goal: the one set last."""
        return self.goals[-1].ratio if self.goals else None


class Fixture:
    """Per-server set-up, done in-process with the server's own configuration.

    ``create_app`` with the same settings as the gunicorn workers, so clients, tokens and pools
    of single-use codes land in the storage the server reads.
    """

    def __init__(self, spec: ServerSpec, env: dict[str, str], url: str, peers: dict[str, Fixture]) -> None:
        self.spec = spec
        self.env = env
        self.url = url
        self.peers = peers  # every started server's fixture, by server name
        self._app: Any = None
        self._cache: dict[str, Any] = {}

    @property
    def app(self) -> Any:
        if self._app is None:
            from app import create_app
            from app.config import load_unprefixed_env

            config: dict[str, Any] = {}
            load_unprefixed_env(config, self.env)
            self._app = create_app(config)
            state = self._app.extensions["mcp_oauth"]
            for store in {id(s): s for s in (state.storage, state.token_store)}.values():
                _fast_setup_commits(getattr(store, "target", store))
        return self._app

    @property
    def state(self) -> Any:
        return self.app.extensions["mcp_oauth"]

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def confidential_client(self) -> tuple[str, str]:
        """A client_credentials client (with the introspect privilege): (client_id, secret)."""

        def make() -> tuple[str, str]:
            from app.oauth.register import new_client, validate_metadata

            with self.app.app_context():
                body = {
                    "client_name": "bench worker",
                    "grant_types": ["client_credentials"],
                    "scope": "mcp:tools mcp:resources",
                    "token_endpoint_auth_method": "client_secret_basic",
                    "redirect_uris": [],
                }
                client, secret, _ = new_client(
                    self.state,
                    validate_metadata(self.state, body),
                    registered_by="cli",
                    privileges=frozenset({"introspect"}),
                )
            assert secret is not None
            return client.client_id, secret

        return self.once("confidential", make)  # type: ignore[no-any-return]

    def basic_auth(self) -> str:
        cid, secret = self.confidential_client()
        return "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()

    def access_token(self, scope: str = "mcp:tools", audience: str | None = None) -> str:
        """An access token (for this server's MCP resource unless ``audience`` names another),
        minted as the token endpoint does."""

        def make() -> str:
            cid, _ = self.confidential_client()
            with self.app.app_context():
                token, _ = self.state.access_tokens.issue(
                    subject=cid, client_id=cid, scope=scope, audience=audience or self.state.default_resource
                )
            return str(token)

        return self.once(f"token:{scope}:{audience}", make)  # type: ignore[no-any-return]

    def save_all(self, save: Callable[[Any], None], records: list[Any]) -> None:
        """``save(record)`` for each record: in 8 threads when the token store is a network
        server (PostgreSQL, Redis: round trips overlap), in this thread for SQLite (one writer)."""
        store = self.state.token_store
        engine = getattr(getattr(store, "target", store), "engine", None)
        if engine is not None and engine.dialect.name == "sqlite":
            for record in records:
                save(record)
            return
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(save, records))

    def close(self) -> None:
        if self._app is not None:
            self._app.extensions["mcp_oauth"].close()


def _fast_setup_commits(store: Any) -> None:
    """PostgreSQL: this process's own sessions (fixtures, pools of codes) commit without
    waiting for the WAL flush, so a pool of thousands of codes takes seconds, not minutes.
    The servers' sessions are untouched."""
    engine = getattr(store, "engine", None)
    if engine is None or engine.dialect.name != "postgresql":
        return
    import sqlalchemy as sa

    @sa.event.listens_for(engine, "connect")
    def _async_commit(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute("SET synchronous_commit TO off")
        dbapi_conn.commit()

    engine.dispose()


FORM = "application/x-www-form-urlencoded"


def _bare(fx: Fixture) -> Request:
    return Request("GET", "/ping")


def _token_cc(fx: Fixture) -> Request:
    return Request(
        "POST",
        "/oauth/token",
        {"Authorization": fx.basic_auth(), "Content-Type": FORM},
        body="grant_type=client_credentials&scope=mcp%3Atools",
    )


def _whoami(fx: Fixture) -> Request:
    return Request("GET", "/mcp/whoami", {"Authorization": "Bearer " + fx.access_token()})


def _introspect(fx: Fixture) -> Request:
    return Request(
        "POST",
        "/oauth/introspect",
        {"Authorization": fx.basic_auth(), "Content-Type": FORM},
        body="token=" + fx.access_token() + "&token_type_hint=access_token",
    )


MCP_VERSION = "2025-11-25"


def _post_json(url: str, body: object, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode()
    r = urllib.request.Request(url, data=data, method="POST", headers=headers)
    with urllib.request.urlopen(r, timeout=10) as resp:
        return resp.status, dict(resp.headers.items()), resp.read()


def _mcp_call(fx: Fixture) -> Request:
    """``tools/call whoami`` in an initialized MCP session (the 2025-11-25 Streamable HTTP flow)."""
    headers = {
        "Authorization": "Bearer " + fx.access_token(),
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": MCP_VERSION, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
    }
    _, reply_headers, _ = _post_json(fx.url + "/mcp", init, headers)
    session = next(v for k, v in reply_headers.items() if k.lower() == "mcp-session-id")
    headers |= {"Mcp-Session-Id": session, "MCP-Protocol-Version": MCP_VERSION}
    status, _, _ = _post_json(fx.url + "/mcp", {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers)
    if status != 202:
        raise RuntimeError(f"notifications/initialized answered {status}")
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    return Request("POST", "/mcp", headers, body=json.dumps(call, separators=(",", ":")))


def worker_resource(ports: Ports) -> str:
    return f"http://127.0.0.1:{ports['worker']}/mcp"


def _worker_whoami(fx: Fixture) -> Request:
    """The worker's guard: a token the AS minted for the worker, checked with the AS's JWKS."""
    token = fx.peers["sqlite"].access_token(audience=fx.env["WORKER_RESOURCE"])
    return Request("GET", "/mcp/whoami", {"Authorization": "Bearer " + token})


def _code_exchange(fx: Fixture) -> Request:
    from bench import grants

    return Request("POST", "/oauth/token", {"Content-Type": FORM}, pool=lambda n: grants.code_pool(fx, n))


def _refresh(fx: Fixture) -> Request:
    from bench import grants

    return Request("POST", "/oauth/token", {"Content-Type": FORM}, pool=lambda n: grants.refresh_pool(fx, n))


PEER_CLIENT_ID = "bench-peer"
PEER_CLIENT_SECRET = "bench-peer-secret-0123456789abcdef0123456789abcdef"
PEER_TOKEN_BODY = "grant_type=client_credentials&scope=mcp%3Atools"


def _peer_basic() -> str:
    return "Basic " + base64.b64encode(f"{PEER_CLIENT_ID}:{PEER_CLIENT_SECRET}".encode()).decode()


def _peer_token(fx: Fixture) -> Request:
    """The Authlib reference's token endpoint, with the client it creates at start."""
    return Request("POST", "/oauth/token", {"Authorization": _peer_basic(), "Content-Type": FORM}, body=PEER_TOKEN_BODY)


def _peer_whoami(fx: Fixture) -> Request:
    """The Authlib reference's protected route, with a token it issued (over HTTP, now)."""
    r = urllib.request.Request(
        fx.url + "/oauth/token",
        data=PEER_TOKEN_BODY.encode(),
        method="POST",
        headers={"Authorization": _peer_basic(), "Content-Type": FORM},
    )
    with urllib.request.urlopen(r, timeout=10) as resp:
        token = json.load(resp)["access_token"]
    return Request("GET", "/whoami", {"Authorization": "Bearer " + token})


SERVERS: dict[str, ServerSpec] = {
    s.name: s
    for s in [
        ServerSpec("bare", app="bench.bare_app:app", oauth=False, probe="/ping"),
        ServerSpec(
            "peer",
            app="bench.authlib_peer:create_app()",
            env=lambda ports: {
                "AUTHLIB_PEER_ISSUER": f"http://127.0.0.1:{ports['peer']}",
                "AUTHLIB_PEER_CLIENT_ID": PEER_CLIENT_ID,
                "AUTHLIB_PEER_CLIENT_SECRET": PEER_CLIENT_SECRET,
            },
            oauth=False,
            probe="/jwks.json",
            db_env="AUTHLIB_PEER_DB",
        ),
        # The worker's resource is listed so the AS may mint tokens for it (RFC 8707).
        ServerSpec("sqlite", env=lambda ports: {"OAUTH_RESOURCES": worker_resource(ports)}),
        ServerSpec(
            "worker",
            app="examples.worker.app:create_worker_app()",
            env=lambda ports: {
                "OAUTH_ISSUER": f"http://127.0.0.1:{ports['sqlite']}",
                "WORKER_RESOURCE": worker_resource(ports),
                "WORKER_SECRET_KEY": "bench-worker-session-key-0123456789abcdef",
            },
            oauth=False,
            needs=("examples/worker/app.py",),
            after=("sqlite",),
            probe="/.well-known/oauth-protected-resource/mcp",
        ),
        ServerSpec("postgresql", env=lambda ports: {"OAUTH_STORAGE_URL": POSTGRES_URL}, needs=("postgresql",)),
        ServerSpec(
            "redis",
            env=lambda ports: {"OAUTH_TOKEN_STORAGE_URL": REDIS_URL + "?key_prefix=mcp_oauth_bench_r:"},
            needs=("redis",),
        ),
        ServerSpec(
            "pg_redis",
            env=lambda ports: {
                "OAUTH_STORAGE_URL": POSTGRES_URL,
                "OAUTH_TOKEN_STORAGE_URL": REDIS_URL + "?key_prefix=mcp_oauth_bench_pr:",
            },
            needs=("postgresql", "redis"),
        ),
    ]
}

TARGETS: list[Target] = [
    Target("bare", "bare Flask JSON route (ceiling)", "bare", _bare),
    Target(
        "token_cc",
        "client_credentials token issue (sqlite)",
        "sqlite",
        _token_cc,
        goals=(Goal(0.50, issue=2), Goal(0.60, issue=6)),
    ),
    Target("peer_token", "Authlib reference: client_credentials token issue (sqlite)", "peer", _peer_token, issue=6),
    Target(
        "whoami", "protected route, JWT validated (GET /mcp/whoami)", "sqlite", _whoami, goals=(Goal(0.70, issue=2),)
    ),
    Target("peer_whoami", "Authlib reference: route validating its JWTs", "peer", _peer_whoami, issue=6),
    Target(
        "introspect",
        "introspection of an access token (sqlite)",
        "sqlite",
        _introspect,
        goals=(Goal(0.70, issue=6),),
        issue=6,
    ),
    Target("code_exchange", "authorization_code exchange, PKCE (sqlite)", "sqlite", _code_exchange, issue=3),
    Target("refresh", "refresh_token grant with rotation (sqlite)", "sqlite", _refresh, issue=3),
    Target(
        "mcp_call",
        "MCP tools/call whoami, JWT validated (POST /mcp)",
        "sqlite",
        _mcp_call,
        goals=(Goal(0.85, issue=6),),
        issue=4,
    ),
    Target("worker_whoami", "worker app: JWT validated with the AS's JWKS", "worker", _worker_whoami, issue=4),
    Target("token_cc_pg", "client_credentials token issue (postgresql)", "postgresql", _token_cc, issue=5),
    Target("refresh_pg", "refresh_token grant (postgresql)", "postgresql", _refresh, issue=5),
    Target("token_cc_redis", "client_credentials token issue (sqlite + redis)", "redis", _token_cc, issue=5),
    Target("refresh_redis", "refresh_token grant (sqlite + redis)", "redis", _refresh, issue=5),
    Target("token_cc_pg_redis", "client_credentials token issue (postgresql + redis)", "pg_redis", _token_cc, issue=5),
    Target("refresh_pg_redis", "refresh_token grant (postgresql + redis)", "pg_redis", _refresh, issue=5),
]

# Our rows and the Authlib reference row doing the same work (issue 6: ahead on every row).
PEER_PAIRS: list[tuple[str, str]] = [
    ("token_cc", "peer_token"),
    ("whoami", "peer_whoami"),
    ("mcp_call", "peer_whoami"),
    ("worker_whoami", "peer_whoami"),
]


# --------------------------------------------------------------------------------------------
# Running servers
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(spec: ServerSpec, ports: Ports, workdir: Path, extra: list[str] | None = None) -> dict[str, str]:
    """The environment of one server: same gunicorn settings for all, storage in ``workdir``."""
    env = {
        "OAUTH_ISSUER": f"http://127.0.0.1:{ports[spec.name]}",
        "OAUTH_STORAGE_URL": f"sqlite:///{workdir}/{spec.name}.sqlite3",
        "OAUTH_GRANT_TYPES": " ".join(installed_grants()),
        "RATELIMIT_ENABLED": "true",
        "RATELIMIT_TOKEN": HIGH_LIMIT,
    }
    env.update(spec.env(ports))
    if spec.db_env:
        env[spec.db_env] = str(workdir / f"{spec.name}.sqlite3")
    if spec.oauth:
        for item in extra or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"--env wants KEY=VALUE, not {item!r}")
            env[key] = value
    return env


def installed_grants() -> list[str]:
    from app.contracts import GRANTS, installed

    return installed(GRANTS)


def service_up(name: str) -> bool:
    host, port = {"postgresql": ("127.0.0.1", 5432), "redis": ("127.0.0.1", 6379)}[name]
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def missing_needs(needs: tuple[str, ...]) -> list[str]:
    out = []
    for need in needs:
        if need in ("postgresql", "redis"):
            if not service_up(need):
                out.append(f"{need} not reachable")
        elif not (ROOT / need).exists():
            out.append(f"{need} not present")
    return out


@dataclass
class Running:
    spec: ServerSpec
    port: int
    url: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path
    fixture: Fixture

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.fixture.close()


def gunicorn_env(env: Mapping[str, str], args: argparse.Namespace, metrics_dir: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("OAUTH_", "FLASK_", "MCP_", "RATELIMIT_"))}
    out.update(env)
    out.update(
        {
            # No access log: the same for every server, and no disk writes in the measurement.
            "GUNICORN_ACCESS_LOG": "",
            "GUNICORN_LOG_LEVEL": "warning",
            "WEB_CONCURRENCY": str(args.workers),
            "GUNICORN_WORKER_CLASS": args.worker_class,
            "GUNICORN_THREADS": str(args.gthreads if args.worker_class == "gthread" else 1),
            # One Prometheus multiprocess directory per gunicorn (gunicorn.conf.py wipes it at start).
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
    )
    return out


def ensure_postgres_database(url: str) -> None:
    """Create the benchmark's own database when it is missing (tests use another one)."""
    import sqlalchemy as sa

    from plugins.storage.sql import engine_url

    base, _, name = engine_url(url).rpartition("/")
    engine = sa.create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()


def start_server(
    spec: ServerSpec, ports: Ports, workdir: Path, args: argparse.Namespace, peers: dict[str, Fixture]
) -> Running:
    port = ports[spec.name]
    env = base_env(spec, ports, workdir, args.env)
    url = f"http://127.0.0.1:{port}"
    if "postgresql" in spec.needs:
        ensure_postgres_database(env["OAUTH_STORAGE_URL"])
    fixture = Fixture(spec, env, url, peers)
    peers[spec.name] = fixture
    if spec.oauth:
        fixture.state  # noqa: B018 - builds the schema and the signing key before the workers start
    log = workdir / f"{spec.name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}", spec.app],
            cwd=ROOT,
            env=gunicorn_env(env, args, workdir / f"prometheus-{spec.name}"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    probe = spec.probe
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{spec.name}: gunicorn exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url + probe, timeout=2):
                return Running(spec, port, url, env, proc, log, fixture)
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{spec.name}: no answer on {url}: {log.read_text(errors='replace')[-3000:]}")


def check_request(url: str, req: Request, body: str | None) -> None:
    """One request before measuring: the target must answer ``req.expect``, not an error."""
    data = body.encode() if body is not None else None
    r = urllib.request.Request(url + req.path, data=data, method=req.method, headers=req.headers)
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            status, text = resp.status, resp.read()[:300]
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()[:300]
    if status != req.expect:
        raise RuntimeError(f"{url}{req.path} answered {status}, expected {req.expect}: {text!r}")


# --------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    target: Target
    server: Running
    request: Request
    rates: list[float] = field(default_factory=list)  # req/s seen so far, to size pools


def write_pool(prep: Prepared, n: int, threads: int, workdir: Path) -> str:
    assert prep.request.pool is not None
    bodies = prep.request.pool(n)
    prefix = workdir / f"pool-{prep.target.name}"
    for t in range(threads):
        chunk = bodies[t::threads]
        Path(f"{prefix}.{t}").write_text("\n".join(chunk) + "\n")
    return str(prefix)


def run_wrk(
    prep: Prepared, duration: float, args: argparse.Namespace, workdir: Path, profile: Path | None = None
) -> dict[str, Any]:
    req = prep.request
    env = dict(os.environ)
    env["BENCH_METHOD"] = req.method
    env["BENCH_HEADERS"] = "\n".join(f"{k}: {v}" for k, v in req.headers.items())
    script = LUA / "static.lua"
    pool_size = 0
    if req.pool is not None:
        # Twice the fastest rate seen so far (a short warm-up on a busy machine underestimates),
        # and never less than --pool-guess req/s: a request after the pool is spent replays a
        # used code or token, which the server answers with an error (and a family revocation).
        rate = max([args.pool_guess, *prep.rates])
        pool_size = int(rate * duration * 2) + 200
        if pool_size > args.pool_max:
            # Not enough single-use bodies for the full duration: measure for a shorter time.
            pool_size = args.pool_max
            duration = max(2.0, (pool_size - 200) / (rate * 2))
        env["BENCH_POOL"] = write_pool(prep, pool_size, args.threads, workdir)
        script = LUA / "pool.lua"
    elif req.body is not None:
        env["BENCH_BODY"] = req.body
    cmd = [
        args.wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        prep.server.url + req.path,
    ]
    spy = start_profiler(prep.server, duration, profile) if profile is not None else None
    user_before, system_before = server_cpu_seconds(prep.server)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    user_after, system_after = server_cpu_seconds(prep.server)
    if spy is not None and profile is not None:
        spy.wait(30)
        summarise_profile(profile)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed for {prep.target.name}: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["seconds"] = data["duration_us"] / 1e6
    # CPU time of the server's processes per request: unlike req/s, barely moved by other load.
    n = max(data["requests"], 1)
    data["cpu_us_per_request"] = (user_after - user_before + system_after - system_before) * 1e6 / n
    data["cpu_user_us_per_request"] = (user_after - user_before) * 1e6 / n
    if pool_size:
        data["pool"]["requested"] = pool_size
    prep.rates.append(data["rps"])
    return data


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(server: Running) -> tuple[float, float]:
    """(user, system) CPU seconds used so far by the gunicorn master and its live workers."""
    return gunicorn_cpu_seconds(server.proc.pid)


def gunicorn_cpu_seconds(master: int) -> tuple[float, float]:
    """(user, system) CPU seconds used so far by gunicorn master ``master`` and its live workers."""
    user = system = 0
    for pid in [master, *worker_pids(master)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def worker_pids(master: int) -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{master}/task").iterdir():
        children = (task / "children").read_text().split()
        pids += [int(c) for c in children]
    return sorted(pids)


def start_profiler(server: Running, duration: float, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy on one worker for most of the measurement (folded stacks in ``out``)."""
    spy = BIN / "py-spy"
    if not spy.exists():
        print("  (no py-spy in the virtualenv: `.venv/bin/pip install py-spy` to profile)", flush=True)
        return None
    pids = worker_pids(server.proc.pid)
    if not pids:
        return None
    return subprocess.Popen(
        [str(spy), "record", "--pid", str(pids[0]), "--duration", str(max(1, int(duration) - 1)), "--rate", "200"]
        + ["--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarise_profile(folded: Path, top: int = 60) -> None:
    """Inclusive share of samples per function (line numbers dropped), next to the folded file."""
    if not folded.exists():
        return
    inclusive: dict[str, int] = {}
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        seen = set()
        for frame in stack.split(";"):
            name = frame.split(" (", 1)[0]
            where = frame.rsplit("/", 1)[-1].split(":", 1)[0] if "/" in frame else ""
            key = f"{name} ({where})" if where else name
            if key not in seen:
                seen.add(key)
                inclusive[key] = inclusive.get(key, 0) + n
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
    text = [f"{total} samples of one worker; inclusive share per function"]
    text += [f"{100 * n / max(total, 1):5.1f}%  {k}" for k, n in ranked]
    folded.with_suffix(".txt").write_text("\n".join(text) + "\n")


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def git_commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "app", "plugins", "bench", "wsgi.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk_version.split(" Copyright")[0].strip(),
        "loadavg_start": os.getloadavg(),
    }


def paired_ratios(rounds: list[list[dict[str, Any]]], name: str) -> list[float]:
    """Each measurement of ``name`` divided by the bare route's req/s around it in the same
    round: the mean of the nearest bare measurement before and the nearest after it."""
    ratios = []
    for measured in rounds:
        bare_at = [i for i, m in enumerate(measured) if m["target"] == "bare"]
        for i, m in enumerate(measured):
            if m["target"] != name:
                continue
            before = [measured[j]["rps"] for j in bare_at if j < i][-1:]
            after = [measured[j]["rps"] for j in bare_at if j > i][:1]
            if before or after:
                ratios.append(m["rps"] / statistics.mean(before + after))
    return ratios


def ratios_by_round(rounds: list[list[dict[str, Any]]], name: str) -> list[float | None]:
    """Per round, ``name``'s paired ratio to bare (the mean if measured more than once), or None."""
    out: list[float | None] = []
    for measured in rounds:
        ratios = paired_ratios([measured], name)
        out.append(statistics.mean(ratios) if ratios else None)
    return out


def versus_peer(rounds: list[list[dict[str, Any]]], names: list[str]) -> list[dict[str, Any]]:
    """Each of our rows against the Authlib reference row doing the same work (``PEER_PAIRS``):
    per round, our ratio to bare divided by the reference's ratio to bare in the same round
    (each against the bare route measured around it), then the median and min-max over rounds.
    Above 1, ours served more requests per second. Pairs with a row not run are left out."""
    out = []
    for ours, peer in PEER_PAIRS:
        if ours not in names or peer not in names:
            continue
        pairs = zip(ratios_by_round(rounds, ours), ratios_by_round(rounds, peer), strict=True)
        values = [a / b for a, b in pairs if a is not None and b]
        if values:
            out.append(
                {
                    "ours": ours,
                    "peer": peer,
                    "ratio": statistics.median(values),
                    "ratio_min": min(values),
                    "ratio_max": max(values),
                    "ratios": values,
                }
            )
    return out


def summarise(rounds: list[list[dict[str, Any]]], names: list[str]) -> dict[str, dict[str, Any]]:
    """Medians per target, and the paired ratio to ``bare`` per round (median, min, max)."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        runs = [m for measured in rounds for m in measured if m["target"] == name]
        ratios = paired_ratios(rounds, name) if name != "bare" else []
        out[name] = {
            "rps": statistics.median(x["rps"] for x in runs),
            "rps_min": min(x["rps"] for x in runs),
            "rps_max": max(x["rps"] for x in runs),
            "p50_ms": statistics.median(x["latency_us"]["p50"] for x in runs) / 1000,
            "p99_ms": statistics.median(x["latency_us"]["p99"] for x in runs) / 1000,
            "cpu_us": statistics.median(x["cpu_us_per_request"] for x in runs),
            "ratio": statistics.median(ratios) if ratios else None,
            "ratio_min": min(ratios) if ratios else None,
            "ratio_max": max(ratios) if ratios else None,
            "ratios": ratios,
            "errors": sum(sum(x["errors"].values()) for x in runs),
            "requests": sum(x["requests"] for x in runs),
            "pool_exhausted": sum(x.get("pool", {}).get("exhausted", 0) for x in runs),
        }
    return out


def goal_text(goals: list[dict[str, Any]], ratio: float | None) -> str:
    """The goal cell: every goal with the issue that set it, met or not by the median ratio."""
    cells = []
    for g in goals:
        met = ratio is not None and ratio >= g["ratio"]
        cells.append(f">= {g['ratio']:.2f} (issue {g['issue']}): {'met' if met else '**not met**'}")
    return "; ".join(cells)


def target_goals(t: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A result's goals for one target (results written before ``goals`` have only ``goal``)."""
    if "goals" in t:
        return list(t["goals"])
    return [{"ratio": t["goal"], "issue": t.get("issue")}] if t.get("goal") is not None else []


def peer_markdown(comparison: list[dict[str, Any]], rounds: int) -> list[str]:
    """The lines below the table: our rows against the Authlib reference."""
    if not comparison:
        return []
    lines = [
        "",
        "Against the Authlib reference (`bench/authlib_peer.py`: Authlib's Flask `AuthorizationServer`, "
        "RFC 9068 JWTs signed ES256, its `ResourceProtector` validating them, the client read from "
        "SQLite per request): per round, our ratio to bare divided by the reference's ratio to bare "
        f"in the same round; median (min-max) over {rounds} round{'s' if rounds != 1 else ''}. "
        "Above 1, ours is ahead.",
        "",
        "| ours | Authlib reference | ours / reference: median (min-max) | ahead? |",
        "|---|---|---|---|",
    ]
    for c in comparison:
        if c["ratio_min"] > 1:
            verdict = "ahead in every round"
        elif c["ratio"] > 1:
            verdict = "ahead on the median, not in every round"
        else:
            verdict = "**not ahead**"
        lines.append(
            f"| `{c['ours']}` | `{c['peer']}` | **{c['ratio']:.2f}** ({c['ratio_min']:.2f}-{c['ratio_max']:.2f}) "
            f"| {verdict} |"
        )
    ahead = all(c["ratio"] > 1 for c in comparison)
    shown = ", ".join(f"`{c['ours']}`" for c in comparison)
    lines += [
        "",
        f"Goal (issue 6), ahead of the Authlib reference on every row ({shown}): "
        + ("met." if ahead else "**not met**."),
    ]
    return lines


def finish_workdir(workdir: Path, keep: bool, what: str) -> None:
    """Remove a run's working directory, or say where it was kept (``--keep``)."""
    if keep:
        print(f"kept the {what} in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def command_and_machine(command: str, m: dict[str, Any], note: str) -> list[str]:
    """The "Command:" block and the machine line of a generated section (run and soak), with a
    blank line after each."""
    wrk = f", {m['wrk']}" if m.get("wrk") else ""
    return [
        "Command:",
        "",
        "```",
        command,
        "```",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}{wrk}; "
        f"load average {m['loadavg_start'][0]:.2f} at the start and {m['loadavg_end'][0]:.2f} at the end ({note}).",
        "",
    ]


def markdown(result: dict[str, Any], image: str | None = None) -> str:
    """The generated section; ``image``, when given, is the chart's path relative to the document."""
    s = result["settings"]
    m = result["machine"]
    lines = [
        f"Run of {result['date']}, commit `{result['commit']}`; "
        f"gunicorn {s['workers']} {s['worker_class']} workers"
        + (f" x {s['gthreads']} threads" if s["worker_class"] == "gthread" else "")
        + f", wrk -t{s['threads']} -c{s['connections']}, {s['rounds']} rounds of {s['duration']:g} s per target, "
        f"the bare route measured again after every {s['bare_every']} targets; each ratio divides a target's "
        "req/s by the bare route's measured just before and after it.",
        "",
        *command_and_machine(
            result["command"], m, "shared with other work: absolute numbers are noisy, the paired ratios less so"
        ),
        "| target | req/s (median, min-max) | p50 ms | p99 ms | server CPU us/req | "
        "ratio to bare: median (min-max) | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in result["summary"].items():
        t = result["targets"][name]
        ratio = (
            "1 (reference)"
            if name == "bare"
            else f"**{row['ratio']:.2f}** ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})"
        )
        goal = goal_text(target_goals(t), row["ratio"])
        notes = []
        if row["errors"]:
            notes.append(f"{row['errors']} errors of {row['requests']} requests")
        if row["pool_exhausted"]:
            notes.append(f"pool ran out ({row['pool_exhausted']} repeats)")
        title = t["title"] + (f" ({'; '.join(notes)})" if notes else "")
        lines.append(
            f"| `{name}`: {title} | {row['rps']:.0f} ({row['rps_min']:.0f}-{row['rps_max']:.0f}) | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['cpu_us']:.0f} | {ratio} | {goal} |"
        )
    lines += peer_markdown(result.get("versus_peer", []), s["rounds"])
    if image is not None:
        lines += ["", f"![Ratio to the bare route per target, median and min-max, with the goals]({image})"]
    if result["skipped"]:
        lines += ["", "Not run: " + "; ".join(f"`{k}` ({v})" for k, v in result["skipped"].items()) + "."]
    lines += ["", f"Raw data: `{result['raw']}` (not committed)."]
    return "\n".join(lines)


DOC_HEADER = """# Benchmarks

Generated sections are rewritten by `bench/run.py` and `bench/micro.py` between their markers;
the text outside the markers is kept.
"""


def update_doc(section: str, body: str, doc: Path = DOC) -> None:
    """Replace the text between ``<!-- bench:<section>:start/end -->`` (appended if absent)."""
    start, end = f"<!-- bench:{section}:start -->", f"<!-- bench:{section}:end -->"
    text = doc.read_text() if doc.exists() else DOC_HEADER
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds; every target once per round (default 3)")
    p.add_argument("--duration", type=float, default=8, help="seconds per target per round (default 8)")
    p.add_argument(
        "--bare-every", type=int, default=4, help="measure the bare route again after every N targets (default 4)"
    )
    p.add_argument("--warmup", type=float, default=2, help="seconds of unrecorded load per target first (default 2)")
    p.add_argument("--targets", default="all", help="comma-separated target names, or 'all' (bare is always added)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: wrk shares the 2 CPUs)")
    p.add_argument("--connections", type=int, default=8, help="wrk connections (default 8: keeps 2 sync workers busy)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers per server (default 2)")
    p.add_argument("--worker-class", default="sync", choices=["sync", "gthread"], help="gunicorn worker class")
    p.add_argument("--gthreads", type=int, default=4, help="threads per gthread worker (default 4)")
    p.add_argument(
        "--pool-guess", type=float, default=150, help="least req/s assumed when sizing a pool of codes or tokens"
    )
    p.add_argument("--pool-max", type=int, default=30000, help="most single-use bodies made per measurement")
    p.add_argument("--wrk", default="wrk", help="the wrk binary")
    p.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md nor draw the chart")
    p.add_argument(
        "--doc",
        type=Path,
        default=DOC,
        metavar="PATH",
        help="the document to update (default docs/benchmarks.md); the chart goes next to it",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra setting for every OAuth server, e.g. RATELIMIT_ENABLED=false (repeatable)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="record one worker of each target with py-spy during round 1 (bench/results/profile-*.txt)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (server logs, SQLite files)")
    p.add_argument("--list", action="store_true", help="list the targets and exit")
    return p.parse_args(argv)


def round_order(preps: list[Prepared], r: int, bare_every: int) -> list[Prepared]:
    """Round ``r``: the targets, starting one later each round, with the bare route measured
    first, after every ``bare_every`` targets and last, so each target has a bare measurement
    close on each side."""
    bare = [p for p in preps if p.target.name == "bare"]
    others = [p for p in preps if p.target.name != "bare"]
    shift = r % len(others) if others else 0
    order = others[shift:] + others[:shift]
    seq: list[Prepared] = []
    for i, prep in enumerate(order):
        if i % max(1, bare_every) == 0:
            seq += bare
        seq.append(prep)
    return seq + bare


def measure(prep: Prepared, args: argparse.Namespace, workdir: Path, profile: Path | None) -> dict[str, Any]:
    """One measurement; measured again (up to twice) when a pool of single-use bodies ran out,
    the pool then sized from the rate the short-changed run reached."""
    for _ in range(3):
        data = run_wrk(prep, args.duration, args, workdir, profile)
        if not data.get("pool", {}).get("exhausted"):
            break
        print(f"  {prep.target.name}: the pool ran out at {data['rps']:.0f} req/s; measuring again", flush=True)
    return data


def server_order(targets: list[Target]) -> list[str]:
    """The servers the targets need, each after the servers it depends on."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dep in SERVERS[name].after:
            visit(dep)
        order.append(name)

    for t in targets:
        visit(t.server)
    return order


def select(args: argparse.Namespace) -> tuple[list[Target], dict[str, str]]:
    known = {t.name: t for t in TARGETS}
    if args.targets == "all":
        wanted = list(known)
    else:
        wanted = [n.strip() for n in args.targets.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise SystemExit(f"unknown targets {unknown}; known: {sorted(known)}")
        if "bare" not in wanted:
            wanted.insert(0, "bare")
    chosen, skipped = [], {}
    for name in wanted:
        t = known[name]
        why = missing_needs(t.needs + SERVERS[t.server].needs)
        if why:
            skipped[name] = ", ".join(why)
        else:
            chosen.append(t)
    return chosen, skipped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for k in [k for k in os.environ if k.startswith(("OAUTH_", "FLASK_OAUTH", "MCP_", "RATELIMIT_"))]:
        del os.environ[k]  # the servers' settings come from the declarations only
    targets, skipped = select(args)
    if args.list:
        for t in TARGETS:
            state = f"skipped: {skipped[t.name]}" if t.name in skipped else "ready"
            goal = ", ".join(f">= {g.ratio:.2f} (issue {g.issue})" for g in t.goals)
            print(f"{t.name:20} {t.server:16} issue {t.issue}  {goal:36} {state}  {t.title}")
        return 0

    RESULTS.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    info = machine()
    workdir = Path(tempfile.mkdtemp(prefix="mcp-oauth-bench-"))
    servers: dict[str, Running] = {}
    try:
        ports = {name: free_port() for name in SERVERS}
        peers: dict[str, Fixture] = {}
        for name in server_order(targets):
            print(f"starting {name} ...", flush=True)
            servers[name] = start_server(SERVERS[name], ports, workdir, args, peers)
        preps: list[Prepared] = []
        for t in targets:
            srv = servers[t.server]
            req = t.build(srv.fixture)
            first = req.pool(1)[0] if req.pool is not None else req.body
            check_request(srv.url, req, first)
            preps.append(Prepared(t, srv, req))

        if args.warmup > 0:
            for prep in preps:
                print(f"warm-up {prep.target.name}", flush=True)
                run_wrk(prep, args.warmup, args, workdir)

        rounds: list[list[dict[str, Any]]] = []
        for r in range(args.rounds):
            measured: list[dict[str, Any]] = []
            for prep in round_order(preps, r, args.bare_every):
                profile = RESULTS / f"profile-{prep.target.name}.folded" if args.profile and r == 0 else None
                data = measure(prep, args, workdir, profile)
                data["target"] = prep.target.name
                measured.append(data)
                print(
                    f"round {r + 1}/{args.rounds} {prep.target.name:14} {data['rps']:8.0f} req/s  "
                    f"p50 {data['latency_us']['p50'] / 1000:6.2f} ms  p99 {data['latency_us']['p99'] / 1000:6.2f} ms  "
                    f"cpu {data['cpu_us_per_request']:5.0f} us/req ({data['cpu_user_us_per_request']:.0f} user)"
                    + (f"  errors {sum(data['errors'].values())}" if sum(data["errors"].values()) else ""),
                    flush=True,
                )
            rounds.append(measured)
    finally:
        for srv in servers.values():
            srv.stop()
        finish_workdir(workdir, args.keep, "server logs and storage")

    info["loadavg_end"] = os.getloadavg()
    names = [p.target.name for p in preps]
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    raw_path = RESULTS / f"run-{args.worker_class}-{stamp}.json"
    shown_args = shown_command(argv if argv is not None else sys.argv[1:])
    result = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/run.py", *shown_args]),
        "settings": {
            k: getattr(args, k)
            for k in (
                "rounds",
                "duration",
                "warmup",
                "threads",
                "connections",
                "workers",
                "worker_class",
                "gthreads",
                "bare_every",
            )
        },
        "machine": info,
        "targets": {
            p.target.name: {
                "title": p.target.title,
                "server": p.target.server,
                "goal": p.target.goal,
                "goals": [g._asdict() for g in p.target.goals],
                "issue": p.target.issue,
            }
            for p in preps
        },
        "skipped": skipped,
        "rounds": rounds,
        "summary": summarise(rounds, names),
        "versus_peer": versus_peer(rounds, names),
        "raw": str(raw_path.relative_to(ROOT)),
    }
    raw_path.write_text(json.dumps(result, indent=1))
    print("\n" + markdown(result))
    if not args.no_doc:
        from bench.chart import draw

        doc: Path = args.doc.resolve()
        image = doc.parent / f"benchmarks-{args.worker_class}.png"
        update_doc(f"run:{args.worker_class}", markdown(result, image=image.name), doc)
        draw(result, image)
        print(f"\nupdated {shown_path(doc)} and {shown_path(image)}; raw data in {raw_path.relative_to(ROOT)}")
    return 0


def shown_command(argv: list[str]) -> list[str]:
    """The arguments that shape the measurement (where the report goes does not)."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--doc":
            skip = True
        elif a != "--no-doc" and not a.startswith("--doc="):
            out.append(a)
    return out


def shown_path(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


if __name__ == "__main__":
    sys.exit(main())
