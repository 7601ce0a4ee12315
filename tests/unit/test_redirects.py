"""Redirect URI rules: what may be registered, and how a requested URI matches (RFC 8252 §7)."""

from __future__ import annotations

import pytest

from app.core import redirects


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1/callback",
        "http://127.0.0.1:33418/callback",  # loopback http on any port (RFC 8252 §7.3)
        "http://localhost:6274/oauth/callback",  # the MCP Inspector's shape
        "http://[::1]:8080/cb",
        "HTTP://127.0.0.1/cb",  # the scheme is case-insensitive
        "https://app.example.com/oauth/callback",
        "https://app.example.com:8443/cb?tenant=1",  # a query is allowed, compared exactly
        "https://xn--xample-9ua.com/caf%C3%A9",  # punycode host, percent-encoded path
        "https://claude.ai/api/mcp/auth_callback",
        "com.example.app:/oauth2redirect",  # private-use scheme (RFC 8252 §7.1)
        "vscode://vscode.github-authentication/did-authenticate",
        "cursor://anysphere.cursor-retrieval/oauth/callback",
    ],
)
def test_registrable(uri: str) -> None:
    assert redirects.problem(uri) is None


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("", "non-empty"),
        ("/callback", "absolute"),
        ("callback", "absolute"),
        ("//app.example.com/cb", "absolute"),
        ("http://app.example.com/cb", "https unless the host is loopback"),
        ("http://127.0.0.1.example.com/cb", "https unless the host is loopback"),
        ("http://localhost.example.com/cb", "https unless the host is loopback"),
        ("http://10.0.0.1/cb", "https unless the host is loopback"),
        ("https://app.example.com/cb#section", "fragment"),
        ("https://app.example.com/cb#", "fragment"),  # even an empty one
        ("http://127.0.0.1/cb#x", "fragment"),
        ("javascript:alert(1)", "javascript"),
        ("JavaScript:alert(1)", "javascript"),
        ("data:text/html,<script>alert(1)</script>", "data"),
        ("vbscript:msgbox", "vbscript"),
        ("file:///etc/passwd", "file"),
        ("https:///only/a/path", "host"),
        ("http://127.0.0.1:99999/cb", "not a valid URI"),  # port out of range
        ("http://127.0.0.1:80a/cb", "not a valid URI"),
        ("https://app.example.com:-1/cb", "not a valid URI"),
        ("http://[::1/cb", "not a valid URI"),  # unbalanced IPv6 bracket
        ("https://app.example.com/c b", "spaces or control"),
        ("https://app.example.com/cb\n", "spaces or control"),
        ("https://app.example.com/\x00", "spaces or control"),
        ("https://app.example.com/\x7f", "spaces or control"),
        ("com.example.app:", "path after the scheme"),
        ("https://\u00e9xample.com/cb", "ASCII"),  # an IRI, not a URI: percent-encode or punycode it
        ("http://127.0.0.1/caf\u00e9", "ASCII"),
        ("http://127.0.0.1/\ud800", "ASCII"),
        ("1app:/cb", "absolute"),  # a scheme starts with a letter
        ("https://app.example.com/" + "a" * 2000, "longer than 2000"),
    ],
)
def test_refused(uri: str, reason: str) -> None:
    problem = redirects.problem(uri)
    assert problem is not None and reason in problem


@pytest.mark.parametrize("value", [None, 42, ["https://a.example/cb"]])
def test_non_strings_are_refused(value: object) -> None:
    assert redirects.problem(value) == "must be a non-empty string"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("uri", "loopback"),
    [
        ("http://127.0.0.1/cb", True),
        ("http://localhost:1/cb", True),
        ("http://[::1]/cb", True),
        ("https://127.0.0.1/cb", False),  # RFC 8252 loopback redirects are http
        ("http://127.0.0.2/cb", False),
        ("http://example.com/cb", False),
        ("com.example.app:/cb", False),
        ("http://[::1/cb", False),
    ],
)
def test_is_loopback(uri: str, loopback: bool) -> None:
    assert redirects.is_loopback(uri) is loopback


REGISTERED = [
    "http://127.0.0.1/callback",
    "http://localhost:3000/cb?mode=x",
    "https://app.example.com/cb",
    "com.example.app:/oauth2redirect",
]


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        # exact matches
        ("http://127.0.0.1/callback", "http://127.0.0.1/callback"),
        ("https://app.example.com/cb", "https://app.example.com/cb"),
        ("com.example.app:/oauth2redirect", "com.example.app:/oauth2redirect"),
        # loopback: any port, same host, path and query
        ("http://127.0.0.1:51234/callback", "http://127.0.0.1/callback"),
        ("http://127.0.0.1:1/callback", "http://127.0.0.1/callback"),
        ("http://localhost:4444/cb?mode=x", "http://localhost:3000/cb?mode=x"),
        ("http://localhost/cb?mode=x", "http://localhost:3000/cb?mode=x"),
    ],
)
def test_matches(requested: str, expected: str) -> None:
    assert redirects.matches(requested, REGISTERED) == expected


@pytest.mark.parametrize(
    "requested",
    [
        "http://localhost:51234/callback",  # host differs (127.0.0.1 registered)
        "http://[::1]:51234/callback",
        "http://127.0.0.1:51234/callback2",  # path differs
        "http://127.0.0.1:51234/callback/",
        "http://127.0.0.1:51234/Callback",
        "http://127.0.0.1:51234/callback?x=1",  # query differs
        "http://localhost:4444/cb",  # query missing
        "http://localhost:4444/cb?mode=y",
        "http://127.0.0.1:51234/callback#frag",
        "http://127.0.0.1:99999/callback",  # malformed port
        "http://127.0.0.1:abc/callback",
        "http://evil@127.0.0.1:5000/callback",  # userinfo never matches
        "http://127.0.0.1:5000@evil.example/callback",
        "https://127.0.0.1:51234/callback",  # scheme differs
        "https://app.example.com:8443/cb",  # non-loopback: exact only, no other port
        "https://app.example.com/cb/",
        "https://APP.example.com/cb",
        "com.example.app:/oauth2redirect/x",
        "",
    ],
)
def test_does_not_match(requested: str) -> None:
    assert redirects.matches(requested, REGISTERED) is None


def test_nothing_matches_an_empty_registration() -> None:
    assert redirects.matches("http://127.0.0.1/callback", []) is None
