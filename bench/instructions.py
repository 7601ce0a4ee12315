"""Instructions per request, counted by valgrind (callgrind): a measure the noisy machine cannot move.

Each target's requests go straight into the app's WSGI callable in one process (no gunicorn,
no sockets), as many as asked after a warm-up; the process runs twice under callgrind, with and
without the measured requests, and the difference divided by their number is the count per
request. The same code, inputs and Python give the same count whatever else the machine does,
so two checkouts can be compared exactly (``--repo`` with a git worktree of the older commit).

    .venv/bin/python bench/instructions.py                      # token, whoami, bare in this checkout
    .venv/bin/python bench/instructions.py --repo /tmp/base     # add the same rows for another checkout

Needs valgrind (Debian's package). Each row takes one to two minutes.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from micro import app_with_worker  # bench/ is this script's directory

ROOT = Path(__file__).resolve().parents[1]
ISSUER = "http://127.0.0.1:8000"
WARMUP = 30
TARGETS = {
    "token": "POST /oauth/token, client_credentials, HTTP Basic (sqlite)",
    "whoami": "GET /mcp/whoami, bearer token already verified once (sqlite)",
    "bare": "GET on a bare Flask JSON route",
}


def _child(target: str, requests: int) -> None:
    """Build the app in this checkout (the working directory), then serve the requests."""
    sys.path.insert(0, os.getcwd())
    from flask import Flask

    # As under gunicorn: logging left unconfigured, so the app's audit handler writes to stderr
    # (here /dev/null).
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    app, state, client, secret = app_with_worker(tempfile.mkdtemp(prefix="instructions-"), "mcp:tools")
    basic = "Basic " + base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    token, _ = state.access_tokens.issue(
        subject=client.client_id, client_id=client.client_id, scope="mcp:tools", audience=state.default_resource
    )
    form = b"grant_type=client_credentials&scope=mcp%3Atools"

    def environ(path: str, method: str = "GET", data: bytes = b"", **headers: str) -> dict[str, Any]:
        env: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8000",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(data),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if data:
            env["CONTENT_LENGTH"] = str(len(data))
        env.update(headers)
        return env

    wsgi: Any = app.wsgi_app
    if target == "token":

        def make() -> dict[str, Any]:
            return environ(
                "/oauth/token", "POST", form, CONTENT_TYPE="application/x-www-form-urlencoded", HTTP_AUTHORIZATION=basic
            )
    elif target == "whoami":

        def make() -> dict[str, Any]:
            return environ("/mcp/whoami", HTTP_AUTHORIZATION="Bearer " + token)
    else:
        bare = Flask("bare")
        bare.get("/ping")(lambda: {"status": "ok", "service": "bare"})
        wsgi = bare.wsgi_app

        def make() -> dict[str, Any]:
            return environ("/ping")

    statuses: list[str] = []

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> None:
        statuses.append(status)

    for _ in range(WARMUP + requests):
        out = wsgi(make(), start_response)
        b"".join(out)
        getattr(out, "close", lambda: None)()
    if any(not s.startswith("200") for s in statuses):
        raise SystemExit(f"{target}: not every answer was 200: {sorted(set(statuses))}")


def _instructions(repo: Path, target: str, requests: int) -> int:
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        target,
        str(requests),
    ]
    env = dict(os.environ, PYTHONHASHSEED="0")
    out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or found is None:
        raise SystemExit(f"callgrind failed for {target} in {repo}:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def per_request(repo: Path, target: str, requests: int) -> int:
    return (_instructions(repo, target, requests) - _instructions(repo, target, 0)) // requests


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default=",".join(TARGETS), help="comma-separated: " + ", ".join(TARGETS))
    p.add_argument("--requests", type=int, default=200, help="measured requests per target (default 200)")
    p.add_argument("--repo", action="append", default=[], help="another checkout to measure too (repeatable)")
    p.add_argument("--child", nargs=2, metavar=("TARGET", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return 0
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        p.error(f"unknown targets {unknown}; known: {sorted(TARGETS)}")
    repos = [ROOT, *(Path(r).resolve() for r in args.repo)]
    print(f"Instructions per request (callgrind, {args.requests} requests after {WARMUP} unmeasured):\n")
    print("| target | " + " | ".join(f"`{r}`" for r in repos) + " |")
    print("|---|" + "---|" * len(repos))
    for target in targets:
        counts = [per_request(repo, target, args.requests) for repo in repos]
        cells = [f"{c:,}" + (f" ({c / counts[0]:.2f}x)" if i else "") for i, c in enumerate(counts)]
        print(f"| {target}: {TARGETS[target]} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
