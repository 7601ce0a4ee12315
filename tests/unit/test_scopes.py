"""Scope strings (RFC 6749 §3.3): parse, join, narrow."""

from __future__ import annotations

import pytest

from app.core import scopes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, []),
        ("", []),
        ("mcp:tools", ["mcp:tools"]),
        ("mcp:tools mcp:resources", ["mcp:tools", "mcp:resources"]),
        ("  mcp:tools   mcp:resources ", ["mcp:tools", "mcp:resources"]),  # extra spaces are tolerated
        ("b a b a", ["b", "a"]),  # duplicates dropped, first-seen order kept
        ("MCP:tools mcp:tools", ["MCP:tools", "mcp:tools"]),  # case-sensitive
        ("!#[]~", ["!#[]~"]),  # the edges of the scope-token grammar
    ],
)
def test_parse(text: str | None, expected: list[str]) -> None:
    assert scopes.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        'say"hi"',  # %x22 is not a scope-token character
        "back\\slash",  # nor is %x5C
        "tab\tseparated",
        "new\nline",
        "mcp:tools\n",  # a trailing newline must not pass a `$` anchor
        "caf\u00e9",
        "nul\x00",
        "del\x7f",
    ],
)
def test_parse_refuses_characters_outside_the_grammar(text: str) -> None:
    with pytest.raises(ValueError, match="scope token"):
        scopes.parse(text)


def test_join_keeps_list_order_and_sorts_sets() -> None:
    assert scopes.join(["b", "a"]) == "b a"
    assert scopes.join({"b", "a"}) == "a b"
    assert scopes.join(frozenset({"z", "m"})) == "m z"
    assert scopes.join([]) == ""


@pytest.mark.parametrize(
    ("requested", "allowed", "expected"),
    [
        ([], ["a", "b"], ["a", "b"]),  # nothing asked: everything allowed
        (["a"], ["a", "b"], ["a"]),
        (["b", "a"], ["a", "b"], ["b", "a"]),
        (["c"], ["a", "b"], None),
        (["a", "c"], ["a", "b"], None),  # one disallowed scope refuses the lot
        (["a"], [], None),
    ],
)
def test_narrow(requested: list[str], allowed: list[str], expected: list[str] | None) -> None:
    assert scopes.narrow(requested, allowed) == expected


def test_narrow_returns_a_copy_of_allowed() -> None:
    allowed = ["a"]
    out = scopes.narrow([], allowed)
    assert out == allowed and out is not allowed
