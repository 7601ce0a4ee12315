"""Browser tests: Debian's Chromium driven by Playwright, against gunicorn started by the test.

Never downloads a browser: it launches /usr/bin/chromium (``apt-get install chromium``) and
skips with a reason when it is missing, or fails when REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import ROOT, Server, flask_cli, free_port, start_gunicorn

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
USERNAME, PASSWORD = "alice", "browser test password"


def _unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(reason + " and REQUIRE_SERVICES=1")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not session-wide: Playwright's sync API keeps an asyncio
    loop running in this thread while it is open, which breaks later tests that start their own."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Callback:
    """A client's loopback redirect target: records each request path and answers a tiny page."""

    url: str
    paths: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def callback() -> Iterator[Callback]:
    port = free_port()
    cb = Callback(f"http://127.0.0.1:{port}/callback")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            cb.paths.append(self.path)
            body = b"<!doctype html><title>Client</title><p>Back at the client.</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield cb
    httpd.shutdown()
    httpd.server_close()


@dataclass
class Site:
    server: Server
    client_id: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: Any) -> Iterator[Site]:
    """gunicorn on SQLite with one person and one public client (registered like an MCP client)."""
    tmp = tmp_path_factory.mktemp("browser")
    port = free_port()
    env = {"OAUTH_STORAGE_URL": f"sqlite:///{tmp}/oauth.sqlite3"}
    flask_cli(["init"], env, port)
    flask_cli(["user", "create", USERNAME, "--password", PASSWORD], env, port)
    server = start_gunicorn(env, tmp, workers=2, port=port, init=False)
    try:
        r = httpx.post(
            server.url + "/oauth/register",
            json={
                "client_name": "Browser Test Client",
                # Loopback without a port: matches the listener's port at authorization time.
                "redirect_uris": ["http://127.0.0.1/callback"],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "mcp:tools mcp:resources",
            },
        )
        assert r.status_code == 201, r.text
        yield Site(server, r.json()["client_id"])
    finally:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def screenshots_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
