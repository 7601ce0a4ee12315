"""Redirect URI rules (OAuth 2.1 §2.3.1, RFC 8252 §7, DESIGN.md).

Registration: absolute, no fragment; ``https``, or ``http`` on a loopback host, or a private-use
scheme for native apps; never ``javascript:``, ``data:`` and friends. Matching: exact string
comparison, except that a loopback ``http`` URI matches on any port (RFC 8252 §7.3).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "about", "blob", "ftp", "ws", "wss"})
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*$")
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def problem(uri: str) -> str | None:
    """Why ``uri`` cannot be registered, or None when it can."""
    if not isinstance(uri, str) or not uri:
        return "must be a non-empty string"
    if len(uri) > 2000:
        return "is longer than 2000 characters"
    if _SPACE_OR_CONTROL.search(uri):
        return "contains spaces or control characters"
    if not uri.isascii():
        # RFC 3986 URIs are ASCII; the URI ends up in a Location header (percent-encode the rest).
        return "must be ASCII (percent-encode other characters)"
    if "#" in uri:
        return "must not contain a fragment"
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "is not a valid URI"
    scheme = parts.scheme.lower()
    if not scheme or not _SCHEME.match(scheme):
        return "must be an absolute URI"
    if scheme in _FORBIDDEN_SCHEMES:
        return f"must not use the {scheme} scheme"
    if scheme == "https":
        if not parts.hostname:
            return "must name a host"
        return None
    if scheme == "http":
        if parts.hostname not in LOOPBACK_HOSTS:
            return "must use https unless the host is loopback (127.0.0.1, [::1], localhost)"
        return None
    # Private-use scheme (RFC 8252 §7.1) for a native app, e.g. com.example.app:/callback.
    if not (parts.path or parts.netloc):
        return "must have a path after the scheme"
    return None


def is_loopback(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


def _without_port(uri: str) -> tuple[str, str | None, str, str]:
    parts = urlsplit(uri)
    return (parts.scheme, parts.hostname, parts.path, parts.query)


def matches(requested: str, registered: list[str]) -> str | None:
    """The registered URI that ``requested`` matches, or None.

    Exact match first; then, for loopback http URIs, the same host, path and query on any port.
    Only the port may differ: a fragment or userinfo in the requested URI never matches.
    """
    if requested in registered:
        return requested
    if not is_loopback(requested):
        return None
    try:
        parts = urlsplit(requested)
        parts.port  # noqa: B018 - rejects malformed ports
        wanted = _without_port(requested)
    except ValueError:
        return None
    # urlsplit drops both from the compared tuple, so refuse them here (RFC 6749 §3.1.2).
    if "#" in requested or "@" in parts.netloc:
        return None
    for uri in registered:
        if is_loopback(uri) and _without_port(uri) == wanted:
            return uri
    return None
