"""`prune.target`: a cost budget instead of a sparsity, the fraction of the dense model's FLOPs or
parameters to keep (`slimray.pruning.costs` plans it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

COST_METRICS = ("flops", "params")  # slimray.pruning.costs.METRICS: what a cost target counts


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetSpec(_Strict):
    """What the user wants kept instead of a sparsity: exactly one fraction of the dense model's
    count; the planner finds the least pruning that fits it, event by event."""

    flops: float | None = Field(
        None, gt=0, lt=1, allow_inf_nan=False, description="Fraction of the dense model's FLOPs/sample kept."
    )
    params: float | None = Field(
        None, gt=0, lt=1, allow_inf_nan=False, description="Fraction of the dense model's parameters kept."
    )
    throughput_gain: float | None = Field(
        None, gt=1, allow_inf_nan=False,
        description="Samples/s relative to the dense model: needs a cost model measured on the job's "
        "workers, not built yet (refused).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _one_goal(self) -> TargetSpec:
        given = {k: v for k, v in self.model_dump().items() if v is not None}
        if len(given) != 1:
            raise ValueError(f"give exactly one of flops, params or throughput_gain. Received: {given}")
        if self.throughput_gain is not None:
            raise ValueError(
                f"throughput_gain={self.throughput_gain} is not supported yet (it needs a step-time "
                "model measured on the job's workers): give flops or params, the fraction of the "
                "dense model's count to keep"
            )
        return self

    @property
    def metric(self) -> str:
        return "flops" if self.flops is not None else "params"

    @property
    def keep(self) -> float:
        return self.flops if self.flops is not None else self.params  # type: ignore[return-value]
