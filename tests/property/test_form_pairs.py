"""The form parser's pair splitting is ``urllib.parse.parse_qsl`` (keep_blank_values, strict
UTF-8), only faster: the same pairs, or the same error, for any string."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote

from hypothesis import given
from hypothesis import strategies as st

from app.oauth.params import split_pairs
from tests.property.conftest import examples

# The characters that matter to the format, percent-escapes (valid UTF-8 or not), and the rest.
PIECES = st.one_of(
    st.sampled_from(["&", "=", "+", "%", "%2", "%3A", "%2B", "%26", "%3D", "%C3%A9", "%FF", "%E2%82", "%00", " ", ";"]),
    st.text(min_size=1, max_size=6),
    st.text(max_size=8).map(quote),
)
BODIES = st.lists(PIECES, max_size=24).map("".join)


def _reference(raw: str) -> list[tuple[str, str]] | type[Exception]:
    try:
        return parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return UnicodeDecodeError


def _ours(raw: str) -> list[tuple[str, str]] | type[Exception]:
    try:
        return split_pairs(raw)
    except UnicodeDecodeError:
        return UnicodeDecodeError


@examples(2000)
@given(BODIES)
def test_same_pairs_as_parse_qsl(raw: str) -> None:
    assert _ours(raw) == _reference(raw)


def test_known_forms() -> None:
    assert split_pairs("grant_type=client_credentials&scope=mcp%3Atools+mcp%3Aresources") == [
        ("grant_type", "client_credentials"),
        ("scope", "mcp:tools mcp:resources"),
    ]
    assert split_pairs("a&&b=&=c&d=e=f") == [("a", ""), ("b", ""), ("", "c"), ("d", "e=f")]
    assert split_pairs("a;b=1") == [("a;b", "1")]  # ';' is no separator (Python >= 3.9.2)
