"""``make soak`` in miniature: bench/soak.py for a few seconds against PostgreSQL + Redis.

The full run (two minutes, figures in docs/benchmarks.md) is ``make soak``; this only proves the
script still works end to end: every check passes (memory is not judged on so short a run).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.soak import memory_verdict
from tests.support.services import require_postgres, require_redis

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.service
@pytest.mark.postgresql
@pytest.mark.redis
def test_short_soak_passes() -> None:
    require_postgres()
    require_redis()
    out = subprocess.run(
        [sys.executable, "bench/soak.py", "--duration", "6", "--threads", "4", "--no-doc"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "soak: all checks passed" in out.stdout


def _samples(series: list[list[float]]) -> list[dict[str, object]]:
    return [
        {"t": float(i), "rss_kib": {pid: mib * 1024 for pid, mib in enumerate(row)}} for i, row in enumerate(series)
    ]


@pytest.mark.parametrize(
    ("series", "ok"),
    [
        ([[60, 60]] * 3 + [[80, 80]] * 6, True),  # warm-up growth in the first third is allowed
        ([[80, 80]] * 3 + [[80, 80]] * 3 + [[83, 80]] * 3, False),  # +3 MiB in the last third: over 2 MiB
        ([[80 + i, 80] for i in range(9)], False),  # steady growth
        ([[80, 80]] * 6 + [[80]] * 3, False),  # a worker gone mid-run
    ],
)
def test_memory_rule(series: list[list[float]], ok: bool) -> None:
    assert memory_verdict(_samples(series), 2, max_growth_mib=2, max_growth_pct=3)["ok"] is ok
