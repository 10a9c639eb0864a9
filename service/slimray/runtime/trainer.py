"""The driver: starts (or joins) Ray, runs `TensorflowTrainer`, turns worker reports into live
progress and the run directory (model, SavedModel, report.json, report.png)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slimray.spec import JobSpec

EventSink = Callable[[str, dict[str, Any]], None]


class RunDirectoryExists(FileExistsError):
    """The output directory already holds a run; nothing in it is overwritten by default."""


@dataclass
class RunResult:
    state: str  # "succeeded" or "failed"
    run_dir: Path
    report: dict[str, Any]
    error: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def prepare_run_dir(spec: JobSpec, overwrite: bool) -> Path:
    run_dir = Path(spec.output.dir).resolve()
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise RunDirectoryExists(
                f"output.dir {spec.output.dir!r} already holds a run; choose another or overwrite"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def init_ray(address: str | None, spec: JobSpec) -> bool:
    """Join `address`, or start an embedded Ray sized for the job. True if this call started it."""
    import ray

    if ray.is_initialized():
        return False
    env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}}
    if os.environ.get("RAY_ADDRESS") and not address:  # a Ray job's driver: its env is set
        ray.init(log_to_driver=False)
    elif address:
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    else:
        needed = spec.scaling.num_workers * spec.scaling.cpus_per_worker
        # Ray Data and the Train controller need a little CPU beside the training workers
        cpus = max(os.cpu_count() or 1, int(needed) + 2)
        ray.init(num_cpus=cpus, include_dashboard=False, runtime_env=env, log_to_driver=False)
    return True


def _forwarder(queue):
    from ray.train import UserCallback

    class ReportForwarder(UserCallback):
        """Runs in the Train controller: sends every merged report to the driver's queue."""

        def after_report(self, run_context, metrics, checkpoint):
            queue.put({"metrics": metrics})

        def after_exception(self, run_context, worker_exceptions):
            queue.put({"exceptions": {int(k): repr(v) for k, v in worker_exceptions.items()}})

    return ReportForwarder()


def _export_final(run_dir: Path, checkpoint, x_val, y_val) -> dict[str, Any]:
    """Copy the final model out of the last checkpoint, export a SavedModel, measure it."""
    import keras

    from slimray.runtime.checkpoints import MODEL_FILE
    from slimray.runtime.worker import evaluate

    with checkpoint.as_directory() as directory:
        shutil.copyfile(Path(directory) / MODEL_FILE, run_dir / "model.keras")
    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    model.export(str(run_dir / "saved_model"), verbose=False)
    return {
        "exported_accuracy": evaluate(model, x_val, y_val),
        "exported_params": model.count_params(),
    }


def run_job(
    spec: JobSpec,
    address: str | None = None,
    overwrite: bool = False,
    on_event: EventSink | None = None,
    faults: dict[str, Any] | None = None,
) -> RunResult:
    """Run one job to completion; the run directory is written even when the job fails."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer
    from ray.util.queue import Empty, Queue

    from slimray.runtime.data import load_job_data
    from slimray.runtime.report import Timeline, build_report, plot_report, write_report
    from slimray.runtime.worker import train_loop_per_worker

    emit = on_event or (lambda kind, data: None)
    run_dir = prepare_run_dir(spec, overwrite)
    started, t0 = _now(), time.perf_counter()
    init_ray(address, spec)
    data = load_job_data(spec.data, spec.train)
    world = spec.scaling.num_workers
    steps_per_epoch = (data.n_train // world) // spec.train.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"train.batch_size {spec.train.batch_size} x {world} workers exceeds the "
            f"{data.n_train} training samples"
        )
    total = spec.train.steps or spec.train.epochs * steps_per_epoch
    config = {
        "spec": spec.model_dump(mode="json"),
        "validation": ray.put((data.x_val, data.y_val)),
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total,
        "faults": faults or {},
    }
    emit("start", {"total_steps": total, "steps_per_epoch": steps_per_epoch, "world": world,
                   "n_train": data.n_train, "run_dir": str(run_dir)})  # fmt: skip
    queue = Queue()
    resources = {"CPU": spec.scaling.cpus_per_worker}
    if spec.scaling.use_gpu and spec.scaling.gpus_per_worker:
        resources["GPU"] = spec.scaling.gpus_per_worker
    trainer = TensorflowTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(
            num_workers=world, use_gpu=spec.scaling.use_gpu, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name="checkpoints",
            storage_path=str(run_dir),
            failure_config=FailureConfig(max_failures=spec.failure.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=3),
            callbacks=[_forwarder(queue)],
        ),
        datasets={"train": data.train},
    )
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except Exception as err:  # the job failed: record it, the driver stays up
            outcome["error"] = err

    thread = threading.Thread(target=fit, name="slimray-fit", daemon=True)
    thread.start()
    timeline = Timeline()
    while thread.is_alive() or not queue.empty():
        try:
            item = queue.get(timeout=0.5)
        except Empty:
            continue
        if "metrics" in item:
            entry = timeline.add(item["metrics"])
            emit("report", {**entry, "total_steps": total,
                            "event": item["metrics"][0].get("event")})  # fmt: skip
        else:
            emit("worker_error", item["exceptions"])
    thread.join()
    error = outcome.get("error")
    fields: dict[str, Any] = {
        "job": spec.name,
        "state": "failed" if error else "succeeded",
        "error": f"{type(error).__name__}: {error}" if error else None,
        "started_at": started,
        "finished_at": _now(),
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "total_steps": total,
        "workers": world,
        "spec": spec.model_dump(mode="json"),
    }
    if not error:
        result = outcome["result"]
        if result.checkpoint is None:
            fields.update(state="failed", error="the run finished without a final checkpoint")
        else:
            fields.update(_export_final(run_dir, result.checkpoint, data.x_val, data.y_val))
    report = build_report(timeline, **fields)
    write_report(run_dir, report)
    plot_report(run_dir, report)
    emit("end", report)
    return RunResult(report["state"], run_dir, report, report["error"])
