"""Strict request parsing shared by the OAuth endpoints.

RFC 6749 §3.1/§3.2: parameters sent without a value are treated as omitted, and request and
response parameters MUST NOT be included more than once. Bodies must be UTF-8; the token,
revocation and introspection endpoints take ``application/x-www-form-urlencoded`` only.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from flask import Request, request

from app.core.strict_json import no_duplicates, reject_constant
from app.errors import InvalidRequestError, UnsupportedMediaTypeError


def split_pairs(raw: str) -> list[tuple[str, str]]:
    """``parse_qsl(raw, keep_blank_values=True, errors="strict")``, pair for pair, but skipping
    the decoding steps a part does not need (no ``+``, no ``%``: most of a token request).

    Raises UnicodeDecodeError on percent-escapes that are not UTF-8, as parse_qsl does.
    """
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name, errors="strict")
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value, errors="strict")
        pairs.append((name, value))
    return pairs


def _decode_pairs(raw: str, max_len: int) -> dict[str, str]:
    try:
        pairs = split_pairs(raw)
    except UnicodeDecodeError:
        raise InvalidRequestError("parameters must be UTF-8") from None
    except ValueError:
        raise InvalidRequestError("parameters are malformed") from None
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise InvalidRequestError(f"parameter {name[:40]} is repeated")
        if len(value) > max_len:
            raise InvalidRequestError(f"parameter {name[:40]} is longer than {max_len} characters")
        if "\x00" in value or "\x00" in name:
            raise InvalidRequestError(f"parameter {name[:40]} contains a NUL character")
        out[name] = value
    # RFC 6749 §3.1: a parameter sent without a value is treated as omitted.
    return {k: v for k, v in out.items() if v != ""}


def form_params(max_len: int = 4096, req: Request | None = None) -> dict[str, str]:
    """The form body of a POST (``req``, default the current request), strictly parsed.

    Raises InvalidRequestError / 415.
    """
    if req is None:
        req = request._get_current_object()  # type: ignore[attr-defined]
    if req.mimetype != "application/x-www-form-urlencoded":
        raise UnsupportedMediaTypeError("send parameters as application/x-www-form-urlencoded")
    charset = req.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaTypeError("only the utf-8 charset is accepted")
    body = _body(req)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError("request body is not valid UTF-8") from None
    return _decode_pairs(text, max_len)


def _body(req: Request) -> bytes:
    """The request body, read once and cached where ``request.get_data()`` looks for it.

    A body with a Content-Length within the limit is read straight from the WSGI input: a
    server that sets ``wsgi.input_terminated`` (gunicorn) ends the stream at the body's end,
    and otherwise exactly Content-Length bytes are asked for. Everything else (chunked bodies,
    too large bodies (413), a stream already touched) goes through werkzeug's guarded stream.
    """
    cached = req.__dict__.get("_cached_data")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    environ = req.environ
    # Content-Length as werkzeug reads it, for the plain case (digits, no Transfer-Encoding);
    # anything else is left to werkzeug.
    declared = environ.get("CONTENT_LENGTH")
    if declared is not None and declared.isdigit() and declared.isascii() and "HTTP_TRANSFER_ENCODING" not in environ:
        length: int | None = int(declared)
    else:
        length = req.content_length
    limit = req.max_content_length
    if length is None or (limit is not None and length > limit) or "stream" in req.__dict__:
        return req.get_data(cache=True)  # type: ignore[no-any-return]
    data = environ["wsgi.input"].read(length) if length else b""
    if len(data) != length:
        raise InvalidRequestError("the request body is shorter than its Content-Length")
    req._cached_data = data
    return data


def query_params(max_len: int = 4096) -> dict[str, str]:
    """The query string, strictly parsed (authorization requests)."""
    raw = request.query_string
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidRequestError("query string must be percent-encoded") from None
    return _decode_pairs(text, max_len)


def json_object() -> dict[str, Any]:
    """A JSON object body (registration). Raises InvalidRequestError / 415."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaTypeError("send client metadata as application/json")
    body = request.get_data(cache=True)
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=reject_constant, object_pairs_hook=no_duplicates)
    except UnicodeDecodeError:
        raise InvalidRequestError("request body is not valid UTF-8") from None
    except (ValueError, RecursionError):
        raise InvalidRequestError("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("request body must be a JSON object")
    if _has_lone_surrogate(data):
        # "\ud800" is valid JSON but no Unicode text: it would fail later, when a page or a
        # header has to encode it, far from here (RFC 8259 §8.2).
        raise InvalidRequestError("request body contains an unpaired UTF-16 surrogate escape")
    return data


def _has_lone_surrogate(value: Any) -> bool:
    # Iterative: the body may nest as deeply as the JSON parser allows.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= c <= "\udfff" for c in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
