"""DNS-rebinding protection for the MCP HTTP transport: check ``Host`` and ``Origin``.

A web page on an attacker's domain that resolves to this machine can make a browser send
requests here; they carry the attacker's ``Host`` and ``Origin``. The MCP transport spec
requires servers to validate ``Origin``; checking ``Host`` as well stops the rebinding
request even when no ``Origin`` is sent. Requests without ``Origin`` (non-browser clients)
pass the origin check.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``host[:port]`` (IPv6 in brackets) -> (lower-case host, port); None if malformed."""
    value = value.strip().lower()
    if not value or any(c in value for c in "/@ \t\\"):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    else:
        host, sep, port_text = value.partition(":")
        if sep and not port_text:
            return None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        return host, int(port_text)
    return host, None


def _origin_of(url: str) -> tuple[str, str, int] | None:
    """``scheme://host[:port]`` -> (scheme, host, port with defaults filled); None if not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None
    return parts.scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme]


class HostPolicy:
    """Which ``Host`` and ``Origin`` values the MCP endpoint accepts.

    Always allowed: the host and origin of ``base_url`` (the resource's own URL) and, unless
    ``allow_loopback`` is false, loopback hosts and origins on any port. ``allowed_hosts``
    entries are ``host`` (any port) or ``host:port``; ``allowed_origins`` entries are
    ``scheme://host[:port]``. A ``*`` entry disables that check (behind a proxy that does it).
    """

    def __init__(
        self,
        base_url: str,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
        *,
        allow_loopback: bool = True,
    ) -> None:
        own = urlsplit(base_url)
        self.any_host = False
        self.any_origin = False
        self._host_answers: dict[str | None, bool] = {}
        self.hosts: set[tuple[str, int | None]] = set()  # exact (host, port); port None: no port sent
        self.any_port_hosts: set[str] = set()
        self.origins: set[tuple[str, str, int]] = set()
        self.allow_loopback = allow_loopback
        own_origin = _origin_of(f"{own.scheme}://{own.netloc}")
        if own_origin is None:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.origins.add(own_origin)
        self.hosts.add((own_origin[1], own_origin[2]))
        if own.port is None:
            self.hosts.add((own_origin[1], None))  # Host may omit the default port
        for entry in allowed_hosts:
            if entry == "*":
                self.any_host = True
                continue
            parsed = _split_host(entry)
            if parsed is None:
                raise ValueError(f"MCP_ALLOWED_HOSTS: not a host[:port]: {entry!r}")
            if parsed[1] is None:
                self.any_port_hosts.add(parsed[0])
            else:
                self.hosts.add(parsed)
        for entry in allowed_origins:
            if entry == "*":
                self.any_origin = True
                continue
            origin = _origin_of(entry)
            if origin is None:
                raise ValueError(f"MCP_ALLOWED_ORIGINS: not an origin (scheme://host[:port]): {entry!r}")
            self.origins.add(origin)

    def host_allowed(self, host_header: str | None) -> bool:
        """Whether ``Host`` names this resource (answers for recent values are remembered)."""
        known = self._host_answers.get(host_header)
        if known is not None:
            return known
        answer = self._host_allowed(host_header)
        if len(self._host_answers) < 256:  # bounded: the header is the client's to choose
            self._host_answers[host_header] = answer
        return answer

    def _host_allowed(self, host_header: str | None) -> bool:
        if self.any_host:
            return True
        if not host_header:
            return False
        parsed = _split_host(host_header)
        if parsed is None:
            return False
        host, port = parsed
        if self.allow_loopback and host in LOOPBACK_HOSTS:
            return True
        return (host, port) in self.hosts or host in self.any_port_hosts

    def origin_allowed(self, origin_header: str | None) -> bool:
        if origin_header is None or self.any_origin:
            return True
        origin = _origin_of(origin_header)  # "null" (opaque origins) parses as None: refused
        if origin is None:
            return False
        if self.allow_loopback and origin[1] in LOOPBACK_HOSTS:
            return True
        return origin in self.origins
