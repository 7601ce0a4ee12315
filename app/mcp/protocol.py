"""JSON-RPC 2.0 and MCP protocol constants and message shapes (pure: no request, no app).

Two eras of the MCP Streamable HTTP transport are served side by side:

- the handshake era (2025-03-26, 2025-06-18, 2025-11-25): ``initialize`` negotiates the
  version and starts a session (``Mcp-Session-Id``); later requests carry the session and the
  ``MCP-Protocol-Version`` header; 2025-03-26 also allows JSON-RPC batches;
- the stateless era (2026-07-28): no handshake and no session; every request carries its
  version and client capabilities in ``params._meta`` plus the ``MCP-Protocol-Version`` and
  ``Mcp-Method`` headers, and the server answers ``server/discover``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

HANDSHAKE_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
MODERN_VERSIONS = ("2026-07-28",)
SUPPORTED_VERSIONS = HANDSHAKE_VERSIONS + MODERN_VERSIONS
LATEST_HANDSHAKE_VERSION = HANDSHAKE_VERSIONS[-1]
# 2025-03-26 added batches; 2025-06-18 removed them again.
BATCH_VERSIONS = frozenset({"2025-03-26"})
# From 2025-11-25 on, bad tool arguments are a tool result with isError (the model can fix
# them), not a protocol error.
ARGUMENT_ERRORS_AS_RESULTS = frozenset({"2025-11-25", "2026-07-28"})
# structuredContent / outputSchema exist from 2025-06-18 on.
STRUCTURED_OUTPUT_VERSIONS = frozenset({"2025-06-18", "2025-11-25", "2026-07-28"})

PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_META_KEY = "io.modelcontextprotocol/clientCapabilities"
SERVER_INFO_META_KEY = "io.modelcontextprotocol/serverInfo"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SESSION_NOT_FOUND = -32001
HEADER_MISMATCH = -32020
UNSUPPORTED_PROTOCOL_VERSION = -32022

# Stateless era: the HTTP status that goes with a JSON-RPC error code (others: 200).
MODERN_ERROR_STATUS = {
    PARSE_ERROR: 400,
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    UNSUPPORTED_PROTOCOL_VERSION: 400,
    METHOD_NOT_FOUND: 404,
}

RequestId = str | int


class RpcError(Exception):
    """A JSON-RPC error to answer with (``code``, ``message``, optional ``data``)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def error_response(request_id: RequestId | None, error: RpcError) -> dict[str, Any]:
    """A JSON-RPC error response; ``id`` is null only when the request's id is unknowable."""
    return {"jsonrpc": "2.0", "id": request_id, "error": error.body()}


def result_response(request_id: RequestId, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def unsupported_version(requested: object) -> RpcError:
    return RpcError(
        UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version",
        {"supported": list(SUPPORTED_VERSIONS), "requested": requested if isinstance(requested, str) else None},
    )


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_body(raw: bytes) -> Any:
    """Decode a request body as strict JSON (UTF-8, no NaN/Infinity). Raises ValueError."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except RecursionError:
        raise ValueError("nested too deeply") from None


@dataclass(frozen=True, slots=True)
class Message:
    """One classified JSON-RPC message.

    ``kind`` is ``request`` (has an id), ``notification`` (no id) or ``response`` (a client's
    answer to a server request; this server sends none, so they are acknowledged and dropped).
    """

    kind: str
    method: str
    id: RequestId | None
    params: dict[str, Any]


def _valid_id(value: object) -> bool:
    # MCP: ids are strings or integers, never null; bool is an int subclass in Python.
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def request_id_of(message: object) -> RequestId | None:
    """The message's id if it is a valid one (so an error reply can echo it), else None."""
    if isinstance(message, dict):
        value = message.get("id")
        if _valid_id(value):
            return value  # type: ignore[no-any-return]
    return None


def classify(message: object) -> Message:
    """Check the JSON-RPC 2.0 envelope. Raises RpcError (-32600 / -32602) when it is wrong."""
    if not isinstance(message, dict):
        raise RpcError(INVALID_REQUEST, "Invalid Request: a JSON-RPC message must be an object")
    if message.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"')
    if "method" not in message:
        if "id" in message and ("result" in message) != ("error" in message):
            return Message("response", "", request_id_of(message), {})
        raise RpcError(INVALID_REQUEST, "Invalid Request: method is required")
    method = message["method"]
    if not isinstance(method, str) or not method:
        raise RpcError(INVALID_REQUEST, "Invalid Request: method must be a non-empty string")
    has_id = "id" in message
    if has_id and not _valid_id(message["id"]):
        raise RpcError(INVALID_REQUEST, "Invalid Request: id must be a string or an integer")
    params = message.get("params", {})
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: params must be an object")
    if has_id:
        return Message("request", method, message["id"], params)
    return Message("notification", method, None, params)


_B64_SENTINEL = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")


def decode_header_value(value: str | None) -> str | None:
    """Decode an ``Mcp-Name``-style header value (plain, or the ``=?base64?...?=`` form)."""
    if value is None:
        return None
    m = _B64_SENTINEL.fullmatch(value)
    if m is None:
        return value
    try:
        return base64.b64decode(m.group("payload"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
