"""POST/DELETE /mcp: the Streamable HTTP transport, JSON-RPC rules, sessions, tools, Host/Origin."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import create_app
from app.contracts import ToolError
from app.errors import ConfigurationError
from app.mcp.server import EXTENSION, MCPServer
from app.mcp.sessions import SessionManager
from app.mcp.transport_security import HostPolicy
from app.models import TokenClaims
from plugins.tools.whoami import WhoamiTool
from tests.conftest import ISSUER, base_config

MODERN = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}


class EchoTool:
    name: ClassVar[str] = "echo"
    description: ClassVar[str] = "Echo a text back"
    required_scope: ClassVar[str] = "mcp:resources"
    input_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"text": {"type": "string", "maxLength": 20}},
        "required": ["text"],
        "additionalProperties": False,
    }

    def __init__(self, config: Mapping[str, object]) -> None:
        pass

    def call(self, arguments: Mapping[str, object], claims: TokenClaims) -> Mapping[str, object]:
        if arguments["text"] == "fail":
            raise ToolError("asked to fail")
        if arguments["text"] == "crash":
            raise RuntimeError("secret-in-crash")
        if arguments["text"] == "junk":
            return {"nothing": True}
        return {"content": [{"type": "text", "text": arguments["text"]}]}


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    return base_config(tmp_path, MCP_ALLOWED_ORIGINS="https://inspector.example", MCP_ALLOWED_HOSTS="mcp.example")


@pytest.fixture
def app(app_config: dict[str, Any]) -> Any:
    app = create_app(app_config)
    # Add a second tool (another scope, failure modes) next to the configured whoami.
    state = app.extensions["mcp_oauth"]
    app.extensions[EXTENSION] = MCPServer(
        tools=[WhoamiTool({}), EchoTool({})],
        secret_key=app.config["SECRET_KEY"],
        revocations=state.token_store,
        policy=HostPolicy(ISSUER, ["mcp.example"], ["https://inspector.example"]),
    )
    yield app
    state.close()


@pytest.fixture
def tok(token_for: Callable[..., str]) -> str:
    return token_for("mcp:tools mcp:resources")


def post(
    client: FlaskClient,
    token: str | None,
    body: Any,
    *,
    session: str | None = None,
    version: str | None = None,
    headers: Mapping[str, str] | None = None,
    raw: bytes | None = None,
) -> TestResponse:
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    if session:
        h["Mcp-Session-Id"] = session
    if version:
        h["MCP-Protocol-Version"] = version
    h.update(headers or {})
    return client.post("/mcp", data=raw if raw is not None else json.dumps(body), headers=h)


def init_body(version: str = "2025-11-25", rid: Any = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }


def open_session(client: FlaskClient, token: str, version: str = "2025-11-25") -> str:
    r = post(client, token, init_body(version))
    assert r.status_code == 200, r.data
    sid = r.headers["Mcp-Session-Id"]
    r = post(client, token, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session=sid, version=version)
    assert r.status_code == 202
    return sid


def call(client: FlaskClient, token: str, sid: str, method: str, params: Any = None, rid: Any = 7, **kw: Any) -> Any:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        body["params"] = params
    return post(client, token, body, session=sid, **kw)


# -- initialize and version negotiation -------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "negotiated"),
    [
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2024-11-05", "2025-11-25"),
        ("2026-07-28", "2025-11-25"),  # no handshake in 2026-07-28: offer the newest one
        ("1999-01-01", "2025-11-25"),
    ],
)
def test_initialize_negotiates_version(client: FlaskClient, tok: str, requested: str, negotiated: str) -> None:
    r = post(client, tok, init_body(requested))
    assert r.status_code == 200
    body = r.get_json()
    assert body["id"] == 1 and body["jsonrpc"] == "2.0"
    assert body["result"]["protocolVersion"] == negotiated
    assert body["result"]["capabilities"] == {"tools": {"listChanged": False}}
    assert body["result"]["serverInfo"]["name"] == "mcp-oauth-server"
    sid = r.headers["Mcp-Session-Id"]
    assert sid and all(0x21 <= ord(c) <= 0x7E for c in sid)
    assert "null" not in r.get_data(as_text=True)


def test_each_initialize_gets_its_own_session(client: FlaskClient, tok: str) -> None:
    assert open_session(client, tok) != open_session(client, tok)


@pytest.mark.parametrize(
    "params", [{}, {"protocolVersion": 20251125}, {"protocolVersion": "2025-11-25", "capabilities": []}]
)
def test_initialize_with_bad_params(client: FlaskClient, tok: str, params: dict[str, Any]) -> None:
    r = post(client, tok, {"jsonrpc": "2.0", "id": "i", "method": "initialize", "params": params})
    assert r.get_json()["error"]["code"] == -32602
    assert r.get_json()["id"] == "i"
    assert "Mcp-Session-Id" not in r.headers


def test_initialize_as_notification_is_invalid(client: FlaskClient, tok: str) -> None:
    body = init_body()
    del body["id"]
    r = post(client, tok, body)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == -32600


def test_initialize_inside_a_session_is_refused(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok, "2025-03-26")
    r = post(client, tok, [init_body("2025-03-26", rid=3)], session=sid, version="2025-03-26")
    assert r.get_json()[0]["error"]["code"] == -32600 and r.get_json()[0]["id"] == 3


# -- JSON-RPC ids and errors -----------------------------------------------------------------


@pytest.mark.parametrize("rid", [0, -1, "", "abc", "0", 2**70, 12345678901234567890123, "\u00e9\u6f22"])
def test_ids_are_echoed_exactly(client: FlaskClient, tok: str, rid: Any) -> None:
    sid = open_session(client, tok)
    r = call(client, tok, sid, "ping", rid=rid, version="2025-11-25")
    assert r.status_code == 200
    body = json.loads(r.get_data(as_text=True))
    assert body == {"jsonrpc": "2.0", "id": rid, "result": {}}
    assert type(body["id"]) is type(rid)


@pytest.mark.parametrize("rid", [None, 1.5, True, [1], {"a": 1}])
def test_invalid_ids_are_invalid_requests(client: FlaskClient, tok: str, rid: Any) -> None:
    sid = open_session(client, tok)
    r = call(client, tok, sid, "ping", rid=rid)
    assert r.status_code == 400
    assert r.get_json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "Invalid Request: id must be a string or an integer"},
    }


@pytest.mark.parametrize("raw", [b"{", b"", b"\xff\xfe{}", b'{"jsonrpc": "2.0", "id": NaN}', b"[" * 20000])
def test_parse_errors(client: FlaskClient, tok: str, raw: bytes) -> None:
    sid = open_session(client, tok)
    r = post(client, tok, None, raw=raw, session=sid)
    assert r.status_code == 400
    body = r.get_json()
    assert body["id"] is None and body["error"]["code"] == -32700


@pytest.mark.parametrize(
    "body",
    [
        42,
        "ping",
        {"jsonrpc": "1.0", "id": 1, "method": "ping"},
        {"id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "id": 1, "method": ""},
    ],
)
def test_invalid_requests(client: FlaskClient, tok: str, body: Any) -> None:
    sid = open_session(client, tok)
    r = post(client, tok, body, session=sid)
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == -32600


def test_method_not_found(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok)
    r = call(client, tok, sid, "resources/list", rid="m")
    assert r.status_code == 200
    assert r.get_json()["error"]["code"] == -32601 and r.get_json()["id"] == "m"


def test_server_discover_is_not_a_handshake_era_method(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok)
    assert call(client, tok, sid, "server/discover").get_json()["error"]["code"] == -32601


@pytest.mark.parametrize(
    "params",
    [[1, 2], "x", {"arguments": {}}, {"name": 5}, {"name": "nope"}, {"name": "whoami", "arguments": [1]}],
)
def test_invalid_params(client: FlaskClient, tok: str, params: Any) -> None:
    sid = open_session(client, tok)
    r = call(client, tok, sid, "tools/call", params, rid=9)
    assert r.status_code == 200
    assert r.get_json()["error"]["code"] == -32602 and r.get_json()["id"] == 9


def test_a_crashing_tool_is_an_internal_error_not_a_500(
    client: FlaskClient, tok: str, caplog: pytest.LogCaptureFixture
) -> None:
    sid = open_session(client, tok)
    r = call(client, tok, sid, "tools/call", {"name": "echo", "arguments": {"text": "crash"}})
    assert r.status_code == 200
    assert r.get_json()["error"] == {"code": -32603, "message": "Internal error in tool echo"}
    assert "secret-in-crash" not in r.get_data(as_text=True)
    r = call(client, tok, sid, "tools/call", {"name": "echo", "arguments": {"text": "junk"}})
    assert r.get_json()["error"]["code"] == -32603


def test_a_tool_error_is_a_result_with_is_error(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok)
    r = call(client, tok, sid, "tools/call", {"name": "echo", "arguments": {"text": "fail"}})
    assert r.get_json()["result"] == {"content": [{"type": "text", "text": "asked to fail"}], "isError": True}


def test_notifications_and_client_responses_get_202_without_body(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok)
    for body in (
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}},
        {"jsonrpc": "2.0", "method": "notifications/unknown"},
        {"jsonrpc": "2.0", "id": 5, "result": {}},
        {"jsonrpc": "2.0", "id": 5, "error": {"code": 1, "message": "x"}},
    ):
        r = post(client, tok, body, session=sid)
        assert r.status_code == 202 and r.data == b""


# -- batches ---------------------------------------------------------------------------------


def test_batches_in_2025_03_26(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok, "2025-03-26")
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "two", "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "nope"},
        {"jsonrpc": "1.0", "id": 4, "method": "ping"},
    ]
    r = post(client, tok, batch, session=sid, version="2025-03-26")
    assert r.status_code == 200
    replies = r.get_json()
    assert [x["id"] for x in replies] == [1, "two", 3, 4]
    assert replies[0]["result"] == {}
    assert [t["name"] for t in replies[1]["result"]["tools"]] == ["echo", "whoami"]
    assert replies[2]["error"]["code"] == -32601
    assert replies[3]["error"]["code"] == -32600


def test_batch_of_notifications_is_202(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok, "2025-03-26")
    r = post(client, tok, [{"jsonrpc": "2.0", "method": "notifications/initialized"}], session=sid)
    assert r.status_code == 202 and r.data == b""


def test_empty_batch_is_invalid(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok, "2025-03-26")
    r = post(client, tok, [], session=sid)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == -32600


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_batches_are_refused_after_2025_03_26(client: FlaskClient, tok: str, version: str) -> None:
    sid = open_session(client, tok, version)
    r = post(client, tok, [{"jsonrpc": "2.0", "id": 1, "method": "ping"}], session=sid, version=version)
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == -32600


# -- sessions and the protocol-version header ------------------------------------------------


def test_missing_session_is_400(client: FlaskClient, tok: str) -> None:
    r = post(client, tok, {"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert r.status_code == 400
    assert "Mcp-Session-Id" in r.get_json()["error"]["message"]


@pytest.mark.parametrize("sid", ["nope", "a" * 600, "eyJuIjoieCJ9.forged.sig"])
def test_unknown_session_is_404(client: FlaskClient, tok: str, sid: str) -> None:
    r = post(client, tok, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, session=sid)
    assert r.status_code == 404


def test_session_signed_with_another_secret_is_404(client: FlaskClient, tok: str, state: Any) -> None:
    claims = state.access_tokens.verify(tok, state.default_resource)
    other = SessionManager("another-secret", state.token_store).new("2025-11-25", claims)
    assert post(client, tok, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, session=other.id).status_code == 404


def test_session_is_bound_to_the_tokens_client(client: FlaskClient, tok: str, token_for: Callable[..., str]) -> None:
    sid = open_session(client, tok)
    other_client_token = token_for("mcp:tools")
    assert call(client, other_client_token, sid, "ping").status_code == 404
    assert call(client, tok, sid, "ping").status_code == 200


def test_delete_ends_the_session(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok)
    h = {"Authorization": f"Bearer {tok}"}
    r = client.delete("/mcp", headers=h | {"Mcp-Session-Id": sid})
    assert r.status_code == 204
    assert call(client, tok, sid, "ping").status_code == 404
    assert client.delete("/mcp", headers=h | {"Mcp-Session-Id": sid}).status_code == 404
    assert client.delete("/mcp", headers=h).status_code == 400
    # Another session of the same token is unaffected.
    assert call(client, tok, open_session(client, tok), "ping").status_code == 200


def test_delete_needs_a_token(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok)
    assert client.delete("/mcp", headers={"Mcp-Session-Id": sid}).status_code == 401
    assert call(client, tok, sid, "ping").status_code == 200


def test_unsupported_protocol_version_header_is_400(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok)
    r = call(client, tok, sid, "ping", version="2099-01-01")
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["code"] == -32022
    assert error["data"] == {
        "supported": ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"],
        "requested": "2099-01-01",
    }


def test_protocol_version_header_must_match_the_session(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok, "2025-06-18")
    assert call(client, tok, sid, "ping", version="2025-11-25").status_code == 400
    assert call(client, tok, sid, "ping", version="2025-06-18").status_code == 200
    # Without the header the session's own version applies.
    assert call(client, tok, sid, "ping").status_code == 200


def test_concurrent_posts_in_one_session(app: Flask, client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok)

    def one(i: int) -> tuple[int, Any]:
        with app.test_client() as c:
            r = call(c, tok, sid, "tools/call", {"name": "echo", "arguments": {"text": f"n{i}"}}, rid=i)
            return r.status_code, r.get_json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(24)))
    for i, (status, body) in enumerate(results):
        assert status == 200, body
        assert body["id"] == i and body["result"]["content"][0]["text"] == f"n{i}"


# -- HTTP-level rules ------------------------------------------------------------------------


def test_get_is_405_with_allow(client: FlaskClient, tok: str) -> None:
    r = client.get("/mcp", headers={"Authorization": f"Bearer {tok}", "Accept": "text/event-stream"})
    assert r.status_code == 405
    allow = {m.strip() for m in r.headers["Allow"].split(",")}
    assert {"POST", "DELETE"} <= allow and "GET" not in allow


def test_wrong_content_type_is_415(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok)
    r = client.post(
        "/mcp",
        data='{"jsonrpc":"2.0","id":1,"method":"ping"}',
        headers={"Authorization": f"Bearer {tok}", "Mcp-Session-Id": sid, "Content-Type": "text/plain"},
    )
    assert r.status_code == 415


def test_accept_without_json_is_406(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok)
    r = call(client, tok, sid, "ping", headers={"Accept": "text/html"})
    assert r.status_code == 406
    assert call(client, tok, sid, "ping", headers={"Accept": "*/*"}).status_code == 200


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/json, text/event-stream", 200),
        ("TEXT/EVENT-STREAM ,  Application/JSON", 200),
        ("application/*", 200),
        ("text/event-stream", 406),
        ("application/jsonx, text/json", 406),
        ("application/json;q=0, text/event-stream", 406),
        ("application/json; q=0.5, text/event-stream", 200),
        ("*/*;q=0.1", 200),
        ("text/event-stream, */*;q=0", 406),
    ],
)
def test_accept_header_forms(client: FlaskClient, tok: str, accept: str, status: int) -> None:
    sid = open_session(client, tok)
    assert call(client, tok, sid, "ping", headers={"Accept": accept}).status_code == status


# -- Host and Origin (DNS rebinding) ---------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1.evil.example:8000"},
        {"Origin": "https://inspector.example.evil"},
        {"Host": "evil.example"},
        {"Host": "evil.example:8000"},
        {"Host": "127.0.0.1@evil.example"},
    ],
)
def test_foreign_host_or_origin_is_403_even_with_a_valid_token(
    client: FlaskClient, tok: str, headers: dict[str, str]
) -> None:
    sid = open_session(client, tok)
    r = call(client, tok, sid, "ping", headers=headers)
    assert r.status_code == 403, r.data
    assert r.get_json()["error"]["code"] == -32600
    # Also before any token is looked at, and for the other MCP routes.
    assert post(client, None, init_body(), headers=headers).status_code == 403
    assert client.get("/mcp/whoami", headers=headers | {"Authorization": f"Bearer {tok}"}).status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "http://127.0.0.1:8000"},
        {"Origin": "http://localhost:6274"},
        {"Origin": "http://[::1]:3000"},
        {"Origin": "https://inspector.example"},
        {"Host": "127.0.0.1:8000"},
        {"Host": "[::1]:8000"},
        {"Host": "mcp.example"},
        {"Host": "MCP.example:443"},
    ],
)
def test_own_loopback_and_configured_hosts_and_origins_pass(
    client: FlaskClient, tok: str, headers: dict[str, str]
) -> None:
    sid = open_session(client, tok)
    assert call(client, tok, sid, "ping", headers=headers).status_code == 200


# -- tools -----------------------------------------------------------------------------------


def test_tools_list_shows_only_what_the_token_may_call(client: FlaskClient, token_for: Callable[..., str]) -> None:
    cases = {"mcp:tools mcp:resources": ["echo", "whoami"], "mcp:tools": ["whoami"], "mcp:prompts": []}
    for scopes, expected in cases.items():
        t = token_for(scopes)
        sid = open_session(client, t)
        r = call(client, t, sid, "tools/list")
        assert [x["name"] for x in r.get_json()["result"]["tools"]] == expected, scopes


def test_tools_list_entries(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok, "2025-06-18")
    tools = {t["name"]: t for t in call(client, tok, sid, "tools/list").get_json()["result"]["tools"]}
    assert tools["whoami"]["inputSchema"]["type"] == "object"
    assert tools["whoami"]["description"]
    assert tools["whoami"]["outputSchema"]["required"] == ["sub", "client_id", "scope"]
    assert "outputSchema" not in tools["echo"]
    old = open_session(client, tok, "2025-03-26")
    tools = call(client, tok, old, "tools/list").get_json()["result"]["tools"]
    assert all("outputSchema" not in t for t in tools)


def test_tools_list_rejects_a_cursor(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok)
    assert call(client, tok, sid, "tools/list", {"cursor": "x"}).get_json()["error"]["code"] == -32602


def test_whoami_tool(client: FlaskClient, tok: str, state: Any) -> None:
    claims = state.access_tokens.verify(tok, state.default_resource)
    expected = {"sub": claims.sub, "client_id": claims.client_id, "scope": "mcp:resources mcp:tools"}
    sid = open_session(client, tok)
    result = call(client, tok, sid, "tools/call", {"name": "whoami"}).get_json()["result"]
    assert result["isError"] is False
    assert result["structuredContent"] == expected
    assert json.loads(result["content"][0]["text"]) == expected
    old = open_session(client, tok, "2025-03-26")
    result = call(client, tok, old, "tools/call", {"name": "whoami", "arguments": {}}).get_json()["result"]
    assert "structuredContent" not in result and json.loads(result["content"][0]["text"]) == expected


def test_tools_call_without_the_scope_is_a_403_step_up(client: FlaskClient, token_for: Callable[..., str]) -> None:
    t = token_for("mcp:tools")
    sid = open_session(client, t)
    r = call(client, t, sid, "tools/call", {"name": "echo", "arguments": {"text": "hi"}})
    assert r.status_code == 403
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="mcp:resources mcp:tools"' in challenge
    assert f'resource_metadata="{ISSUER}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert r.get_json()["error"] == "insufficient_scope"


@pytest.mark.parametrize(
    ("version", "arguments"),
    [
        ("2025-06-18", {"text": 5}),
        ("2025-06-18", {}),
        ("2025-06-18", {"text": "x" * 21}),
        ("2025-06-18", {"text": "a", "extra": 1}),
        ("2025-03-26", {"text": None}),
    ],
)
def test_bad_arguments_are_invalid_params_before_2025_11_25(
    client: FlaskClient, tok: str, version: str, arguments: dict[str, Any]
) -> None:
    sid = open_session(client, tok, version)
    r = call(client, tok, sid, "tools/call", {"name": "echo", "arguments": arguments})
    error = r.get_json()["error"]
    assert error["code"] == -32602 and "echo" in error["message"]


def test_bad_arguments_are_a_tool_error_from_2025_11_25(client: FlaskClient, tok: str) -> None:
    sid = open_session(client, tok, "2025-11-25")
    r = call(client, tok, sid, "tools/call", {"name": "echo", "arguments": {"text": 5}})
    result = r.get_json()["result"]
    assert result["isError"] is True
    assert "text: 5 is not of type 'string'" in result["content"][0]["text"]


# -- 2026-07-28: stateless requests ----------------------------------------------------------


def modern(client: FlaskClient, token: str, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
    params = {"_meta": ENVELOPE} | (params or {})
    headers = {"Mcp-Method": method} | kw.pop("headers", {})
    if method == "tools/call":
        headers.setdefault("Mcp-Name", str(params.get("name")))
    body = {"jsonrpc": "2.0", "id": kw.pop("rid", 1), "method": method, "params": params}
    return post(client, token, body, version=MODERN, headers=headers, **kw)


def test_modern_discover(client: FlaskClient, tok: str) -> None:
    r = modern(client, tok, "server/discover", rid=0)
    assert r.status_code == 200
    body = r.get_json()
    assert body["id"] == 0
    result = body["result"]
    assert result["supportedVersions"] == ["2026-07-28"]
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcp-oauth-server"
    assert "Mcp-Session-Id" not in r.headers


def test_modern_tools(client: FlaskClient, tok: str, token_for: Callable[..., str]) -> None:
    listed = modern(client, tok, "tools/list").get_json()["result"]
    assert [t["name"] for t in listed["tools"]] == ["echo", "whoami"]
    assert listed["cacheScope"] == "private" and listed["resultType"] == "complete"
    r = modern(client, tok, "tools/call", {"name": "whoami", "arguments": {}})
    assert r.get_json()["result"]["structuredContent"]["scope"] == "mcp:resources mcp:tools"
    narrow = token_for("mcp:tools")
    assert modern(client, narrow, "tools/call", {"name": "echo", "arguments": {"text": "x"}}).status_code == 403


def test_modern_needs_no_session_and_ignores_one(client: FlaskClient, tok: str) -> None:
    assert modern(client, tok, "tools/list", session="whatever").status_code == 200


@pytest.mark.parametrize(
    ("params", "headers", "status", "code"),
    [
        ({"_meta": {}}, {}, 400, -32602),
        ({"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}}, {}, 400, -32602),
        ({"_meta": ENVELOPE | {"io.modelcontextprotocol/protocolVersion": "2025-11-25"}}, {}, 400, -32020),
        ({"_meta": ENVELOPE}, {"Mcp-Method": "tools/call"}, 400, -32020),
        ({"_meta": ENVELOPE, "name": "whoami"}, {"Mcp-Name": "echo"}, 400, -32020),
        ({"name": "whoami"}, {}, 400, -32602),
    ],
)
def test_modern_envelope_errors(
    client: FlaskClient, tok: str, params: dict[str, Any], headers: dict[str, str], status: int, code: int
) -> None:
    method = "tools/call" if "name" in params else "tools/list"
    body = {"jsonrpc": "2.0", "id": "e", "method": method, "params": params}
    h = {"Mcp-Method": method} | headers
    if method == "tools/call":
        h.setdefault("Mcp-Name", "whoami")
    r = post(client, tok, body, version=MODERN, headers=h)
    assert r.status_code == status
    assert r.get_json()["error"]["code"] == code and r.get_json()["id"] == "e"


def test_modern_name_header_may_be_base64(client: FlaskClient, tok: str) -> None:
    r = modern(client, tok, "tools/call", {"name": "whoami"}, headers={"Mcp-Name": "=?base64?d2hvYW1p?="})
    assert r.status_code == 200


def test_modern_errors_use_http_status(client: FlaskClient, tok: str) -> None:
    assert modern(client, tok, "ping").status_code == 404  # ping is gone in 2026-07-28
    assert modern(client, tok, "tools/call", {"name": "nope"}).status_code == 400
    r = post(client, tok, [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}], version=MODERN)
    assert r.status_code == 400
    r = post(client, tok, {"jsonrpc": "2.0", "method": "notifications/x", "params": {}}, version=MODERN)
    assert r.status_code == 202


# -- configuration ---------------------------------------------------------------------------


def test_unknown_tool_plugin_fails_start_up(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="nope"):
        create_app(base_config(tmp_path, MCP_TOOLS="whoami nope"))


def test_bad_allowed_origin_fails_start_up(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="MCP_ALLOWED_ORIGINS"):
        create_app(base_config(tmp_path, MCP_ALLOWED_ORIGINS="not-an-origin"))


def test_no_tools_configured(tmp_path: Any) -> None:
    app = create_app(base_config(tmp_path, MCP_TOOLS=""))
    try:
        r = app.test_client().post("/mcp", json=init_body())
        assert r.status_code == 401
        assert 'scope="mcp:tools"' in r.headers["WWW-Authenticate"]
    finally:
        app.extensions["mcp_oauth"].close()
