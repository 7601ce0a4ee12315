"""Scope strings (RFC 6749 §3.3): space-delimited, case-sensitive, no duplicates."""

from __future__ import annotations

import re

# scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def parse(scope: str | None) -> list[str]:
    """Split a scope string, keeping first-seen order. Raises ValueError on bad tokens."""
    if not scope:
        return []
    out: list[str] = []
    for part in scope.split(" "):
        if part == "":
            continue
        if not _TOKEN.fullmatch(part):  # fullmatch: `$` would allow a trailing newline
            raise ValueError(f"scope token {part[:40]!r} has characters RFC 6749 does not allow")
        if part not in out:
            out.append(part)
    return out


def join(scopes: list[str] | set[str] | frozenset[str]) -> str:
    return " ".join(scopes if isinstance(scopes, list) else sorted(scopes))


def narrow(requested: list[str], allowed: list[str]) -> list[str] | None:
    """The requested scopes if all are allowed, else None. Empty request means all allowed."""
    if not requested:
        return list(allowed)
    allowed_set = set(allowed)
    if all(s in allowed_set for s in requested):
        return requested
    return None
