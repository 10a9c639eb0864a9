"""The driver: starts (or joins) Ray, runs `TensorflowTrainer`, turns the workers' progress
messages into live events and the run directory (model, SavedModel, report.json, report.png)."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slimray.core.envvars import RAY_ADDRESS, DriverEnv
from slimray.core.jobstate import JobState
from slimray.core.spec import BUILT_IN_BACKENDS, JobSpec
from slimray.core.storage import RunStore, apply_umask
from slimray.runtime.breakdown import PhaseClock, WallTimeBreakdown
from slimray.runtime.data import JobData, load_job_data
from slimray.runtime.gpu import check_gpu
from slimray.runtime.progress import FINISHED, STARTED, WINDOW, ProgressChannel, StepMerger, WorkerMessage
from slimray.runtime.report import Timeline
from slimray.runtime.worker_config import WorkerConfig, train_loop_per_worker

EventSink = Callable[[str, dict[str, Any]], None]
ERROR = "error"  # a message the controller's callback sends: worker exceptions
_POLL_SECONDS = 0.25


class RunDirectoryExists(FileExistsError):
    """The output directory already holds a run; nothing in it is overwritten by default."""


@dataclass
class RunResult:
    state: JobState  # SUCCEEDED or FAILED
    run_dir: Path | str  # a local directory, or the URI of the run on an object store
    report: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class StepPlan:
    steps_per_epoch: int
    total_steps: int


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_run_dir(spec: JobSpec, overwrite: bool) -> RunStore:
    """The run's store; RunDirectoryExists if it holds a run and `overwrite` is off."""
    store = RunStore.of(spec.output.dir)
    if store.holds_a_run() and not overwrite:
        raise RunDirectoryExists(
            f"output.dir {spec.output.dir!r} already holds a run; choose another or overwrite"
        )
    return store


def prepare_run_dir(store: RunStore) -> Path:
    """Empty the run's store (only once the job has been checked and can start); the local
    directory the driver writes the run into."""
    store.clear()
    return store.staging()


def check_shared_output(spec: JobSpec) -> None:
    """The job's output must serve every alive node of the cluster it joined."""
    import ray

    problem = spec.output.cluster_problem(len([n for n in ray.nodes() if n.get("Alive")]))
    if problem:
        raise ValueError(problem)


def check_backend(spec: JobSpec) -> None:
    """A job's backend must run on the cluster: a tiny Ray task asks a node (before anything of the
    old run is removed). BackendUnavailableError names the field and the remedy."""
    import ray

    from slimray.runtime.backends import BackendUnavailableError, backend_missing

    if spec.backend in BUILT_IN_BACKENDS:
        return
    problem = ray.get(ray.remote(num_cpus=0)(backend_missing).remote(spec.backend))
    if problem:
        raise BackendUnavailableError(f"backend: {spec.backend!r} cannot run on this Ray cluster: {problem}")


def init_ray(address: str | None, spec: JobSpec) -> bool:
    """Join `address`, or start an embedded Ray sized for the job. True if this call started it.

    Embedded means a new cluster (`address="local"`): never whatever cluster Ray's
    `ray_current_cluster` file names, which may be someone else's or long dead."""
    import ray

    if ray.is_initialized():
        return False
    env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}}
    if os.environ.get(RAY_ADDRESS) and not address:  # a Ray job's driver: its env is set
        ray.init(log_to_driver=False)
    elif address:
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    else:
        needed = spec.scaling.num_workers * spec.scaling.cpus_per_worker
        # Ray Data and the Train controller need a little CPU beside the training workers
        cpus = max(os.cpu_count() or 1, int(needed) + 2)
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, runtime_env=env,
                 log_to_driver=False)  # fmt: skip
    return True


# how often the Train controller polls its workers: it drains each worker's one-slot result
# queue (a checkpoint report waits for it) and notices the loop's end. Ray's default is 2 s.
# Measured on a 20-step MNIST job, 2 s and 0.5 s alternating twice: the shutdown phase took
# 3.7 and 3.1 s at 2 s, 1.2 and 1.5 s at 0.5 s.
HEALTH_CHECK_INTERVAL_S = 0.5


@contextlib.contextmanager
def controller_env(spec: JobSpec) -> Iterator[None]:
    """Ray Train reads its controller settings from the driver's environment (and passes them
    to the controller): the worker-group start timeout (with `controller_failure_limit=0` a
    group that cannot be placed in time fails the job with Ray's reason instead of waiting
    forever) and the poll interval (an operator's own RAY_TRAIN_HEALTH_CHECK_INTERVAL_S wins)."""
    wanted = {"RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": str(spec.scaling.start_timeout_seconds)}
    if "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S" not in os.environ:
        wanted["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = str(HEALTH_CHECK_INTERVAL_S)
    before = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def plan_steps(spec: JobSpec, n_train: int) -> StepPlan:
    world = spec.scaling.num_workers
    steps_per_epoch = (n_train // world) // spec.train.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"train.batch_size {spec.train.batch_size} x {world} workers exceeds the "
            f"{n_train} training samples"
        )
    return StepPlan(steps_per_epoch, spec.train.steps or spec.train.epochs * steps_per_epoch)


def _error_forwarder(sender):
    from ray.train import UserCallback

    class ErrorForwarder(UserCallback):
        """Runs in the Train controller: hands worker exceptions to the driver's channel."""

        def after_exception(self, run_context, worker_exceptions):
            errors = {str(k): repr(v) for k, v in worker_exceptions.items()}
            sender.send(WorkerMessage(ERROR, -1, -1, -1, time.time(), errors))

    return ErrorForwarder()


def _build_trainer(spec: JobSpec, store: RunStore, config: Any, dataset: Any, sender: Any):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from slimray.runtime.backends import get_backend

    resources = {"CPU": spec.scaling.cpus_per_worker}
    if spec.scaling.use_gpu and spec.scaling.gpus_per_worker:
        resources["GPU"] = spec.scaling.gpus_per_worker
    return DataParallelTrainer(
        train_loop_per_worker,
        train_loop_config={"worker": config},
        backend_config=get_backend(spec.backend).ray_config(),
        scaling_config=ScalingConfig(
            num_workers=spec.scaling.num_workers,
            use_gpu=spec.scaling.use_gpu,
            resources_per_worker=resources,
            placement_strategy=spec.scaling.placement_strategy,
        ),
        run_config=RunConfig(
            name="checkpoints",
            storage_path=store.ray_storage_path,
            # a worker group that cannot start in time fails the job (not retried forever)
            failure_config=FailureConfig(max_failures=spec.failure.max_failures, controller_failure_limit=0),
            checkpoint_config=CheckpointConfig(num_to_keep=3),
            callbacks=[_error_forwarder(sender)],
        ),
        datasets={"train": dataset} if dataset is not None else None,
    )


@dataclass
class ProgressPump:
    """Turns worker messages into timeline entries and live events while the trainer runs."""

    world: int
    total_steps: int
    emit: EventSink
    timeline: Timeline
    merger: StepMerger = field(init=False)
    loop_started_at: float | None = None  # rank 0's first loop start (wall clock)
    loop_finished_at: float | None = None
    worker_phases: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.merger = StepMerger(self.world)

    def handle(self, message: WorkerMessage) -> None:
        if message.kind == WINDOW:
            for reports in self.merger.add(message):
                entry = self.timeline.add(reports)
                self.emit("report", {**entry, "total_steps": self.total_steps,
                                     "event": reports[0].get("event")})  # fmt: skip
        elif message.kind == ERROR:
            self.emit("worker_error", message.payload)
        elif message.rank == 0 and message.kind == STARTED and self.loop_started_at is None:
            self.loop_started_at = message.time
        elif message.rank == 0 and message.kind == FINISHED:
            self.loop_finished_at = message.time
            self.worker_phases = message.payload["phases"]

    def pump(self, channel: Any, running: threading.Thread) -> None:
        while running.is_alive():
            running.join(_POLL_SECONDS)
            for message in channel.drain():
                self.handle(message)
        for message in channel.drain():  # what arrived after the last poll
            self.handle(message)


@dataclass
class FitOutcome:
    """What `trainer.fit()` ended with, filled by its thread: Ray's result, or the job's error."""

    result: Any = None
    error: Exception | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None


def _fit(trainer: Any) -> tuple[threading.Thread, FitOutcome]:
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


def _export_final(run_dir: Path, checkpoint) -> dict[str, Any]:
    """Copy the model, the SavedModel and their measured accuracy out of the final checkpoint
    (rank 0 exported them there; see `worker.WorkerLoop.export`)."""
    import json

    from slimray.runtime.checkpoints import EXPORT_FILE, MODEL_FILE, SAVED_MODEL_DIR

    with checkpoint.as_directory() as directory:
        directory = Path(directory)
        shutil.copyfile(directory / MODEL_FILE, run_dir / "model.keras")
        shutil.copytree(directory / SAVED_MODEL_DIR, run_dir / "saved_model")
        return json.loads((directory / EXPORT_FILE).read_text())


def _driver_phases(clock: PhaseClock, pump: ProgressPump, outcome: FitOutcome) -> dict:
    """Start-up runs to rank 0's loop start; shutdown from its loop end to the trainer's return."""
    phases = clock.snapshot()
    fit_end = outcome.ended or time.time()
    loop_start = pump.loop_started_at or fit_end
    loop_end = pump.loop_finished_at or fit_end
    phases["startup"] = phases.get("startup", 0.0) + max(0.0, loop_start - outcome.started)
    phases["shutdown"] = max(0.0, fit_end - loop_end)
    return phases


def run_job(
    spec: JobSpec,
    address: str | None = None,
    overwrite: bool = False,
    on_event: EventSink | None = None,
    loop: type | None = None,
) -> RunResult:
    """Run one job to completion; the run directory is written even when the job fails.

    `loop` replaces the workers' `WorkerLoop` (tests inject faults with a subclass). A Ray this
    call started is shut down before it returns."""
    import ray

    from slimray.runtime.metrics import RayMetricsSink

    apply_umask()  # the driver writes the run directory (an embedded Ray's workers inherit it)
    store = check_run_dir(spec, overwrite)
    started_ray = False
    try:
        clock = JobClock()
        with clock.phases.phase("startup"):
            started_ray = init_ray(address, spec)
        check_shared_output(spec)
        # before the old run is removed; only a cluster joined by address may gain GPU nodes
        check_gpu(spec.scaling, can_grow=bool(address or os.environ.get(RAY_ADDRESS)))
        # the service's job id when it submitted the job, else the spec's name
        job_label = DriverEnv.job_label(spec.name)
        emit = RayMetricsSink(job_label, on_event or (lambda kind, data: None), spec.backend)
        return _run(spec, store, clock, emit, loop)
    finally:
        if started_ray:
            ray.shutdown()


@dataclass
class JobClock:
    """When the job began (for its wall time and timeline) and the driver's phase clock."""

    phases: PhaseClock = field(default_factory=PhaseClock)
    began: float = field(default_factory=time.perf_counter)
    began_wall: float = field(default_factory=time.time)
    began_at: str = field(default_factory=_now)


@dataclass
class PreparedRun:
    """A checked job ready to train: its data, step plan, emptied run directory, the workers'
    configuration and the channel their progress comes back on."""

    data: JobData
    steps: StepPlan
    run_dir: Path
    config: WorkerConfig
    channel: ProgressChannel


def _prepare(spec: JobSpec, store: RunStore, clock: PhaseClock, loop: type | None) -> PreparedRun:
    """Check the backend, load the data and plan the steps; only then empty the old run."""
    import ray

    with clock.phase("startup"):
        check_backend(spec)
    with clock.phase("data"):
        data = load_job_data(spec.data, spec.train)
    steps = plan_steps(spec, data.n_train)  # the last check: only now is the old run removed
    run_dir = prepare_run_dir(store)
    channel = ProgressChannel()
    config = WorkerConfig(
        spec=spec.model_dump(mode="json"), validation=ray.put((data.x_val, data.y_val)),
        input_shape=tuple(data.input_shape), num_classes=data.num_classes,
        steps_per_epoch=steps.steps_per_epoch, total_steps=steps.total_steps,
        progress=channel.sender(), loop=loop,
        train_arrays=ray.put(data.arrays) if data.arrays is not None else None,
    )  # fmt: skip
    return PreparedRun(data, steps, run_dir, config, channel)


def _train(
    spec: JobSpec, store: RunStore, run: PreparedRun, emit: EventSink, began_wall: float
) -> tuple[ProgressPump, FitOutcome]:
    """Run the Ray trainer to its end, turning the workers' progress into events meanwhile."""
    steps = run.steps
    emit("start", {"total_steps": steps.total_steps, "steps_per_epoch": steps.steps_per_epoch,
                   "world": spec.scaling.num_workers, "n_train": run.data.n_train,
                   "run_dir": store.location, "backend": spec.backend})  # fmt: skip
    trainer = _build_trainer(spec, store, run.config, run.data.train, run.channel.sender())
    pump = ProgressPump(spec.scaling.num_workers, steps.total_steps, emit,
                        Timeline(start_time=began_wall))  # fmt: skip
    with controller_env(spec):
        thread, outcome = _fit(trainer)
        pump.pump(run.channel, thread)
    run.channel.close()
    return pump, outcome


def _outcome_fields(spec: JobSpec, run: PreparedRun, outcome: FitOutcome, started: str) -> dict[str, Any]:
    """The report's job fields; on success the final model is exported into the run directory."""
    error = outcome.error
    fields: dict[str, Any] = {
        "job": spec.name,
        "state": JobState.FAILED if error else JobState.SUCCEEDED,
        "error": f"{type(error).__name__}: {error}" if error else None,
        "started_at": started,
        "total_steps": run.steps.total_steps,
        "workers": spec.scaling.num_workers,
        "backend": spec.backend,
        "spec": spec.model_dump(mode="json"),
    }
    if error:
        return fields
    if outcome.result.checkpoint is None:
        fields.update(state=JobState.FAILED, error="the run finished without a final checkpoint")
    else:
        fields.update(_export_final(run.run_dir, outcome.result.checkpoint))
    return fields


def _run(
    spec: JobSpec, store: RunStore, job_clock: JobClock, emit: EventSink, loop: type | None
) -> RunResult:
    """Prepare, train, export and report one job on a running Ray."""
    from slimray.runtime.report import build_report, plot_report, write_report

    clock = job_clock.phases
    run = _prepare(spec, store, clock, loop)
    pump, outcome = _train(spec, store, run, emit, job_clock.began_wall)
    with clock.phase("export"):
        report = build_report(pump.timeline, **_outcome_fields(spec, run, outcome, job_clock.began_at))
        plot_report(run.run_dir, report)
    total = time.perf_counter() - job_clock.began
    breakdown = WallTimeBreakdown.assemble(_driver_phases(clock, pump, outcome), pump.worker_phases, total)
    report.update(finished_at=_now(), wall_seconds=round(total, 2), wall_time=breakdown.to_dict())
    write_report(run.run_dir, report)
    store.publish(run.run_dir)
    emit("end", report)
    location = run.run_dir if store.local else store.location
    return RunResult(report["state"], location, report, report["error"])
