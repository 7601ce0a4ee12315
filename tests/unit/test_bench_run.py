"""bench/run.py reporting: goals per issue, the comparison with the Authlib reference, the command."""

from __future__ import annotations

from typing import Any

import pytest

from bench.run import goal_text, markdown, shown_command, summarise, versus_peer


def m(target: str, rps: float) -> dict[str, Any]:
    return {
        "target": target,
        "rps": rps,
        "latency_us": {"p50": 1000, "p99": 2000},
        "cpu_us_per_request": 100,
        "errors": {},
        "requests": 1000,
    }


# Two rounds; the bare route is measured around each pair, at 1000 then 800 req/s.
ROUNDS = [
    [m("bare", 1000), m("token_cc", 500), m("peer_token", 400), m("bare", 1000)],
    [m("bare", 800), m("peer_token", 400), m("token_cc", 360), m("bare", 800)],
]


def test_versus_peer_divides_paired_ratios_round_by_round() -> None:
    (row,) = versus_peer(ROUNDS, ["bare", "token_cc", "peer_token", "whoami"])
    assert (row["ours"], row["peer"]) == ("token_cc", "peer_token")
    assert row["ratios"] == pytest.approx([0.5 / 0.4, 0.45 / 0.5])
    assert row["ratio_min"] == pytest.approx(0.9)
    assert row["ratio_max"] == pytest.approx(1.25)


def test_goal_text_shows_every_issue() -> None:
    goals = [{"ratio": 0.5, "issue": 2}, {"ratio": 0.6, "issue": 6}]
    assert goal_text(goals, 0.55) == ">= 0.50 (issue 2): met; >= 0.60 (issue 6): **not met**"
    assert goal_text([], 0.55) == ""


def test_markdown_adds_the_comparison_and_the_image() -> None:
    names = ["bare", "token_cc", "peer_token"]
    result: dict[str, Any] = {
        "date": "d",
        "commit": "c",
        "command": "cmd",
        "settings": {
            "workers": 2,
            "worker_class": "sync",
            "gthreads": 4,
            "threads": 1,
            "connections": 8,
            "rounds": 2,
            "duration": 8,
            "bare_every": 4,
        },
        "machine": {"cpus": 2, "cpu": "x", "kernel": "k", "python": "3", "wrk": "wrk", "loadavg_start": [1, 1, 1]}
        | {"loadavg_end": [1, 1, 1]},
        "targets": {
            "bare": {"title": "bare", "goals": []},
            "token_cc": {"title": "token", "goals": [{"ratio": 0.5, "issue": 2}, {"ratio": 0.6, "issue": 6}]},
            "peer_token": {"title": "peer", "goals": []},
        },
        "skipped": {},
        "summary": summarise(ROUNDS, names),
        "versus_peer": versus_peer(ROUNDS, names),
        "raw": "bench/results/x.json",
    }
    text = markdown(result, image="benchmarks-sync.png")
    assert "| `token_cc` | `peer_token` | **1.07** (0.90-1.25) | ahead on the median, not in every round |" in text
    assert ">= 0.50 (issue 2): **not met**; >= 0.60 (issue 6): **not met**" in text
    assert "](benchmarks-sync.png)" in text
    assert "](" not in markdown(result)


def test_shown_command_leaves_out_where_the_report_goes() -> None:
    argv = ["--rounds", "1", "--doc", "/tmp/b.md", "--no-doc", "--doc=/tmp/c.md", "--targets", "bare"]
    assert shown_command(argv) == ["--rounds", "1", "--targets", "bare"]
