"""How many workers a job runs on and how they are placed: a count, or a range {min, max} that
Ray Train's elastic policy resizes within; and the batch rule that keeps the global batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


MAX_WORKERS = 1024


class WorkerRange(_Strict):
    """An elastic worker count: the job starts with as many workers as fit, at least `min`, and
    Ray Train resizes the group (from its last checkpoint) as nodes come and go, up to `max`."""

    min: int = Field(ge=1, le=MAX_WORKERS)
    max: int = Field(ge=1, le=MAX_WORKERS)

    @model_validator(mode="after")
    def _order(self) -> WorkerRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must be <= max ({self.max})")
        return self


def _reason(error: Any) -> str:
    msg = error["msg"].removeprefix("Value error, ")
    return f"{'.'.join(map(str, error['loc']))}: {msg}" if error["loc"] else msg


def _worker_range(value: Any) -> Any:
    """A mapping becomes a `WorkerRange`; its problems are reported on `scaling.num_workers`
    itself (not on each branch of the int-or-range union)."""
    if not isinstance(value, dict):
        return value
    try:
        return WorkerRange.model_validate(value)
    except ValidationError as err:
        reasons = "; ".join(_reason(e) for e in err.errors())
        raise ValueError(f"a range {{min, max}} with 1 <= min <= max <= {MAX_WORKERS} ({reasons})") from None


class ScalingSpec(_Strict):
    num_workers: Annotated[int | WorkerRange, BeforeValidator(_worker_range)] = Field(
        2, description="Workers: a count, or a range {min, max} for elastic training (the group "
        "resizes from its last checkpoint as capacity comes and goes; train.batch_size is then the "
        "per-worker batch at min workers, and the global batch is kept).",
    )  # fmt: skip
    resize_interval_seconds: float = Field(
        60.0, gt=0, le=86400,
        description="With a worker range: how often a running group checks whether more workers fit.",
    )  # fmt: skip
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0, le=1024)
    gpus_per_worker: float = Field(0.0, ge=0, le=64)
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK", description="How workers are placed on nodes (STRICT_SPREAD: one per node)."
    )
    start_timeout_seconds: float = Field(
        300.0, gt=0, le=86400,
        description="How long the worker group may wait for resources before the job fails.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _gpus(self) -> ScalingSpec:
        if self.gpus_per_worker > 0 and not self.use_gpu:
            raise ValueError("gpus_per_worker > 0 needs use_gpu: true")
        return self

    @field_validator("num_workers")
    @classmethod
    def _count(cls, value: int | WorkerRange) -> int | WorkerRange:
        if isinstance(value, int) and not 1 <= value <= MAX_WORKERS:
            raise ValueError(f"must be between 1 and {MAX_WORKERS}, or a range {{min, max}}")
        return value

    @property
    def elastic(self) -> bool:
        return isinstance(self.num_workers, WorkerRange)

    @property
    def min_workers(self) -> int:
        return self.num_workers.min if isinstance(self.num_workers, WorkerRange) else self.num_workers

    @property
    def max_workers(self) -> int:
        return self.num_workers.max if isinstance(self.num_workers, WorkerRange) else self.num_workers


@dataclass(frozen=True)
class GroupBatch:
    """One worker group's batch: the job's global batch (`target`: train.batch_size at min
    workers) split over `workers`, rounded down to a multiple of them (`global_batch`)."""

    workers: int
    per_worker: int
    global_batch: int
    target: int

    def epoch_steps(self, n_train: int) -> int:
        """Steps in one epoch of each worker's equal shard of `n_train` samples."""
        return (n_train // self.workers) // self.per_worker if self.per_worker else 0


def group_batch(batch_size: int, scaling: ScalingSpec, workers: int) -> GroupBatch:
    """The rule that keeps the global batch across resizes: each of `workers` trains on
    target // workers samples a step (the global batch falls short of the target by less than
    one sample per worker when `workers` does not divide it; the report shows each group's)."""
    target = batch_size * scaling.min_workers
    per_worker = target // workers
    return GroupBatch(workers, per_worker, per_worker * workers, target)
