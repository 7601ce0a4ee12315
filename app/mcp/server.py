"""The MCP Streamable HTTP endpoint: JSON-RPC over POST, JSON responses, both protocol eras.

``mcp_blueprint()`` builds a blueprint with the endpoint at its root (``POST`` and
``DELETE``; ``GET`` answers 405 because no SSE stream is offered). Requests pass, in order:
the ``Host``/``Origin`` check (DNS rebinding, even before the token is looked at), the bearer
guard (401 with the scope to ask for), then the transport rules below. Any app can serve it:
``init_mcp(app, ...)`` installs the per-app ``MCPServer`` (tools, sessions, host policy); this
server's own blueprint does that from config, the worker example with its own tools.

Status codes: malformed JSON or a malformed top-level message is 400 with a JSON-RPC error;
a missing session is 400, an unknown or ended one 404; an unsupported ``MCP-Protocol-Version``
is 400; notifications alone get 202 with no body; a tool whose scope the token lacks gets the
403 ``insufficient_scope`` step-up challenge. Nothing here answers 500: a crashing tool is a
JSON-RPC internal error (-32603).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from flask.typing import ResponseReturnValue

from app.contracts import Tool, ToolError
from app.guard import authenticate, current_token, protect
from app.mcp import protocol as p
from app.mcp.sessions import Revocations, Session, SessionManager
from app.mcp.tools import LoadedTool, tool_table
from app.mcp.transport_security import HostPolicy
from app.models import TokenClaims

log = logging.getLogger("mcp_oauth")

EXTENSION = "mcp_oauth_mcp"
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"


def _package_version() -> str:
    try:
        return version("mcp-oauth-server")
    except PackageNotFoundError:
        return "0"


@dataclass(frozen=True, slots=True)
class CallContext:
    claims: TokenClaims
    version: str
    modern: bool


class HTTPReply(Exception):
    """Stop and answer with this HTTP status and JSON-RPC error (transport-level problems)."""

    def __init__(self, status: int, error: p.RpcError, request_id: p.RequestId | None = None) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error
        self.request_id = request_id


def _json(body: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    # json.dumps keeps ids exactly as parsed (big integers included); no null members are added.
    response = current_app.response_class(
        json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json"
    )
    response.headers["Cache-Control"] = "no-store"
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


class MCPServer:
    """One app's MCP endpoint: its tools, sessions and Host/Origin policy."""

    def __init__(
        self,
        *,
        tools: Iterable[Tool],
        secret_key: str | bytes,
        revocations: Revocations,
        policy: HostPolicy,
        server_name: str = "mcp-oauth-server",
        server_version: str | None = None,
        challenge_scope: str | None = None,
        instructions: str | None = None,
    ) -> None:
        self.tools: dict[str, LoadedTool] = tool_table(tools)
        self.sessions = SessionManager(secret_key, revocations)
        self.policy = policy
        self.server_info = {"name": server_name, "version": server_version or _package_version()}
        self.instructions = instructions
        # What a 401 tells a client to ask for: the scopes the tools need.
        self.challenge_scope = challenge_scope or " ".join(sorted({t.required_scope for t in self.tools.values()}))

    # -- HTTP entry points -------------------------------------------------------------------

    def check_transport(self) -> ResponseReturnValue | None:
        """before_request: refuse a foreign Host or Origin (403), whatever the token."""
        if not self.policy.host_allowed(request.headers.get("Host")):
            return _json(p.error_response(None, p.RpcError(p.INVALID_REQUEST, "Forbidden: Host is not allowed")), 403)
        if not self.policy.origin_allowed(request.headers.get("Origin")):
            return _json(p.error_response(None, p.RpcError(p.INVALID_REQUEST, "Forbidden: Origin is not allowed")), 403)
        return None

    def handle_post(self) -> Response:
        try:
            return self._post()
        except HTTPReply as r:
            return _json(p.error_response(r.request_id, r.error), r.status)

    def handle_delete(self) -> Response:
        try:
            session = self._session(current_token())
        except HTTPReply as r:
            return _json(p.error_response(r.request_id, r.error), r.status)
        self.sessions.end(session)
        return Response(status=204, headers={"Cache-Control": "no-store"})

    # -- transport ---------------------------------------------------------------------------

    def _post(self) -> Response:
        claims = current_token()
        if request.mimetype != "application/json":
            raise HTTPReply(415, p.RpcError(p.INVALID_REQUEST, "Unsupported Media Type: send application/json"))
        accept = request.headers.get("Accept")
        if accept and not _accepts_json(accept):
            raise HTTPReply(406, p.RpcError(p.INVALID_REQUEST, "Not Acceptable: the answer is application/json"))
        header_version = request.headers.get(VERSION_HEADER)
        if header_version is not None and header_version not in p.SUPPORTED_VERSIONS:
            raise HTTPReply(400, p.unsupported_version(header_version))
        try:
            body = p.parse_body(request.get_data(cache=False))
        except ValueError:
            raise HTTPReply(400, p.RpcError(p.PARSE_ERROR, "Parse error: the body is not valid JSON")) from None
        if header_version in p.MODERN_VERSIONS:
            return self._modern(body, header_version)
        return self._legacy(body, header_version, claims)

    def _session(self, claims: TokenClaims) -> Session:
        sid = request.headers.get(SESSION_HEADER)
        if sid is None:
            raise HTTPReply(
                400, p.RpcError(p.INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required; send initialize")
            )
        session = self.sessions.get(sid, claims)
        if session is None:
            raise HTTPReply(404, p.RpcError(p.SESSION_NOT_FOUND, "Session not found; send initialize again"))
        return session

    def _legacy(self, body: Any, header_version: str | None, claims: TokenClaims) -> Response:
        batch = isinstance(body, list)
        if not batch and isinstance(body, dict) and body.get("method") == "initialize":
            return self._initialize(body, claims)
        if batch and not body:
            raise HTTPReply(400, p.RpcError(p.INVALID_REQUEST, "Invalid Request: empty batch"))
        session = self._session(claims)
        if header_version is not None and header_version != session.version:
            raise HTTPReply(
                400,
                p.RpcError(
                    p.INVALID_REQUEST,
                    f"Bad Request: MCP-Protocol-Version {header_version} is not the session's {session.version}",
                ),
            )
        if batch and session.version not in p.BATCH_VERSIONS:
            raise HTTPReply(
                400,
                p.RpcError(p.INVALID_REQUEST, f"Invalid Request: protocol version {session.version} has no batches"),
            )
        ctx = CallContext(claims, session.version, modern=False)
        messages = body if batch else [body]
        replies = [r for r in (self._one(m, ctx, in_batch=batch) for m in messages) if r is not None]
        if not replies:
            return Response(status=202, headers={"Cache-Control": "no-store"})
        if batch:
            return _json(replies)
        reply = replies[0]
        status = 400 if reply.get("error", {}).get("code") in (p.INVALID_REQUEST, p.PARSE_ERROR) else 200
        return _json(reply, status)

    def _initialize(self, body: dict[str, Any], claims: TokenClaims) -> Response:
        try:
            msg = p.classify(body)
        except p.RpcError as e:
            raise HTTPReply(400, e, p.request_id_of(body)) from None
        if msg.kind != "request" or msg.id is None:
            raise HTTPReply(400, p.RpcError(p.INVALID_REQUEST, "Invalid Request: initialize must have an id"))
        requested = msg.params.get("protocolVersion")
        if not isinstance(requested, str) or not isinstance(msg.params.get("capabilities", {}), dict):
            error = p.RpcError(p.INVALID_PARAMS, "Invalid params: protocolVersion (a string) is required")
            return _json(p.error_response(msg.id, error))
        # The client's version when this server speaks it, else the newest one it does (the
        # client then decides whether it can continue). 2026-07-28 has no handshake at all.
        negotiated = requested if requested in p.HANDSHAKE_VERSIONS else p.LATEST_HANDSHAKE_VERSION
        session = self.sessions.new(negotiated, claims)
        result: dict[str, Any] = {
            "protocolVersion": negotiated,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": dict(self.server_info),
        }
        if self.instructions:
            result["instructions"] = self.instructions
        return _json(p.result_response(msg.id, result), headers={SESSION_HEADER: session.id})

    def _modern(self, body: Any, version: str) -> Response:
        """2026-07-28: one self-contained request per POST, no session."""
        if not isinstance(body, dict):
            raise HTTPReply(400, p.RpcError(p.INVALID_REQUEST, "Invalid Request: one JSON-RPC object per request"))
        ctx = CallContext(current_token(), version, modern=True)
        try:
            msg = p.classify(body)
            if msg.kind != "request":
                return Response(status=202, headers={"Cache-Control": "no-store"})
            self._check_envelope(msg, version)
        except p.RpcError as e:
            request_id = p.request_id_of(body)
            return _json(p.error_response(request_id, e), p.MODERN_ERROR_STATUS.get(e.code, 200))
        reply = self._one(body, ctx, in_batch=False)
        assert reply is not None
        code = reply.get("error", {}).get("code")
        return _json(reply, p.MODERN_ERROR_STATUS.get(code, 200) if code is not None else 200)

    @staticmethod
    def _check_envelope(msg: p.Message, version: str) -> None:
        meta = msg.params.get("_meta")
        if not isinstance(meta, dict) or any(
            k not in meta for k in (p.PROTOCOL_VERSION_META_KEY, p.CLIENT_CAPABILITIES_META_KEY)
        ):
            raise p.RpcError(
                p.INVALID_PARAMS,
                f"Invalid params: params._meta must carry {p.PROTOCOL_VERSION_META_KEY} and "
                f"{p.CLIENT_CAPABILITIES_META_KEY}",
            )
        if meta[p.PROTOCOL_VERSION_META_KEY] != version:
            raise p.RpcError(p.HEADER_MISMATCH, "MCP-Protocol-Version header does not match params._meta")
        if request.headers.get("Mcp-Method") != msg.method:
            raise p.RpcError(p.HEADER_MISMATCH, "Mcp-Method header does not match the request's method")
        if msg.method == "tools/call" and "name" in msg.params:
            if p.decode_header_value(request.headers.get("Mcp-Name")) != msg.params["name"]:
                raise p.RpcError(p.HEADER_MISMATCH, "Mcp-Name header does not match params.name")

    # -- messages ----------------------------------------------------------------------------

    def _one(self, message: object, ctx: CallContext, *, in_batch: bool) -> dict[str, Any] | None:
        """Answer one message: a response dict, or None for notifications and responses."""
        try:
            msg = p.classify(message)
        except p.RpcError as e:
            return p.error_response(p.request_id_of(message), e)
        if msg.kind != "request":
            return None  # notifications (initialized, cancelled, ...) need no answer
        assert msg.id is not None
        try:
            result = self._call(msg, ctx, in_batch=in_batch)
        except p.RpcError as e:
            return p.error_response(msg.id, e)
        if ctx.modern:
            result.setdefault("resultType", "complete")
            result["_meta"] = {**result.get("_meta", {}), p.SERVER_INFO_META_KEY: dict(self.server_info)}
        return p.result_response(msg.id, result)

    def _call(self, msg: p.Message, ctx: CallContext, *, in_batch: bool) -> dict[str, Any]:
        handlers: dict[str, Callable[[p.Message, CallContext], dict[str, Any]]] = {
            "tools/list": self._tools_list,
            "tools/call": self._tools_call,
        }
        if ctx.modern:
            handlers["server/discover"] = self._discover
        else:
            handlers["ping"] = lambda _m, _c: {}
        if msg.method == "initialize":
            reason = "not part of a batch" if in_batch else "sent once, before the session"
            raise p.RpcError(p.INVALID_REQUEST, f"Invalid Request: initialize is {reason}")
        handler = handlers.get(msg.method)
        if handler is None:
            raise p.RpcError(p.METHOD_NOT_FOUND, f"Method not found: {msg.method}")
        return handler(msg, ctx)

    def _discover(self, _msg: p.Message, _ctx: CallContext) -> dict[str, Any]:
        result: dict[str, Any] = {
            "supportedVersions": list(p.MODERN_VERSIONS),
            "capabilities": {"tools": {"listChanged": False}},
            "ttlMs": 0,
            "cacheScope": "public",
        }
        if self.instructions:
            result["instructions"] = self.instructions
        return result

    def visible_tools(self, claims: TokenClaims) -> list[LoadedTool]:
        """The tools this token may call, by name."""
        return [t for name, t in sorted(self.tools.items()) if t.required_scope in claims.scopes]

    def _tools_list(self, msg: p.Message, ctx: CallContext) -> dict[str, Any]:
        if "cursor" in msg.params:
            # Everything fits on one page, so no cursor this server handed out can exist.
            raise p.RpcError(p.INVALID_PARAMS, "Invalid params: unknown cursor")
        structured = ctx.version in p.STRUCTURED_OUTPUT_VERSIONS
        result: dict[str, Any] = {"tools": [t.describe(structured) for t in self.visible_tools(ctx.claims)]}
        if ctx.modern:
            # The list depends on the token's scopes: never share it across tokens.
            result |= {"ttlMs": 0, "cacheScope": "private"}
        return result

    def _tools_call(self, msg: p.Message, ctx: CallContext) -> dict[str, Any]:
        name = msg.params.get("name")
        if not isinstance(name, str):
            raise p.RpcError(p.INVALID_PARAMS, "Invalid params: name (a string) is required")
        tool = self.tools.get(name)
        if tool is None:
            raise p.RpcError(p.INVALID_PARAMS, f"Unknown tool: {name}")
        # MCP 2025-11-25 step-up: HTTP 403 insufficient_scope naming the scope needed.
        authenticate([tool.required_scope])
        arguments = msg.params.get("arguments", {})
        if not isinstance(arguments, dict):
            raise p.RpcError(p.INVALID_PARAMS, "Invalid params: arguments must be an object")
        problems = tool.argument_errors(arguments)
        if problems:
            text = f"Invalid arguments for tool {name}: " + "; ".join(problems)
            if ctx.version in p.ARGUMENT_ERRORS_AS_RESULTS:
                return {"content": [{"type": "text", "text": text}], "isError": True}
            raise p.RpcError(p.INVALID_PARAMS, text)
        try:
            raw = tool.tool.call(arguments, ctx.claims)
        except ToolError as e:
            return {"content": [{"type": "text", "text": str(e) or "tool failed"}], "isError": True}
        except Exception as e:
            # Log where, not what: arguments may hold secrets.
            log.error("tool %s raised %s", name, type(e).__name__, exc_info=e)
            raise p.RpcError(p.INTERNAL_ERROR, f"Internal error in tool {name}") from None
        return self._tool_result(name, raw, ctx)

    @staticmethod
    def _tool_result(name: str, raw: object, ctx: CallContext) -> dict[str, Any]:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("content"), list):
            log.error("tool %s returned no content list", name)
            raise p.RpcError(p.INTERNAL_ERROR, f"Internal error in tool {name}")
        result: dict[str, Any] = {"content": list(raw["content"]), "isError": bool(raw.get("isError", False))}
        structured = raw.get("structuredContent")
        if structured is not None and ctx.version in p.STRUCTURED_OUTPUT_VERSIONS:
            result["structuredContent"] = structured
        return result


def mcp_server() -> MCPServer:
    """The current app's MCP server (installed by ``init_mcp``)."""
    server: MCPServer = current_app.extensions[EXTENSION]
    return server


def init_mcp(app: Flask, server: MCPServer) -> MCPServer:
    """Install ``server`` as ``app``'s MCP endpoint logic (one per app)."""
    app.extensions[EXTENSION] = server
    return server


def _check_transport() -> ResponseReturnValue | None:
    return mcp_server().check_transport()


def _challenge() -> str:
    return mcp_server().challenge_scope


def _post() -> ResponseReturnValue:
    return mcp_server().handle_post()


def _delete() -> ResponseReturnValue:
    return mcp_server().handle_delete()


def mcp_blueprint(name: str, import_name: str) -> Blueprint:
    """A guarded blueprint serving the MCP endpoint at its ``url_prefix``.

    Register it with ``url_prefix="/mcp"`` (the endpoint is then ``/mcp``); add more routes to
    it as usual: they share the Host/Origin check and the guard.
    """
    bp = Blueprint(name, import_name)
    bp.before_request(_check_transport)  # first: a rebinding request is refused before auth
    protect(bp, challenge=_challenge)
    bp.add_url_rule("", endpoint="rpc", view_func=_post, methods=["POST"])
    bp.add_url_rule("", endpoint="end_session", view_func=_delete, methods=["DELETE"])
    return bp


_JSON_RANGES = frozenset({"application/json", "application/*", "*/*"})


def _accepts_json(accept: str) -> bool:
    """Whether an ``Accept`` header allows ``application/json``. Without parameters (what MCP
    clients send: ``application/json, text/event-stream``) a set lookup answers; with any
    (``q=0`` refuses a type) werkzeug parses the header."""
    if ";" not in accept:
        return not _JSON_RANGES.isdisjoint(part.strip().lower() for part in accept.split(","))
    return request.accept_mimetypes.quality("application/json") > 0
