"""The MCP package's pure parts: JSON-RPC classification, Host/Origin policy, sessions, tool checks."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.errors import ConfigurationError
from app.mcp import protocol as p
from app.mcp.sessions import MemoryRevocations, SessionManager
from app.mcp.tools import check_tool, load_tools, tool_table
from app.mcp.transport_security import HostPolicy
from app.models import TokenClaims
from plugins.tools.whoami import WhoamiTool


def claims(sub: str = "alice", client_id: str = "c1", scopes: str = "mcp:tools") -> TokenClaims:
    return TokenClaims(sub, client_id, frozenset(scopes.split()), "aud", "j", int(time.time()) + 60, 0, "iss")


# -- protocol --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ({"jsonrpc": "2.0", "id": 0, "method": "ping"}, "request"),
        ({"jsonrpc": "2.0", "id": "x", "method": "ping", "params": {}}, "request"),
        ({"jsonrpc": "2.0", "method": "notifications/initialized"}, "notification"),
        ({"jsonrpc": "2.0", "id": 1, "result": {}}, "response"),
        ({"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "m"}}, "response"),
    ],
)
def test_classify(message: dict[str, Any], kind: str) -> None:
    assert p.classify(message).kind == kind


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ([], p.INVALID_REQUEST),
        ({"id": 1, "method": "ping"}, p.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": 1, "result": {}, "error": {}}, p.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": None, "method": "ping"}, p.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": False, "method": "ping"}, p.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": None}, p.INVALID_PARAMS),
        ({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]}, p.INVALID_PARAMS),
    ],
)
def test_classify_errors(message: Any, code: int) -> None:
    with pytest.raises(p.RpcError) as e:
        p.classify(message)
    assert e.value.code == code


def test_request_id_of() -> None:
    assert p.request_id_of({"id": 0}) == 0
    assert p.request_id_of({"id": True}) is None
    assert p.request_id_of({"id": 1.0}) is None
    assert p.request_id_of([1]) is None


@pytest.mark.parametrize("raw", [b"{", b"NaN", b"[Infinity]", b"\xc3\x28", b"[" * 5000])
def test_parse_body_is_strict(raw: bytes) -> None:
    with pytest.raises(ValueError):
        p.parse_body(raw)


def test_parse_body_keeps_big_integers() -> None:
    assert p.parse_body(b'{"id": 123456789012345678901234567890}')["id"] == 123456789012345678901234567890


def test_decode_header_value() -> None:
    assert p.decode_header_value("plain") == "plain"
    assert p.decode_header_value("=?base64?w6k=?=") == "\u00e9"
    assert p.decode_header_value("=?base64?!!?=") is None
    assert p.decode_header_value(None) is None


def test_error_body_leaves_out_absent_data() -> None:
    assert p.error_response(None, p.RpcError(-1, "m")) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -1, "message": "m"},
    }


# -- Host / Origin ---------------------------------------------------------------------------


def test_default_policy_is_own_host_plus_loopback() -> None:
    policy = HostPolicy("https://mcp.example.com")
    for host in ("mcp.example.com", "MCP.example.com:443", "127.0.0.1:8000", "localhost", "[::1]:1"):
        assert policy.host_allowed(host), host
    for host in (None, "", "mcp.example.com:444", "evil.example", "mcp.example.com.evil", "a b", "[::1", "x:99999"):
        assert not policy.host_allowed(host), host
    for origin in (None, "https://mcp.example.com", "https://mcp.example.com:443", "http://localhost:6274"):
        assert policy.origin_allowed(origin), origin
    for origin in ("http://mcp.example.com", "https://evil.example", "null", "https://mcp.example.com/path", ""):
        assert not policy.origin_allowed(origin), origin


def test_configured_entries_and_wildcards() -> None:
    policy = HostPolicy("http://127.0.0.1:8000", ["proxy.internal:8080", "edge.example"], ["https://app.example"])
    assert policy.host_allowed("proxy.internal:8080") and not policy.host_allowed("proxy.internal:8081")
    assert policy.host_allowed("edge.example:1234")
    assert policy.origin_allowed("https://app.example") and not policy.origin_allowed("https://app.example:8443")
    assert HostPolicy("http://127.0.0.1:8000", ["*"], ["*"]).host_allowed("anything.example")
    assert HostPolicy("http://127.0.0.1:8000", ["*"], ["*"]).origin_allowed("null")
    strict = HostPolicy("https://mcp.example.com", allow_loopback=False)
    assert not strict.host_allowed("localhost") and not strict.origin_allowed("http://127.0.0.1:1")


@pytest.mark.parametrize(("hosts", "origins"), [(["a/b"], []), (["x:0"], []), ([], ["example.com"]), ([], ["ftp://x"])])
def test_malformed_entries_are_refused(hosts: list[str], origins: list[str]) -> None:
    with pytest.raises(ValueError):
        HostPolicy("https://mcp.example.com", hosts, origins)


# -- sessions --------------------------------------------------------------------------------


def test_sessions_round_trip_and_bind_to_the_caller() -> None:
    manager = SessionManager("secret", MemoryRevocations())
    session = manager.new("2025-06-18", claims())
    got = manager.get(session.id, claims(scopes="mcp:tools mcp:resources"))
    assert got is not None and got.version == "2025-06-18" and got.nonce == session.nonce
    assert manager.get(session.id, claims(sub="bob")) is None
    assert manager.get(session.id, claims(client_id="c2")) is None
    assert SessionManager("other", MemoryRevocations()).get(session.id, claims()) is None
    assert manager.get(session.id[:-2], claims()) is None


def test_ended_sessions_stay_ended() -> None:
    revocations = MemoryRevocations()
    manager = SessionManager("secret", revocations)
    a, b = manager.new("2025-11-25", claims()), manager.new("2025-11-25", claims())
    manager.end(a)
    assert manager.get(a.id, claims()) is None
    assert manager.get(b.id, claims()) is not None
    # Another process with the same secret and the same revocation list agrees.
    assert SessionManager("secret", revocations).get(a.id, claims()) is None


def test_sessions_expire() -> None:
    manager = SessionManager("secret", MemoryRevocations(), ttl=-1)
    assert manager.get(manager.new("2025-11-25", claims()).id, claims()) is None


def test_verified_session_cache_keeps_every_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """A session id's signature is checked once; the caller binding, the end of the session and
    its expiry are still checked on every request."""
    manager = SessionManager("secret", MemoryRevocations(), ttl=100)
    session = manager.new("2025-11-25", claims())
    assert manager.get(session.id, claims()) is not None  # verified and cached
    calls: list[str] = []
    original = manager._serializer.loads
    monkeypatch.setattr(manager._serializer, "loads", lambda *a, **k: calls.append("loads") or original(*a, **k))
    assert manager.get(session.id, claims()) is not None
    assert calls == []  # served from the cache
    assert manager.get(session.id, claims(sub="bob")) is None
    # Past its lifetime the cached entry is dropped and the signature check refuses the id.
    later = time.time() + 101
    monkeypatch.setattr(time, "time", lambda: later)
    assert manager.get(session.id, claims()) is None
    assert calls == ["loads"]
    monkeypatch.undo()
    other = manager.new("2025-11-25", claims())
    assert manager.get(other.id, claims()) is not None
    manager.end(other)
    assert manager.get(other.id, claims()) is None


# -- tools -----------------------------------------------------------------------------------


def _tool(**overrides: Any) -> Any:
    attrs: dict[str, Any] = {
        "name": "t",
        "description": "d",
        "required_scope": "mcp:tools",
        "input_schema": {"type": "object"},
        "call": lambda self, a, c: {"content": []},
    } | overrides
    return type("T", (), attrs)()


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": ""},
        {"name": "has space"},
        {"name": "x" * 129},
        {"description": ""},
        {"required_scope": "a b"},
        {"required_scope": None},
        {"input_schema": {"type": "array"}},
        {"input_schema": {"type": "object", "properties": {"a": {"type": "nope"}}}},
        {"output_schema": {"type": "string"}},
        {"call": None},
    ],
)
def test_bad_tool_metadata_is_a_configuration_error(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        check_tool(_tool(**overrides))


def test_duplicate_tool_names() -> None:
    with pytest.raises(ConfigurationError, match="two tools"):
        tool_table([_tool(), _tool()])


def test_argument_errors_name_the_field() -> None:
    loaded = check_tool(
        _tool(input_schema={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    )
    assert loaded.argument_errors({"n": 1}) == []
    assert loaded.argument_errors({"n": "x"}) == ["n: 'x' is not of type 'integer'"]
    assert loaded.argument_errors({}) == ["'n' is a required property"]


def test_whoami_plugin_loads_through_its_entry_point() -> None:
    (tool,) = load_tools(["whoami"], {})
    assert isinstance(tool, WhoamiTool)
    result = tool.call({}, claims(scopes="mcp:tools mcp:prompts"))
    assert result["structuredContent"] == {"sub": "alice", "client_id": "c1", "scope": "mcp:prompts mcp:tools"}
    with pytest.raises(ConfigurationError, match="installed"):
        load_tools(["nope"], {})
