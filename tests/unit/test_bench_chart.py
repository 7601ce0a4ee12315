"""bench/chart.py: a run's result drawn to a PNG, without a display."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.chart import draw


def row(ratio: float | None, low: float | None = None, high: float | None = None) -> dict[str, Any]:
    return {"ratio": ratio, "ratio_min": low if low is not None else ratio, "ratio_max": high or ratio}


RESULT: dict[str, Any] = {
    "date": "2026-12-01 10:00 UTC",
    "commit": "abc123",
    "settings": {"rounds": 3, "duration": 8, "workers": 2, "worker_class": "sync", "gthreads": 4},
    "targets": {
        "bare": {"server": "bare", "goal": None, "goals": []},
        "token_cc": {
            "server": "sqlite",
            "goal": 0.6,
            "goals": [{"ratio": 0.5, "issue": 2}, {"ratio": 0.6, "issue": 6}],
        },
        "peer_token": {"server": "peer", "goal": None, "goals": []},
        "whoami": {"server": "sqlite", "goal": 0.7, "issue": 2},  # a result from before ``goals``
    },
    "summary": {"bare": row(None), "token_cc": row(0.55, 0.5, 0.58), "peer_token": row(0.45), "whoami": row(0.9)},
}


def test_draw_writes_a_png(tmp_path: Path) -> None:
    out = draw(RESULT, tmp_path / "docs" / "benchmarks-sync.png")
    assert out == tmp_path / "docs" / "benchmarks-sync.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


def test_main_draws_a_saved_result(tmp_path: Path) -> None:
    import json

    from bench.chart import main

    saved = tmp_path / "run-sync-x.json"
    saved.write_text(json.dumps(RESULT))
    assert main([str(saved), "--out", str(tmp_path / "chart.png")]) == 0
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"
