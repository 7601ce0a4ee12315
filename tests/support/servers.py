"""Start real servers for tests: gunicorn on a free loopback port, waiting until it answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes] | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.log_file is not None and not self.log_file.closed:
            self.log_file.close()


def server_env(env: Mapping[str, str], port: int) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("OAUTH_", "FLASK_", "MCP_", "RATELIMIT_"))}
    out.setdefault("OAUTH_ISSUER", f"http://127.0.0.1:{port}")
    out.update(env)
    return out


def flask_cli(args: list[str], env: Mapping[str, str], port: int = 0) -> str:
    """Run ``flask --app wsgi oauth ...`` with the server's environment; returns stdout."""
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "oauth", *args],
        cwd=ROOT,
        env=server_env(env, port),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"flask oauth {args} failed: {result.stderr[-2000:]}")
    return result.stdout


def start_gunicorn(
    env: Mapping[str, str],
    log_dir: Path,
    *,
    workers: int = 2,
    port: int | None = None,
    app: str = "wsgi:app",
    extra_args: list[str] | None = None,
    init: bool = True,
) -> Server:
    """Start gunicorn on 127.0.0.1 (after ``oauth init`` unless ``init=False``)."""
    port = port or free_port()
    full_env = server_env(env, port)
    # Each server its own metrics directory: gunicorn.conf.py wipes it at start.
    full_env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(log_dir / f"prometheus-{port}"))
    if init and app == "wsgi:app":
        flask_cli(["init"], env, port)
    log_path = log_dir / f"gunicorn-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            *(extra_args or []),
            app,
        ],
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.close()
            raise RuntimeError(f"gunicorn exited: {log_path.read_text(errors='replace')[-3000:]}")
        try:
            httpx.get(url + "/healthz", timeout=1)
            return Server(url, port, proc, log_path, log)
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    proc.wait(5)
    log.close()
    raise RuntimeError(f"gunicorn did not answer on {url}: {log_path.read_text(errors='replace')[-3000:]}")
