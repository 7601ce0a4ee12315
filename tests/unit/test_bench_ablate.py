"""bench/ablate.py: every ablation still applies to the code it cuts, and leaves valid Python."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # ablate.py imports its sibling run.py as the script does

from bench.ablate import ABLATIONS  # noqa: E402


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_each_edit_finds_its_text_exactly_once(name: str) -> None:
    for rel, old, _new in ABLATIONS[name].edits:
        assert (ROOT / rel).read_text().count(old) == 1, f"{name}: {rel} no longer holds {old!r}"


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_each_ablation_leaves_python_that_compiles(name: str) -> None:
    ablation = ABLATIONS[name]
    assert ablation.edits or ablation.env, f"{name} cuts nothing"
    edited: dict[str, str] = {}
    for rel, old, new in ablation.edits:
        text = edited.get(rel, (ROOT / rel).read_text())
        edited[rel] = text.replace(old, new)
    for rel, text in edited.items():
        compile(text, rel, "exec")
        assert text != (ROOT / rel).read_text()
