"""The run's record: worker reports merged into a timeline, prune events, throughput gain,
peak memory; written as report.json and drawn as report.png."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimray.core.jsonsafe import finite


def _median(values: list[float]) -> float | None:
    """Median of the non-empty windows: robust to a window slowed by a neighbour's burst."""
    values = sorted(v for v in values if v and not math.isnan(v))
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


@dataclass
class Timeline:
    """Merges the ranks' windows of each step into one entry (see `progress.StepMerger`)."""

    start_time: float | None = None  # the job's start (wall clock): entries get elapsed seconds
    entries: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    peak_memory: dict[int, int] = field(default_factory=dict)
    restarts: list[int] = field(default_factory=list)
    weights_sha: dict[int, str] = field(default_factory=dict)  # each rank's final weights
    _attempts: set[tuple[int, int]] = field(default_factory=set)
    _phase: int = 0

    def add(self, reports: list[dict[str, Any]]) -> dict[str, Any]:
        """Merge one step's windows from every rank into an entry (and its prune event, if any)."""
        self._note_restart(reports[0])
        self._note_ranks(reports)
        entry = self._entry(reports)
        self.entries.append(entry)
        self._note_event(reports)
        entry["throughput_gain"] = self.gain(entry)
        return entry

    def _note_restart(self, first: dict[str, Any]) -> None:
        """A new worker group resumed from a checkpoint: drop what its replayed steps will redo."""
        resumed = first.get("resumed_from")
        attempt = (resumed, first.get("pid"))  # a new worker group has new processes
        if resumed is None or attempt in self._attempts:
            return
        self._attempts.add(attempt)
        self.restarts.append(resumed)
        self.entries = [e for e in self.entries if e["step"] <= resumed]
        self.events = [e for e in self.events if e["step"] < resumed]
        self._phase = len(self.events)

    def _note_ranks(self, reports: list[dict[str, Any]]) -> None:
        """Each rank's peak memory so far, and the digest of its final weights when it sent one."""
        for r in reports:
            rank = int(r["rank"])
            self.peak_memory[rank] = max(self.peak_memory.get(rank, 0), int(r["peak_memory_bytes"]))
            if r.get("weights_sha"):
                self.weights_sha[rank] = r["weights_sha"]

    def _entry(self, reports: list[dict[str, Any]]) -> dict[str, Any]:
        first = reports[0]
        return {
            "step": first["step"],
            "phase": self._phase,  # prune events applied when this window's steps ran
            "samples_per_second": sum(r["samples_per_second"] for r in reports),
            "step_time": max(r["step_time"] for r in reports),
            # each rank's loss is its share of the global mean; accuracy is over its own samples
            "loss": sum(r["loss"] for r in reports),
            "accuracy": sum(r["accuracy"] for r in reports) / len(reports),
            "params": first["params"],
            "flops": first["flops"],
            "gradient_allreduce_bytes_per_step": first.get("gradient_allreduce_bytes_per_step"),
            "sparsity": first["sparsity"],
            "val_accuracy": first.get("val_accuracy"),
            "allreduce_bytes_total": sum(r.get("allreduce_bytes_total", 0) for r in reports),
            "elapsed_seconds": self._elapsed(first.get("time")),
        }

    def _note_event(self, reports: list[dict[str, Any]]) -> None:
        """The step's prune event, with every rank's mask digest and local-score digest."""
        event = reports[0].get("event")
        if event is None:
            return
        self.events.append({
            **event,
            "digest_by_rank": {str(r["rank"]): r["event"]["digest"] for r in reports},
            "local_scores_sha_by_rank": {str(r["rank"]): r["event"]["local_scores_sha"] for r in reports},
        })  # fmt: skip
        self._phase += 1

    def _elapsed(self, when: float | None) -> float | None:
        if when is None or self.start_time is None:
            return None
        return round(when - self.start_time, 3)

    def phase_throughput(self, phase: int) -> float | None:
        """Median samples/s of a phase; the run's first window (warm-up) is left out unless it
        is all the phase has (tracing is already excluded from every window)."""
        entries = [e for e in self.entries if e["phase"] == phase and e["samples_per_second"]]
        if len(entries) > 1 and entries[0] is self.entries[0]:
            entries = entries[1:]
        return _median([e["samples_per_second"] for e in entries])

    @property
    def dense_throughput(self) -> float | None:
        return self.phase_throughput(0)

    @property
    def final_throughput(self) -> float | None:
        last = max((e["phase"] for e in self.entries), default=0)
        return self.phase_throughput(last)

    def gain(self, entry: dict[str, Any]) -> float | None:
        dense = self.dense_throughput
        if not dense or not entry["samples_per_second"]:
            return None
        return entry["samples_per_second"] / dense


def build_report(timeline: Timeline, **fields: Any) -> dict[str, Any]:
    dense, final = timeline.dense_throughput, timeline.final_throughput
    first = timeline.entries[0] if timeline.entries else {}
    last = timeline.entries[-1] if timeline.entries else {}
    return {
        **fields,
        "dense_samples_per_second": dense,
        "final_samples_per_second": final,
        "throughput_gain": (final / dense) if dense and final else None,
        "params": {"before": (timeline.events[0]["params_before"] if timeline.events
                              else first.get("params")), "after": last.get("params")},
        "gradient_allreduce_bytes_per_step": {"before": first.get("gradient_allreduce_bytes_per_step"),
                                              "after": last.get("gradient_allreduce_bytes_per_step")},
        "flops_per_sample": {"before": (timeline.events[0]["flops_before"] if timeline.events
                                        else first.get("flops")), "after": last.get("flops")},
        "final_sparsity": last.get("sparsity"),
        "final_val_accuracy": last.get("val_accuracy"),
        "peak_memory_bytes_per_worker": {str(k): v for k, v in sorted(timeline.peak_memory.items())},
        "restarts_from_steps": list(timeline.restarts),
        # the replicas' final weights: one digest when every step averaged the same gradients
        "weights_sha_by_rank": {str(k): v for k, v in sorted(timeline.weights_sha.items())},
        "replicas_identical": len(set(timeline.weights_sha.values())) == 1 if timeline.weights_sha else None,
        "prune_events": timeline.events,
        "timeline": timeline.entries,
    }  # fmt: skip


def write_report(run_dir: Path, report: dict[str, Any]) -> Path:
    path = Path(run_dir) / "report.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(finite(report), indent=2, default=str, allow_nan=False))
    tmp.replace(path)
    return path


def plot_report(run_dir: Path, report: dict[str, Any]) -> Path | None:
    """Throughput, parameters and accuracy against step, prune events marked."""
    entries = report.get("timeline") or []
    if not entries:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e["step"] for e in entries]
    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    axes[0].plot(steps, [e["samples_per_second"] for e in entries], marker=".")
    axes[0].set_ylabel("train samples/s (all workers)")
    axes[1].plot(steps, [e["params"] for e in entries], marker=".", color="tab:orange")
    axes[1].set_ylabel("parameters")
    axes[2].plot(steps, [e["accuracy"] for e in entries], marker=".", label="train (window)")
    val = [(e["step"], e["val_accuracy"]) for e in entries if e.get("val_accuracy") is not None]
    if val:
        axes[2].plot(*zip(*val, strict=True), marker="o", label="validation")
    axes[2].set_ylabel("accuracy")
    axes[2].set_xlabel("step")
    axes[2].legend(loc="lower right")
    for event in report.get("prune_events", []):
        for ax in axes:
            ax.axvline(event["step"], color="grey", linestyle="--", linewidth=0.8)
    gain = report.get("throughput_gain")
    title = report.get("job", "slimray run")
    fig.suptitle(f"{title}: throughput gain {gain:.2f}x" if gain else title)
    fig.tight_layout()
    path = Path(run_dir) / "report.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
