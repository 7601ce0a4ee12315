"""schemathesis runs ``/openapi.json`` against a live gunicorn server: the description is true.

Every described operation gets generated requests (examples, coverage, fuzzing and stateful
phases; valid and invalid data, garbage headers and credentials included) and every response
must pass every check: no 5xx, a documented status, content type and headers, a body valid
against its schema, invalid data refused, authentication enforced, undocumented methods
answered 405 with ``Allow``. The server runs with the real configuration except for generous
rate limits, and with outbound name look-ups refused (tests/e2e/offline_wsgi.py).

Stateful endpoints get real credentials, so that their success paths are reached too: a
confidential client for HTTP Basic (token, introspection, revocation), an MCP access token, an
initial access token for registration, and a registered client with its registration access
token for RFC 7592. Requests without them, and with generated garbage, are sent as well.

schemathesis runs through its command line (``schemathesis run``): its pytest integration loads a
schema at collection time, before the server and its credentials exist, and its lazy loader
does not run under pytest 9. Bounded for CI: ``MAX_EXAMPLES`` cases per operation and phase,
a per-request timeout; the run takes well under a minute here.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import BIN, Server, flask_cli, free_port, start_gunicorn

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 30
HTTP_METHODS = ("get", "head", "post", "put", "delete", "options", "patch", "trace")
REDIRECT = "http://127.0.0.1:9/callback"
# Statuses a request the description calls valid may get: success, redirects, and the OAuth
# refusals that valid syntax cannot rule out (an unknown code is well formed and still refused).
# Not 413, 415 or 5xx: a valid request is never too large, of the wrong type, or a crash.
ACCEPTED_FOR_VALID_DATA = ["2xx", "3xx", "400", "401", "403", "404", "429"]
# How invalid data may be refused: 4xx, or (the authorization endpoint, once the client and its
# redirect URI are verified) a redirect carrying the error to the client, as RFC 6749 §4.1.2.1 says.
REFUSALS = ["302", "303", "400", "401", "403", "404", "405", "406", "413", "415", "429"]


@dataclass
class Live:
    server: Server
    credentials: dict[str, str]
    workdir: Path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    port = free_port()
    env = {
        "OAUTH_STORAGE_URL": f"sqlite:///{tmp}/oauth.sqlite3",
        "RATELIMIT_TOKEN": "1000000/minute",
        "RATELIMIT_REGISTRATION": "1000000/minute",
        "RATELIMIT_AUTH_FAILURE": "1000000/minute",
        "RATELIMIT_LOGIN": "1000000/minute",
        "GUNICORN_TIMEOUT": "60",
    }
    flask_cli(["init"], env, port)
    grants = ["--grant", "client_credentials", "--grant", "authorization_code", "--grant", "refresh_token"]
    created = json.loads(
        flask_cli(
            ["client", "create", "--name", "schemathesis", *grants, "--redirect-uri", REDIRECT]
            + ["--scope", "mcp:tools mcp:resources mcp:prompts"],
            env,
            port,
        )
    )
    iat = json.loads(flask_cli(["iat", "create"], env, port))["initial_access_token"]
    server = start_gunicorn(env, tmp, port=port, app="tests.e2e.offline_wsgi:app", init=False)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            token = http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(created["client_id"], created["client_secret"]),
            )
            assert token.status_code == 200, token.text
            registered, doomed = (
                http.post("/oauth/register", json={"redirect_uris": [REDIRECT], "client_name": name})
                for name in ("managed", "doomed")
            )
            assert registered.status_code == doomed.status_code == 201, (registered.text, doomed.text)
            sessions = [_mcp_session(http, token.json()["access_token"]) for _ in range(2)]
        credentials = {
            "client_id": created["client_id"],
            "secret": created["client_secret"],
            "access_token": token.json()["access_token"],
            "initial_access_token": iat,
            "registered_id": registered.json()["client_id"],
            "registration_token": registered.json()["registration_access_token"],
            "doomed_id": doomed.json()["client_id"],
            "doomed_token": doomed.json()["registration_access_token"],
            "session": sessions[0],
            "doomed_session": sessions[1],
        }
        yield Live(server, credentials, tmp)
    finally:
        server.stop()


def _mcp_session(http: httpx.Client, token: str) -> str:
    """A live MCP session (2025-03-26, the version with batches) of this token."""
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "st", "version": "1"}},
    }
    r = http.post("/mcp", json=init, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.headers["Mcp-Session-Id"]


def _toml(value: Any) -> str:
    """A TOML value (JSON strings, numbers, booleans and arrays are valid TOML)."""
    return json.dumps(value)


def config_file(live: Live) -> Path:
    c = live.credentials
    lines = [
        f"max-failures = {_toml(50)}",
        f"request-timeout = {_toml(30)}",
        # One worker: with several threads, Hypothesis's ast.parse of strategy lambdas trips a
        # CPython 3.11 thread-safety bug ("AST constructor recursion depth mismatch").
        f"workers = {_toml(1)}",
        # Hypothesis's health checks judge generation speed (too slow, too many values filtered
        # out), not the server: on a loaded 2-core CI machine they fail runs for no server reason.
        f"suppress-health-check = {_toml(['all'])}",
        "[generation]",
        f"max-examples = {_toml(MAX_EXAMPLES)}",
        f"database = {_toml('none')}",
        "[phases.stateful]",
        f"max-steps = {_toml(MAX_EXAMPLES)}",
        "[checks.positive_data_acceptance]",
        f"expected-statuses = {_toml(ACCEPTED_FOR_VALID_DATA)}",
        "[checks.negative_data_rejection]",
        f"expected-statuses = {_toml(REFUSALS)}",
        "[auth.openapi.clientBasic]",
        f"username = {_toml(c['client_id'])}",
        f"password = {_toml(c['secret'])}",
        "[auth.openapi.accessToken]",
        f"bearer = {_toml(c['access_token'])}",
        "[auth.openapi.initialAccessToken]",
        f"bearer = {_toml(c['initial_access_token'])}",
        "[auth.openapi.registrationAccessToken]",
        f"bearer = {_toml(c['registration_token'])}",
        # RFC 7592: reads and updates act on one registered client (updates naming it, so that
        # valid metadata is accepted); deletes on another, which the first success ends.
        "[parameters]",
        f'"path.client_id" = {_toml(c["registered_id"])}',
        "[[operations]]",
        f"include-name = {_toml('PUT /oauth/register/{client_id}')}",
        "[operations.parameters]",
        f'"body.client_id" = {_toml(c["registered_id"])}',
        "[[operations]]",
        f"include-name = {_toml('DELETE /oauth/register/{client_id}')}",
        f"headers = {{ Authorization = {_toml('Bearer ' + c['doomed_token'])} }}",
        "[operations.parameters]",
        f'"path.client_id" = {_toml(c["doomed_id"])}',
        # The authorization endpoint (not its /authorize alias) is asked for a known client and
        # redirect URI, so that requests get past client verification to the rest of the rules,
        # the login page and the error redirects.
        "[[operations]]",
        f"include-name = {_toml(['GET /oauth/authorize', 'HEAD /oauth/authorize'])}",
        "[operations.parameters]",
        f'"query.client_id" = {_toml(c["client_id"])}',
        f'"query.redirect_uri" = {_toml(REDIRECT)}',
        "[[operations]]",
        f"include-name = {_toml('POST /oauth/authorize')}",
        "[operations.parameters]",
        f'"body.client_id" = {_toml(c["client_id"])}',
        f'"body.redirect_uri" = {_toml(REDIRECT)}',
        # MCP: messages go to a live session, so that they reach the JSON-RPC methods and tools
        # (the generated MCP-Protocol-Version header still varies, 2026-07-28 needs no session);
        # DELETE ends another one.
        "[[operations]]",
        f"include-name = {_toml('POST /mcp')}",
        "[operations.parameters]",
        f'"header.Mcp-Session-Id" = {_toml(c["session"])}',
        # JSON-RPC answers some invalid messages inside a 200 reply (invalid params, each bad
        # member of a batch: JSON-RPC 2.0 §5.1, §6), which this check cannot tell from acceptance.
        "[operations.checks.negative_data_rejection]",
        f"enabled = {_toml(False)}",
        "[[operations]]",
        f"include-name = {_toml('DELETE /mcp')}",
        "[operations.parameters]",
        f'"header.Mcp-Session-Id" = {_toml(c["doomed_session"])}',
    ]
    path = live.workdir / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_response_conforms_to_the_description(live: Live) -> None:
    report = live.workdir / "report.json"
    # From a file, not the URL: schemathesis leaves out the operation that served the schema,
    # and GET /openapi.json is an operation like the others.
    document = httpx.get(f"{live.server.url}/openapi.json").json()
    (live.workdir / "openapi.json").write_text(json.dumps(document))
    started = time.monotonic()
    result = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "--config-file",
            str(config_file(live)),
            "--no-color",
            "run",
            "openapi.json",
            "--url",
            live.server.url,
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ],
        cwd=live.workdir,  # schemathesis writes its own files here, not in the repository
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    # Failures come with schemathesis's own account: check, request (as curl), response.
    assert result.returncode == 0, output[-20000:]
    log = live.server.log()
    assert "Traceback" not in log and "unhandled" not in log, log[-5000:]

    run = json.loads(report.read_text())
    operations = sum(1 for item in document["paths"].values() for key in item if key in HTTP_METHODS)
    assert run["complete"] and run["stop_reason"] == "completed", run
    assert run["operations"]["tested"] == run["operations"]["total"] == operations, run["operations"]
    assert run["operations"]["errored"] == run["test_cases"]["with_failures"] == 0, run
    assert all(phase["status"] == "success" for phase in run["phases"].values()), run["phases"]
    assert run["test_cases"]["generated"] >= operations * MAX_EXAMPLES, run["test_cases"]
    # The server's own log of the run: every status it answered with (no 5xx by the checks above).
    statuses = Counter(m.group(1) for m in re.finditer(r'" (\d{3}) ', log))
    print(
        f"\nschemathesis: {operations} operations, {run['test_cases']['generated']} test cases, "
        f"{sum(statuses.values())} requests in {seconds:.0f} s; statuses {dict(sorted(statuses.items()))}"
    )
