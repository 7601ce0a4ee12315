"""What each layer of a token request costs under gunicorn: the same server with one layer taken out.

The in-process counts (``bench/micro.py``, ``bench/instructions.py``) run each request with the
processor's caches warm from the last one. Under gunicorn they are not: two workers and wrk
share two CPUs, so every request starts with much of its code and data evicted, and a layer
costs several times its in-process figure (the ES256 signature: ~30 us in a loop, far more
here). This measures the real cost the only way the noise allows, side by side in one run:

* ``baseline``: this checkout;
* one variant per ablation, each a git worktree of this checkout's HEAD with one layer cut out
  (a source edit, or an environment setting), served the same way;
* optionally ``--base REV``: the same token request on another commit, for a before/after.

Every server is gunicorn with 2 sync workers and the benchmark settings of ``bench/run.py``,
on SQLite; the load is ``wrk -t1 -c8`` sending ``client_credentials`` token requests (the bare
Flask route of ``bench/bare_app.py`` for the ceiling). Rounds are round-robin with the bare
route measured between targets; each ratio divides a target's req/s by the bare route's on
either side of it. The variants are measurements only: each one breaks the server (no
signature, no limits, ...) and none is ever committed.

    .venv/bin/python bench/ablate.py                              # every ablation, 3 rounds
    .venv/bin/python bench/ablate.py --only sign,limiter --rounds 5
    .venv/bin/python bench/ablate.py --only none --base a756a33   # HEAD against an older commit
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from run import (
    HIGH_LIMIT,
    LUA,
    ROOT,
    free_port,
    gunicorn_cpu_seconds,
    gunicorn_env,
)  # bench/ is this script's directory

BIN = Path(sys.executable).parent
TOKEN_BODY = "grant_type=client_credentials&scope=mcp%3Atools"


@dataclass(frozen=True)
class Ablation:
    """One layer cut out: source edits (path, text, replacement) and/or environment settings."""

    what: str
    edits: tuple[tuple[str, str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()


ABLATIONS: dict[str, Ablation] = {
    "sign": Ablation(
        "no ES256 signature (64 fixed bytes in its place)",
        (
            (
                "app/tokens.py",
                "        signature = self.algorithm.sign(signing_input, self.key)\n",
                "        signature = b'\\0' * 64\n",
            ),
        ),
    ),
    "client_read": Ablation(
        "no client read: the first row kept forever, unchecked (an upper bound for any cache)",
        (
            (
                "plugins/storage/sql.py",
                '        row = self._client_q.one({"client_id": client_id})\n',
                "        row = _FOREVER.get(client_id) or _FOREVER.setdefault(\n"
                '            client_id, self._client_q.one({"client_id": client_id}))\n',
            ),
            ("plugins/storage/sql.py", "\nclass SQLStorage:", "\n_FOREVER: dict = {}\n\n\nclass SQLStorage:"),
        ),
    ),
    "limiter": Ablation("no rate limiter (RATELIMIT_ENABLED=false)", env=(("RATELIMIT_ENABLED", "false"),)),
    "metrics": Ablation(
        "no Prometheus metrics (both request hooks return at once)",
        (
            (
                "app/metrics.py",
                "    def _start_timer() -> None:\n",
                "    def _start_timer() -> None:\n        return\n",
            ),
            (
                "app/metrics.py",
                "    def _record(response: Response) -> Response:\n",
                "    def _record(response: Response) -> Response:\n        return response\n",
            ),
        ),
    ),
    "audit": Ablation(
        "no token.issued audit line",
        (
            (
                "app/audit.py",
                "def token_issued(grant: str, body: Mapping[str, Any], ip: str | None = None) -> None:\n",
                "def token_issued(grant: str, body: Mapping[str, Any], ip: str | None = None) -> None:\n    return\n",
            ),
        ),
    ),
}


@dataclass
class Server:
    name: str
    what: str
    url: str
    proc: subprocess.Popen[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None

    def cpu_seconds(self) -> float:
        return sum(gunicorn_cpu_seconds(self.proc.pid))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def worktree(rev: str, into: Path, ablation: Ablation | None) -> Path:
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(into), rev], cwd=ROOT, check=True)
    for rel, old, new in ablation.edits if ablation else ():
        path = into / rel
        text = path.read_text()
        if text.count(old) != 1:
            raise SystemExit(f"ablation edit no longer applies to {rel} (the code moved): {old!r}")
        path.write_text(text.replace(old, new))
    return into


def serve(name: str, what: str, checkout: Path, workdir: Path, app: str, env: dict[str, str]) -> Server:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = workdir / name
    (data / "prometheus").mkdir(parents=True)
    server_env = {
        "OAUTH_ISSUER": url,
        "OAUTH_STORAGE_URL": f"sqlite:///{data}/bench.sqlite3",  # where micro.app_with_worker puts it
        "RATELIMIT_ENABLED": "true",
        "RATELIMIT_TOKEN": HIGH_LIMIT,
        **env,
    }
    # bench/run.py's gunicorn settings, with its defaults: 2 sync workers.
    settings = argparse.Namespace(workers=2, worker_class="sync", gthreads=1)
    full = gunicorn_env(server_env, settings, data / "prometheus")
    headers: dict[str, str] = {}
    body = None
    if app == "wsgi:app":
        headers, body = _worker_client(name, checkout, full, url, data), TOKEN_BODY
    log = open(data / "gunicorn.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", app],
        cwd=checkout,
        env=full,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(name, what, url, proc, headers, body)
    probe = "/ping" if app != "wsgi:app" else "/.well-known/oauth-authorization-server"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + probe, timeout=2):
                return server
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{name}: gunicorn exited; see {data / 'gunicorn.log'}") from None
            time.sleep(0.2)
    server.stop()
    raise SystemExit(f"{name}: no answer within 60 s")


def _worker_client(name: str, checkout: Path, env: dict[str, str], url: str, data: Path) -> dict[str, str]:
    """Register a client_credentials client as the CLI does, in the checkout to be served; the
    token request's headers for it."""
    setup = (
        "import json, sys; sys.path[:0] = ['.', 'bench']; import micro; micro.ISSUER = sys.argv[1]; "
        "app, state, client, secret = micro.app_with_worker(sys.argv[2], 'mcp:tools'); "
        "print(json.dumps([client.client_id, secret]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", setup, url, str(data)], cwd=checkout, env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"{name}: set-up failed: {out.stderr[-2000:]}")
    client_id, secret = json.loads(out.stdout.strip().splitlines()[-1])
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"}


def load(server: Server, seconds: int) -> tuple[float, float]:
    """(req/s, server CPU us per request) for ``seconds`` of wrk against ``server``."""
    env = dict(os.environ, BENCH_METHOD="POST" if server.body else "GET")
    env["BENCH_HEADERS"] = "\n".join(f"{k}: {v}" for k, v in server.headers.items())
    if server.body:
        env["BENCH_BODY"] = server.body
    path = "/oauth/token" if server.body else "/ping"
    cmd = ["wrk", "-t1", "-c8", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA / "static.lua"), server.url + path]
    before = server.cpu_seconds()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    after = server.cpu_seconds()
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise SystemExit(f"wrk failed against {server.name}: {out.stdout[-1000:]} {out.stderr[-1000:]}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    if data["errors"]["status"]:
        raise SystemExit(f"{server.name}: {data['errors']['status']} answers were not 2xx")
    requests = max(int(data["requests"]), 1)
    return requests / (data["duration_us"] / 1e6), (after - before) * 1e6 / requests


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(ABLATIONS), help="comma-separated ablations, or 'none'")
    p.add_argument("--base", help="also serve this commit unchanged (a before/after for HEAD)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=8, help="seconds per target per round")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n and n != "none"]
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        p.error(f"unknown ablations {unknown}; known: {sorted(ABLATIONS)}")
    workdir = Path(tempfile.mkdtemp(prefix="ablate-"))
    trees: list[Path] = []
    servers: list[Server] = []
    bare: Server | None = None
    try:
        bare = serve("bare", "bare Flask JSON route", ROOT, workdir, "bench.bare_app:app", {})
        servers.append(serve("baseline", "this checkout", ROOT, workdir, "wsgi:app", {}))
        if args.base:
            tree = worktree(args.base, workdir / "tree-base", None)
            trees.append(tree)
            servers.append(serve("base", f"commit {args.base}", tree, workdir, "wsgi:app", {}))
        for name in names:
            ab = ABLATIONS[name]
            tree = worktree("HEAD", workdir / f"tree-{name}", ab)
            trees.append(tree)
            servers.append(serve(f"no-{name}", ab.what, tree, workdir, "wsgi:app", dict(ab.env)))
        for s in [bare, *servers]:
            load(s, 2)  # warm-up, not recorded
        ratios: dict[str, list[float]] = {s.name: [] for s in servers}
        cpu: dict[str, list[float]] = {s.name: [] for s in [bare, *servers]}
        for rnd in range(args.rounds):
            order = servers[rnd % len(servers) :] + servers[: rnd % len(servers)]
            before = load(bare, args.duration)
            cpu["bare"].append(before[1])
            for s in order:
                rps, us = load(s, args.duration)
                after = load(bare, args.duration)
                cpu["bare"].append(after[1])
                ratios[s.name].append(rps / ((before[0] + after[0]) / 2))
                cpu[s.name].append(us)
                before = after
            print(
                f"round {rnd + 1}/{args.rounds}: " + ", ".join(f"{n} {r[-1]:.3f}" for n, r in ratios.items()),
                flush=True,
            )
    finally:
        for s in servers:
            s.stop()
        if bare is not None:
            bare.stop()
        for tree in trees:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    base_cpu = statistics.median(cpu["baseline"])
    print(
        f"\n`{' '.join(['.venv/bin/python', 'bench/ablate.py', *(argv if argv is not None else sys.argv[1:])])}`"
        f" ({args.rounds} rounds of {args.duration} s; bare route {statistics.median(cpu['bare']):.0f} us CPU/req)\n"
    )
    print("| server | token req/s / bare req/s: median (min-max) | server CPU us/req | CPU vs baseline |")
    print("|---|---|---|---|")
    for s in servers:
        r, c = ratios[s.name], statistics.median(cpu[s.name])
        delta = "" if s.name == "baseline" else f"{c - base_cpu:+.0f} us"
        print(f"| `{s.name}`: {s.what} | {statistics.median(r):.3f} ({min(r):.3f}-{max(r):.3f}) | {c:.0f} | {delta} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
