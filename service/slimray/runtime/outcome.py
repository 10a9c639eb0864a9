"""How a run ended: `trainer.fit()` in a thread (so the driver pumps progress meanwhile), the
final model copied out of the last checkpoint, and the job's fields and phases for its report."""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimray.core.jobstate import JobState
from slimray.core.spec import JobSpec
from slimray.runtime.breakdown import PhaseClock
from slimray.runtime.checkpoints import EXPORT_FILE, MODEL_FILE, SAVED_MODEL_DIR


@dataclass
class FitOutcome:
    """What `trainer.fit()` ended with, filled by its thread: Ray's result, or the job's error."""

    result: Any = None
    error: Exception | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None


def fit_in_thread(trainer: Any) -> tuple[threading.Thread, FitOutcome]:
    """Run `trainer.fit()` in a thread, so the driver can pump progress while it runs."""
    outcome = FitOutcome()

    def fit() -> None:
        try:
            outcome.result = trainer.fit()
        except Exception as err:  # the job failed: record it, the driver stays up
            outcome.error = err
        finally:
            outcome.ended = time.time()

    thread = threading.Thread(target=fit, name="slimray-fit", daemon=True)
    thread.start()
    return thread, outcome


def export_final(run_dir: Path, checkpoint: Any) -> dict[str, Any]:
    """Copy the model, the SavedModel and their measured accuracy out of the final checkpoint
    (rank 0 exported them there; see `worker.WorkerLoop.export`)."""
    with checkpoint.as_directory() as directory:
        directory = Path(directory)
        shutil.copyfile(directory / MODEL_FILE, run_dir / "model.keras")
        # a resumed run's directory may hold what an earlier driver exported before it was lost
        shutil.copytree(directory / SAVED_MODEL_DIR, run_dir / "saved_model", dirs_exist_ok=True)
        return json.loads((directory / EXPORT_FILE).read_text())


def driver_phases(clock: PhaseClock, loop_started_at: float | None, loop_finished_at: float | None,
                  outcome: FitOutcome) -> dict[str, float]:  # fmt: skip
    """Start-up runs to rank 0's loop start; shutdown from its loop end to the trainer's return."""
    phases = clock.snapshot()
    fit_end = outcome.ended or time.time()
    loop_start = loop_started_at or fit_end
    loop_end = loop_finished_at or fit_end
    phases["startup"] = phases.get("startup", 0.0) + max(0.0, loop_start - outcome.started)
    phases["shutdown"] = max(0.0, fit_end - loop_end)
    return phases


def job_fields(spec: JobSpec, total_steps: int, run_dir: Path, outcome: FitOutcome,
               started_at: str) -> dict[str, Any]:  # fmt: skip
    """The report's job fields (`records.RunReport`'s first ones); on success the final model is
    exported into the run directory and its measured accuracy joins them."""
    error = outcome.error
    fields: dict[str, Any] = {
        "job": spec.name,
        "state": JobState.FAILED if error else JobState.SUCCEEDED,
        "error": f"{type(error).__name__}: {error}" if error else None,
        "started_at": started_at,
        "total_steps": total_steps,
        "workers": spec.scaling.max_workers,  # an elastic job's groups: the report's worker_groups
        "backend": spec.backend,
        "spec": spec.model_dump(mode="json"),
    }
    if error:
        return fields
    if outcome.result.checkpoint is None:
        fields.update(state=JobState.FAILED, error="the run finished without a final checkpoint")
    else:
        fields.update(export_final(run_dir, outcome.result.checkpoint))
    return fields
