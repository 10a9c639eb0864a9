"""Fault runs summarized: per fault, recovered/total, time lost against the uninterrupted run of
the same repeat, final architecture (params) and accuracy against it, the restart causes the
report recorded, and the issue's goal with met or missed. Pure functions of the run records."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

GOAL_RUNS = 10  # the goals count 10 runs of each fault


@dataclass
class RunRecord:
    fault: str  # a fault's name, or "baseline"
    repeat: int
    state: str  # succeeded, failed, cancelled, timed out
    wall_seconds: float
    recovered: bool
    injected: bool = True
    injection: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    accuracy: float | None = None
    restarts_from_steps: list[int] = field(default_factory=list)
    restart_causes: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class FaultSummary:
    fault: str
    title: str
    goal: str
    recovered: int
    total: int
    time_lost: dict[str, float | None]
    same_params: int
    accuracy_delta: dict[str, float | None]
    causes: dict[str, int]
    verdict: str


def spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def verdict(recovered: int, total: int) -> str:
    if recovered < total or total == 0:
        return "missed"
    return "met" if total >= GOAL_RUNS else f"on track ({total}/{GOAL_RUNS} runs so far)"


def summarize(fault: Any, runs: list[RunRecord], baselines: dict[int, RunRecord]) -> FaultSummary:
    """One fault's runs against the baseline of each run's repeat (time lost over recovered runs);
    a run in which the fault never came (the job ended first, a harness error) is no measurement."""
    runs = [r for r in runs if r.injected]
    good = [r for r in runs if r.recovered and r.repeat in baselines]
    lost = [r.wall_seconds - baselines[r.repeat].wall_seconds for r in good]
    same = sum(1 for r in good if r.params is not None and r.params == baselines[r.repeat].params)
    deltas = [r.accuracy - baselines[r.repeat].accuracy for r in good
              if r.accuracy is not None and baselines[r.repeat].accuracy is not None]  # fmt: skip
    recovered = sum(r.recovered for r in runs)
    return FaultSummary(fault.name, fault.title, fault.goal, recovered, len(runs), spread(lost), same,
                        spread(deltas), dict(Counter(c for r in runs for c in r.restart_causes)),
                        verdict(recovered, len(runs)))  # fmt: skip


def _range(s: dict[str, float | None], fmt: str = "{:+.1f}") -> str:
    if not s["n"]:
        return "-"
    if s["n"] == 1:
        return fmt.format(s["median"])
    return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}, {fmt.format(s['max'])}]"


def _causes(causes: dict[str, int]) -> str:
    return "; ".join(f"{c[:80]} x{n}" for c, n in causes.items()) or "none recorded"


def summary_table(summaries: list[FaultSummary], baselines: list[RunRecord]) -> str:
    params = sorted({b.params for b in baselines if b.params is not None})
    accuracy = [b.accuracy for b in baselines if b.accuracy is not None]
    walls = _range(spread([b.wall_seconds for b in baselines]), "{:.0f}")
    lines = [f"Uninterrupted: {len(baselines)} run(s), wall {walls} s, "
             f"params {params or '-'}, accuracy {_range(spread(accuracy), '{:.3f}')}.\n",
             "| fault | recovered | time lost, s (median [range]) | same params | accuracy vs uninterrupted "
             "| restart causes recorded | goal | |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in summaries:
        lines.append(f"| **{s.fault}**: {s.title} | {s.recovered}/{s.total} | {_range(s.time_lost)} | "
                     f"{s.same_params}/{s.recovered} | {_range(s.accuracy_delta, '{:+.3f}')} | "
                     f"{_causes(s.causes)} | {s.goal} | {s.verdict} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def runs_table(records: list[RunRecord]) -> str:
    lines = ["| fault | repeat | state | job wall s | trial s | injected | at s (after ckpt step) "
             "| restarts from steps | params | accuracy | note |", "|---" * 11 + "|"]  # fmt: skip
    for r in records:
        inj = r.injection
        at = "-" if inj.get("at_seconds") is None else f"{inj['at_seconds']} ({inj.get('after_step')})"
        what = inj.get("what") or "-"
        trial = inj.get("trial_seconds") or "-"
        lines.append(f"| {r.fault} | {r.repeat} | {r.state} | {r.wall_seconds:.0f} | {trial} | {what} | "
                     f"{at} | {r.restarts_from_steps or '-'} | {r.params or '-'} | "
                     f"{'-' if r.accuracy is None else f'{r.accuracy:.3f}'} | {_cell(r.note)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _cell(text: str, width: int = 160) -> str:
    flat = " ".join(text.split()).replace("|", "/")
    return flat if len(flat) <= width else "…" + flat[-width:]
