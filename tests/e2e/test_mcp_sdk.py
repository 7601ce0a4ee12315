"""Official MCP SDK clients against the server under gunicorn, the whole way through.

Python (``mcp``): discovery from the 401 (RFC 9728, RFC 8414), dynamic registration (RFC 7591),
authorization with PKCE (this test plays the person: sign in and approve over HTTP), token
exchange, the MCP handshake (``auto``: 2026-07-28 ``server/discover``; ``legacy``: ``initialize``
with a session), ``tools/list``, ``tools/call whoami``, concurrent calls, and a refresh once the
short-lived access token expires. The redirect is on ``127.0.0.1`` and on ``localhost``, on a
random port.

TypeScript (``@modelcontextprotocol/sdk`` from npm, driven by tests/e2e/node/client.mjs): the
same flow as a public client (``token_endpoint_auth_method: none``), as the MCP Inspector
registers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from app.tokens import LEEWAY
from tests.e2e.person import authorize
from tests.support.servers import Server, flask_cli, free_port, start_gunicorn

pytestmark = pytest.mark.slow

USER, PASSWORD = "alice", "correct horse battery staple"
ACCESS_TTL = 4  # seconds: short, so the test sees a refresh
NODE_DIR = Path(__file__).resolve().parent / "node"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("sdk")
    env = {
        "OAUTH_STORAGE_URL": f"sqlite:///{tmp}/oauth.sqlite3",
        "OAUTH_ACCESS_TOKEN_TTL": str(ACCESS_TTL),
        "RATELIMIT_REGISTRATION": "1000/minute",
    }
    s = start_gunicorn(env, tmp, workers=2)
    try:
        flask_cli(["user", "create", USER, "--password", PASSWORD], env | {"OAUTH_ISSUER": s.url})
        yield s
    finally:
        s.stop()


class MemoryStorage:
    """The SDK's TokenStorage, in memory; records every token set it is given."""

    def __init__(self) -> None:
        self.tokens: list[OAuthToken] = []
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens[-1] if self.tokens else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_python_sdk_client(server: Server, host: str, mode: str) -> None:
    mcp_url = f"{server.url}/mcp"
    redirect = f"http://{host}:{free_port()}/callback"
    storage = MemoryStorage()
    pages: list[str] = []
    pending: dict[str, AuthorizationCodeResult] = {}

    async def redirect_handler(url: str) -> None:
        pages.append(url)
        got = await authorize(url, USER, PASSWORD)
        assert got.location.startswith(redirect + "?"), got.location
        pending["result"] = AuthorizationCodeResult(
            code=got.params["code"], state=got.params.get("state"), iss=got.params.get("iss")
        )

    async def callback_handler() -> AuthorizationCodeResult:
        return pending.pop("result")

    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name=f"python sdk test ({mode})",
            redirect_uris=[redirect],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    async def main() -> dict[str, Any]:
        async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
            async with Client(streamable_http_client(mcp_url, http_client=http), mode=mode) as client:
                out: dict[str, Any] = {"version": client.protocol_version}
                out["tools"] = [t.name for t in (await client.list_tools()).tools]
                first = await client.call_tool("whoami", {})
                out["first"] = first.structured_content
                out["first_text"] = first.content[0].text  # type: ignore[union-attr]
                # Several requests at once in one session (one connection pool, two server workers).
                results: list[Any] = []

                async def one() -> None:
                    results.append((await client.call_tool("whoami", {})).structured_content)

                async with anyio.create_task_group() as tg:
                    for _ in range(6):
                        tg.start_soon(one)
                out["concurrent"] = results
                await anyio.sleep(ACCESS_TTL + 1)  # the access token expires; the client refreshes
                out["after_refresh"] = (await client.call_tool("whoami", {})).structured_content
                return out

    out = anyio.run(main)

    assert len(pages) == 1, pages  # one authorization, no second login after the refresh
    assert out["version"] == ("2026-07-28" if mode == "auto" else "2025-11-25")
    assert out["tools"] == ["whoami"]
    info = storage.client_info
    assert info is not None and info.client_id
    expected = {"sub": USER, "client_id": info.client_id, "scope": "mcp:tools"}
    assert out["first"] == expected and json.loads(out["first_text"]) == expected
    assert out["concurrent"] == [expected] * 6
    assert out["after_refresh"] == expected
    # Token exchange, then exactly one refresh, with a rotated refresh token.
    assert len(storage.tokens) == 2, storage.tokens
    first, refreshed = storage.tokens
    assert first.access_token != refreshed.access_token
    assert first.refresh_token and refreshed.refresh_token and first.refresh_token != refreshed.refresh_token
    assert first.expires_in == ACCESS_TTL


# -- TypeScript SDK --------------------------------------------------------------------------


def _npm_install() -> None:
    if (NODE_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is required for the TypeScript SDK test (Debian: apt-get install nodejs npm)")
    command = "ci" if (NODE_DIR / "package-lock.json").exists() else "install"
    done = subprocess.run(
        [npm, command, "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_typescript_sdk_client(server: Server, host: str, tmp_path: Path) -> None:
    _npm_install()
    redirect = f"http://{host}:{free_port()}/callback"
    # The Node script prints the authorization URL and waits; this test signs in, approves,
    # and writes the callback parameters back on its stdin. The TypeScript client refreshes
    # only on a 401, which comes once the token is past exp plus the verifier's clock leeway.
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 180
    with subprocess.Popen(
        ["node", str(NODE_DIR / "client.mjs"), f"{server.url}/mcp", redirect, str(ACCESS_TTL + LEEWAY + 2)],
        cwd=NODE_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            for line in proc.stdout:
                event = json.loads(line)
                events.append(event)
                if event["event"] == "authorize":
                    got = anyio.run(authorize, event["url"], USER, PASSWORD)
                    assert got.location.startswith(redirect + "?"), got.location
                    proc.stdin.write(json.dumps(got.params) + "\n")
                    proc.stdin.flush()
                if event["event"] in ("done", "error") or time.monotonic() > deadline:
                    break
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr = proc.stderr.read()
    assert proc.returncode == 0, (events, stderr[-3000:])
    by_name = {e["event"]: e for e in events}
    assert "error" not in by_name, (by_name["error"], stderr[-3000:])
    registered = by_name["registered"]["client"]
    assert registered["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in registered
    assert [e["event"] for e in events].count("authorize") == 1
    done = by_name["done"]
    expected = {"sub": USER, "client_id": registered["client_id"], "scope": "mcp:tools"}
    assert done["tools"] == ["whoami"]
    assert done["first"] == expected and done["after_refresh"] == expected
    assert done["concurrent"] == [expected] * 4
    assert done["tokens"] == 2 and done["refreshed_access_token_differs"] is True
    assert done["protocolVersion"] in ("2025-06-18", "2025-11-25", "2026-07-28")
