"""Where a job's start-up went: the report's `startup` phase split into its parts, each the time
between two timestamps taken where it happens (the driver's, then rank 0's of the first worker
group that reached its loop). Pure pydantic: the driver, the service and the CLI share it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from slimray.core.record_base import Record

# the parts in the order they happen; their sum is the wall-time breakdown's `startup`
STARTUP_PARTS: dict[str, str] = {
    "ray": "starting the embedded Ray, or connecting to a cluster",
    "driver": "the driver's checks before it asks for a worker group (backend, cluster)",
    "controller": "Ray Train's controller and its actors, up to the first worker process",
    "worker_processes": "the worker process starting, up to slimray's training function",
    "framework_import": "TensorFlow and Keras imported in the worker",
    "group_join": "the backend joining the workers into one group (TF's cluster)",
    "model_setup": "the model and optimizer built or restored and agreed on, the loop's data set-up",
}
Seconds = Annotated[float, Field(ge=0.0)]


class WorkerMarks(Record):
    """Rank 0's timestamps (`time.time()`): its process created (by the kernel's clock), its
    training function entered, the framework imported, the group joined (its loop's start is
    the STARTED message's time)."""

    process_created: float
    entered: float
    imported: float
    joined: float | None = None  # set by the loop itself, after the backend is built


class StartupBreakdown(Record):
    """Seconds per start-up part (`STARTUP_PARTS`), adding up to `total`; `first_trace`: tracing
    the first model's step, which the breakdown counts as `tracing`, not as start-up."""

    ray: Seconds = 0.0
    driver: Seconds = 0.0
    controller: Seconds = 0.0
    worker_processes: Seconds = 0.0
    framework_import: Seconds = 0.0
    group_join: Seconds = 0.0
    model_setup: Seconds = 0.0
    total: Seconds = 0.0
    first_trace: Seconds | None = None
    warm: bool = False  # rank 0's process was started before the job (a warm cluster's)

    @classmethod
    def measure(cls, driver: dict[str, float], fit_started: float, marks: WorkerMarks | None,
                end: float) -> StartupBreakdown:  # fmt: skip
        """The parts from the driver's timed stretches (`ray`, `driver`) and the timestamps from
        the trainer's start to `end`, rank 0's loop start (or the trainer's end if no group got
        there). A stamp earlier than the one before it (a worker process Ray had started before
        the job, a clock a node apart) counts from that one, so every part is >= 0 and together
        they span `fit_started` to `end`. A warm process (created before the trainer started)
        waited for the controller until its function was entered: that is all `controller`."""
        parts = {name: float(driver.get(name, 0.0)) for name in ("ray", "driver")}
        warm = marks is not None and marks.process_created < fit_started
        if marks is not None:
            joined = marks.joined or marks.imported
            created = marks.entered if warm else marks.process_created
            stamps = [created, marks.entered, marks.imported, joined, end]
            names = ["controller", "worker_processes", "framework_import", "group_join", "model_setup"]
            previous = fit_started
            for name, stamp in zip(names, stamps, strict=True):
                stamp = min(max(stamp, previous), max(end, previous))
                parts[name], previous = stamp - previous, stamp
        else:  # no worker group reached its loop: all of it waited on the controller
            parts["controller"] = max(0.0, end - fit_started)
        return cls(**parts, total=sum(parts.values()), warm=warm)

    def with_first_trace(self, seconds: float | None) -> StartupBreakdown:
        return self.model_copy(update={"first_trace": seconds})

    def parts(self) -> dict[str, float]:
        """{part: seconds}, in the order they happen."""
        return {name: getattr(self, name) for name in STARTUP_PARTS}
