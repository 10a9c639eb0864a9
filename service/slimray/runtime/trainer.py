"""The driver: starts (or joins) Ray, runs the job's Ray Train V2 `DataParallelTrainer`, turns
the workers' progress into live events and the run directory (model, SavedModel, report.json,
report.png)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray

from slimray.core.envvars import RAY_ADDRESS, DriverEnv
from slimray.core.jobstate import JobState
from slimray.core.records import RestartReason
from slimray.core.scaling import group_batch
from slimray.core.spec import JobSpec
from slimray.core.startup import StartupBreakdown
from slimray.core.storage import RunStore, apply_umask
from slimray.runtime.breakdown import PhaseClock, WallTimeBreakdown
from slimray.runtime.cluster import (
    JOB_ENV_VARS,
    build_trainer,
    check_backend,
    check_shared_output,
    controller_env,
    init_ray,
)
from slimray.runtime.data import JobData, load_job_data
from slimray.runtime.gpu import check_gpu
from slimray.runtime.metrics import RayMetrics
from slimray.runtime.outcome import FitOutcome, driver_phases, fit_in_thread, job_fields
from slimray.runtime.progress import ProgressChannel
from slimray.runtime.pump import EventSink, ProgressPump
from slimray.runtime.report import Timeline, build_report, plot_report, write_report
from slimray.runtime.warm import JobProcesses, find_keeper, job_processes, request_refill
from slimray.runtime.worker_config import WorkerConfig

logger = logging.getLogger(__name__)


class RunDirectoryExists(FileExistsError):
    """The output directory already holds a run; nothing in it is overwritten by default."""


@dataclass
class RunResult:
    """How `run_job` ended; `report` is report.json's content."""

    state: JobState  # SUCCEEDED or FAILED
    run_dir: Path | str  # a local directory, or the URI of the run on an object store
    report: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class StepBudget:
    """How many steps the job trains, and how many make an epoch of each worker's shard."""

    steps_per_epoch: int
    total_steps: int


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


DRIVER_RESUMED = "driver resumed"  # the cause of a resumed run's first restart


def check_run_dir(spec: JobSpec, overwrite: bool, resume: bool = False) -> RunStore:
    """The run's store; RunDirectoryExists if it holds a run and neither `overwrite` nor
    `resume` is on."""
    store = RunStore.of(spec.output.dir)
    if store.holds_a_run() and not (overwrite or resume):
        raise RunDirectoryExists(
            f"output.dir {spec.output.dir!r} already holds a run; choose another or overwrite"
        )
    return store


def prepare_run_dir(store: RunStore, resume: bool = False) -> Path:
    """Empty the run's store (only once the job has been checked and can start) unless the job
    resumes from its checkpoints; the local directory the driver writes the run into."""
    if not resume:
        store.clear()
    staging = store.staging()
    staging.mkdir(parents=True, exist_ok=True)  # a resumed run may never have been written
    return staging


def budget_steps(spec: JobSpec, n_train: int) -> StepBudget:
    """The job's step budget (an epoch as the smallest group makes it; each group counts its
    own); ValueError if one batch per worker exceeds the training set at any size it may run at."""
    scaling, batch_size = spec.scaling, spec.train.batch_size
    for world in range(scaling.min_workers, scaling.max_workers + 1):
        group = group_batch(batch_size, scaling, world)
        if group.epoch_steps(n_train) < 1:
            raise ValueError(
                f"train.batch_size {batch_size} x {world} workers exceeds the {n_train} training samples"
                if not scaling.elastic else
                f"a global batch of {group.global_batch} ({group.per_worker} per worker at {world} "
                f"workers) exceeds the {n_train} training samples"
            )  # fmt: skip
    steps_per_epoch = group_batch(batch_size, scaling, scaling.min_workers).epoch_steps(n_train)
    return StepBudget(steps_per_epoch, spec.train.steps or spec.train.epochs * steps_per_epoch)


def _no_events(kind: str, data: dict[str, Any]) -> None:
    """The default event sink: a run nobody watches still writes its run directory."""


@dataclass(frozen=True)
class Faults:
    """What tests inject (production code never sets these): a `WorkerLoop` subclass for the
    workers, and more Ray Train callbacks (e.g. one that loses a worker while the group starts)."""

    loop: type | None = None
    callbacks: tuple[Any, ...] = ()


def run_job(
    spec: JobSpec,
    address: str | None = None,
    overwrite: bool = False,
    on_event: EventSink | None = None,
    loop: type | None = None,
    *,
    resume: bool = False,
    callbacks: tuple[Any, ...] = (),
) -> RunResult:
    """Run one job to completion; the run directory is written even when the job fails.

    `resume`: continue from the run directory's newest readable checkpoint (step 0 without one),
    recorded as a restart ("driver resumed"). `loop` and `callbacks` inject faults (`Faults`).
    A Ray this call started is shut down before it returns."""
    apply_umask()  # the driver writes the run directory (an embedded Ray's workers inherit it)
    store = check_run_dir(spec, overwrite, resume)
    started_ray = False
    try:
        clock = JobClock()
        with clock.startup("ray"):
            started_ray = init_ray(address, spec)
        check_shared_output(spec)
        # before the old run is removed; only a cluster joined by address may gain GPU nodes
        check_gpu(spec.scaling, can_grow=bool(address or os.environ.get(RAY_ADDRESS)))
        clock.resume = resume
        # embedded: a Ray of this call's own (one machine), not a cluster it joined
        embedded = started_ray and not address and not os.environ.get(RAY_ADDRESS)
        return _run(spec, store, clock, on_event or _no_events, Faults(loop, tuple(callbacks)), embedded)
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
    resume: bool = False  # a new driver continues the run directory's job
    startup_parts: PhaseClock = field(default_factory=PhaseClock)  # the driver's start-up, by part

    @contextmanager
    def startup(self, part: str) -> Iterator[None]:
        """Time a stretch of the driver's start-up: in the `startup` phase and as its `part`."""
        with self.phases.phase("startup"), self.startup_parts.phase(part):
            yield

    def startup_breakdown(self, outcome: FitOutcome, pump: ProgressPump, end: float) -> StartupBreakdown:
        """The start-up's parts: this clock's, then the trainer's start to `end` (rank 0's loop)."""
        driver = self.startup_parts.snapshot()
        return StartupBreakdown.measure(driver, outcome.started, pump.startup_marks, end)


@dataclass
class PreparedRun:
    """A checked job ready to train: its data, step budget, emptied run directory, the workers'
    configuration and the channel their progress comes back on."""

    data: JobData
    steps: StepBudget
    run_dir: Path
    config: WorkerConfig
    channel: ProgressChannel


def _prepare(spec: JobSpec, store: RunStore, job_clock: JobClock, loop: type | None,
             resume: bool) -> PreparedRun:  # fmt: skip
    """Check the backend, load the data and budget the steps; only then empty the old run."""
    with job_clock.startup("driver"):
        check_backend(spec)
    with job_clock.phases.phase("data"):
        data = load_job_data(spec.data, spec.train)
    steps = budget_steps(spec, data.n_train)  # the last check: only now is the old run removed
    run_dir = prepare_run_dir(store, resume)
    channel = ProgressChannel()
    config = WorkerConfig(
        spec=spec.model_dump(mode="json"), validation=ray.put((data.x_val, data.y_val)),
        input_shape=tuple(data.input_shape), num_classes=data.num_classes,
        steps_per_epoch=steps.steps_per_epoch, total_steps=steps.total_steps,
        progress=channel.sender(), loop=loop,
        train_arrays=ray.put(data.arrays) if data.arrays is not None else None, n_train=data.n_train,
    )  # fmt: skip
    return PreparedRun(data, steps, run_dir, config, channel)


def _train(
    spec: JobSpec,
    store: RunStore,
    run: PreparedRun,
    emit: EventSink,
    job_clock: JobClock,
    faults: Faults,
    embedded: bool,
) -> tuple[ProgressPump, FitOutcome]:
    """Run the Ray trainer to its end, turning the workers' progress into events meanwhile; each
    report is recorded as Ray metrics too, labelled with the service's job id or the spec's name."""
    steps = run.steps
    emit("start", {"total_steps": steps.total_steps, "steps_per_epoch": steps.steps_per_epoch,
                   "world": spec.scaling.max_workers, "n_train": run.data.n_train,
                   "run_dir": store.location, "backend": spec.backend})  # fmt: skip
    sender = run.channel.sender()
    trainer = build_trainer(spec, store, run.config, run.data.train, sender, faults.callbacks)
    metrics = RayMetrics(DriverEnv.job_label(spec.name), spec.backend)
    pump = ProgressPump(spec.scaling.max_workers, steps.total_steps, emit,
                        Timeline(start_time=job_clock.began_wall), on_report=metrics.on_progress_report,
                        on_restart=metrics.on_restart)  # fmt: skip
    if job_clock.resume:  # its step is the one the first worker group resumes from
        pump.restart(RestartReason.DRIVER_RESUMED, DRIVER_RESUMED, time.time())
    keeper = find_keeper()
    with controller_env(spec, embedded):
        processes = job_processes(dict(JOB_ENV_VARS), spec.scaling.max_workers, run.data.train is not None,
                                  spec.scaling.cpus_per_worker)  # fmt: skip
        thread, outcome = fit_in_thread(trainer)
        pump.on_started = lambda: _announce_startup(job_clock, outcome, pump, metrics, emit)
        pump.pump(run.channel, thread)
    run.channel.close()
    if keeper is not None:
        _refill(keeper, processes)
    return pump, outcome


def _refill(keeper: Any, processes: JobProcesses) -> None:
    """On a warm cluster, have its keeper prestart this job's processes for the next one. A keeper
    that does not answer costs the next job its warm start, never this job its result."""
    try:
        request_refill(keeper, processes)
    except Exception as err:  # any failure of the keeper is only logged
        logger.warning("the warm-worker keeper did not take the refill: %s: %s", type(err).__name__, err)


def _announce_startup(job_clock: JobClock, outcome: FitOutcome, pump: ProgressPump, metrics: RayMetrics,
                      emit: EventSink) -> None:  # fmt: skip
    """The first worker group's rank 0 entered its loop: the start-up's parts, as Ray metrics and
    as a "startup" event (the service's metrics, the CLI)."""
    breakdown = job_clock.startup_breakdown(outcome, pump, pump.loop_started_at or time.time())
    metrics.on_startup(breakdown)
    emit("startup", breakdown.model_dump())


def _run(spec: JobSpec, store: RunStore, job_clock: JobClock, emit: EventSink, faults: Faults,
         embedded: bool) -> RunResult:  # fmt: skip
    """Prepare, train, export and report one job on a running Ray (`embedded`: started for it)."""
    clock = job_clock.phases
    run = _prepare(spec, store, job_clock, faults.loop, job_clock.resume)
    pump, outcome = _train(spec, store, run, emit, job_clock, faults, embedded)
    with clock.phase("export"):
        fields = job_fields(spec, run.steps.total_steps, run.run_dir, outcome, job_clock.began_at)
        report = build_report(pump.timeline, prune=spec.prune, **fields)
        plot_report(run.run_dir, report)
    total = time.perf_counter() - job_clock.began
    phases = driver_phases(clock, pump.loop_started_at, pump.loop_finished_at, outcome)
    breakdown = WallTimeBreakdown.assemble(phases, pump.worker_phases, total)
    report.finished_at, report.wall_seconds, report.wall_time = _now(), round(total, 2), breakdown.to_dict()
    loop_start = pump.loop_started_at or outcome.ended or time.time()  # as `driver_phases` counts it
    report.startup = job_clock.startup_breakdown(outcome, pump, loop_start).with_first_trace(pump.first_trace)
    write_report(run.run_dir, report)
    store.publish(run.run_dir)
    wire = report.wire()
    emit("end", wire)
    location = run.run_dir if store.local else store.location
    return RunResult(report.state or JobState.FAILED, location, wire, report.error)
