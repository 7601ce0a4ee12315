"""Strict JSON decoding hooks: no repeated keys, no NaN/Infinity (not JSON, RFC 8259)."""

from __future__ import annotations

from typing import Any


def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` object hook refusing a repeated key (ValueError)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def reject_constant(name: str) -> Any:
    """``json.loads`` ``parse_constant`` hook refusing NaN and Infinity (ValueError)."""
    raise ValueError(f"{name} is not JSON")
