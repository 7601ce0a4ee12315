"""The walk itself (walk.py) is complete and honest: every requirement marked as tested has a
test named after it, every requirement-named test belongs to a listed requirement, and every
requirement that is not tested says why in a real sentence."""

from __future__ import annotations

import importlib
import re
from collections import Counter

from tests.security.walk import REQUIREMENTS, Requirement

MODULES = [
    "tests.security.test_rfc9700",
    "tests.security.test_oauth21",
    "tests.security.test_jwt",
    "tests.security.test_logs",
]
REASON_KINDS = ("not applicable: ", "client obligation: ", "deviation: ")
SPECS = {"oauth21", "rfc9700", "rfc8725", "rfc9068", "rfc7515"}


def _requirement_tests() -> list[str]:
    """The requirement-named test functions of the security modules."""
    names = []
    for module in MODULES:
        names += [n for n in vars(importlib.import_module(module)) if n.startswith("test_")]
    return [n for n in names if any(n.startswith(f"test_{spec}_") for spec in SPECS)]


def test_the_walk_is_well_formed() -> None:
    assert len(REQUIREMENTS) >= 100
    keys = Counter((r.spec, r.section, r.slug) for r in REQUIREMENTS)
    assert not [k for k, n in keys.items() if n > 1], "duplicate requirements"
    for r in REQUIREMENTS:
        assert r.spec in SPECS, r
        assert re.fullmatch(r"\d+(\.\d+)*", r.section), r
        assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", r.slug), r
        assert len(r.text) >= 20, r


def test_every_untested_requirement_has_a_written_reason() -> None:
    for r in REQUIREMENTS:
        if r.reason is None:
            continue
        assert r.reason.startswith(REASON_KINDS), r
        sentence = r.reason.split(": ", 1)[1]
        assert len(sentence) >= 30 and (sentence[0].isalnum() or sentence[0] in "'("), r


def test_every_tested_requirement_has_a_test() -> None:
    names = _requirement_tests()
    assert len(names) >= 100
    missing = [r.prefix for r in REQUIREMENTS if r.reason is None and not any(n.startswith(r.prefix) for n in names)]
    assert not missing, f"requirements without a test: {missing}"


def test_every_requirement_test_belongs_to_a_tested_requirement() -> None:
    tested = [r for r in REQUIREMENTS if r.reason is None]
    reasoned = [r for r in REQUIREMENTS if r.reason is not None]
    strays = [n for n in _requirement_tests() if not any(n.startswith(r.prefix) for r in tested)]
    assert not strays, f"tests named after no tested requirement: {strays}"
    stale = [r.prefix for r in reasoned if any(n.startswith(r.prefix) for n in _requirement_tests())]
    assert not stale, f"requirements with a reason that are tested after all: {stale}"


def summary() -> dict[str, int]:
    """Counts for reports: tested requirements, and reasons by kind."""
    out = Counter("tested" if r.reason is None else r.reason.split(":", 1)[0] for r in REQUIREMENTS)
    return dict(out)


def test_summary_counts_every_requirement() -> None:
    counts = summary()
    assert sum(counts.values()) == len(REQUIREMENTS) and counts["tested"] > 3 * (len(REQUIREMENTS) - counts["tested"])
    assert isinstance(REQUIREMENTS[0], Requirement)
