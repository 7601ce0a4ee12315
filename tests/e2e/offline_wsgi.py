"""gunicorn target for generated-traffic tests: the real app, with outbound look-ups refused.

A generated authorization request may carry an ``https://`` ``client_id``; the server would then
resolve that host and fetch a Client ID Metadata Document from it. Tests send traffic only to
loopback addresses, so here the metadata-document fetcher gets a resolver that refuses every
name: the request gets the error page a failed look-up gives, and nothing leaves the machine.
Everything else is ``wsgi:app`` unchanged.
"""

from __future__ import annotations

import socket
from typing import Any

from wsgi import app


def _refuse(host: str, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
    raise socket.gaierror(f"name look-ups are disabled in this test server ({host[:60]})")


app.extensions["mcp_oauth"].extras["cimd"].fetcher.resolver = _refuse
