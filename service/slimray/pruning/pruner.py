"""One pruning event end to end: trace, score, allreduce, plan, shrink, carry the optimizer.

The piece the CLI and the distributed worker loop both call.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slimray.pruning.costs import CostTarget
from slimray.pruning.counting import ModelCost, count_model
from slimray.pruning.graph import DependencyGraph, KeptWhole, build_graph
from slimray.pruning.importance import Importance, ScoringBatch, criteria, get_criterion, reduce_scores
from slimray.pruning.optimizer import carry_optimizer
from slimray.pruning.planner import MaskPlanner, PrunePlan, Threshold
from slimray.pruning.reducer import IdentityReducer, Reducer
from slimray.pruning.surgery import shrink


@dataclass
class PruneResult:
    """The smaller model (and optimizer), the plan applied and what it saved. `kept_whole`: the
    layers pruning could not go through (partial pruning); `approximate`: the paths, in model
    order, of the layers whose function the pruning changed (LayerNormalization over a pruned
    axis), so the smaller model matches the original only approximately."""

    model: Any
    optimizer: Any
    plan: PrunePlan
    groups: list[dict[str, Any]]
    before: ModelCost
    after: ModelCost
    durations: dict[str, float] = field(default_factory=dict)
    kept_whole: list[KeptWhole] = field(default_factory=list)
    approximate: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "digest": self.plan.digest,
            "groups": self.groups,
            "channels_before": sum(g["size"] for g in self.groups),
            "channels_after": sum(len(g["kept"]) for g in self.groups),
            "params_before": self.before.params,
            "params_after": self.after.params,
            "flops_before": self.before.flops,
            "flops_after": self.after.flops,
            "durations": dict(self.durations),
            "kept_whole": [k.to_dict() for k in self.kept_whole],
            "approximate": list(self.approximate),
        }


@dataclass(frozen=True)
class PruneDecision:
    """What one worker decided at a prune event: the plan (the same on every worker), with
    what it took to reach it: its local scores (before the allreduce, for the event record) and
    the seconds spent scoring and allreducing."""

    plan: PrunePlan
    local_scores: np.ndarray
    durations: dict[str, float]

    @property
    def allreduce_bytes(self) -> int:
        """Bytes of scores this worker contributed to the allreduce."""
        return int(self.local_scores.nbytes)


def _amount(sparsity: float | None, threshold: float | None, target: Mapping[str, float] | None):
    """The one rule `Pruner.prune` was given, as the planner takes it."""
    given = {"sparsity": sparsity, "threshold": threshold, "target": target}
    if sum(v is not None for v in given.values()) != 1:
        raise ValueError(
            "give exactly one of sparsity, threshold or target. Received: "
            + ", ".join(f"{k}={v!r}" for k, v in given.items())
        )
    if threshold is not None:
        return Threshold(threshold)
    if target is not None:
        if len(target) != 1:
            raise ValueError(f"a target names one metric, flops or params. Received: target={dict(target)!r}")
        ((metric, keep),) = target.items()
        return CostTarget(metric, keep)
    return sparsity


class Pruner:
    """Criterion + planner + reducer; `prune(model, sparsity)` returns a new, smaller model
    (`threshold=t`: the channels whose normalized score is below t go; `target={"flops": f}`: the
    least pruning that keeps at most f of the model's FLOPs)."""

    def __init__(
        self,
        criterion: Any = "l1",
        planner: MaskPlanner | Mapping[str, Any] | None = None,
        reducer: Reducer | None = None,
        strict: bool = False,
    ):
        self.criterion: Importance = get_criterion(criterion)
        self.strict = bool(strict)  # refuse a model with any layer it cannot prune through
        if planner is None:
            planner = MaskPlanner()
        elif isinstance(planner, Mapping):
            planner = MaskPlanner.from_config(dict(planner))
        if not isinstance(planner, MaskPlanner):
            raise TypeError(f"planner must be a MaskPlanner or its config. Received: {planner!r}")
        self.planner = planner
        self.reducer = reducer or IdentityReducer()

    def get_config(self) -> dict[str, Any]:
        return {
            "criterion": criteria.serialize(self.criterion),
            "planner": self.planner.get_config(),
            "strict": self.strict,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Pruner:
        strict = config.get("strict", False)
        return cls(criterion=config["criterion"], planner=config["planner"], strict=strict)

    def decide(
        self,
        model: Any,
        sparsity: float | Threshold | CostTarget,
        batch: ScoringBatch | None = None,
        baseline_sizes: Mapping[str, int] | None = None,
        graph: DependencyGraph | None = None,
    ) -> PruneDecision:
        """Score locally, allreduce, and plan: the same plan on every worker."""
        graph = graph or build_graph(model, self.strict)
        start = time.perf_counter()
        local = self.criterion(graph, batch)
        scored = time.perf_counter()
        scores = reduce_scores(graph, local, self.reducer)
        reduced = time.perf_counter()
        plan = self.planner.plan(graph, scores, sparsity, baseline_sizes)
        flat = np.concatenate(local).astype(np.float64) if local else np.zeros(0)
        return PruneDecision(plan, flat, {"score": scored - start, "allreduce": reduced - scored})

    def apply(
        self,
        model: Any,
        plan: PrunePlan,
        optimizer: Any = None,
        graph: DependencyGraph | None = None,
        durations: dict[str, float] | None = None,
    ) -> PruneResult:
        """Physically remove the channels `plan` drops; the input model is not modified."""
        durations = {} if durations is None else durations
        graph = graph or build_graph(model, self.strict)
        before = count_model(model, graph)
        start = time.perf_counter()
        shrunk = shrink(model, graph, plan)
        new_optimizer = carry_optimizer(optimizer, shrunk.moves, shrunk.model) if optimizer else None
        durations["surgery"] = time.perf_counter() - start
        after = count_model(shrunk.model)
        groups = [
            {"id": g.id, "layers": list(g.layers), "size": g.size, "kept": list(plan.keep[g.id])}
            for g in graph.groups
        ]
        return PruneResult(shrunk.model, new_optimizer, plan, groups, before, after, durations,
                           kept_whole=list(graph.kept_whole), approximate=shrunk.approximate)  # fmt: skip

    def prune(
        self,
        model: Any,
        sparsity: float | None = None,
        batch: ScoringBatch | None = None,
        optimizer: Any = None,
        baseline_sizes: Mapping[str, int] | None = None,
        threshold: float | None = None,
        target: Mapping[str, float] | None = None,
    ) -> PruneResult:
        """One event: to `sparsity` of the baseline, every channel scoring below `threshold`, or
        the least pruning within `target` (`{"flops": f}` or `{"params": f}`: the fraction kept)."""
        amount = _amount(sparsity, threshold, target)
        graph = build_graph(model, self.strict)
        decision = self.decide(model, amount, batch, baseline_sizes, graph)
        return self.apply(model, decision.plan, optimizer, graph, dict(decision.durations))
