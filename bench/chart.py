"""The benchmark chart: each target's ratio to the bare route, as a PNG (matplotlib, no display).

``bench/run.py`` calls :func:`draw` after writing ``docs/benchmarks.md``; it also runs on its own
from a run's raw data::

    .venv/bin/python bench/chart.py bench/results/run-sync-20261127T110427Z.json
    .venv/bin/python bench/chart.py bench/results/run-sync-....json --out /tmp/chart.png

One horizontal bar per target (the bare route is the line at 1): the median over rounds of the
paired ratio, with a min-max error bar, and a mark at each goal (filled: the current goal,
hollow: one an earlier issue set). Our rows are blue, the Authlib reference rows grey.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

OURS, PEER, MET, MISSED = "#3a6ea5", "#9a9a9a", "#2e7d32", "#c62828"


def _goals(t: Mapping[str, Any]) -> list[dict[str, Any]]:
    # Results written before ``goals`` existed have a single ``goal``.
    if "goals" in t:
        return list(t["goals"])
    return [{"ratio": t["goal"], "issue": t.get("issue")}] if t.get("goal") is not None else []


def draw(result: Mapping[str, Any], out: Path) -> Path:
    """Draw ``result`` (what ``bench/run.py`` writes to ``bench/results/*.json``) to the PNG ``out``.

    Targets without a ratio (the bare route itself) get no bar. Returns ``out``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    summary: Mapping[str, Mapping[str, Any]] = result["summary"]
    targets: Mapping[str, Mapping[str, Any]] = result["targets"]
    rows = [(name, row) for name, row in summary.items() if row.get("ratio") is not None]
    s = result.get("settings", {})

    height = 1.2 + 0.42 * max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(11, height), dpi=110, layout="constrained")
    ys = list(range(len(rows)))
    medians = [row["ratio"] for _, row in rows]
    err = [
        [row["ratio"] - row["ratio_min"] for _, row in rows],
        [row["ratio_max"] - row["ratio"] for _, row in rows],
    ]
    colors = [PEER if targets.get(name, {}).get("server") == "peer" else OURS for name, _ in rows]
    ax.barh(ys, medians, xerr=err, color=colors, height=0.6, capsize=3, error_kw={"elinewidth": 1, "ecolor": "#333"})

    top = max([1.0, *(row["ratio_max"] for _, row in rows)])
    for y, (name, row) in zip(ys, rows, strict=True):
        goals = _goals(targets.get(name, {}))
        for i, g in enumerate(goals):
            current = i == len(goals) - 1
            color = MET if row["ratio"] >= g["ratio"] else MISSED
            ax.plot(
                [g["ratio"]],
                [y],
                marker="D",
                markersize=8,
                markeredgecolor=color,
                markerfacecolor=color if current else "white",
                linestyle="none",
                zorder=3,
            )
            top = max(top, g["ratio"])
        ax.text(row["ratio_max"] + 0.01 * top, y, f"{row['ratio']:.2f}", va="center", fontsize=8)

    ax.axvline(1.0, color="#555", linewidth=1, linestyle="--")
    ax.set_yticks(ys, [name for name, _ in rows], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.1)
    ax.set_xlabel("req/s divided by the bare Flask route's, paired within a round (median, min-max)")
    workers = f"{s.get('workers', '?')} {s.get('worker_class', '?')} workers"
    if s.get("worker_class") == "gthread":
        workers += f" x {s.get('gthreads')} threads"
    rounds = s.get("rounds", "?")
    ax.set_title(
        f"Ratio to the bare route: gunicorn {workers}, {rounds} round{'' if rounds == 1 else 's'} of "
        f"{s.get('duration', 0):g} s\n{result.get('date', '')}, commit {result.get('commit', '?')}",
        fontsize=10,
    )
    ax.grid(axis="x", color="#ddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(
        handles=[
            Patch(color=OURS, label="this server"),
            Patch(color=PEER, label="Authlib reference"),
            Line2D([], [], marker="D", color=MET, linestyle="none", label="goal, met"),
            Line2D([], [], marker="D", color=MISSED, linestyle="none", label="goal, not met"),
            Line2D([], [], marker="D", color="#333", markerfacecolor="white", linestyle="none", label="earlier goal"),
            Line2D([], [], color="#555", linewidth=1, linestyle="--", label="bare route (1)"),
        ],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        frameon=False,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Draw the ratio chart of one bench/run.py result.")
    p.add_argument("result", type=Path, help="a bench/results/run-*.json file")
    p.add_argument("--out", type=Path, help="the PNG (default docs/benchmarks-<worker class>.png)")
    args = p.parse_args(argv)
    result = json.loads(args.result.read_text())
    out = args.out or DOCS / f"benchmarks-{result['settings']['worker_class']}.png"
    print(draw(result, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
