"""Cost budgets instead of sparsities: a model's parameters and FLOPs under candidate keep masks,
estimated from its traced graph without surgery, so a planner can search for the mask that fits.

Parameters are exact (each weight's pruned axes shrink to the kept channels). A layer's FLOPs are
scaled by its weights' kept share (a convolution's by c_in x c_out, a normalization's by its
channels); a layer without weights by its outputs' kept share. The shrunk model's exact count
(`count_model`) is what the event records; the estimate only steers the search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from slimray.pruning.counting import count_model
from slimray.pruning.graph import DependencyGraph

METRICS = ("flops", "params")


@dataclass(frozen=True)
class CostTarget:
    """Keep `keep` of the dense model's `metric` (a fraction in (0, 1]); `dense` is that model's
    count (None: the model being pruned is the dense one). Which channels go follows the scores."""

    metric: str
    keep: float
    dense: int | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"a cost target's metric must be one of {METRICS}. Received: {self.metric!r}")
        keep = self.keep
        if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0.0 < keep <= 1.0:
            raise ValueError(f"{self.metric} (the fraction kept) must be in (0, 1]. Received: {keep!r}")

    def budget(self, current: int) -> float:
        """The count the pruned model may have."""
        return self.keep * (self.dense if self.dense is not None else current)


@dataclass(frozen=True)
class _Axis:
    """The positions along one pruned axis of a weight: where each falls (group, channel)."""

    group: np.ndarray
    channel: np.ndarray


@dataclass(frozen=True)
class _Weight:
    shape: tuple[int, ...]
    axes: dict[int, _Axis]


@dataclass(frozen=True)
class _Layer:
    flops: int
    weights: tuple[_Weight, ...]
    outputs: tuple[_Axis, ...]  # for a layer without weights: its outputs' channels


class CostModel:
    """Estimates the params and FLOPs of `graph`'s model if it kept only `masks` (per group, in
    the graph's order); the parts no group touches count as they are."""

    def __init__(self, graph: DependencyGraph):
        self._graph = graph
        exact = count_model(graph.model, graph)
        self.current = {"params": exact.params, "flops": exact.flops}
        self._layers = [self._layer(record) for record in graph.layer_records() if not record.kept_whole]
        full = [np.ones(g.size, dtype=bool) for g in graph.groups]
        self._full = self._estimate(full)

    def count(self, masks: list[np.ndarray]) -> dict[str, int]:
        """The model's counts after keeping `masks`: the exact current counts less the estimated
        savings (what the estimate does not model stays constant)."""
        estimate = self._estimate(masks)
        return {m: round(self.current[m] - (self._full[m] - estimate[m])) for m in METRICS}

    def _axis(self, ids: np.ndarray) -> _Axis:
        group, channel = self._graph.locate(np.asarray(ids))
        return _Axis(group, channel)

    def _layer(self, record: Any) -> _Layer:
        flops = int(sum(record.handler.flops(record.layer, call) for call in record.calls))
        by_key, weights = record.weights_by_key(), []
        for key, axes in record.param_axes().items():
            weight = by_key.get(key)
            if weight is not None:
                weights.append(_Weight(tuple(weight.shape), {a: self._axis(ids) for a, ids in axes.items()}))
        outputs = tuple(self._axis(ids) for ids in record.out_ids)
        return _Layer(flops, tuple(weights), outputs)

    def _estimate(self, masks: list[np.ndarray]) -> dict[str, float]:
        flat = np.concatenate([np.asarray(m, dtype=bool) for m in masks]) if masks else np.zeros(0, bool)
        offsets = np.concatenate([[0], np.cumsum([len(m) for m in masks])]).astype(np.int64)

        def kept(axis: _Axis) -> int:
            prunable = axis.group >= 0
            gone = ~flat[offsets[axis.group[prunable]] + axis.channel[prunable]]
            return len(axis.group) - int(np.count_nonzero(gone))

        params = flops = 0.0
        for layer in self._layers:
            before = after = 0
            for w in layer.weights:
                before += math.prod(w.shape)
                after += math.prod(kept(w.axes[i]) if i in w.axes else d for i, d in enumerate(w.shape))
            params += after
            if before:
                share = after / before
            elif layer.outputs:
                share = sum(kept(a) for a in layer.outputs) / max(1, sum(len(a.group) for a in layer.outputs))
            else:
                share = 1.0
            flops += layer.flops * share
        return {"params": params, "flops": flops}
