"""In-process timings of the hot operations, one at a time (timeit; no HTTP, no gunicorn).

    .venv/bin/python bench/micro.py            # prints the table, updates docs/benchmarks.md
    .venv/bin/python bench/micro.py --no-doc   # prints only

Each operation runs in batches sized by ``timeit.Timer.autorange`` (at least 0.2 s per batch),
``--repeat`` batches; the table shows the best batch (the least disturbed by other processes
on the machine) and the median batch, in microseconds per operation. Storage is a SQLite file
in a temporary directory, configured as the server is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import logging
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ISSUER = "http://127.0.0.1:8000"

# A registration body as MCP clients send it (the Python SDK's shape).
REGISTRATION = {
    "client_name": "Example MCP client",
    "redirect_uris": ["http://127.0.0.1:33418/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
    "scope": "mcp:tools",
}


def measure(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(best, median) microseconds per call of ``fn``."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(number, 1)
    runs = timer.repeat(repeat=repeat, number=number)
    per_op = [r / number * 1e6 for r in runs]
    return min(per_op), statistics.median(per_op)


def app_with_worker(workdir: str, scope: str) -> tuple[Any, Any, Any, str]:
    """The app on a SQLite file in ``workdir`` (rate limit out of reach) and a client_credentials
    client registered as the CLI does: (app, state, client, secret)."""
    from app import create_app
    from app.oauth.register import new_client, validate_metadata

    app = create_app(
        {
            "OAUTH_ISSUER": ISSUER,
            "OAUTH_STORAGE_URL": f"sqlite:///{workdir}/bench.sqlite3",
            "RATELIMIT_TOKEN": "1000000/second",
        }
    )
    state = app.extensions["mcp_oauth"]
    body = {
        "grant_types": ["client_credentials"],
        "scope": scope,
        "token_endpoint_auth_method": "client_secret_basic",
        "redirect_uris": [],
    }
    with app.app_context():
        client, secret, _ = new_client(state, validate_metadata(state, body), registered_by="cli")
    assert secret is not None
    return app, state, client, secret


def operations(workdir: str) -> tuple[Any, list[tuple[str, Callable[[], Any], float | None]]]:
    """Build an app on SQLite in ``workdir``; return it and (name, callable, goal in us) rows."""
    import jwt
    import jwt.utils
    from flask import Flask

    from app.core import secrets
    from app.oauth.params import _decode_pairs
    from app.oauth.register import validate_metadata
    from app.tokens import AccessTokens

    # Audit lines would flood the table's terminal; the events are still built, only not shown.
    audit = logging.getLogger("mcp_oauth.audit")
    if not audit.handlers:
        audit.addHandler(logging.NullHandler())
        audit.propagate = False
    app, state, client, secret = app_with_worker(workdir, "mcp:tools mcp:resources")
    assert secret is not None
    cid, secret_hash = client.client_id, client.secret_hash
    aud = state.default_resource
    token, claims = state.access_tokens.issue(subject=cid, client_id=cid, scope="mcp:tools", audience=aud)
    state.access_tokens.verify(token, aud)  # now cached
    uncached = AccessTokens(state.keys, state.issuer, 3600, is_revoked=state.token_store.is_jti_revoked, cache_size=0)
    jti = claims["jti"]
    form = f"grant_type=client_credentials&scope=mcp%3Atools&client_id={cid}"
    limiter = state.limiter
    # Many clients, as on a busy server: each key's window then holds a realistic few entries
    # (the moving window keeps one per hit, and inserting is O(entries)).
    keys = itertools.cycle([f"client-{i}" for i in range(1000)])
    http = app.test_client()
    auth = (cid, secret)

    def verify_cached() -> Any:
        return state.access_tokens.verify(token, aud)

    def cache_hit() -> Any:
        return state.access_tokens.cache.get(token, 0)

    def verify_uncached() -> Any:
        return uncached.verify(token, aud)

    # The floor under an uncached validation: the ES256 signature check alone, on the key object.
    signing_input, _, signature_b64 = token.rpartition(".")
    key = state.keys.current()
    algorithm = jwt.get_algorithm_by_name(key.alg)
    signature = jwt.utils.base64url_decode(signature_b64)

    def signature_only() -> Any:
        assert algorithm.verify(signing_input.encode(), key.public, signature)

    # Machine calibration: the same test client on a bare Flask route. Absolute figures move a
    # lot between machines (this table on a faster VM gave about half of every figure); the
    # ratio of a row to this one moves much less.
    bare = Flask("bare")
    bare.get("/ping")(lambda: {"ok": True})
    bare_http = bare.test_client()

    def bare_request() -> Any:
        r = bare_http.get("/ping")
        assert r.status_code == 200
        return r

    def token_request() -> Any:
        r = http.post(
            "/oauth/token",
            data="grant_type=client_credentials&scope=mcp%3Atools",
            auth=auth,
            content_type="application/x-www-form-urlencoded",
        )
        assert r.status_code == 200, r.data
        return r

    def whoami_request() -> Any:
        r = http.get("/mcp/whoami", headers={"Authorization": "Bearer " + token})
        assert r.status_code == 200, r.data
        return r

    rows: list[tuple[str, Callable[[], Any], float | None]] = [
        ("token validation, cached (cache hit + revocation lookup)", verify_cached, 5.0),
        ("verified-token cache hit alone", cache_hit, None),
        ("revocation lookup (is_jti_revoked, SQLite)", lambda: state.token_store.is_jti_revoked(jti), None),
        ("token validation, uncached (ES256 verify + claims + revocation)", verify_uncached, 150.0),
        ("ES256 signature check alone (PyJWT's algorithm on the key)", signature_only, None),
        ("client-secret check (SHA-256 + constant-time compare)", lambda: secrets.matches(secret, secret_hash), 5.0),
        ("client lookup (get_client, SQLite)", lambda: state.storage.get_client(cid), None),
        (
            "rate-limit hit (limits sliding-window counter in memory, 1000 client keys in turn)",
            lambda: limiter.hit("1000000/second", "RATELIMIT_TOKEN", next(keys)),
            None,
        ),
        ("form parsing (token request body)", lambda: _decode_pairs(form, 4096), None),
        ("registration body validation (marshmallow)", lambda: validate_metadata(state, dict(REGISTRATION)), 100.0),
        (
            "ES256 access token issue (claims + sign)",
            lambda: state.access_tokens.issue(subject=cid, client_id=cid, scope="mcp:tools", audience=aud),
            None,
        ),
        ("POST /oauth/token through the Flask test client", token_request, None),
        ("GET /mcp/whoami through the Flask test client", whoami_request, None),
        ("GET on a bare Flask JSON route through the test client (machine calibration)", bare_request, None),
    ]
    if limiter is None:
        rows = [r for r in rows if not r[0].startswith("rate-limit")]
    return app, rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5, help="batches per operation (default 5)")
    p.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = p.parse_args(argv)

    from bench.run import git_commit, update_doc

    started = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="mcp-oauth-micro-") as workdir:
        app, rows = operations(workdir)
        with app.app_context():
            results = [(name, *measure(fn, args.repeat), goal) for name, fn, goal in rows]
        app.extensions["mcp_oauth"].close()

    lines = [
        f"Run of {started.strftime('%Y-%m-%d %H:%M UTC')}, commit `{git_commit()}`, one process, SQLite in a "
        f"temporary directory; best and median of {args.repeat} batches. Command: "
        f"`.venv/bin/python bench/micro.py{f' --repeat {args.repeat}' if args.repeat != 5 else ''}`.",
        "",
        "| operation | best us/op | median us/op | goal |",
        "|---|---|---|---|",
    ]
    for name, best, median, goal in results:
        verdict = "" if goal is None else f"<= {goal:g} us: {'met' if median <= goal else '**not met**'}"
        lines.append(f"| {name} | {best:.1f} | {median:.1f} | {verdict} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_doc:
        update_doc("micro", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
