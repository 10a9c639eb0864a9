"""What a fault benchmark reads of a job's run directory, from outside: the checkpoints Ray Train
has registered (its manager's snapshot file), the newest one's files, and the final report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's list of registered checkpoints
STATE = "state.json"  # slimray's: written last, so its presence marks a complete checkpoint


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int | None


def registered_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Checkpoints Ray Train has registered, oldest first (empty while none, or unreadable)."""
    root = run_dir / "checkpoints"
    try:
        snapshot = json.loads((root / SNAPSHOT).read_text())
    except (OSError, ValueError):
        return []
    found = []
    for result in snapshot.get("checkpoint_results") or []:
        path = root / str(result.get("checkpoint_dir_name"))
        if (path / STATE).exists():
            found.append(Checkpoint(path, (result.get("metrics") or {}).get("step")))
    return found


def unregistered_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint folders on disk that Ray Train has not registered yet (reports in flight)."""
    registered = {c.path.name for c in registered_checkpoints(run_dir)}
    root = run_dir / "checkpoints"
    return sorted(p for p in root.glob("checkpoint_*") if p.is_dir() and p.name not in registered)


def newest_checkpoint(run_dir: Path) -> Checkpoint | None:
    found = registered_checkpoints(run_dir)
    return max(found, key=lambda c: (c.step or -1, c.path.name)) if found else None


def truncate_largest_file(checkpoint: Checkpoint) -> Path:
    """Cut the checkpoint's largest file to half its bytes (a truncated upload, a full disk)."""
    files = [p for p in checkpoint.path.rglob("*") if p.is_file() and p.name != STATE]
    target = max(files, key=lambda p: p.stat().st_size)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


@dataclass(frozen=True)
class ReportSummary:
    """The final report's figures a fault is judged by (None where the job left no report)."""

    state: str | None = None
    params: int | None = None
    accuracy: float | None = None
    workers: int | None = None
    restarts_from_steps: list[int] = field(default_factory=list)
    restart_causes: list[str] = field(default_factory=list)
    prune_steps: list[int] = field(default_factory=list)
    error: str | None = None


def read_report(run_dir: Path) -> ReportSummary:
    try:
        report = json.loads((run_dir / "report.json").read_text())
    except (OSError, ValueError):
        return ReportSummary()
    return ReportSummary(
        state=report.get("state"),
        params=report.get("exported_params"),
        accuracy=report.get("exported_accuracy", report.get("final_val_accuracy")),
        workers=report.get("workers"),
        restarts_from_steps=list(report.get("restarts_from_steps") or []),
        restart_causes=restart_causes(report),
        prune_steps=[event.get("step") for event in report.get("prune_events") or []],
        error=report.get("error"),
    )


def restart_causes(report: dict[str, Any]) -> list[str]:
    """Every restart's recorded cause, wherever the report lists restarts as records (the field
    is being added: any list under a key naming restarts whose items carry a cause or reason)."""
    causes = []
    for key, value in report.items():
        if "restart" not in key or not isinstance(value, list):
            continue
        for item in value:
            if isinstance(item, dict):
                cause = item.get("cause") or item.get("reason")
                if cause:
                    causes.append(str(cause) if isinstance(cause, str) else json.dumps(cause))
    return causes
